//! The self-signed certificate the admin uploads to Apple Business Manager: Apple only
//! reads its public key and encrypts the server token to it, naming it in the token by
//! issuer and serial number.

use std::fmt;
use std::time::Duration;

use cms::cert::IssuerAndSerialNumber;
use cms::enveloped_data::RecipientIdentifier;
use der::asn1::{GeneralizedTime, SetOfVec, UtcTime};
use der::{Any, DateTime, Decode, Encode, Tag, Tagged};
use rsa::pkcs1v15::SigningKey;
use sha2::Sha256;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{BasicConstraints, SubjectKeyIdentifier};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::digest::DigestAlgorithm;
use crate::error::CryptoError;
use crate::key::{self, KeyPair};
use crate::rng::{self, SysRng};
use crate::{oid, pem, tlv};

/// X.520 ub-common-name.
const MAX_CN_LEN: usize = 64;

/// A parsed X.509 certificate together with its DER bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    cert: x509_cert::Certificate,
}

impl Certificate {
    /// Parses DER. Only structure is checked, not the signature or validity dates.
    pub fn from_der(der: &[u8]) -> Result<Certificate, CryptoError> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| CryptoError::InvalidCertificate(format!("not DER X.509: {e}")))?;
        Ok(Certificate {
            der: der.to_vec(),
            cert,
        })
    }

    /// Parses the first `-----BEGIN CERTIFICATE-----` block of `text`.
    pub fn from_pem(text: &str) -> Result<Certificate, CryptoError> {
        let block = pem::find_block(text)
            .ok_or_else(|| CryptoError::InvalidCertificate("no PEM block found".into()))?;
        if block.label != "CERTIFICATE" {
            return Err(CryptoError::InvalidCertificate(format!(
                "PEM block is {:?}, expected CERTIFICATE",
                block.label
            )));
        }
        let der = pem::decode_base64(block.body)
            .map_err(|e| CryptoError::InvalidCertificate(format!("PEM body: {e}")))?;
        Certificate::from_der(&der)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// `-----BEGIN CERTIFICATE-----` PEM with LF line endings: the `.pem` for ABM.
    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }

    pub fn not_before_unix(&self) -> i64 {
        unix(self.cert.tbs_certificate.validity.not_before)
    }

    pub fn not_after_unix(&self) -> i64 {
        unix(self.cert.tbs_certificate.validity.not_after)
    }

    /// Serial number as lowercase hex (big-endian, as `openssl x509 -serial` shows it).
    pub fn serial_hex(&self) -> String {
        self.cert
            .tbs_certificate
            .serial_number
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether this certificate carries `key`'s public key: a staged key and its
    /// certificate must belong together.
    pub fn matches_key(&self, key: &KeyPair) -> bool {
        let Ok(ours) = key.public_key_der() else {
            return false;
        };
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .is_ok_and(|spki| spki == ours)
    }

    /// Whether a CMS recipient identifier names this certificate.
    pub(crate) fn is_recipient(&self, rid: &RecipientIdentifier) -> bool {
        match rid {
            RecipientIdentifier::IssuerAndSerialNumber(ias) => self.is_issuer_and_serial(ias),
            RecipientIdentifier::SubjectKeyIdentifier(ski) => self.has_key_id(ski.0.as_bytes()),
        }
    }

    fn is_issuer_and_serial(&self, ias: &IssuerAndSerialNumber) -> bool {
        let tbs = &self.cert.tbs_certificate;
        // Compare encodings: Apple copies our issuer Name verbatim.
        ias.serial_number.as_bytes() == tbs.serial_number.as_bytes()
            && matches!((ias.issuer.to_der(), tbs.issuer.to_der()), (Ok(a), Ok(b)) if a == b)
    }

    fn has_key_id(&self, id: &[u8]) -> bool {
        self.subject_key_identifier()
            .is_some_and(|ours| ours.0.as_bytes() == id)
    }

    /// Subject as an RFC 4514 string (last RDN first), for logs and display: compare
    /// DER, not this.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// Issuer as an RFC 4514 string.
    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate.issuer.to_string()
    }

    /// The first common name of the subject, if any.
    pub fn common_name(&self) -> Option<String> {
        name_common_name(&self.cert.tbs_certificate.subject)
    }

    /// The subject's `UID` attribute, if any (an MDM push certificate's topic).
    pub fn subject_uid(&self) -> Option<String> {
        self.cert
            .tbs_certificate
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .find(|atv| atv.oid == oid::UID)
            .and_then(|atv| directory_string(&atv.value))
    }

    /// The certified public key as DER `SubjectPublicKeyInfo`.
    pub fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| CryptoError::InvalidCertificate(format!("public key: {e}")))
    }

    /// Whether basicConstraints says this is a CA certificate.
    pub fn is_ca(&self) -> bool {
        self.extension(oid::BASIC_CONSTRAINTS)
            .and_then(|v| BasicConstraints::from_der(v).ok())
            .is_some_and(|bc| bc.ca)
    }

    /// The subject key identifier extension's value, if present.
    pub fn subject_key_id(&self) -> Option<Vec<u8>> {
        self.subject_key_identifier()
            .map(|s| s.0.as_bytes().to_vec())
    }

    /// Whether the outer signatureAlgorithm equals the one inside `tbsCertificate`, as
    /// RFC 5280 §4.1.1.2 requires (the signature covers only the inner one).
    pub fn signature_algorithms_agree(&self) -> bool {
        self.cert.signature_algorithm == self.cert.tbs_certificate.signature
    }

    /// Checks that `issuer` signed this certificate: issuer name matches, and the
    /// signature (RSA PKCS#1 v1.5, SHA-1/256/384/512) over the TBS bytes as sent verifies
    /// with `issuer`'s key. Validity dates are not checked (the caller has the clock).
    pub fn verify_issued_by(&self, issuer: &Certificate) -> Result<(), CryptoError> {
        let bad = |d: &str| CryptoError::InvalidCertificate(d.to_string());
        let (ours, theirs) = (
            self.cert.tbs_certificate.issuer.to_der(),
            issuer.cert.tbs_certificate.subject.to_der(),
        );
        if !matches!((ours, theirs), (Ok(a), Ok(b)) if a == b) {
            return Err(bad(
                "issuer name does not match the issuing certificate's subject",
            ));
        }
        let alg = &self.cert.signature_algorithm.oid;
        let digest = DigestAlgorithm::from_rsa_signature_oid(alg)
            .filter(|_| crate::digest::null_or_absent_params(&self.cert.signature_algorithm))
            .ok_or_else(|| bad(&format!("unsupported signature algorithm {alg}")))?;
        let outer = tlv::read_exact(&self.der).map_err(|e| bad(&e.to_string()))?;
        let tbs = tlv::children(outer.content)
            .map_err(|e| bad(&e.to_string()))?
            .first()
            .map(|t| t.raw)
            .ok_or_else(|| bad("no TBSCertificate"))?;
        let key = key::rsa_public_from_spki(&issuer.public_key_der()?, 1024..=4096)
            .map_err(|e| bad(&format!("issuer key: {e}")))?;
        let sig = self
            .cert
            .signature
            .as_bytes()
            .ok_or_else(|| bad("signature has unused bits"))?;
        if !digest.verify_rsa(&key, tbs, sig) {
            return Err(bad("signature does not verify with the issuer's key"));
        }
        Ok(())
    }

    pub(crate) fn x509(&self) -> &x509_cert::Certificate {
        &self.cert
    }

    /// Wraps a certificate this crate just built.
    pub(crate) fn from_x509(cert: x509_cert::Certificate) -> Result<Certificate, CryptoError> {
        let der = cert
            .to_der()
            .map_err(|e| CryptoError::Failed(format!("certificate encoding: {e}")))?;
        Ok(Certificate { der, cert })
    }

    fn extension(&self, id: ObjectIdentifier) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == id)
            .map(|e| e.extn_value.as_bytes())
    }

    fn subject_key_identifier(&self) -> Option<SubjectKeyIdentifier> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid::SUBJECT_KEY_ID)
            .and_then(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
    }
}

/// The first CN attribute of `name` as text (UTF8String, PrintableString, IA5String,
/// TeletexString read as Latin-1, BMPString).
pub(crate) fn name_common_name(name: &Name) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == oid::CN)
        .and_then(|atv| directory_string(&atv.value))
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.cert.tbs_certificate.subject.to_string())
            .field("serial", &self.serial_hex())
            .field("not_after_unix", &self.not_after_unix())
            .finish_non_exhaustive()
    }
}

fn unix(t: Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
pub(crate) fn x509_time(unix: i64, what: &str) -> Result<Time, CryptoError> {
    let bad =
        || CryptoError::InvalidInput(format!("{what} {unix} is not a time from 1970 to 9999"));
    let secs = u64::try_from(unix).map_err(|_| bad())?;
    let dt = DateTime::from_unix_duration(Duration::from_secs(secs)).map_err(|_| bad())?;
    if dt.year() < 2050 {
        UtcTime::from_date_time(dt)
            .map(Time::UtcTime)
            .map_err(|_| bad())
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}

/// `CN=<common_name>` as a UTF8String, built by hand so commas or `=` in the name are
/// taken literally rather than parsed as RFC 4514 syntax.
pub(crate) fn cn_name(common_name: &str) -> Result<Name, CryptoError> {
    name_with(common_name, None)
}

/// `O=<organization>, CN=<common_name>` (organization optional), UTF8String values.
pub(crate) fn name_with(
    common_name: &str,
    organization: Option<&str>,
) -> Result<Name, CryptoError> {
    let mut rdns = Vec::new();
    if let Some(org) = organization {
        rdns.push(rdn(oid::ORGANIZATION, org, "organization")?);
    }
    rdns.push(rdn(oid::CN, common_name, "common name")?);
    Ok(RdnSequence(rdns))
}

fn rdn(
    id: ObjectIdentifier,
    text: &str,
    what: &str,
) -> Result<RelativeDistinguishedName, CryptoError> {
    let bad = |why: &str| CryptoError::InvalidInput(format!("{what} {why}"));
    if text.trim().is_empty() {
        return Err(bad("is empty"));
    }
    if text.chars().count() > MAX_CN_LEN {
        return Err(bad("is longer than 64 characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    let value = Any::new(Tag::Utf8String, text.as_bytes()).map_err(|e| bad(&e.to_string()))?;
    let atv = AttributeTypeAndValue { oid: id, value };
    Ok(RelativeDistinguishedName(
        SetOfVec::try_from(vec![atv]).map_err(|e| bad(&e.to_string()))?,
    ))
}

/// A random, positive (top bit clear), minimally encoded (first byte non-zero) 128-bit
/// serial number: unpredictable serials keep chosen-prefix collisions off the table.
pub(crate) fn random_serial() -> Result<SerialNumber, CryptoError> {
    let mut serial = rng::bytes(16);
    serial[0] = (serial[0] & 0x7f) | 0x40;
    SerialNumber::new(&serial).map_err(|e| CryptoError::Failed(format!("serial number: {e}")))
}

/// A self-signed certificate (SHA-256 with RSA) for `key` with subject `CN=<common_name>`,
/// valid from `not_before_unix` to `not_after_unix` (seconds since 1970) and a random
/// positive 128-bit serial. It is an end-entity certificate (CA:false) allowing
/// digitalSignature and keyEncipherment, which is what Apple encrypts the token with.
/// Pick a long validity (a year or more): the same key then decrypts renewed tokens.
pub fn self_signed_certificate(
    key: &KeyPair,
    common_name: &str,
    not_before_unix: i64,
    not_after_unix: i64,
) -> Result<Certificate, CryptoError> {
    if not_after_unix <= not_before_unix {
        return Err(CryptoError::InvalidInput(
            "certificate validity ends before it starts".into(),
        ));
    }
    let validity = Validity {
        not_before: x509_time(not_before_unix, "not_before")?,
        not_after: x509_time(not_after_unix, "not_after")?,
    };
    let subject = cn_name(common_name)?;

    let serial = random_serial()?;

    let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der()?)
        .map_err(|e| CryptoError::Failed(format!("SPKI: {e}")))?;
    let signer = SigningKey::<Sha256>::new(key.rsa().clone());
    let profile = Profile::Leaf {
        issuer: subject.clone(),
        enable_key_agreement: false,
        enable_key_encipherment: true,
    };
    let failed = |e: x509_cert::builder::Error| CryptoError::Failed(format!("certificate: {e}"));
    let builder = CertificateBuilder::new(profile, serial, validity, subject, spki, &signer)
        .map_err(failed)?;
    let cert = builder
        .build_with_rng::<rsa::pkcs1v15::Signature>(&mut SysRng)
        .map_err(failed)?;
    let der = cert
        .to_der()
        .map_err(|e| CryptoError::Failed(format!("certificate encoding: {e}")))?;
    Ok(Certificate { der, cert })
}

/// Text of a DirectoryString-like value: UTF8String, PrintableString, IA5String,
/// VisibleString, TeletexString (read as Latin-1, as most software does), BMPString,
/// UniversalString. `None` for anything else or invalid encodings.
pub(crate) fn directory_string(v: &Any) -> Option<String> {
    let bytes = v.value();
    match v.tag().octet() {
        12 => String::from_utf8(bytes.to_vec()).ok(),
        19 | 22 | 26 => bytes
            .is_ascii()
            .then(|| String::from_utf8_lossy(bytes).into_owned()),
        20 => Some(bytes.iter().map(|b| char::from(*b)).collect()),
        30 => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units = bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        28 => {
            if !bytes.len().is_multiple_of(4) {
                return None;
            }
            bytes
                .chunks(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

//! The self-signed certificate the admin uploads to Apple Business Manager: Apple only
//! reads its public key and encrypts the server token to it, naming it in the token by
//! issuer and serial number.

use std::fmt;
use std::time::Duration;

use cms::enveloped_data::RecipientIdentifier;
use der::asn1::{GeneralizedTime, SetOfVec, UtcTime};
use der::{Any, DateTime, Decode, Encode, Tag};
use rsa::pkcs1v15::SigningKey;
use sha2::Sha256;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::error::CryptoError;
use crate::key::KeyPair;
use crate::pem;
use crate::rng::{self, SysRng};

const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_SKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
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
        let tbs = &self.cert.tbs_certificate;
        match rid {
            RecipientIdentifier::IssuerAndSerialNumber(ias) => {
                // Compare encodings: Apple copies our issuer Name verbatim.
                ias.serial_number.as_bytes() == tbs.serial_number.as_bytes()
                    && matches!((ias.issuer.to_der(), tbs.issuer.to_der()), (Ok(a), Ok(b)) if a == b)
            }
            RecipientIdentifier::SubjectKeyIdentifier(ski) => self
                .subject_key_identifier()
                .is_some_and(|ours| ours.0.as_bytes() == ski.0.as_bytes()),
        }
    }

    fn subject_key_identifier(&self) -> Option<SubjectKeyIdentifier> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == OID_SKI)
            .and_then(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
    }
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
fn x509_time(unix: i64, what: &str) -> Result<Time, CryptoError> {
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
fn cn_name(common_name: &str) -> Result<Name, CryptoError> {
    let bad = |why: &str| CryptoError::InvalidInput(format!("common name {why}"));
    if common_name.trim().is_empty() {
        return Err(bad("is empty"));
    }
    if common_name.chars().count() > MAX_CN_LEN {
        return Err(bad("is longer than 64 characters"));
    }
    if common_name.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    let value =
        Any::new(Tag::Utf8String, common_name.as_bytes()).map_err(|e| bad(&e.to_string()))?;
    let atv = AttributeTypeAndValue { oid: OID_CN, value };
    let rdn =
        RelativeDistinguishedName(SetOfVec::try_from(vec![atv]).map_err(|e| bad(&e.to_string()))?);
    Ok(RdnSequence(vec![rdn]))
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

    // Random, positive (top bit clear) and minimally encoded (first byte non-zero).
    let mut serial = rng::bytes(16);
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let serial = SerialNumber::new(&serial)
        .map_err(|e| CryptoError::Failed(format!("serial number: {e}")))?;

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

//! PKCS#10 certificate requests: reading (and verifying) what a SCEP client sends, and
//! building one for the device simulator and the tests.

use std::fmt;

use der::asn1::{BitString, Ia5String, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};
use zeroize::Zeroizing;

use crate::cert;
use crate::digest::DigestAlgorithm;
use crate::error::CryptoError;
use crate::key::{self, KeyPair};
use crate::scep_status::ScepError;
use crate::{oid, pem, tlv};

/// RSA sizes accepted in requests: devices default to 1024 (`Keysize` in the SCEP
/// payload), larger than 4096 only makes every operation slow.
pub const CSR_KEY_BITS: std::ops::RangeInclusive<usize> = 1024..=4096;
/// A CSR is well under a kilobyte or two; refuse absurd ones before parsing.
const MAX_CSR_LEN: usize = 64 * 1024;

/// A PKCS#10 request whose self-signature verified (there is no other way to get one).
/// `Debug` never shows the challenge password.
#[derive(Clone)]
pub struct Csr {
    der: Vec<u8>,
    subject: Name,
    public_key: SubjectPublicKeyInfoOwned,
    challenge: Option<Zeroizing<String>>,
    extensions: Vec<Extension>,
    key_bits: usize,
    digest: DigestAlgorithm,
}

impl Csr {
    /// Parses DER and verifies the self-signature (RSA PKCS#1 v1.5 with SHA-1/256/384/512)
    /// and the key (RSA, [`CSR_KEY_BITS`]).
    pub fn from_der(der: &[u8]) -> Result<Csr, ScepError> {
        let bad = |d: String| ScepError::InvalidCsr(d);
        if der.len() > MAX_CSR_LEN {
            return Err(bad(format!("{} bytes is too large for a CSR", der.len())));
        }
        // Split by hand rather than with `CertReq`: real clients write version 2 where
        // PKCS#10 says 0 (micromdm's scepclient does), which the typed decoder refuses,
        // and the signature must be checked over the info bytes as sent.
        let parts = tlv::read_exact(der)
            .and_then(|outer| {
                if outer.tag != 0x30 {
                    return Err(tlv::TlvError("not a SEQUENCE"));
                }
                tlv::children(outer.content)
            })
            .map_err(|e| bad(format!("not a DER PKCS#10 request: {e}")))?;
        let [info, alg, sig] = parts.as_slice() else {
            return Err(bad(
                "not a PKCS#10 request (expected info, algorithm, signature)".into(),
            ));
        };
        let info_raw = info.raw;
        let fields = tlv::children(info.content)
            .map_err(|e| bad(format!("CertificationRequestInfo: {e}")))?;
        let [version, subject, public_key, rest @ ..] = fields.as_slice() else {
            return Err(bad("CertificationRequestInfo lacks fields".into()));
        };
        if version.tag != 0x02 {
            return Err(bad("CertificationRequestInfo has no version".into()));
        }
        let subject = Name::from_der(subject.raw).map_err(|e| bad(format!("subject: {e}")))?;
        let public_key = SubjectPublicKeyInfoOwned::from_der(public_key.raw)
            .map_err(|e| bad(format!("public key: {e}")))?;
        let attributes: SetOfVec<Attribute> = match rest {
            [] => SetOfVec::new(),
            [attrs] if attrs.tag == 0xa0 => SetOfVec::from_der(&tlv::encode(0x31, attrs.content))
                .map_err(|e| bad(format!("attributes: {e}")))?,
            _ => return Err(bad("unexpected fields after the attributes".into())),
        };
        let algorithm = AlgorithmIdentifierOwned::from_der(alg.raw)
            .map_err(|e| bad(format!("signature algorithm: {e}")))?;
        let signature = BitString::from_der(sig.raw).map_err(|e| bad(format!("signature: {e}")))?;

        let alg = &algorithm.oid;
        let digest = DigestAlgorithm::from_rsa_signature_oid(alg)
            .filter(|_| crate::digest::null_or_absent_params(&algorithm))
            .ok_or_else(|| {
                ScepError::UnsupportedAlgorithm(format!("CSR signature algorithm {alg}"))
            })?;
        let spki = public_key
            .to_der()
            .map_err(|e| bad(format!("public key: {e}")))?;
        let public = key::rsa_public_from_spki(&spki, CSR_KEY_BITS)
            .map_err(|e| ScepError::UnacceptableKey(format!("CSR key: {e}")))?;
        let sig = signature
            .as_bytes()
            .ok_or_else(|| bad("signature has unused bits".into()))?;
        if !digest.verify_rsa(&public, info_raw, sig) {
            return Err(ScepError::CsrSignature);
        }

        let attrs = &attributes;
        let challenge = match single_attribute(attrs, oid::CHALLENGE_PASSWORD)? {
            None => None,
            Some(v) => Some(Zeroizing::new(cert::directory_string(v).ok_or_else(|| {
                bad("challengePassword is not a PrintableString, UTF8String or other DirectoryString".into())
            })?)),
        };
        let extensions = match single_attribute(attrs, oid::EXTENSION_REQUEST)? {
            None => Vec::new(),
            Some(v) => v
                .decode_as::<Vec<Extension>>()
                .map_err(|e| bad(format!("extensionRequest: {e}")))?,
        };
        Ok(Csr {
            der: der.to_vec(),
            key_bits: rsa::traits::PublicKeyParts::n(&public).bits(),
            subject,
            public_key,
            challenge,
            extensions,
            digest,
        })
    }

    /// Parses the first `CERTIFICATE REQUEST` (or `NEW CERTIFICATE REQUEST`) PEM block.
    pub fn from_pem(text: &str) -> Result<Csr, ScepError> {
        let block = pem::find_block(text)
            .ok_or_else(|| ScepError::InvalidCsr("no PEM block found".into()))?;
        if !matches!(
            block.label,
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
        ) {
            return Err(ScepError::InvalidCsr(format!(
                "PEM block is {:?}, expected CERTIFICATE REQUEST",
                block.label
            )));
        }
        let der = pem::decode_base64(block.body)
            .map_err(|e| ScepError::InvalidCsr(format!("PEM body: {e}")))?;
        Csr::from_der(&der)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Subject as an RFC 4514 string.
    pub fn subject(&self) -> String {
        self.subject.to_string()
    }

    /// The first common name of the subject.
    pub fn common_name(&self) -> Option<String> {
        cert::name_common_name(&self.subject)
    }

    /// The challengePassword attribute (the SCEP one-time secret), if present.
    pub fn challenge_password(&self) -> Option<&str> {
        self.challenge.as_ref().map(|c| c.as_str())
    }

    /// The requested public key as DER `SubjectPublicKeyInfo`.
    pub fn public_key_der(&self) -> Vec<u8> {
        // It was decoded from DER moments ago, so it encodes again.
        self.public_key.to_der().unwrap_or_default()
    }

    pub fn key_bits(&self) -> usize {
        self.key_bits
    }

    /// The digest of the request's self-signature.
    pub fn signature_digest(&self) -> DigestAlgorithm {
        self.digest
    }

    /// The subjectAltName extension the request asks for (DER of its value), if any.
    pub fn subject_alt_name_der(&self) -> Option<&[u8]> {
        self.extension(oid::SUBJECT_ALT_NAME)
            .map(|e| e.extn_value.as_bytes())
    }

    /// dNSName entries of the requested subjectAltName.
    pub fn dns_names(&self) -> Vec<String> {
        let Some(san) = self
            .subject_alt_name_der()
            .and_then(|d| SubjectAltName::from_der(d).ok())
        else {
            return Vec::new();
        };
        san.0
            .iter()
            .filter_map(|g| match g {
                GeneralName::DnsName(n) => Some(n.to_string()),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn subject_name(&self) -> &Name {
        &self.subject
    }

    pub(crate) fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key
    }

    pub(crate) fn extension(&self, id: spki::ObjectIdentifier) -> Option<&Extension> {
        self.extensions.iter().find(|e| e.extn_id == id)
    }
}

impl fmt::Debug for Csr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csr")
            .field("subject", &self.subject())
            .field("key_bits", &self.key_bits)
            .field("has_challenge", &self.challenge.is_some())
            .finish_non_exhaustive()
    }
}

/// The single value of attribute `id`: `None` when absent, an error when repeated.
fn single_attribute(
    attrs: &SetOfVec<Attribute>,
    id: spki::ObjectIdentifier,
) -> Result<Option<&Any>, ScepError> {
    let mut found = attrs.iter().filter(|a| a.oid == id);
    let Some(attr) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() || attr.values.len() != 1 {
        return Err(ScepError::InvalidCsr(format!(
            "attribute {id} must appear once with one value"
        )));
    }
    Ok(attr.values.get(0))
}

/// What [`build_csr`] puts in a request.
#[derive(Debug, Clone)]
pub struct CsrParams<'a> {
    pub common_name: &'a str,
    pub organization: Option<&'a str>,
    /// challengePassword (PrintableString when its characters allow, else UTF8String).
    pub challenge: Option<&'a str>,
    /// dNSName entries for a subjectAltName extension request.
    pub dns_names: &'a [&'a str],
    /// Self-signature digest; SHA-256 unless a test needs another.
    pub digest: DigestAlgorithm,
}

impl<'a> CsrParams<'a> {
    pub fn new(common_name: &'a str) -> CsrParams<'a> {
        CsrParams {
            common_name,
            organization: None,
            challenge: None,
            dns_names: &[],
            digest: DigestAlgorithm::Sha256,
        }
    }
}

/// A DER PKCS#10 request for `key` as a SCEP client (or the device simulator) sends it.
pub fn build_csr(key: &KeyPair, params: &CsrParams<'_>) -> Result<Vec<u8>, CryptoError> {
    let fail = |what: &str, e: &dyn fmt::Display| CryptoError::Failed(format!("{what}: {e}"));
    let subject = cert::name_with(params.common_name, params.organization)?;
    let public_key = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der()?)
        .map_err(|e| fail("public key", &e))?;
    let mut attrs = Vec::new();
    if let Some(challenge) = params.challenge {
        let value = match der::asn1::PrintableStringRef::new(challenge) {
            Ok(p) => Any::encode_from(&p),
            Err(_) => Any::new(Tag::Utf8String, challenge.as_bytes()),
        }
        .map_err(|e| fail("challengePassword", &e))?;
        attrs.push(Attribute {
            oid: oid::CHALLENGE_PASSWORD,
            values: SetOfVec::try_from(vec![value]).map_err(|e| fail("challengePassword", &e))?,
        });
    }
    if !params.dns_names.is_empty() {
        let names = params
            .dns_names
            .iter()
            .map(|n| {
                Ia5String::new(n)
                    .map(GeneralName::DnsName)
                    .map_err(|_| CryptoError::InvalidInput(format!("DNS name {n:?} is not ASCII")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let san = SubjectAltName(names)
            .to_der()
            .map_err(|e| fail("subjectAltName", &e))?;
        let ext = Extension {
            extn_id: oid::SUBJECT_ALT_NAME,
            critical: false,
            extn_value: OctetString::new(san).map_err(|e| fail("subjectAltName", &e))?,
        };
        attrs.push(
            Attribute::try_from(ExtensionReq(vec![ext]))
                .map_err(|e| fail("extensionRequest", &e))?,
        );
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key,
        attributes: SetOfVec::try_from(attrs).map_err(|e| fail("attributes", &e))?,
    };
    let info_der = info.to_der().map_err(|e| fail("request", &e))?;
    let signature = key.sign(params.digest, &info_der)?;
    CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned {
            oid: params.digest.rsa_signature_oid(),
            parameters: Some(Any::null()),
        },
        signature: BitString::from_bytes(&signature).map_err(|e| fail("signature", &e))?,
    }
    .to_der()
    .map_err(|e| fail("request", &e))
}

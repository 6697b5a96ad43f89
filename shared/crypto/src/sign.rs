//! Making CMS SignedData: signing enrollment profiles and SCEP replies, and the degenerate
//! certificates-only form (GetCACert, the CertRep payload) both ways. RSA PKCS#1 v1.5
//! only: every SCEP client and Apple device uses it. Verifying is `verify.rs`.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag};
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier};
use x509_cert::attr::Attribute;

use crate::cert::{self, Certificate};
use crate::der_cursor::ReadError;
use crate::digest::DigestAlgorithm;
use crate::error::CryptoError;
use crate::key::KeyPair;
pub use crate::scep_status::MAX_MESSAGE_LEN;
use crate::scep_status::ScepError;
use crate::{oid, signed_data, tlv};

/// A signed attribute added next to contentType, messageDigest and signingTime: its type
/// and the DER of its single value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAttribute {
    oid: ObjectIdentifier,
    value: Any,
}

impl SignedAttribute {
    /// `oid` in dotted form, `value_der` one complete DER element.
    pub fn from_der(oid: &str, value_der: &[u8]) -> Result<SignedAttribute, CryptoError> {
        let oid = parse_oid(oid)?;
        let value = Any::from_der(value_der).map_err(|e| {
            CryptoError::InvalidInput(format!("attribute {oid} value is not one DER element: {e}"))
        })?;
        Ok(SignedAttribute { oid, value })
    }

    /// A PrintableString value (SCEP's messageType, pkiStatus, transactionID, ...).
    pub fn printable_string(oid: &str, text: &str) -> Result<SignedAttribute, CryptoError> {
        Self::printable(parse_oid(oid)?, text)
    }

    /// An OCTET STRING value (SCEP's nonces).
    pub fn octet_string(oid: &str, bytes: &[u8]) -> Result<SignedAttribute, CryptoError> {
        Self::octets(parse_oid(oid)?, bytes)
    }

    pub(crate) fn printable(oid: ObjectIdentifier, text: &str) -> Result<Self, CryptoError> {
        let s = der::asn1::PrintableStringRef::new(text).map_err(|_| {
            CryptoError::InvalidInput(format!(
                "attribute {oid}: {text:?} has characters a PrintableString cannot hold"
            ))
        })?;
        let value = Any::encode_from(&s)
            .map_err(|e| CryptoError::Failed(format!("attribute {oid}: {e}")))?;
        Ok(SignedAttribute { oid, value })
    }

    pub(crate) fn raw(oid: ObjectIdentifier, value: Any) -> Self {
        SignedAttribute { oid, value }
    }

    pub(crate) fn octets(oid: ObjectIdentifier, bytes: &[u8]) -> Result<Self, CryptoError> {
        let value = Any::new(Tag::OctetString, bytes)
            .map_err(|e| CryptoError::InvalidInput(format!("attribute {oid}: {e}")))?;
        Ok(SignedAttribute { oid, value })
    }
}

fn parse_oid(s: &str) -> Result<ObjectIdentifier, CryptoError> {
    ObjectIdentifier::new(s)
        .map_err(|_| CryptoError::InvalidInput(format!("{s:?} is not a dotted object identifier")))
}

/// How [`sign_data`] signs.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Digest for messageDigest and the signature. SHA-256 unless a peer needs SHA-1.
    pub digest: DigestAlgorithm,
    /// `true`: the content is not embedded (signature only, as in `Mdm-Signature`).
    pub detached: bool,
    /// signingTime attribute (seconds since 1970); `None` leaves it out.
    pub signing_time_unix: Option<i64>,
    /// Further signed attributes; their types must differ from each other and from
    /// contentType, messageDigest and signingTime.
    pub extra_attributes: Vec<SignedAttribute>,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            digest: DigestAlgorithm::Sha256,
            detached: false,
            signing_time_unix: None,
            extra_attributes: Vec::new(),
        }
    }
}

/// Signs an enrollment profile (`.mobileconfig`) the way Apple devices want it: attached
/// content of type id-data, SHA-256, the signer's certificate and the whole `chain`
/// included (devices show "Verified" only when they can build the chain), signingTime.
/// Returns DER, served as `application/x-apple-aspen-config`.
pub fn sign_profile(
    content: &[u8],
    key: &KeyPair,
    cert: &Certificate,
    chain: &[Certificate],
    signing_time_unix: i64,
) -> Result<Vec<u8>, CryptoError> {
    let opts = SignOptions {
        signing_time_unix: Some(signing_time_unix),
        ..SignOptions::default()
    };
    sign_data(content, key, cert, chain, &opts)
}

/// CMS SignedData (DER) over `content` by `key`, whose certificate `cert` is named by
/// issuer and serial number. Certificates: `cert` followed by `chain` (duplicates
/// dropped), embedded byte for byte as given. Signed attributes: contentType (id-data),
/// messageDigest, signingTime when asked, then `opts.extra_attributes`.
pub fn sign_data(
    content: &[u8],
    key: &KeyPair,
    cert: &Certificate,
    chain: &[Certificate],
    opts: &SignOptions,
) -> Result<Vec<u8>, CryptoError> {
    if !cert.matches_key(key) {
        return Err(CryptoError::InvalidInput(
            "the signing certificate does not hold the signing key's public key".into(),
        ));
    }
    sign_data_with(content, cert, chain, opts, &|m| key.sign(opts.digest, m))
}

/// Makes an RSASSA-PKCS1-v1_5 signature of a message held elsewhere (an HSM, a test's key).
pub type SignFn<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, CryptoError> + 'a;

/// [`sign_data`] with the RSASSA-PKCS1-v1_5 signature over the signed attributes' DER
/// (hashed with `opts.digest`) made by `sign`: for a signer whose key is held elsewhere.
/// `cert` must hold that key's public key; nothing here can check it.
pub fn sign_data_with(
    content: &[u8],
    cert: &Certificate,
    chain: &[Certificate],
    opts: &SignOptions,
    sign: &SignFn<'_>,
) -> Result<Vec<u8>, CryptoError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| CryptoError::Failed(format!("{what}: {e}"));

    let mut attrs = vec![
        Attribute {
            oid: oid::CONTENT_TYPE,
            values: single(Any::encode_from(&oid::ID_DATA).map_err(|e| fail("contentType", &e))?)?,
        },
        Attribute {
            oid: oid::MESSAGE_DIGEST,
            values: single(
                SignedAttribute::octets(oid::MESSAGE_DIGEST, &opts.digest.digest(content))?.value,
            )?,
        },
    ];
    if let Some(t) = opts.signing_time_unix {
        let time = cert::x509_time(t, "signing time")?;
        attrs.push(Attribute {
            oid: oid::SIGNING_TIME,
            values: single(Any::encode_from(&time).map_err(|e| fail("signingTime", &e))?)?,
        });
    }
    for extra in &opts.extra_attributes {
        if attrs.iter().any(|a| a.oid == extra.oid) {
            return Err(CryptoError::InvalidInput(format!(
                "signed attribute {} given twice",
                extra.oid
            )));
        }
        attrs.push(Attribute {
            oid: extra.oid,
            values: single(extra.value.clone())?,
        });
    }
    // SetOfVec sorts into DER order; the signature covers exactly this encoding.
    let signed_attrs = SetOfVec::try_from(attrs).map_err(|e| fail("signed attributes", &e))?;
    let to_sign = signed_attrs
        .to_der()
        .map_err(|e| fail("signed attributes", &e))?;
    let signature = sign(&to_sign)?;

    let tbs = &cert.x509().tbs_certificate;
    let digest_alg = AlgorithmIdentifierOwned {
        // RFC 5754 / RFC 3370: generate digest identifiers without parameters.
        oid: opts.digest.oid(),
        parameters: None,
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(signed_attrs),
        // RFC 3370 §3.2: rsaEncryption with NULL, as OpenSSL and Go's pkcs7 write it.
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: oid::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature).map_err(|e| fail("signature", &e))?,
        unsigned_attrs: None,
    };
    let mut certs = vec![cert];
    certs.extend(chain);
    let econtent = (!opts.detached).then_some(content);
    assemble(
        &[digest_alg
            .to_der()
            .map_err(|e| fail("digest algorithm", &e))?],
        econtent,
        &certs,
        &[signer_info.to_der().map_err(|e| fail("signer info", &e))?],
    )
}

/// The degenerate certificates-only SignedData (RFC 8894 §3.4): no content, no signers.
/// GetCACert answers CA + RA with it; a CertRep SUCCESS carries the issued certificate
/// in one.
pub fn certs_only(certs: &[Certificate]) -> Result<Vec<u8>, CryptoError> {
    if certs.is_empty() {
        return Err(CryptoError::InvalidInput(
            "a certificates-only message needs at least one certificate".into(),
        ));
    }
    let refs: Vec<&Certificate> = certs.iter().collect();
    assemble(&[], None, &refs, &[])
}

/// The certificates of a SignedData (e.g. a GetCACert answer or CertRep payload), in
/// the order sent. Nothing is verified.
pub fn parse_certs_only(input: &[u8]) -> Result<Vec<Certificate>, ScepError> {
    let der = signed_data::to_der(input)?;
    let mut certificates = Vec::new();
    for c in signed_data::read_der(&der)?.certificates() {
        let c = c.map_err(ReadError::after_conversion)?;
        certificates.push(
            Certificate::from_der(c.der)
                .map_err(|e| ScepError::Malformed(format!("embedded certificate: {e}")))?,
        );
    }
    Ok(certificates)
}

fn single(value: Any) -> Result<SetOfVec<Any>, CryptoError> {
    SetOfVec::try_from(vec![value])
        .map_err(|e| CryptoError::Failed(format!("attribute value: {e}")))
}

/// ContentInfo(SignedData) from parts. Certificates are copied as their original DER
/// (re-encoding a decoded certificate can change bytes and break its signature).
fn assemble(
    digest_algs: &[Vec<u8>],
    econtent: Option<&[u8]>,
    certs: &[&Certificate],
    signer_infos: &[Vec<u8>],
) -> Result<Vec<u8>, CryptoError> {
    let mut cert_ders: Vec<&[u8]> = Vec::new();
    for c in certs {
        if !cert_ders.contains(&c.der()) {
            cert_ders.push(c.der());
        }
    }
    let mut eci = tlv::encode(0x06, oid::ID_DATA.as_bytes());
    if let Some(content) = econtent {
        eci.extend(tlv::encode(0xa0, &tlv::encode(0x04, content)));
    }
    // Version 1: issuerAndSerialNumber signers, id-data, X.509 certificates only.
    let mut sd = vec![0x02, 0x01, 0x01];
    sd.extend(set_of(digest_algs.iter().map(Vec::as_slice), 0x31));
    sd.extend(tlv::encode(0x30, &eci));
    if !cert_ders.is_empty() {
        sd.extend(set_of(cert_ders.into_iter(), 0xa0));
    }
    sd.extend(set_of(signer_infos.iter().map(Vec::as_slice), 0x31));
    let mut ci = tlv::encode(0x06, oid::ID_SIGNED_DATA.as_bytes());
    ci.extend(tlv::encode(0xa0, &tlv::encode(0x30, &sd)));
    Ok(tlv::encode(0x30, &ci))
}

/// A SET OF with the DER element order (X.690 §11.6): encodings compared as octet
/// strings, the shorter one padded with zero octets.
fn set_of<'a>(elements: impl Iterator<Item = &'a [u8]>, tag: u8) -> Vec<u8> {
    let mut elements: Vec<&[u8]> = elements.collect();
    elements.sort_by(|a, b| {
        let n = a.len().max(b.len());
        (0..n)
            .map(|i| {
                (
                    a.get(i).copied().unwrap_or(0),
                    b.get(i).copied().unwrap_or(0),
                )
            })
            .find(|(x, y)| x != y)
            .map_or(std::cmp::Ordering::Equal, |(x, y)| x.cmp(&y))
    });
    tlv::encode(tag, &elements.concat())
}

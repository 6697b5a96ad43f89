//! CMS SignedData both ways: signing enrollment profiles and SCEP replies, the degenerate
//! certificates-only form (GetCACert, the CertRep payload), and verifying what a device or
//! client sends. RSA PKCS#1 v1.5 only: every SCEP client and Apple device uses it.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag};
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier};
use x509_cert::attr::Attribute;

use crate::cert::{self, Certificate};
use crate::digest::{DigestAlgorithm, null_or_absent_params};
use crate::error::CryptoError;
use crate::key::{self, KeyPair};
pub use crate::scep_status::MAX_MESSAGE_LEN;
use crate::scep_status::ScepError;
use crate::{ber, oid, tlv};

/// More embedded certificates than this is not a chain but an attack on our CPU.
const MAX_CERTIFICATES: usize = 32;
/// RSA sizes accepted from signers (devices may still use RSA-1024).
pub(crate) const SIGNER_KEY_BITS: std::ops::RangeInclusive<usize> = 1024..=4096;

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

/// [`sign_data`] with the RSASSA-PKCS1-v1_5 signature over the signed attributes' DER
/// (hashed with `opts.digest`) made by `sign`: for a signer whose key is held elsewhere.
/// `cert` must hold that key's public key; nothing here can check it.
pub fn sign_data_with(
    content: &[u8],
    cert: &Certificate,
    chain: &[Certificate],
    opts: &SignOptions,
    sign: &dyn Fn(&[u8]) -> Result<Vec<u8>, CryptoError>,
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
    Ok(parse_signed_data(input)?.certificates)
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

/// A SignedData whose signature checked out.
#[derive(Debug, Clone)]
pub struct SignedMessage {
    content: Option<Vec<u8>>,
    content_type: ObjectIdentifier,
    signer: Certificate,
    certificates: Vec<Certificate>,
    digest: DigestAlgorithm,
    attributes: Vec<Attribute>,
}

impl SignedMessage {
    /// The encapsulated content (`None` when the message was detached).
    pub fn content(&self) -> Option<&[u8]> {
        self.content.as_deref()
    }

    /// The certificate whose key made the signature (taken from the message itself:
    /// whether to trust it is the caller's decision).
    pub fn signer(&self) -> &Certificate {
        &self.signer
    }

    /// All certificates embedded in the message, in the order sent.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certificates
    }

    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest
    }

    /// Whether the content type is id-data.
    pub fn is_data(&self) -> bool {
        self.content_type == oid::ID_DATA
    }

    /// The signingTime attribute, if present and readable.
    pub fn signing_time_unix(&self) -> Option<i64> {
        let v = self.attribute(oid::SIGNING_TIME).ok()??;
        let t = x509_cert::time::Time::from_der(&v.to_der().ok()?).ok()?;
        i64::try_from(t.to_unix_duration().as_secs()).ok()
    }

    /// The single value of signed attribute `oid`; `Ok(None)` when absent, an error when
    /// it has several values.
    pub(crate) fn attribute(&self, id: ObjectIdentifier) -> Result<Option<&Any>, ScepError> {
        attribute(&self.attributes, id)
    }
}

fn attribute(attrs: &[Attribute], id: ObjectIdentifier) -> Result<Option<&Any>, ScepError> {
    let mut found = attrs.iter().filter(|a| a.oid == id);
    let Some(attr) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() || attr.values.len() != 1 {
        return Err(ScepError::Malformed(format!(
            "signed attribute {id} must appear once with one value"
        )));
    }
    Ok(attr.values.get(0))
}

/// Verifies a CMS SignedData (DER or BER) made with RSA PKCS#1 v1.5 and SHA-1/256/384/512:
/// exactly one signer, its certificate embedded (matched by issuer and serial number or
/// subject key identifier), messageDigest equal to the content's digest, contentType
/// equal to the content type, and the signature over the signed attributes as sent.
/// `detached_content` supplies the content when the message does not embed it. Trust in
/// the signer certificate is left to the caller.
pub fn verify_signed_data(
    input: &[u8],
    detached_content: Option<&[u8]>,
) -> Result<SignedMessage, ScepError> {
    let parsed = parse_signed_data(input)?;
    let content: &[u8] = match (&parsed.econtent, detached_content) {
        (Some(_), Some(_)) => {
            return Err(ScepError::Malformed(
                "content is both embedded and supplied separately".into(),
            ));
        }
        (Some(c), None) => c,
        (None, Some(c)) => c,
        (None, None) => {
            return Err(ScepError::Malformed(
                "detached signature but no content was supplied".into(),
            ));
        }
    };
    let signer_raw: &[u8] = match parsed.signer_infos.as_slice() {
        [one] => one,
        [] => return Err(ScepError::Malformed("the message has no signer".into())),
        more => {
            return Err(ScepError::Malformed(format!(
                "the message has {} signers, exactly one is supported",
                more.len()
            )));
        }
    };
    let si = SignerInfo::from_der(signer_raw)
        .map_err(|e| ScepError::Malformed(format!("SignerInfo: {e}")))?;
    let digest = DigestAlgorithm::from_oid(&si.digest_alg.oid)
        .filter(|_| null_or_absent_params(&si.digest_alg))
        .ok_or_else(|| ScepError::UnsupportedAlgorithm(format!("digest {}", si.digest_alg.oid)))?;
    let sig_oid = si.signature_algorithm.oid;
    let sig_ok = (sig_oid == oid::RSA_ENCRYPTION
        || DigestAlgorithm::from_rsa_signature_oid(&sig_oid) == Some(digest))
        && null_or_absent_params(&si.signature_algorithm);
    if !sig_ok {
        return Err(ScepError::UnsupportedAlgorithm(format!(
            "signature algorithm {sig_oid} with digest {}",
            digest.name()
        )));
    }
    let signer = parsed
        .certificates
        .iter()
        .find(|c| c.is_signer(&si.sid))
        .cloned()
        .ok_or(ScepError::SignerCertificateMissing)?;
    let public = key::rsa_public_from_spki(
        &signer
            .public_key_der()
            .map_err(|e| ScepError::UnacceptableKey(e.to_string()))?,
        SIGNER_KEY_BITS,
    )
    .map_err(|e| ScepError::UnacceptableKey(format!("signer certificate: {e}")))?;

    let (signed_bytes, attributes): (Vec<u8>, Vec<Attribute>) = match &si.signed_attrs {
        None => (content.to_vec(), Vec::new()),
        Some(attrs) => {
            let attrs: Vec<Attribute> = attrs.iter().cloned().collect();
            let md = attribute(&attrs, oid::MESSAGE_DIGEST)?
                .ok_or(ScepError::MissingAttribute("messageDigest"))?;
            let md = md.decode_as::<OctetString>().map_err(|_| {
                ScepError::InvalidAttribute("messageDigest", "not an OCTET STRING".into())
            })?;
            if md.as_bytes() != digest.digest(content).as_slice() {
                return Err(ScepError::MessageDigestMismatch);
            }
            if let Some(ct) = attribute(&attrs, oid::CONTENT_TYPE)? {
                let ct = ct
                    .decode_as::<ObjectIdentifier>()
                    .map_err(|_| ScepError::InvalidAttribute("contentType", "not an OID".into()))?;
                if ct != parsed.content_type {
                    return Err(ScepError::InvalidAttribute(
                        "contentType",
                        format!(
                            "{ct} differs from the content's type {}",
                            parsed.content_type
                        ),
                    ));
                }
            }
            // The signature covers the attributes as sent, with the SET OF tag.
            (signed_attrs_as_sent(signer_raw)?, attrs)
        }
    };
    if !digest.verify_rsa(&public, &signed_bytes, si.signature.as_bytes()) {
        return Err(ScepError::BadSignature);
    }
    Ok(SignedMessage {
        content: parsed.econtent,
        content_type: parsed.content_type,
        signer,
        certificates: parsed.certificates,
        digest,
        attributes,
    })
}

/// The `[0] IMPLICIT SignedAttributes` of a SignerInfo re-tagged as `SET OF`.
fn signed_attrs_as_sent(signer_info: &[u8]) -> Result<Vec<u8>, ScepError> {
    let si = tlv::read_exact(signer_info).map_err(malformed("SignerInfo"))?;
    let fields = tlv::children(si.content).map_err(malformed("SignerInfo"))?;
    let attrs = fields
        .iter()
        .find(|f| f.tag == 0xa0)
        .ok_or(ScepError::MissingAttribute("signed attributes"))?;
    Ok(tlv::encode(0x31, attrs.content))
}

fn malformed(what: &'static str) -> impl Fn(tlv::TlvError) -> ScepError {
    move |e| ScepError::Malformed(format!("{what}: {e}"))
}

/// A SignedData split into its parts, nothing verified yet.
struct ParsedSignedData {
    content_type: ObjectIdentifier,
    econtent: Option<Vec<u8>>,
    certificates: Vec<Certificate>,
    /// Raw DER of each SignerInfo, in the order sent.
    signer_infos: Vec<Vec<u8>>,
}

fn parse_signed_data(input: &[u8]) -> Result<ParsedSignedData, ScepError> {
    if input.len() > MAX_MESSAGE_LEN {
        return Err(ScepError::TooLarge(input.len()));
    }
    if input.first() != Some(&0x30) {
        return Err(ScepError::Malformed(
            "not a DER/BER message (expected a SEQUENCE)".into(),
        ));
    }
    let (der, used) = ber::cms_to_der(input).map_err(|e| ScepError::Malformed(e.to_string()))?;
    if used != input.len() {
        return Err(ScepError::Malformed(format!(
            "{} unexpected bytes after the message",
            input.len() - used
        )));
    }
    let ci = tlv::read_exact(&der).map_err(malformed("ContentInfo"))?;
    let ci_fields = tlv::children(ci.content).map_err(malformed("ContentInfo"))?;
    let [ct, explicit] = ci_fields.as_slice() else {
        return Err(ScepError::Malformed(
            "ContentInfo is not a content type and its content".into(),
        ));
    };
    let ct = ObjectIdentifier::from_der(ct.raw)
        .map_err(|_| ScepError::Malformed("ContentInfo has no content type".into()))?;
    if ct != oid::ID_SIGNED_DATA {
        return Err(ScepError::NotSignedData(ct.to_string()));
    }
    if explicit.tag != 0xa0 {
        return Err(ScepError::Malformed(
            "ContentInfo content is not [0]".into(),
        ));
    }
    let sd = tlv::read_exact(explicit.content).map_err(malformed("SignedData"))?;
    if sd.tag != 0x30 {
        return Err(ScepError::Malformed("SignedData is not a SEQUENCE".into()));
    }
    let fields = tlv::children(sd.content).map_err(malformed("SignedData"))?;
    let mut it = fields.iter().copied().peekable();
    fn expect<'a>(t: Option<tlv::Tlv<'a>>, tag: u8, what: &str) -> Result<tlv::Tlv<'a>, ScepError> {
        match t {
            Some(t) if t.tag == tag => Ok(t),
            _ => Err(ScepError::Malformed(format!("SignedData lacks its {what}"))),
        }
    }
    expect(it.next(), 0x02, "version")?;
    expect(it.next(), 0x31, "digest algorithms")?;
    let eci = expect(it.next(), 0x30, "encapsulated content")?;
    let mut certificates = Vec::new();
    if let Some(certs) = it.next_if(|t| t.tag == 0xa0) {
        for c in tlv::children(certs.content).map_err(malformed("certificates"))? {
            // Other CertificateChoices (attribute certificates, [3] other) are skipped.
            if c.tag != 0x30 {
                continue;
            }
            if certificates.len() == MAX_CERTIFICATES {
                return Err(ScepError::Malformed(format!(
                    "more than {MAX_CERTIFICATES} certificates"
                )));
            }
            let cert = Certificate::from_der(c.raw)
                .map_err(|e| ScepError::Malformed(format!("embedded certificate: {e}")))?;
            certificates.push(cert);
        }
    }
    it.next_if(|t| t.tag == 0xa1); // CRLs: not used.
    let signers = expect(it.next(), 0x31, "signer infos")?;
    if it.next().is_some() {
        return Err(ScepError::Malformed(
            "unexpected field after the signer infos".into(),
        ));
    }
    let signer_infos = tlv::children(signers.content)
        .map_err(malformed("signer infos"))?
        .iter()
        .map(|s| s.raw.to_vec())
        .collect();

    let eci_fields = tlv::children(eci.content).map_err(malformed("encapsulated content"))?;
    let content_type = eci_fields
        .first()
        .and_then(|t| ObjectIdentifier::from_der(t.raw).ok())
        .ok_or_else(|| ScepError::Malformed("encapsulated content has no type".into()))?;
    let econtent = match eci_fields.get(1..) {
        Some([]) | None => None,
        Some([explicit]) if explicit.tag == 0xa0 => {
            let octets = tlv::read_exact(explicit.content).map_err(malformed("content"))?;
            if octets.tag != 0x04 {
                return Err(ScepError::Malformed(
                    "encapsulated content is not an OCTET STRING".into(),
                ));
            }
            Some(octets.content.to_vec())
        }
        Some(_) => {
            return Err(ScepError::Malformed(
                "encapsulated content has unexpected fields".into(),
            ));
        }
    };
    Ok(ParsedSignedData {
        content_type,
        econtent,
        certificates,
        signer_infos,
    })
}

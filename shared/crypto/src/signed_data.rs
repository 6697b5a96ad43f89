//! A CMS SignedData (RFC 5652) read in place: its parts as slices of the DER, with nothing
//! decoded that verification does not use. Some callers verify a signature on every
//! request, so this walks the fixed structure once, allocates nothing, and leaves all
//! judgement (digests, algorithms, RSA, whom to trust) to `verify.rs`.
//!
//! DER only: what `der_cursor.rs` finds to be BER, [`read_in_place`] converts first
//! (`ber.rs`). Hostile input gets an error naming what was wrong, never a panic; the
//! walk's depth is the structure's, not the input's.

use spki::ObjectIdentifier;

use crate::cert_view::{CertificateView, PublicKey};
use crate::der_cursor::{
    AlgorithmView, CONTEXT_0, CONTEXT_1, Der, INTEGER, KEY_ID, OCTET_STRING, OID, ReadError,
    Result, SEQUENCE, SET, algorithm, bad,
};
use crate::scep_status::{MAX_MESSAGE_LEN, ScepError};
use crate::tlv::Tlv;
use crate::{ber, oid};

/// More embedded certificates than this is not a chain but an attack on our CPU.
const MAX_CERTIFICATES: usize = 32;

/// How a SignerInfo names its certificate (RFC 5652 §5.3).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SignerId<'a> {
    /// The whole encodings of the issuer Name and the serialNumber INTEGER.
    IssuerAndSerial { issuer: &'a [u8], serial: &'a [u8] },
    /// subjectKeyIdentifier: the key identifier's octets.
    KeyId(&'a [u8]),
}

impl SignerId<'_> {
    fn names(&self, cert: &CertificateView<'_>) -> bool {
        match *self {
            // Encodings compared: a signer names its issuer with the certificate's bytes.
            SignerId::IssuerAndSerial { issuer, serial } => {
                cert.issuer == issuer && cert.serial == serial
            }
            SignerId::KeyId(id) => cert.subject_key_id() == Some(id),
        }
    }
}

/// The single SignerInfo.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignerInfoView<'a> {
    pub sid: SignerId<'a>,
    pub digest_algorithm: AlgorithmView<'a>,
    /// The signed attributes as sent (`[0] IMPLICIT`, whole element): the signature
    /// covers them under a SET tag instead ([`SignerInfoView::signed_attributes_der`]).
    pub signed_attributes: Option<Tlv<'a>>,
    /// The single values of the messageDigest and contentType attributes, when present.
    pub message_digest: Option<Tlv<'a>>,
    pub content_type: Option<Tlv<'a>>,
    pub signature_algorithm: AlgorithmView<'a>,
    pub signature: &'a [u8],
}

impl SignerInfoView<'_> {
    /// The DER the signature covers when there are signed attributes: those under a SET
    /// tag (RFC 5652 §5.4).
    pub fn signed_attributes_der(&self) -> Option<Vec<u8>> {
        self.signed_attributes.map(|a| {
            let mut v = a.raw.to_vec();
            v[0] = SET;
            v
        })
    }
}

/// The signer's certificate, read further than the others.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignerCertificate<'a> {
    pub view: CertificateView<'a>,
    pub not_before: i64,
    pub not_after: i64,
    pub public_key: PublicKey<'a>,
}

/// A SignedData split into its parts, nothing verified yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedDataView<'a> {
    /// eContentType (the OID's contents).
    pub content_type: &'a [u8],
    /// The encapsulated content; `None` when detached.
    pub econtent: Option<&'a [u8]>,
    /// How many SignerInfos there are; the one, when there is exactly one.
    pub signer_count: usize,
    pub signer: Option<SignerInfoView<'a>>,
    /// The certificate the single SignerInfo names, if embedded.
    pub signer_certificate: Option<SignerCertificate<'a>>,
    /// The contents of `certificates [0]`, empty when absent.
    certificates: &'a [u8],
}

impl<'a> SignedDataView<'a> {
    /// The embedded certificates in the order sent (other CertificateChoices, such as
    /// attribute certificates, skipped).
    pub fn certificates(&self) -> impl Iterator<Item = Result<CertificateView<'a>>> + use<'a> {
        let mut rest = Der(self.certificates);
        let mut count = 0;
        std::iter::from_fn(move || {
            loop {
                if rest.is_empty() {
                    return None;
                }
                let c = match rest.next() {
                    Ok(c) if c.tag != SEQUENCE => continue,
                    Ok(c) => c,
                    Err(e) => {
                        rest = Der(&[]);
                        return Some(Err(e));
                    }
                };
                count += 1;
                if count > MAX_CERTIFICATES {
                    rest = Der(&[]);
                    return Some(bad(&format!("more than {MAX_CERTIFICATES} certificates")));
                }
                return Some(CertificateView::read(c));
            }
        })
    }
}

/// Reads a ContentInfo holding a SignedData, DER only.
pub(crate) fn read(input: &[u8]) -> Result<SignedDataView<'_>> {
    let mut top = Der(input);
    let ci = top.expect(SEQUENCE, "not CMS: ContentInfo is not a SEQUENCE")?;
    if !top.is_empty() {
        return bad(&format!(
            "{} unexpected bytes after the message",
            top.0.len()
        ));
    }
    let mut ci = Der(ci.content);
    let ct = ci.expect(OID, "ContentInfo has no content type")?.content;
    if ct != oid::ID_SIGNED_DATA.as_bytes() {
        let name = ObjectIdentifier::from_bytes(ct)
            .map_err(|_| ScepError::Malformed("ContentInfo has no content type".into()))?;
        return Err(ScepError::NotSignedData(name.to_string()).into());
    }
    let content = ci.expect(CONTEXT_0, "ContentInfo content is not [0]")?;
    ci.end("ContentInfo is not a content type and its content")?;
    let mut explicit = Der(content.content);
    let sd = explicit.expect(SEQUENCE, "SignedData is not a SEQUENCE")?;
    explicit.end("unexpected data after the SignedData")?;

    let mut sd = Der(sd.content);
    sd.expect(INTEGER, "SignedData lacks its version")?;
    sd.expect(SET, "SignedData lacks its digest algorithms")?;
    let eci = sd.expect(SEQUENCE, "SignedData lacks its encapsulated content")?;
    let certificates = sd.optional(CONTEXT_0)?.map_or(&[][..], |c| c.content);
    sd.optional(CONTEXT_1)?; // CRLs: not used.
    let signer_infos = sd.expect(SET, "SignedData lacks its signer infos")?;
    sd.end("unexpected field after the signer infos")?;
    let (content_type, econtent) = encapsulated(eci)?;

    let mut signers = Der(signer_infos.content);
    let (mut signer_count, mut first) = (0, None);
    while !signers.is_empty() {
        let s = signers.next()?;
        first.get_or_insert(s);
        signer_count += 1;
    }
    let signer = match first {
        Some(s) if signer_count == 1 => Some(signer_info(s)?),
        _ => None,
    };
    let mut sd = SignedDataView {
        content_type,
        econtent,
        signer_count,
        signer,
        signer_certificate: None,
        certificates,
    };
    // Every certificate is walked (a damaged one is an error wherever it is); the first
    // the signer names is read further.
    for c in sd.certificates() {
        let c = c?;
        if sd.signer_certificate.is_none() && signer.is_some_and(|s| s.sid.names(&c)) {
            let (not_before, not_after) = c.validity()?;
            sd.signer_certificate = Some(SignerCertificate {
                view: c,
                not_before,
                not_after,
                public_key: c.public_key()?,
            });
        }
    }
    Ok(sd)
}

/// EncapsulatedContentInfo: the content's type and, unless detached, the content.
fn encapsulated(eci: Tlv<'_>) -> Result<(&[u8], Option<&[u8]>)> {
    let mut f = Der(eci.content);
    let ct = f.expect(OID, "encapsulated content has no type")?.content;
    if ct != oid::ID_DATA.as_bytes() && ObjectIdentifier::from_bytes(ct).is_err() {
        return bad("encapsulated content has no type");
    }
    let econtent = match f.optional(CONTEXT_0)? {
        None => None,
        Some(explicit) => {
            let mut e = Der(explicit.content);
            let octets = e.expect(OCTET_STRING, "encapsulated content is not an OCTET STRING")?;
            e.end("encapsulated content is not an OCTET STRING")?;
            Some(octets.content)
        }
    };
    f.end("encapsulated content has unexpected fields")?;
    Ok((ct, econtent))
}

fn signer_info(s: Tlv<'_>) -> Result<SignerInfoView<'_>> {
    if s.tag != SEQUENCE {
        return bad("SignerInfo is not a SEQUENCE");
    }
    let mut si = Der(s.content);
    si.expect(INTEGER, "SignerInfo: version missing")?;
    let id = si.next()?;
    let sid = match id.tag {
        SEQUENCE => {
            let mut ias = Der(id.content);
            let issuer = ias
                .expect(SEQUENCE, "signer identifier: issuer missing")?
                .raw;
            let serial = ias
                .expect(INTEGER, "signer identifier: serial missing")?
                .raw;
            ias.end("signer identifier: unexpected field after the serial")?;
            SignerId::IssuerAndSerial { issuer, serial }
        }
        KEY_ID => SignerId::KeyId(id.content),
        // A constructed [0] is a chunked key identifier: BER.
        CONTEXT_0 => return Err(ReadError::NotDer),
        _ => return bad("SignerInfo: signer identifier is neither issuer and serial nor key"),
    };
    let digest_algorithm = algorithm(
        si.expect(SEQUENCE, "SignerInfo: digestAlgorithm missing")?,
        "SignerInfo: digestAlgorithm has no OID",
    )?;
    let signed_attributes = si.optional(CONTEXT_0)?;
    let (message_digest, content_type) = match signed_attributes {
        Some(attrs) => digest_and_type(attrs.content)?,
        None => (None, None),
    };
    let signature_algorithm = algorithm(
        si.expect(SEQUENCE, "SignerInfo: signatureAlgorithm missing")?,
        "SignerInfo: signatureAlgorithm has no OID",
    )?;
    let signature = si
        .expect(OCTET_STRING, "SignerInfo: signature missing")?
        .content;
    si.optional(CONTEXT_1)?; // Unsigned attributes: not used.
    si.end("SignerInfo: unexpected field after the signature")?;
    Ok(SignerInfoView {
        sid,
        digest_algorithm,
        signed_attributes,
        message_digest,
        content_type,
        signature_algorithm,
        signature,
    })
}

/// The single values of the messageDigest and contentType attributes, each `None` when
/// absent. Walks every attribute once: each must be a type and a SET of values, none a
/// BER string.
fn digest_and_type(attrs: &[u8]) -> Result<(Option<Tlv<'_>>, Option<Tlv<'_>>)> {
    let (md_oid, ct_oid) = (oid::MESSAGE_DIGEST.as_bytes(), oid::CONTENT_TYPE.as_bytes());
    let (mut md, mut ct) = (None, None);
    let mut attrs = Der(attrs);
    while !attrs.is_empty() {
        let mut a = Der(attrs
            .expect(SEQUENCE, "signed attribute is not a SEQUENCE")?
            .content);
        let ty = a.expect(OID, "signed attribute has no type")?.content;
        let mut values = Der(a.expect(SET, "signed attribute has no values")?.content);
        a.end("signed attribute: unexpected field after the values")?;
        let (mut first, mut count) = (None, 0);
        while !values.is_empty() {
            let v = values.next()?;
            if ber::is_constructed_string(v.tag) {
                return Err(ReadError::NotDer);
            }
            first.get_or_insert(v);
            count += 1;
        }
        let (slot, name) = if ty == md_oid {
            (&mut md, "messageDigest")
        } else if ty == ct_oid {
            (&mut ct, "contentType")
        } else {
            continue;
        };
        if slot.is_some() || count != 1 {
            return bad(&format!(
                "signed attribute {name} must appear once with one value"
            ));
        }
        *slot = first;
    }
    Ok((md, ct))
}

/// Reads `input` in place when it is DER; BER is converted into `ber` first and read
/// from there. Messages over [`MAX_MESSAGE_LEN`] are refused unread.
pub(crate) fn read_in_place<'a>(
    input: &'a [u8],
    ber: &'a mut Vec<u8>,
) -> std::result::Result<SignedDataView<'a>, ScepError> {
    check_outline(input)?;
    match read(input) {
        Ok(sd) => Ok(sd),
        Err(ReadError::Refused(e)) => Err(e),
        Err(ReadError::NotDer) => {
            *ber = to_der(input)?;
            read_der(ber)
        }
    }
}

/// `input` (DER or BER) converted to DER, for callers that keep what they read.
pub(crate) fn to_der(input: &[u8]) -> std::result::Result<Vec<u8>, ScepError> {
    check_outline(input)?;
    let (der, used) = ber::cms_to_der(input).map_err(|e| ScepError::Malformed(e.to_string()))?;
    if used != input.len() {
        return Err(ScepError::Malformed(format!(
            "{} unexpected bytes after the message",
            input.len() - used
        )));
    }
    Ok(der)
}

/// Reads what [`to_der`] made.
pub(crate) fn read_der(der: &[u8]) -> std::result::Result<SignedDataView<'_>, ScepError> {
    read(der).map_err(ReadError::after_conversion)
}

fn check_outline(input: &[u8]) -> std::result::Result<(), ScepError> {
    if input.len() > MAX_MESSAGE_LEN {
        return Err(ScepError::TooLarge(input.len()));
    }
    if input.first() != Some(&SEQUENCE) {
        return Err(ScepError::Malformed(
            "not a DER/BER message (expected a SEQUENCE)".into(),
        ));
    }
    Ok(())
}

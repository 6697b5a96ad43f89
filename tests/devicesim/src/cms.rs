//! CMS as a device writes it: SignedData by the RSA-1024 device identity (which
//! `mdm_crypto::sign_data` cannot hold: its keys start at 2048 bits), and the BER form
//! with indefinite lengths and a chunked content OCTET STRING that devices send for the
//! ADE MachineInfo (Apple: "Device Assignment").

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Digest as _;
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::SimError;

const ID_DATA: &str = "1.2.840.113549.1.7.1";
const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const SHA1: &str = "1.3.14.3.2.26";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
/// Chunk size of the constructed OCTET STRING in the BER form.
pub const BER_CHUNK: usize = 1000;

/// Digest of a device signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Digest {
    /// What the published real MachineInfo sample uses.
    #[default]
    Sha1,
    Sha256,
}

impl Digest {
    fn oid(self) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(match self {
            Digest::Sha1 => SHA1,
            Digest::Sha256 => SHA256,
        })
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Digest::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Digest::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> SimError {
    SimError::Crypto(format!("{what}: {e}"))
}

/// DER ContentInfo(SignedData) over `content` (attached unless `detached`) by `key`,
/// whose certificate (DER) is embedded and named by issuer and serial number. Signed
/// attributes: contentType, messageDigest, signingTime.
pub fn sign(
    content: &[u8],
    key: &RsaPrivateKey,
    cert_der: &[u8],
    digest: Digest,
    detached: bool,
    signing_time_unix: i64,
) -> Result<Vec<u8>, SimError> {
    let oid = ObjectIdentifier::new_unwrap;
    let cert = x509_cert::Certificate::from_der(cert_der).map_err(|e| fail("certificate", e))?;
    let attr = |o: &str, v: Any| -> Result<Attribute, SimError> {
        Ok(Attribute {
            oid: oid(o),
            values: SetOfVec::try_from(vec![v]).map_err(|e| fail("attribute", e))?,
        })
    };
    let time = crate::fakeca::x509_time(signing_time_unix)?;
    let attrs = SetOfVec::try_from(vec![
        attr(
            CONTENT_TYPE,
            Any::encode_from(&oid(ID_DATA)).map_err(|e| fail("contentType", e))?,
        )?,
        attr(
            MESSAGE_DIGEST,
            Any::new(Tag::OctetString, digest.digest(content))
                .map_err(|e| fail("messageDigest", e))?,
        )?,
        attr(
            SIGNING_TIME,
            Any::encode_from(&time).map_err(|e| fail("signingTime", e))?,
        )?,
    ])
    .map_err(|e| fail("signed attributes", e))?;
    let to_sign = attrs.to_der().map_err(|e| fail("signed attributes", e))?;
    let signature = match digest {
        Digest::Sha1 => SigningKey::<sha1::Sha1>::new(key.clone())
            .sign(&to_sign)
            .to_vec(),
        Digest::Sha256 => SigningKey::<sha2::Sha256>::new(key.clone())
            .sign(&to_sign)
            .to_vec(),
    };
    let digest_alg = AlgorithmIdentifierOwned {
        oid: digest.oid(),
        parameters: None,
    };
    let si = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: oid(RSA_ENCRYPTION),
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature).map_err(|e| fail("signature", e))?,
        unsigned_attrs: None,
    };
    let econtent = if detached {
        None
    } else {
        Some(Any::new(Tag::OctetString, content).map_err(|e| fail("content", e))?)
    };
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_alg])
            .map_err(|e| fail("digest algorithms", e))?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid(ID_DATA),
            econtent,
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(cert)])
                .map_err(|e| fail("certificates", e))?,
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![si]).map_err(|e| fail("signers", e))?),
    };
    let ci = ContentInfo {
        content_type: oid(ID_SIGNED_DATA),
        content: Any::encode_from(&sd).map_err(|e| fail("SignedData", e))?,
    };
    ci.to_der().map_err(|e| fail("ContentInfo", e))
}

// ---------------------------------------------------------------------------------------
// DER → BER with indefinite lengths
// ---------------------------------------------------------------------------------------

/// One DER element: tag byte, content, and the whole encoding.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), SimError> {
    let bad = |m: &str| SimError::Crypto(format!("DER: {m}"));
    let (&tag, rest) = input.split_first().ok_or_else(|| bad("truncated tag"))?;
    if tag & 0x1f == 0x1f {
        return Err(bad("multi-byte tags are not expected here"));
    }
    let (&first, mut rest) = rest.split_first().ok_or_else(|| bad("truncated length"))?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad("unsupported length"));
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(bad("truncated content"));
    }
    let header = input.len() - rest.len();
    Ok((
        Tlv {
            tag,
            content: &rest[..len],
            whole: &input[..header + len],
        },
        &rest[len..],
    ))
}

fn children(mut content: &[u8]) -> Result<Vec<Tlv<'_>>, SimError> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (t, rest) = read_tlv(content)?;
        out.push(t);
        content = rest;
    }
    Ok(out)
}

/// A definite-length (DER) encoding.
pub(crate) fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn indefinite(tag: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![tag | 0x20, 0x80];
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend([0, 0]);
    out
}

/// Re-encodes a DER ContentInfo(SignedData) the way devices send it: ContentInfo,
/// its `[0]`, SignedData, EncapsulatedContentInfo, eContent, certificates and signerInfos
/// with indefinite lengths, the content as a constructed OCTET STRING of
/// [`BER_CHUNK`]-byte pieces. The certificates, signer infos and digest algorithms inside
/// stay DER (the signature covers the signed attributes' DER anyway).
pub fn to_ber_indefinite(der: &[u8]) -> Result<Vec<u8>, SimError> {
    let (ci, rest) = read_tlv(der)?;
    let bad = |m: &str| SimError::Crypto(format!("not a ContentInfo(SignedData): {m}"));
    if ci.tag != 0x30 || !rest.is_empty() {
        return Err(bad("outer SEQUENCE"));
    }
    let ci_parts = children(ci.content)?;
    let [oid, explicit] = ci_parts.as_slice() else {
        return Err(bad("ContentInfo fields"));
    };
    let sd_tlv = children(explicit.content)?;
    let [sd] = sd_tlv.as_slice() else {
        return Err(bad("[0] content"));
    };
    let fields = children(sd.content)?;
    let last = fields.len().saturating_sub(1);
    let mut sd_parts = Vec::new();
    for (i, field) in fields.into_iter().enumerate() {
        sd_parts.push(match field.tag {
            // EncapsulatedContentInfo
            0x30 => {
                let mut eci = Vec::new();
                for f in children(field.content)? {
                    if f.tag == 0xa0 {
                        let inner = children(f.content)?;
                        let [octets] = inner.as_slice() else {
                            return Err(bad("eContent"));
                        };
                        let chunks: Vec<Vec<u8>> = octets
                            .content
                            .chunks(BER_CHUNK)
                            .map(|c| encode(0x04, c))
                            .collect();
                        eci.push(indefinite(0xa0, &[indefinite(0x04, &chunks)]));
                    } else {
                        eci.push(f.whole.to_vec());
                    }
                }
                indefinite(0x30, &eci)
            }
            // certificates [0] IMPLICIT, and signerInfos (the last field; the first SET
            // is digestAlgorithms)
            0xa0 => indefinite(0xa0, &[field.content.to_vec()]),
            0x31 if i == last => indefinite(0x31, &[field.content.to_vec()]),
            _ => field.whole.to_vec(),
        });
    }
    Ok(indefinite(
        0x30,
        &[
            oid.whole.to_vec(),
            indefinite(0xa0, &[indefinite(0x30, &sd_parts)]),
        ],
    ))
}

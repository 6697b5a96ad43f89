//! The CMS SignedData of an `Mdm-Signature` (RFC 5652) read in place: the parts its
//! verification needs, as slices of the DER, with nothing decoded that is not used. Every
//! device request pays for this reading, so it walks the fixed structure once, allocates
//! nothing, and leaves all judgement (digests, RSA, which CA) to `signature.rs`.
//!
//! DER only: an indefinite length or a constructed string is reported as [`ReadError::NotDer`]
//! so the caller can convert BER first (`mdm_crypto::cms_to_der`). Hostile input gets an error naming
//! what was wrong, never a panic; the walk's depth is the structure's, not the input's.

/// Why the bytes are not a readable `Mdm-Signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// BER rather than DER (indefinite length): convert and read again.
    NotDer,
    /// What was wrong, for the device's error answer.
    Invalid(&'static str),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotDer => f.write_str("BER encoding (indefinite length)"),
            ReadError::Invalid(what) => f.write_str(what),
        }
    }
}

type Result<T> = std::result::Result<T, ReadError>;

fn bad<T>(what: &'static str) -> Result<T> {
    Err(ReadError::Invalid(what))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0]` and `[1]`, constructed.
const CONTEXT_0: u8 = 0xA0;
const CONTEXT_1: u8 = 0xA1;

/// Object identifiers as their DER contents.
pub mod oid {
    /// id-signedData, 1.2.840.113549.1.7.2
    pub const SIGNED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];
    /// id-messageDigest, 1.2.840.113549.1.9.4
    pub const MESSAGE_DIGEST: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04];
    /// id-sha1, 1.3.14.3.2.26
    pub const SHA1: &[u8] = &[0x2B, 0x0E, 0x03, 0x02, 0x1A];
    /// id-sha256, 2.16.840.1.101.3.4.2.1
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    /// rsaEncryption, 1.2.840.113549.1.1.1
    pub const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
}

/// One element: its tag, its whole encoding and its contents.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    raw: &'a [u8],
    content: &'a [u8],
}

/// A cursor over consecutive elements.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn next(&mut self) -> Result<Tlv<'a>> {
        let b = self.0;
        let Some(&tag) = b.first() else {
            return bad("truncated: an element is missing");
        };
        if tag & 0x1F == 0x1F {
            return bad("unexpected high tag number");
        }
        let Some(&l0) = b.get(1) else {
            return bad("truncated length");
        };
        let (len, header) = match l0 {
            0x80 => return Err(ReadError::NotDer),
            l if l < 0x80 => (l as usize, 2),
            l => {
                let n = (l & 0x7F) as usize;
                if n > 4 {
                    return bad("length too large");
                }
                let Some(bytes) = b.get(2..2 + n) else {
                    return bad("truncated length");
                };
                (
                    bytes.iter().fold(0usize, |acc, x| acc << 8 | *x as usize),
                    2 + n,
                )
            }
        };
        let Some(end) = header.checked_add(len).filter(|e| *e <= b.len()) else {
            return bad("element longer than its container");
        };
        self.0 = &b[end..];
        Ok(Tlv {
            tag,
            raw: &b[..end],
            content: &b[header..end],
        })
    }

    fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>> {
        let t = self.next()?;
        if t.tag == tag {
            Ok(t)
        } else if t.tag == tag | 0x20 && matches!(tag, OCTET_STRING | BIT_STRING) {
            // A constructed string is BER.
            Err(ReadError::NotDer)
        } else {
            bad(what)
        }
    }

    fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(tag) {
            self.next().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The signer's certificate as the SignedData carries it.
#[derive(Debug, Clone, Copy)]
pub struct CertificateView<'a> {
    /// The whole certificate.
    pub der: &'a [u8],
    /// `tbsCertificate`, what the issuer signed.
    pub tbs: &'a [u8],
    /// The `signature` AlgorithmIdentifier inside `tbsCertificate` and the outer
    /// `signatureAlgorithm` (RFC 5280 §4.1.1.2: they must be equal).
    pub inner_algorithm: &'a [u8],
    pub outer_algorithm: &'a [u8],
    pub not_before: i64,
    pub not_after: i64,
    /// RSA modulus and public exponent (big-endian), when the key is RSA.
    pub rsa_key: Option<(&'a [u8], &'a [u8])>,
}

/// What verifying an `Mdm-Signature` needs from it.
#[derive(Debug, Clone, Copy)]
pub struct SignedDataView<'a> {
    /// The signer's digestAlgorithm OID (contents).
    pub digest_algorithm: &'a [u8],
    /// The signed attributes as encoded (`[0] IMPLICIT`): the signature covers them with
    /// the SET tag instead ([`SignedDataView::signed_attributes_der`]).
    pub signed_attributes: &'a [u8],
    /// The messageDigest attribute's value.
    pub message_digest: &'a [u8],
    pub signature: &'a [u8],
    pub certificate: CertificateView<'a>,
}

impl SignedDataView<'_> {
    /// The DER the signature covers: the signed attributes under a SET tag (RFC 5652 §5.4).
    pub fn signed_attributes_der(&self) -> Vec<u8> {
        let mut v = self.signed_attributes.to_vec();
        v[0] = SET;
        v
    }
}

/// Reads a ContentInfo holding a SignedData with exactly one signer, identified by
/// issuer and serial number, whose certificate is included.
pub fn read(input: &[u8]) -> Result<SignedDataView<'_>> {
    let mut top = Der(input);
    let ci = top.expect(SEQUENCE, "not CMS: ContentInfo is not a SEQUENCE")?;
    if !top.is_empty() {
        return bad("trailing data after the ContentInfo");
    }
    let mut ci = Der(ci.content);
    if ci.expect(OID, "not CMS: no contentType")?.content != oid::SIGNED_DATA {
        return bad("not a SignedData");
    }
    let content = ci.expect(CONTEXT_0, "SignedData: content missing")?;
    let sd = Der(content.content).expect(SEQUENCE, "SignedData is not a SEQUENCE")?;
    let mut sd = Der(sd.content);
    sd.expect(INTEGER, "SignedData: version missing")?;
    sd.expect(SET, "SignedData: digestAlgorithms missing")?;
    sd.expect(SEQUENCE, "SignedData: encapContentInfo missing")?;
    let certificates = sd.optional(CONTEXT_0)?;
    sd.optional(CONTEXT_1)?;
    let signer_infos = sd.expect(SET, "SignedData: signerInfos missing")?;

    let mut signers = Der(signer_infos.content);
    let signer = signers.expect(SEQUENCE, "SignerInfo is not a SEQUENCE")?;
    if !signers.is_empty() {
        return bad("exactly one signer expected");
    }
    let mut si = Der(signer.content);
    si.expect(INTEGER, "SignerInfo: version missing")?;
    let sid = si.next()?;
    if sid.tag != SEQUENCE {
        return bad("signer must be identified by issuer and serial number");
    }
    let mut sid = Der(sid.content);
    let issuer = sid
        .expect(SEQUENCE, "signer identifier: issuer missing")?
        .raw;
    let serial = sid
        .expect(INTEGER, "signer identifier: serial missing")?
        .raw;
    let digest_algorithm = algorithm_oid(
        si.expect(SEQUENCE, "SignerInfo: digestAlgorithm missing")?,
        "SignerInfo: digestAlgorithm has no OID",
    )?;
    let Some(attrs) = si.optional(CONTEXT_0)? else {
        return bad("signed attributes missing");
    };
    si.expect(SEQUENCE, "SignerInfo: signatureAlgorithm missing")?;
    let signature = si
        .expect(OCTET_STRING, "SignerInfo: signature missing")?
        .content;

    let message_digest = message_digest(attrs.content)?;
    let Some(certificates) = certificates else {
        return bad("signer certificate not included");
    };
    let mut certs = Der(certificates.content);
    let mut found = None;
    while !certs.is_empty() {
        let c = certs.next()?;
        // Other CertificateChoices (attribute certificates, ...) are tagged otherwise.
        if c.tag != SEQUENCE {
            continue;
        }
        let cert = certificate(c)?;
        if cert.1 == issuer && cert.2 == serial {
            found = Some(cert.0);
            break;
        }
    }
    let Some(certificate) = found else {
        return bad("signer certificate not included");
    };
    Ok(SignedDataView {
        digest_algorithm,
        signed_attributes: attrs.raw,
        message_digest,
        signature,
        certificate,
    })
}

fn algorithm_oid<'a>(alg: Tlv<'a>, what: &'static str) -> Result<&'a [u8]> {
    Ok(Der(alg.content).expect(OID, what)?.content)
}

fn message_digest(attrs: &[u8]) -> Result<&[u8]> {
    let mut attrs = Der(attrs);
    while !attrs.is_empty() {
        let attr = attrs.expect(SEQUENCE, "signed attribute is not a SEQUENCE")?;
        let mut a = Der(attr.content);
        if a.expect(OID, "signed attribute has no type")?.content != oid::MESSAGE_DIGEST {
            continue;
        }
        let values = a.expect(SET, "messageDigest has no values")?;
        return Ok(Der(values.content)
            .expect(OCTET_STRING, "messageDigest is not an OCTET STRING")?
            .content);
    }
    bad("messageDigest attribute missing")
}

/// A certificate with its issuer and serial (whole encodings, for matching the signer
/// identifier).
fn certificate(c: Tlv<'_>) -> Result<(CertificateView<'_>, &[u8], &[u8])> {
    let mut cert = Der(c.content);
    let tbs = cert.expect(SEQUENCE, "certificate: tbsCertificate missing")?;
    let outer = cert.expect(SEQUENCE, "certificate: signatureAlgorithm missing")?;
    cert.expect(BIT_STRING, "certificate: signature missing")?;
    let mut t = Der(tbs.content);
    t.optional(CONTEXT_0)?;
    let serial = t.expect(INTEGER, "certificate: serialNumber missing")?.raw;
    let inner = t.expect(SEQUENCE, "certificate: signature algorithm missing")?;
    let issuer = t.expect(SEQUENCE, "certificate: issuer missing")?.raw;
    let mut validity = Der(t.expect(SEQUENCE, "certificate: validity missing")?.content);
    let not_before = validity_time(validity.next()?)?;
    let not_after = validity_time(validity.next()?)?;
    t.expect(SEQUENCE, "certificate: subject missing")?;
    let spki = t.expect(SEQUENCE, "certificate: subjectPublicKeyInfo missing")?;
    Ok((
        CertificateView {
            der: c.raw,
            tbs: tbs.raw,
            inner_algorithm: inner.raw,
            outer_algorithm: outer.raw,
            not_before,
            not_after,
            rsa_key: rsa_key(spki)?,
        },
        issuer,
        serial,
    ))
}

/// Modulus and exponent of an RSA SubjectPublicKeyInfo; None for other key types.
fn rsa_key(spki: Tlv<'_>) -> Result<Option<(&[u8], &[u8])>> {
    let mut s = Der(spki.content);
    let alg = s.expect(SEQUENCE, "subjectPublicKeyInfo: algorithm missing")?;
    let mut a = Der(alg.content);
    if a.expect(OID, "subjectPublicKeyInfo: algorithm has no OID")?
        .content
        != oid::RSA_ENCRYPTION
    {
        return Ok(None);
    }
    // rsaEncryption's parameters are NULL (RFC 3279 §2.3.1); absent is tolerated.
    if !(a.is_empty() || a.0 == [0x05, 0x00]) {
        return bad("subjectPublicKeyInfo: rsaEncryption parameters are not NULL");
    }
    let bits = s
        .expect(BIT_STRING, "subjectPublicKeyInfo: key missing")?
        .content;
    let Some((&0, key)) = bits.split_first() else {
        return bad("subjectPublicKeyInfo: key is not whole bytes");
    };
    let mut k = Der(Der(key)
        .expect(SEQUENCE, "RSA key is not a SEQUENCE")?
        .content);
    let n = k.expect(INTEGER, "RSA key: modulus missing")?.content;
    let e = k.expect(INTEGER, "RSA key: exponent missing")?.content;
    Ok(Some((n, e)))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as
/// Unix seconds (RFC 5280 §4.1.2.5).
fn validity_time(t: Tlv<'_>) -> Result<i64> {
    let s = t.content;
    let (year, rest) = match (t.tag, s.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&s[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&s[..4])?, &s[4..]),
        _ => return bad("certificate: validity time is not UTCTime or GeneralizedTime"),
    };
    if rest[10] != b'Z' {
        return bad("certificate: validity time is not in UTC");
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok());
    let date = month.and_then(|m| time::Date::from_calendar_date(year as i32, m, day as u8).ok());
    let clock = time::Time::from_hms(hour as u8, minute as u8, second as u8).ok();
    match (date, clock) {
        (Some(d), Some(c)) => Ok(time::PrimitiveDateTime::new(d, c)
            .assume_utc()
            .unix_timestamp()),
        _ => bad("certificate: validity time is not a date"),
    }
}

fn digits(s: &[u8]) -> Result<i64> {
    if s.iter().all(u8::is_ascii_digit) {
        Ok(s.iter().fold(0, |acc, d| acc * 10 + (d - b'0') as i64))
    } else {
        bad("certificate: validity time has non-digits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_truncation() {
        let mut d = Der(&[0x04, 0x02, 0xAA, 0xBB, 0x05, 0x00]);
        let t = d.next().unwrap();
        assert_eq!((t.tag, t.content), (0x04, &[0xAA, 0xBB][..]));
        assert_eq!(d.next().unwrap().content, &[] as &[u8]);
        assert!(d.is_empty());
        assert_eq!(
            Der(&[0x30, 0x80, 0, 0]).next().unwrap_err(),
            ReadError::NotDer
        );
        assert!(matches!(
            Der(&[0x30, 0x05, 1]).next(),
            Err(ReadError::Invalid(_))
        ));
        assert!(matches!(
            Der(&[0x30, 0x85, 1, 1, 1, 1, 1]).next(),
            Err(ReadError::Invalid(_))
        ));
        assert!(matches!(Der(&[0x30]).next(), Err(ReadError::Invalid(_))));
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        assert_eq!(Der(&long).next().unwrap().content.len(), 256);
        // A constructed OCTET STRING is BER.
        assert_eq!(
            Der(&[0x24, 0x00]).expect(OCTET_STRING, "x").unwrap_err(),
            ReadError::NotDer
        );
    }

    #[test]
    fn validity_times() {
        let t = |tag, s: &str| {
            validity_time(Tlv {
                tag,
                raw: &[],
                content: s.as_bytes(),
            })
        };
        assert_eq!(t(UTC_TIME, "700101000000Z"), Ok(0));
        assert_eq!(t(UTC_TIME, "491231235959Z"), Ok(2_524_607_999));
        assert_eq!(t(GENERALIZED_TIME, "20500101000000Z"), Ok(2_524_608_000));
        assert!(t(UTC_TIME, "701301000000Z").is_err());
        assert!(t(UTC_TIME, "700101000000+0100").is_err());
        assert!(t(UTC_TIME, "7001010000x0Z").is_err());
        assert!(t(0x05, "700101000000Z").is_err());
    }
}

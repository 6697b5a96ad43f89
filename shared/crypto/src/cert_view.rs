//! An X.509 certificate (RFC 5280) read in place: the parts a signature check needs
//! (what the issuer signed, the names matching a signer identifier, validity, the RSA
//! key) as slices of the DER, nothing else decoded.

use crate::der_cursor::{
    BIT_STRING, CONTEXT_0, CONTEXT_3, Der, GENERALIZED_TIME, INTEGER, OCTET_STRING, OID, Result,
    SEQUENCE, UTC_TIME, algorithm, bad,
};
use crate::oid;
use crate::tlv::Tlv;

/// A certificate as a message carries it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CertificateView<'a> {
    /// The whole certificate.
    pub der: &'a [u8],
    /// `tbsCertificate`, what the issuer signed.
    pub tbs: &'a [u8],
    /// The `signature` AlgorithmIdentifier inside `tbsCertificate` and the outer
    /// `signatureAlgorithm` (RFC 5280 §4.1.1.2: they must be equal).
    pub inner_algorithm: &'a [u8],
    pub outer_algorithm: &'a [u8],
    /// The whole encodings of the issuer Name and the serialNumber INTEGER.
    pub issuer: &'a [u8],
    pub serial: &'a [u8],
    validity: Tlv<'a>,
    spki: Tlv<'a>,
    /// What follows the subjectPublicKeyInfo in `tbsCertificate` (unique IDs, extensions).
    after_spki: Der<'a>,
}

impl<'a> CertificateView<'a> {
    pub fn read(c: Tlv<'a>) -> Result<CertificateView<'a>> {
        let mut cert = Der(c.content);
        let tbs = cert.expect(SEQUENCE, "certificate: tbsCertificate missing")?;
        let outer = cert.expect(SEQUENCE, "certificate: signatureAlgorithm missing")?;
        cert.expect(BIT_STRING, "certificate: signature missing")?;
        cert.end("certificate: unexpected field after the signature")?;
        let mut t = Der(tbs.content);
        t.optional(CONTEXT_0)?;
        let serial = t.expect(INTEGER, "certificate: serialNumber missing")?.raw;
        let inner = t.expect(SEQUENCE, "certificate: signature algorithm missing")?;
        let issuer = t.expect(SEQUENCE, "certificate: issuer missing")?.raw;
        let validity = t.expect(SEQUENCE, "certificate: validity missing")?;
        t.expect(SEQUENCE, "certificate: subject missing")?;
        let spki = t.expect(SEQUENCE, "certificate: subjectPublicKeyInfo missing")?;
        Ok(CertificateView {
            der: c.raw,
            tbs: tbs.raw,
            inner_algorithm: inner.raw,
            outer_algorithm: outer.raw,
            issuer,
            serial,
            validity,
            spki,
            after_spki: t,
        })
    }

    /// notBefore and notAfter as Unix seconds.
    pub fn validity(&self) -> Result<(i64, i64)> {
        let mut v = Der(self.validity.content);
        let not_before = validity_time(v.next()?)?;
        let not_after = validity_time(v.next()?)?;
        v.end("certificate: unexpected field in the validity")?;
        Ok((not_before, not_after))
    }

    /// The subject's public key: modulus and exponent when it is RSA.
    pub fn public_key(&self) -> Result<PublicKey<'a>> {
        let mut s = Der(self.spki.content);
        let alg = algorithm(
            s.expect(SEQUENCE, "subjectPublicKeyInfo: algorithm missing")?,
            "subjectPublicKeyInfo: algorithm has no OID",
        )?;
        if alg.oid != oid::RSA_ENCRYPTION.as_bytes() {
            return Ok(PublicKey::Other { algorithm: alg.oid });
        }
        // rsaEncryption's parameters are NULL (RFC 3279 §2.3.1); absent is tolerated.
        if !alg.null_or_absent_params() {
            return bad("subjectPublicKeyInfo: rsaEncryption parameters are not NULL");
        }
        let bits = s
            .expect(BIT_STRING, "subjectPublicKeyInfo: key missing")?
            .content;
        s.end("subjectPublicKeyInfo: unexpected field after the key")?;
        let Some((&0, key)) = bits.split_first() else {
            return bad("subjectPublicKeyInfo: key is not whole bytes");
        };
        let mut outer = Der(key);
        let mut k = Der(outer.expect(SEQUENCE, "RSA key is not a SEQUENCE")?.content);
        outer.end("RSA key: unexpected data after the key")?;
        let n = unsigned(k.expect(INTEGER, "RSA key: modulus missing")?.content)?;
        let e = unsigned(k.expect(INTEGER, "RSA key: exponent missing")?.content)?;
        k.end("RSA key: unexpected field after the exponent")?;
        Ok(PublicKey::Rsa { n, e })
    }

    /// The subject key identifier extension's key identifier, if present and readable.
    pub fn subject_key_id(&self) -> Option<&'a [u8]> {
        let mut rest = self.after_spki;
        let extensions = loop {
            match rest.next().ok()? {
                t if t.tag == CONTEXT_3 => break t,
                _ => continue,
            }
        };
        let mut list = Der(Der(extensions.content).expect(SEQUENCE, "").ok()?.content);
        while !list.is_empty() {
            let mut ext = Der(list.expect(SEQUENCE, "").ok()?.content);
            if ext.expect(OID, "").ok()?.content != oid::SUBJECT_KEY_ID.as_bytes() {
                continue;
            }
            ext.optional(0x01).ok()?; // critical
            let value = ext.expect(OCTET_STRING, "").ok()?;
            return Some(Der(value.content).expect(OCTET_STRING, "").ok()?.content);
        }
        None
    }
}

/// An INTEGER's contents as an unsigned big-endian number: positive, minimally encoded
/// (X.690 §8.3.2), the sign octet dropped.
fn unsigned(int: &[u8]) -> Result<&[u8]> {
    match int {
        [] => bad("RSA key: empty INTEGER"),
        [b, ..] if b & 0x80 != 0 => bad("RSA key: negative INTEGER"),
        [0, b, ..] if b & 0x80 == 0 => bad("RSA key: INTEGER not minimally encoded"),
        [0, rest @ ..] if !rest.is_empty() => Ok(rest),
        _ => Ok(int),
    }
}

/// A certificate's subject public key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PublicKey<'a> {
    /// Modulus and public exponent, big-endian without a sign octet.
    Rsa { n: &'a [u8], e: &'a [u8] },
    /// Another algorithm (its OID's contents).
    Other { algorithm: &'a [u8] },
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
    use crate::der_cursor::tests::refused;

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

    #[test]
    fn rsa_integers_are_unsigned_and_minimal() {
        assert_eq!(unsigned(&[0x01, 0x00, 0x01]), Ok(&[0x01, 0x00, 0x01][..]));
        assert_eq!(unsigned(&[0x00, 0x80]), Ok(&[0x80][..]));
        assert_eq!(unsigned(&[0x00]), Ok(&[0x00][..]));
        assert!(refused(unsigned(&[])));
        assert!(refused(unsigned(&[0x80])));
        assert!(refused(unsigned(&[0x00, 0x7F])));
    }
}

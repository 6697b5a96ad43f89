//! Reading DER in place, element by element: a cursor over `tlv.rs`'s splitter that
//! tells BER (indefinite or longer than needed lengths, constructed strings) apart as
//! [`ReadError::NotDer`], so that the caller converts it (`ber.rs`) and reads again.

use crate::ber;
use crate::scep_status::ScepError;
use crate::tlv::{self, Tlv};

/// Why the bytes were not read in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// BER rather than DER: convert and read again.
    NotDer,
    /// Not readable as the structure expected; says what was wrong.
    Refused(ScepError),
}

impl From<ScepError> for ReadError {
    fn from(e: ScepError) -> Self {
        ReadError::Refused(e)
    }
}

impl ReadError {
    /// For what was read from DER that `ber.rs` made, where BER cannot remain.
    pub(crate) fn after_conversion(self) -> ScepError {
        match self {
            ReadError::Refused(e) => e,
            ReadError::NotDer => ScepError::Malformed("BER that cannot be converted to DER".into()),
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, ReadError>;

/// A refusal naming what was wrong.
#[cold]
pub(crate) fn bad<T>(what: &str) -> Result<T> {
    Err(ReadError::Refused(ScepError::Malformed(what.into())))
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const UTC_TIME: u8 = 0x17;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;
/// `[0]` primitive (a SignerInfo's subjectKeyIdentifier), `[0]`, `[1]` and `[3]`
/// constructed.
pub(crate) const KEY_ID: u8 = 0x80;
pub(crate) const CONTEXT_0: u8 = 0xA0;
pub(crate) const CONTEXT_1: u8 = 0xA1;
pub(crate) const CONTEXT_3: u8 = 0xA3;

/// A cursor over consecutive elements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Der<'a>(pub(crate) &'a [u8]);

impl<'a> Der<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    #[inline]
    pub(crate) fn next(&mut self) -> Result<Tlv<'a>> {
        let (t, rest) = tlv::read(self.0).map_err(unreadable)?;
        // A length in more octets than it needs is BER too.
        let n = t.content.len();
        let minimal = if n < 0x80 {
            2
        } else {
            2 + (usize::BITS - n.leading_zeros()).div_ceil(8) as usize
        };
        if t.raw.len() - n != minimal {
            return Err(ReadError::NotDer);
        }
        self.0 = rest;
        Ok(t)
    }

    #[inline]
    pub(crate) fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>> {
        let t = self.next()?;
        if t.tag == tag {
            Ok(t)
        } else if ber::is_constructed_string(t.tag) {
            // A constructed string is BER.
            Err(ReadError::NotDer)
        } else {
            bad(what)
        }
    }

    pub(crate) fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(tag) {
            self.next().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Nothing may follow.
    pub(crate) fn end(&self, what: &str) -> Result<()> {
        if self.is_empty() { Ok(()) } else { bad(what) }
    }
}

#[cold]
fn unreadable(e: tlv::TlvError) -> ReadError {
    if e == tlv::INDEFINITE_LENGTH {
        ReadError::NotDer
    } else {
        ReadError::Refused(ScepError::Malformed(e.to_string()))
    }
}

/// An AlgorithmIdentifier: its OID (contents) and parameters, if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlgorithmView<'a> {
    pub oid: &'a [u8],
    pub parameters: Option<Tlv<'a>>,
}

impl AlgorithmView<'_> {
    /// RSA PKCS#1 v1.5 and SHA algorithm identifiers take no parameters: absent or NULL
    /// (RFC 4055, RFC 5754). Anything else is not the algorithm it claims to be.
    pub fn null_or_absent_params(&self) -> bool {
        self.parameters.is_none_or(|p| p.raw == [0x05, 0x00])
    }
}

pub(crate) fn algorithm<'a>(alg: Tlv<'a>, what: &str) -> Result<AlgorithmView<'a>> {
    let mut a = Der(alg.content);
    let oid = a.expect(OID, what)?.content;
    let parameters = if a.is_empty() { None } else { Some(a.next()?) };
    a.end(what)?;
    Ok(AlgorithmView { oid, parameters })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn refused<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(ReadError::Refused(ScepError::Malformed(_))))
    }

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
        assert!(refused(Der(&[0x30, 0x05, 1]).next()));
        assert!(refused(Der(&[0x30, 0x85, 1, 1, 1, 1, 1]).next()));
        assert!(refused(Der(&[0x30]).next()));
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        assert_eq!(Der(&long).next().unwrap().content.len(), 256);
        // A constructed OCTET STRING, and a length in more octets than needed, are BER.
        assert_eq!(
            Der(&[0x24, 0x00]).expect(OCTET_STRING, "x").unwrap_err(),
            ReadError::NotDer
        );
        assert_eq!(
            Der(&[0x04, 0x81, 0x01, 0xAA]).next().unwrap_err(),
            ReadError::NotDer
        );
        let mut padded = vec![0x04, 0x82, 0x00, 0x80];
        padded.extend(std::iter::repeat_n(7u8, 128));
        assert_eq!(Der(&padded).next().unwrap_err(), ReadError::NotDer);
    }
}

//! A minimal DER element splitter. Signatures cover *the bytes that were sent* (signed
//! attributes, a CSR's `CertificationRequestInfo`, a certificate's TBS); decoding into
//! typed structs and re-encoding may reorder SET OF elements, so the verifiers take the
//! raw bytes from here. Definite lengths only: callers pass DER (or what `ber` produced).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TlvError(pub &'static str);

impl fmt::Display for TlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An indefinite length: BER, which [`crate::ber`] converts.
pub(crate) const INDEFINITE_LENGTH: TlvError = TlvError("indefinite length where DER was expected");

/// One element: its identifier octet, its contents and its whole encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// The element at the start of `input` and what follows it.
#[inline]
pub(crate) fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), TlvError> {
    let tag = *input.first().ok_or(TlvError("truncated element"))?;
    if tag & 0x1f == 0x1f {
        // No structure we read uses tag numbers above 30.
        return Err(TlvError("unexpected high tag number"));
    }
    let l0 = *input.get(1).ok_or(TlvError("truncated element"))?;
    let (len, header) = match l0 {
        n if n < 0x80 => (n as usize, 2),
        0x80 => return Err(INDEFINITE_LENGTH),
        n => {
            let count = (n & 0x7f) as usize;
            if count > 4 {
                return Err(TlvError("length too long"));
            }
            let bytes = input
                .get(2..2 + count)
                .ok_or(TlvError("truncated element"))?;
            let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + count)
        }
    };
    let end = header
        .checked_add(len)
        .filter(|e| *e <= input.len())
        .ok_or(TlvError("truncated element"))?;
    Ok((
        Tlv {
            tag,
            content: &input[header..end],
            raw: &input[..end],
        },
        &input[end..],
    ))
}

/// The single element making up all of `input`.
pub(crate) fn read_exact(input: &[u8]) -> Result<Tlv<'_>, TlvError> {
    let (tlv, rest) = read(input)?;
    if !rest.is_empty() {
        return Err(TlvError("unexpected data after the element"));
    }
    Ok(tlv)
}

/// The elements inside a constructed element's contents, in the order sent.
pub(crate) fn children(content: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (tlv, next) = read(rest)?;
        out.push(tlv);
        rest = next;
    }
    Ok(out)
}

/// `tag` + DER length + `content`.
/// Appends a DER definite length: short form below 128, else the fewest big-endian bytes.
pub(crate) fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

pub(crate) fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_refuses_damage() {
        let (t, rest) = read(&[0x30, 0x03, 0x02, 0x01, 0x05, 0xff]).unwrap();
        assert_eq!(
            (t.tag, t.content, rest),
            (0x30, &[2, 1, 5][..], &[0xff][..])
        );
        assert_eq!(children(t.content).unwrap().len(), 1);
        let long = encode(0x04, &[7u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(read_exact(&long).unwrap().content.len(), 300);
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x80, 0, 0],
            &[0x30, 0x05, 0x00],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x1f, 0x01, 0x00],
            &[0x30, 0x82, 0x01],
        ] {
            assert!(read(bad).is_err(), "{bad:02x?}");
        }
        assert!(read_exact(&[0x05, 0x00, 0x05]).is_err());
    }
}

//! BER → DER for CMS. OpenSSL's streaming output and other producers write indefinite
//! lengths and chunked (constructed) strings; the RustCrypto `cms`/`der` crates read DER
//! only. The input is read into a tree, lengths are re-encoded in definite minimal form,
//! constructed universal strings become primitive, and — the one place that needs the
//! schema — EnvelopedData's `encryptedContent [0] IMPLICIT OCTET STRING` is joined too.
//! Hostile input gets an error, never a panic or unbounded recursion.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BerError(pub &'static str);

impl std::error::Error for BerError {}

impl fmt::Display for BerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid BER: {}", self.0)
    }
}

const MAX_DEPTH: usize = 40;

/// id-envelopedData (1.2.840.113549.1.7.3), content octets.
const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];

struct Node {
    /// Identifier octets as read (tag class, constructed bit, number).
    id: Vec<u8>,
    body: Body,
}

enum Body {
    Prim(Vec<u8>),
    Cons(Vec<Node>),
}

/// Converts the first element of `input` to DER. Returns it and the number of input
/// bytes it took, so the caller decides what trailing bytes to tolerate.
pub fn cms_to_der(input: &[u8]) -> Result<(Vec<u8>, usize), BerError> {
    let mut pos = 0;
    let mut root = parse(input, &mut pos, 0)?;
    join_encrypted_content(&mut root)?;
    let mut out = Vec::with_capacity(input.len());
    encode(&root, &mut out);
    Ok((out, pos))
}

fn byte(b: &[u8], pos: &mut usize) -> Result<u8, BerError> {
    let v = *b.get(*pos).ok_or(BerError("truncated"))?;
    *pos += 1;
    Ok(v)
}

/// `None` for the indefinite form.
fn read_len(b: &[u8], pos: &mut usize) -> Result<Option<usize>, BerError> {
    let l0 = byte(b, pos)?;
    match l0 {
        0x80 => Ok(None),
        n if n < 0x80 => Ok(Some(n as usize)),
        0xff => Err(BerError("reserved length octet")),
        n => {
            let count = (n & 0x7f) as usize;
            // Four octets already allow 4 GiB; anything longer is not a token file.
            if count > 4 {
                return Err(BerError("length too long"));
            }
            let mut len = 0usize;
            for _ in 0..count {
                len = (len << 8) | byte(b, pos)? as usize;
            }
            Ok(Some(len))
        }
    }
}

fn parse(b: &[u8], pos: &mut usize, depth: usize) -> Result<Node, BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError("nesting too deep"));
    }
    let start = *pos;
    let first = byte(b, pos)?;
    if first & 0x1f == 0x1f {
        loop {
            if *pos - start > 5 {
                return Err(BerError("tag number too long"));
            }
            if byte(b, pos)? & 0x80 == 0 {
                break;
            }
        }
    }
    let id = b[start..*pos].to_vec();
    let len = read_len(b, pos)?;
    if first & 0x20 == 0 {
        let len = len.ok_or(BerError("indefinite length on a primitive element"))?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= b.len())
            .ok_or(BerError("truncated"))?;
        let content = b[*pos..end].to_vec();
        *pos = end;
        return Ok(Node {
            id,
            body: Body::Prim(content),
        });
    }
    let mut children = Vec::new();
    match len {
        Some(len) => {
            let end = pos
                .checked_add(len)
                .filter(|e| *e <= b.len())
                .ok_or(BerError("truncated"))?;
            // Children read from a slice that ends with the parent, so none can overrun it.
            let inner = &b[..end];
            while *pos < end {
                children.push(parse(inner, pos, depth + 1)?);
            }
        }
        None => loop {
            match b.get(*pos..*pos + 2) {
                Some([0, 0]) => {
                    *pos += 2;
                    break;
                }
                Some(_) => children.push(parse(b, pos, depth + 1)?),
                None => return Err(BerError("truncated (missing end-of-contents)")),
            }
        },
    }
    if is_constructed_string(first) {
        return join_segments(&children, first & !0x20);
    }
    Ok(Node {
        id,
        body: Body::Cons(children),
    })
}

/// Whether identifier octet `id` is a constructed universal string (BIT, OCTET, UTF8,
/// Printable, T61, IA5, Visible, BMP): BER, as DER has them primitive.
pub(crate) fn is_constructed_string(id: u8) -> bool {
    id & 0xe0 == 0x20 && matches!(id & 0x1f, 3 | 4 | 12 | 19 | 20 | 22 | 26 | 30)
}

/// A primitive node with tag `tag` holding the concatenated contents of `segments`
/// (each already primitive: nested constructed strings were joined when parsed).
fn join_segments(segments: &[Node], tag: u8) -> Result<Node, BerError> {
    let mut content = Vec::new();
    for seg in segments {
        match &seg.body {
            Body::Prim(c) => content.extend_from_slice(c),
            Body::Cons(_) => return Err(BerError("malformed constructed string")),
        }
    }
    // A BIT STRING segment starts with its unused-bits octet; joining those is not
    // needed for CMS and would be wrong, so refuse rather than guess.
    if tag == 0x03 && segments.len() > 1 {
        return Err(BerError("constructed BIT STRING"));
    }
    Ok(Node {
        id: vec![tag],
        body: Body::Prim(content),
    })
}

/// ContentInfo { contentType, [0] EnvelopedData { version, [0] originatorInfo OPTIONAL,
/// recipientInfos SET, encryptedContentInfo SEQUENCE { contentType, algorithm,
/// [0] IMPLICIT OCTET STRING OPTIONAL }, … } }: make that last [0] primitive.
fn join_encrypted_content(root: &mut Node) -> Result<(), BerError> {
    let Body::Cons(ci) = &mut root.body else {
        return Ok(());
    };
    let is_enveloped = matches!(ci.first(), Some(Node { id, body: Body::Prim(oid) })
        if id.as_slice() == [0x06] && oid.as_slice() == ENVELOPED_DATA);
    if !is_enveloped {
        return Ok(());
    }
    let Some(Node {
        body: Body::Cons(explicit),
        ..
    }) = ci.get_mut(1)
    else {
        return Ok(());
    };
    let Some(Node {
        body: Body::Cons(fields),
        ..
    }) = explicit.first_mut()
    else {
        return Ok(());
    };
    // The only SEQUENCE among EnvelopedData's fields is encryptedContentInfo.
    let Some(Node {
        body: Body::Cons(eci),
        ..
    }) = fields.iter_mut().find(|n| n.id.as_slice() == [0x30])
    else {
        return Ok(());
    };
    if let Some(content) = eci.get_mut(2)
        && content.id.as_slice() == [0xa0]
        && let Body::Cons(segments) = &content.body
    {
        *content = join_segments(segments, 0x80)?;
    }
    Ok(())
}

fn encode(node: &Node, out: &mut Vec<u8>) {
    out.extend_from_slice(&node.id);
    match &node.body {
        Body::Prim(c) => {
            crate::tlv::push_len(out, c.len());
            out.extend_from_slice(c);
        }
        Body::Cons(children) => {
            let mut inner = Vec::new();
            for c in children {
                encode(c, &mut inner);
            }
            crate::tlv::push_len(out, inner.len());
            out.extend_from_slice(&inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(b: &[u8]) -> Result<Vec<u8>, BerError> {
        let (out, used) = cms_to_der(b)?;
        assert_eq!(used, b.len());
        Ok(out)
    }

    #[test]
    fn indefinite_lengths_and_constructed_strings() {
        // SEQUENCE (indefinite) { OCTET STRING (constructed, indefinite) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        assert_eq!(
            der(&ber).unwrap(),
            [0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c']
        );
        // Non-minimal definite length is re-encoded.
        assert_eq!(
            der(&[0x30, 0x81, 0x03, 0x02, 0x01, 0x05]).unwrap(),
            [0x30, 0x03, 0x02, 0x01, 0x05]
        );
        // Already DER stays byte-identical.
        let d = [0x30, 0x03, 0x02, 0x01, 0x05];
        assert_eq!(der(&d).unwrap(), d);
    }

    #[test]
    fn enveloped_encrypted_content_is_joined() {
        let mut ber = vec![0x30, 0x80, 0x06, 0x09];
        ber.extend_from_slice(ENVELOPED_DATA);
        ber.extend_from_slice(&[0xa0, 0x80, 0x30, 0x80]); // [0] { EnvelopedData
        ber.extend_from_slice(&[0x02, 0x01, 0x00, 0x31, 0x00]); // version, recipientInfos
        ber.extend_from_slice(&[0x30, 0x80, 0x06, 0x01, 0x2a, 0x30, 0x00]); // eci: type, alg
        ber.extend_from_slice(&[0xa0, 0x80, 0x04, 0x01, 0xaa, 0x04, 0x01, 0xbb, 0, 0]);
        ber.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        let out = der(&ber).unwrap();
        assert!(
            out.ends_with(&[
                0x30, 0x09, 0x06, 0x01, 0x2a, 0x30, 0x00, 0x80, 0x02, 0xaa, 0xbb
            ]),
            "{out:02x?}"
        );
        // The same [0] outside an EnvelopedData is left constructed.
        let other = [0x30, 0x80, 0xa0, 0x80, 0x04, 0x01, 0xaa, 0, 0, 0, 0];
        assert_eq!(
            der(&other).unwrap(),
            [0x30, 0x05, 0xa0, 0x03, 0x04, 0x01, 0xaa]
        );
    }

    #[test]
    fn reports_bytes_used() {
        let (_, used) = cms_to_der(&[0x30, 0x00, b'\n', b'\n']).unwrap();
        assert_eq!(used, 2);
    }

    #[test]
    fn hostile_input_is_an_error() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x80],
            &[0x04, 0x80, 0, 0],
            &[0x30, 0x05, 0x02, 0x01],
            &[0x30, 0x03, 0x02, 0x05, 0x00],
            &[0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0xff],
            &[0x1f, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x01, 0x00],
            &[0x24, 0x80, 0x30, 0x00, 0, 0],
        ] {
            assert!(cms_to_der(bad).is_err(), "{bad:02x?}");
        }
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 200).flatten().collect();
        assert_eq!(cms_to_der(&deep).unwrap_err(), BerError("nesting too deep"));
    }
}

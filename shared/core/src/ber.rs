//! BER → DER. Devices send CMS in BER (indefinite lengths, constructed strings); the
//! RustCrypto `cms`/`der` crates read DER only. Re-encodes lengths in definite form and
//! flattens constructed universal strings; everything else is kept as it is (so SET OF
//! order, which signatures cover, is untouched). Hostile input gets an error, never a
//! panic or unbounded recursion.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BerError(pub &'static str);

impl std::fmt::Display for BerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid BER: {}", self.0)
    }
}

impl std::error::Error for BerError {}

const MAX_DEPTH: usize = 64;

pub fn to_der(input: &[u8]) -> Result<Vec<u8>, BerError> {
    let mut pos = 0;
    let mut out = Vec::with_capacity(input.len());
    read(input, &mut pos, &mut out, 0)?;
    if pos != input.len() {
        return Err(BerError("trailing data"));
    }
    Ok(out)
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Reads one element at `pos`, appends its DER form to `out`.
fn read(b: &[u8], pos: &mut usize, out: &mut Vec<u8>, depth: usize) -> Result<(), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError("nesting too deep"));
    }
    let start = *pos;
    let first = *b.get(*pos).ok_or(BerError("truncated tag"))?;
    *pos += 1;
    if first & 0x1f == 0x1f {
        loop {
            let t = *b.get(*pos).ok_or(BerError("truncated tag"))?;
            *pos += 1;
            if t & 0x80 == 0 {
                break;
            }
        }
    }
    let tag = &b[start..*pos];
    let constructed = first & 0x20 != 0;
    let l0 = *b.get(*pos).ok_or(BerError("truncated length"))?;
    *pos += 1;
    let definite_len = match l0 {
        0x80 => None,
        n if n < 0x80 => Some(n as usize),
        n => {
            let count = (n & 0x7f) as usize;
            if count > 8 {
                return Err(BerError("length too long"));
            }
            let bytes = b
                .get(*pos..*pos + count)
                .ok_or(BerError("truncated length"))?;
            *pos += count;
            Some(bytes.iter().fold(0usize, |acc, x| (acc << 8) | *x as usize))
        }
    };
    // Universal-class constructed strings (OCTET/BIT/UTF8/... STRING) become primitive.
    let flatten = constructed
        && first & 0xc0 == 0
        && matches!(first & 0x1f, 3 | 4 | 12 | 19 | 20 | 22 | 26 | 30);
    if !constructed {
        let len = definite_len.ok_or(BerError("indefinite length on a primitive"))?;
        let content = b
            .get(*pos..*pos + len)
            .ok_or(BerError("truncated content"))?;
        *pos += len;
        out.extend_from_slice(tag);
        push_len(out, len);
        out.extend_from_slice(content);
        return Ok(());
    }
    let mut children = Vec::new();
    match definite_len {
        Some(len) => {
            let end = pos
                .checked_add(len)
                .filter(|e| *e <= b.len())
                .ok_or(BerError("truncated content"))?;
            while *pos < end {
                read(b, pos, &mut children, depth + 1)?;
            }
            if *pos != end {
                return Err(BerError("element overruns its parent"));
            }
        }
        None => loop {
            if b.get(*pos..*pos + 2) == Some(&[0, 0]) {
                *pos += 2;
                break;
            }
            if *pos >= b.len() {
                return Err(BerError("missing end-of-contents"));
            }
            read(b, pos, &mut children, depth + 1)?;
        },
    }
    if flatten {
        // Concatenate the primitive segments' contents (already DER: tag, length, value).
        let mut content = Vec::new();
        let mut i = 0;
        while i < children.len() {
            let mut p = i;
            let mut seg = Vec::new();
            read_primitive_content(&children, &mut p, &mut seg)?;
            content.extend_from_slice(&seg);
            i = p;
        }
        out.push(first & !0x20);
        push_len(out, content.len());
        out.extend_from_slice(&content);
    } else {
        out.extend_from_slice(tag);
        push_len(out, children.len());
        out.extend_from_slice(&children);
    }
    Ok(())
}

/// Content bytes of one DER element at `pos` (nested constructed segments flattened).
fn read_primitive_content(b: &[u8], pos: &mut usize, out: &mut Vec<u8>) -> Result<(), BerError> {
    let first = b[*pos];
    *pos += 1;
    let l0 = *b.get(*pos).ok_or(BerError("truncated"))?;
    *pos += 1;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let count = (l0 & 0x7f) as usize;
        let bytes = b.get(*pos..*pos + count).ok_or(BerError("truncated"))?;
        *pos += count;
        bytes.iter().fold(0usize, |acc, x| (acc << 8) | *x as usize)
    };
    let content = b.get(*pos..*pos + len).ok_or(BerError("truncated"))?;
    *pos += len;
    if first & 0x20 != 0 {
        let mut p = 0;
        while p < content.len() {
            read_primitive_content(content, &mut p, out)?;
        }
    } else {
        out.extend_from_slice(content);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_lengths_and_constructed_strings() {
        // SEQUENCE (indefinite) { OCTET STRING (constructed, indefinite) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        assert_eq!(
            to_der(&ber).unwrap(),
            [0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c']
        );
        // Already DER stays byte-identical.
        let der = [0x30, 0x03, 0x02, 0x01, 0x05];
        assert_eq!(to_der(&der).unwrap(), der);
    }

    #[test]
    fn hostile_input_is_an_error() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x80],
            &[0x04, 0x80, 0, 0],
            &[0x30, 0x05, 0x02, 0x01],
            &[0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        ] {
            assert!(to_der(bad).is_err(), "{bad:?}");
        }
        let deep: Vec<u8> = std::iter::repeat([0x30u8, 0x80])
            .take(200)
            .flatten()
            .collect();
        assert!(to_der(&deep).is_err());
    }
}

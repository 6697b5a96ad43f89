//! BER → DER for CMS. OpenSSL's streaming output, devices' `Mdm-Signature` and other
//! producers write indefinite lengths and chunked (constructed) strings; the RustCrypto
//! `cms`/`der` crates and our in-place reader read DER only. Lengths are re-encoded in
//! definite minimal form, constructed universal strings become primitive, and — the one
//! place that needs the schema — EnvelopedData's `encryptedContent [0] IMPLICIT OCTET
//! STRING` is joined too. Hostile input gets an error, never a panic or unbounded
//! recursion.
//!
//! Every device request pays this, so there is no tree: a first walk measures each
//! constructed element's DER length, a second walks the input again in the same order and
//! writes, into a buffer of the exact size.

use std::fmt;

use crate::tlv::push_len;

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

/// Converts the first element of `input` to DER. Returns it and the number of input
/// bytes it took, so the caller decides what trailing bytes to tolerate.
pub fn cms_to_der(input: &[u8]) -> Result<(Vec<u8>, usize), BerError> {
    let mut measure = Pass {
        lengths: Vec::new(),
        next: 0,
        out: None,
    };
    let mut used = 0;
    let size = element(input, &mut used, 0, Place::Root, &mut measure)?;
    let mut write = Pass {
        lengths: measure.lengths,
        next: 0,
        out: Some(Vec::with_capacity(size)),
    };
    element(input, &mut 0, 0, Place::Root, &mut write)?;
    let out = write.out.unwrap_or_default();
    debug_assert_eq!(out.len(), size);
    Ok((out, used))
}

/// One walk over the input: measuring (no output; records the DER content length of
/// each constructed element in the order they open) or writing (reads those back).
struct Pass {
    lengths: Vec<usize>,
    next: usize,
    out: Option<Vec<u8>>,
}

impl Pass {
    /// A constructed element opens: write its identifier and DER length, if writing.
    fn open(&mut self, id: &[u8]) -> usize {
        let slot = match self.out {
            None => {
                self.lengths.push(0);
                self.lengths.len() - 1
            }
            Some(_) => {
                self.next += 1;
                self.next - 1
            }
        };
        if let Some(out) = &mut self.out {
            out.extend_from_slice(id);
            push_len(out, self.lengths[slot]);
        }
        slot
    }

    fn close(&mut self, slot: usize, content_len: usize) {
        if self.out.is_none() {
            self.lengths[slot] = content_len;
        }
        debug_assert_eq!(self.lengths[slot], content_len);
    }

    fn bytes(&mut self, b: &[u8]) {
        if let Some(out) = &mut self.out {
            out.extend_from_slice(b);
        }
    }

    fn primitive(&mut self, id: &[u8], content: &[u8]) {
        if let Some(out) = &mut self.out {
            out.extend_from_slice(id);
            push_len(out, content.len());
            out.extend_from_slice(content);
        }
    }
}

/// Where an element sits, as far as the EnvelopedData join needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Root,
    /// ContentInfo's `[0]` when its contentType is id-envelopedData.
    EnvelopedExplicit,
    EnvelopedData,
    EncryptedContentInfo,
    /// encryptedContent, constructed: joined into a primitive `[0]`.
    EncryptedContent,
    Other,
}

struct Header<'a> {
    /// Identifier octets as read (tag class, constructed bit, number).
    id: &'a [u8],
    /// `None` for the indefinite form.
    len: Option<usize>,
}

impl Header<'_> {
    fn constructed(&self) -> bool {
        self.id[0] & 0x20 != 0
    }
}

fn byte(b: &[u8], pos: &mut usize) -> Result<u8, BerError> {
    let v = *b.get(*pos).ok_or(BerError("truncated"))?;
    *pos += 1;
    Ok(v)
}

fn header<'a>(b: &'a [u8], pos: &mut usize) -> Result<Header<'a>, BerError> {
    let start = *pos;
    if byte(b, pos)? & 0x1f == 0x1f {
        loop {
            if *pos - start > 5 {
                return Err(BerError("tag number too long"));
            }
            if byte(b, pos)? & 0x80 == 0 {
                break;
            }
        }
    }
    let id = &b[start..*pos];
    let len = match byte(b, pos)? {
        0x80 => None,
        n if n < 0x80 => Some(n as usize),
        0xff => return Err(BerError("reserved length octet")),
        n => {
            let count = (n & 0x7f) as usize;
            // Four octets already allow 4 GiB; anything longer is not a CMS message.
            if count > 4 {
                return Err(BerError("length too long"));
            }
            let mut len = 0usize;
            for _ in 0..count {
                len = (len << 8) | byte(b, pos)? as usize;
            }
            Some(len)
        }
    };
    Ok(Header { id, len })
}

/// The end of a definite-length content starting at `pos`.
fn end_of(b: &[u8], pos: usize, len: usize) -> Result<usize, BerError> {
    pos.checked_add(len)
        .filter(|e| *e <= b.len())
        .ok_or(BerError("truncated"))
}

/// The size of a DER element with `id` and `content_len` octets of content.
fn der_size(id_len: usize, content_len: usize) -> usize {
    let len_octets = if content_len < 0x80 {
        1
    } else {
        1 + (usize::BITS - content_len.leading_zeros()).div_ceil(8) as usize
    };
    id_len + len_octets + content_len
}

/// Calls `each` for every child of a constructed element whose content starts at `pos`,
/// definite or indefinite; leaves `pos` after the element.
fn children(
    b: &[u8],
    pos: &mut usize,
    len: Option<usize>,
    mut each: impl FnMut(&[u8], &mut usize) -> Result<(), BerError>,
) -> Result<(), BerError> {
    match len {
        Some(len) => {
            let end = end_of(b, *pos, len)?;
            // Children read from a slice that ends with the parent, so none can overrun it.
            let inner = &b[..end];
            while *pos < end {
                each(inner, pos)?;
            }
        }
        None => loop {
            match b.get(*pos..*pos + 2) {
                Some([0, 0]) => {
                    *pos += 2;
                    break;
                }
                Some(_) => each(b, pos)?,
                None => return Err(BerError("truncated (missing end-of-contents)")),
            }
        },
    }
    Ok(())
}

/// Converts the element at `pos`; returns its DER size.
fn element(
    b: &[u8],
    pos: &mut usize,
    depth: usize,
    place: Place,
    pass: &mut Pass,
) -> Result<usize, BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError("nesting too deep"));
    }
    let h = header(b, pos)?;
    if !h.constructed() {
        let len = h
            .len
            .ok_or(BerError("indefinite length on a primitive element"))?;
        let end = end_of(b, *pos, len)?;
        pass.primitive(h.id, &b[*pos..end]);
        *pos = end;
        return Ok(der_size(h.id.len(), len));
    }
    let joined_tag = if is_constructed_string(h.id[0]) {
        Some(h.id[0] & !0x20)
    } else if place == Place::EncryptedContent {
        Some(0x80)
    } else {
        None
    };
    if let Some(tag) = joined_tag {
        let slot = pass.open(&[tag]);
        let content_len = segments(b, pos, h.len, tag, depth, pass)?;
        pass.close(slot, content_len);
        return Ok(der_size(1, content_len));
    }
    let slot = pass.open(h.id);
    let (mut content_len, mut index, mut enveloped, mut eci_seen) = (0, 0, false, false);
    children(b, pos, h.len, |b, pos| {
        let child = child_place(b, *pos, place, index, enveloped, &mut eci_seen);
        if place == Place::Root && index == 0 {
            enveloped = is_enveloped_data_oid(b, *pos);
        }
        content_len += element(b, pos, depth + 1, child, pass)?;
        index += 1;
        Ok(())
    })?;
    pass.close(slot, content_len);
    Ok(der_size(h.id.len(), content_len))
}

/// The place of the child at `pos`, the `index`th of an element at `parent`.
fn child_place(
    b: &[u8],
    pos: usize,
    parent: Place,
    index: usize,
    enveloped: bool,
    eci_seen: &mut bool,
) -> Place {
    let first = b.get(pos).copied();
    match parent {
        Place::Root if enveloped && index == 1 => Place::EnvelopedExplicit,
        Place::EnvelopedExplicit if index == 0 => Place::EnvelopedData,
        // The only SEQUENCE among EnvelopedData's fields is encryptedContentInfo.
        Place::EnvelopedData if first == Some(0x30) && !*eci_seen => {
            *eci_seen = true;
            Place::EncryptedContentInfo
        }
        Place::EncryptedContentInfo if index == 2 && first == Some(0xa0) => Place::EncryptedContent,
        _ => Place::Other,
    }
}

/// Whether the element at `pos` is the OID id-envelopedData.
fn is_enveloped_data_oid(b: &[u8], mut pos: usize) -> bool {
    match header(b, &mut pos) {
        Ok(Header {
            id: [0x06],
            len: Some(len),
        }) => b.get(pos..pos + len) == Some(ENVELOPED_DATA),
        _ => false,
    }
}

/// The segments of a constructed string at `pos` (content start): writes their contents
/// one after the other and returns the total. A segment is primitive or, nested, a
/// constructed string itself.
fn segments(
    b: &[u8],
    pos: &mut usize,
    len: Option<usize>,
    tag: u8,
    depth: usize,
    pass: &mut Pass,
) -> Result<usize, BerError> {
    let (mut total, mut count) = (0, 0);
    children(b, pos, len, |b, pos| {
        if depth + 1 > MAX_DEPTH {
            return Err(BerError("nesting too deep"));
        }
        let h = header(b, pos)?;
        count += 1;
        if !h.constructed() {
            let len = h
                .len
                .ok_or(BerError("indefinite length on a primitive element"))?;
            let end = end_of(b, *pos, len)?;
            pass.bytes(&b[*pos..end]);
            *pos = end;
            total += len;
        } else if is_constructed_string(h.id[0]) {
            total += segments(b, pos, h.len, h.id[0] & !0x20, depth + 1, pass)?;
        } else {
            return Err(BerError("malformed constructed string"));
        }
        Ok(())
    })?;
    // A BIT STRING segment starts with its unused-bits octet; joining those is not
    // needed for CMS and would be wrong, so refuse rather than guess.
    if tag == 0x03 && count > 1 {
        return Err(BerError("constructed BIT STRING"));
    }
    Ok(total)
}

/// Whether identifier octet `id` is a constructed universal string (BIT, OCTET, UTF8,
/// Printable, T61, IA5, Visible, BMP): BER, as DER has them primitive.
pub(crate) fn is_constructed_string(id: u8) -> bool {
    id & 0xe0 == 0x20 && matches!(id & 0x1f, 3 | 4 | 12 | 19 | 20 | 22 | 26 | 30)
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
    fn nested_strings_long_lengths_and_multi_octet_tags() {
        // [APPLICATION 100] (two identifier octets, indefinite) {
        //   OCTET STRING (definite, constructed) { OCTET STRING (indefinite) { 'x' }, 'yz' },
        //   OCTET STRING of 200 octets, its length in two octets where one would do }
        let mut ber = vec![0x7f, 0x64, 0x80];
        ber.extend_from_slice(&[0x24, 0x0b, 0x24, 0x80, 0x04, 0x01, b'x', 0, 0]);
        ber.extend_from_slice(&[0x04, 0x02, b'y', b'z']);
        ber.extend_from_slice(&[0x04, 0x82, 0x00, 0xc8]);
        ber.extend(std::iter::repeat_n(7u8, 200));
        ber.extend_from_slice(&[0, 0]);
        let mut want = vec![0x7f, 0x64, 0x81, 0xd0, 0x04, 0x03, b'x', b'y', b'z'];
        want.extend_from_slice(&[0x04, 0x81, 0xc8]);
        want.extend(std::iter::repeat_n(7u8, 200));
        assert_eq!(der(&ber).unwrap(), want);
        // A SEQUENCE among a string's segments is not a string.
        assert_eq!(
            der(&[0x24, 0x80, 0x30, 0x00, 0, 0]).unwrap_err(),
            BerError("malformed constructed string")
        );
        // One segment of BIT STRING is kept; two would need their unused bits merged.
        assert_eq!(
            der(&[0x23, 0x04, 0x03, 0x02, 0x00, 0xaa]).unwrap(),
            [0x03, 0x02, 0x00, 0xaa]
        );
        assert!(der(&[0x23, 0x08, 0x03, 0x02, 0x00, 0xaa, 0x03, 0x02, 0x00, 0xbb]).is_err());
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

//! Lenient PEM and base64 handling shared by keys, certificates and token files: admins
//! paste these by hand, so CRLF, stray blank lines and missing padding are tolerated.

use std::fmt;

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub(crate) struct Block<'a> {
    pub label: &'a str,
    /// Base64 text between the BEGIN and END lines (or to the end when END is missing).
    pub body: &'a str,
    /// RFC 1421 headers such as `Proc-Type:` (legacy encrypted keys).
    pub has_headers: bool,
    pub has_end: bool,
}

/// The first `-----BEGIN <label>-----` block in `text`.
pub(crate) fn find_block(text: &str) -> Option<Block<'_>> {
    let begin = text.find("-----BEGIN ")?;
    let after = &text[begin + "-----BEGIN ".len()..];
    let label_end = after.find("-----")?;
    let label = after[..label_end].trim();
    let rest = &after[label_end + "-----".len()..];
    let (body, has_end) = match rest.find("-----END ") {
        Some(end) => (&rest[..end], true),
        None => (rest, false),
    };
    let has_headers = body.lines().any(|l| l.contains(':'));
    Some(Block {
        label,
        body,
        has_headers,
        has_end,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base64Error {
    Empty,
    /// A character outside the base64 alphabet.
    NotBase64,
    /// Valid characters but an impossible length: the text was cut off.
    Truncated,
    /// Padding in the middle or similar damage.
    Damaged,
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Base64Error::Empty => "no base64 data",
            Base64Error::NotBase64 => "not base64 text",
            Base64Error::Truncated => "base64 text is cut off",
            Base64Error::Damaged => "damaged base64 text",
        })
    }
}

/// Decodes base64 ignoring all ASCII whitespace (line breaks of any style).
pub(crate) fn decode_base64(text: impl AsRef<[u8]>) -> Result<Vec<u8>, Base64Error> {
    let compact: Vec<u8> = text
        .as_ref()
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(Base64Error::Empty);
    }
    if !compact
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err(Base64Error::NotBase64);
    }
    LENIENT.decode(&compact).map_err(|e| match e {
        base64::DecodeError::InvalidLength(_) => Base64Error::Truncated,
        _ => Base64Error::Damaged,
    })
}

/// PEM with 64-column base64 and LF line endings.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_leniency_and_errors() {
        assert_eq!(decode_base64("TWFu\r\nTWE=\n").unwrap(), b"ManMa");
        assert_eq!(decode_base64("TWFuTWE").unwrap(), b"ManMa");
        assert_eq!(decode_base64("  \n"), Err(Base64Error::Empty));
        assert_eq!(decode_base64("TWF*"), Err(Base64Error::NotBase64));
        assert_eq!(decode_base64("TWFuT"), Err(Base64Error::Truncated));
        assert_eq!(decode_base64("TW=uTWFu"), Err(Base64Error::Damaged));
    }

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = encode("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let block = find_block(&pem).unwrap();
        assert_eq!(block.label, "CERTIFICATE");
        assert!(block.has_end && !block.has_headers);
        assert_eq!(decode_base64(block.body).unwrap(), der);
    }
}

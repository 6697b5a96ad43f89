//! The ADE server token file (`<Name>_Token_<timestamp>_smime.p7m`): an S/MIME message
//! whose CMS EnvelopedData is encrypted to our certificate and holds the OAuth secrets
//! of the Device Assignment API. Apple: "Device Assignment" (server token).

use std::borrow::Cow;
use std::fmt;

use cms::content_info::ContentInfo;
use cms::enveloped_data::{EnvelopedData, KeyTransRecipientInfo, RecipientInfo};
use der::Decode;
use zeroize::Zeroizing;

use crate::ber;
use crate::cert::Certificate;
use crate::envelope::{CipherError, ContentAlg};
use crate::key::KeyPair;
use crate::oid::{ID_ENVELOPED_DATA, RSA_ENCRYPTION};
use crate::pem::{self, Base64Error};

/// A token file is a few kilobytes; refuse to chew on anything absurd.
const MAX_FILE_LEN: usize = 1 << 20;

/// Why a server token file could not be read. Messages are meant for the admin who
/// uploaded it and never contain key material or token secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFileError {
    /// Not an S/MIME message, PEM, base64 or DER at all (empty, binary junk, wrong file).
    NotSmime(String),
    /// Decodes, but holds no CMS EnvelopedData (e.g. a certificate or signed data).
    NotCms(String),
    /// Not encrypted to our certificate, or our key does not open it.
    WrongKey,
    /// Encrypted with an algorithm we do not implement; holds the OID.
    UnsupportedAlgorithm(String),
    /// Looks like a token but is damaged or truncated.
    Corrupt(String),
    /// Decrypted, but there is no `-----BEGIN MESSAGE-----` … `-----END MESSAGE-----` block.
    NoTokenJson,
    /// The message block is not the JSON we expect.
    BadTokenJson(String),
}

impl fmt::Display for TokenFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenFileError::NotSmime(d) => write!(
                f,
                "not a server token file ({d}): expected the .p7m downloaded from Apple Business Manager"
            ),
            TokenFileError::NotCms(d) => write!(f, "the file holds no encrypted CMS message: {d}"),
            TokenFileError::WrongKey => f.write_str(
                "the token is not encrypted to this server's key: upload this server's current public key \
                 (.pem) to the MDM server entry in Apple Business Manager and download the token again",
            ),
            TokenFileError::UnsupportedAlgorithm(oid) => {
                write!(f, "the token uses an unsupported algorithm (OID {oid})")
            }
            TokenFileError::Corrupt(d) => write!(f, "the token file is damaged: {d}"),
            TokenFileError::NoTokenJson => f.write_str(
                "the decrypted token has no -----BEGIN MESSAGE----- ... -----END MESSAGE----- block",
            ),
            TokenFileError::BadTokenJson(d) => write!(f, "the decrypted token is not valid: {d}"),
        }
    }
}

impl std::error::Error for TokenFileError {}

/// Decrypts a server token file with `key`, trying every RSA key-transport recipient.
/// Accepts the S/MIME `.p7m` Apple sends, a `-----BEGIN PKCS7-----` PEM, a bare base64
/// body, or DER/BER bytes, with LF or CRLF and surrounding whitespace. Returns the
/// plaintext (feed it to [`parse_token_json`]).
pub fn decrypt_server_token(input: &[u8], key: &KeyPair) -> Result<Vec<u8>, TokenFileError> {
    decrypt(input, key, None)
}

/// Like [`decrypt_server_token`], but only recipients naming `cert` (issuer and serial
/// number, or subject key identifier) are tried: a token made for another certificate is
/// [`TokenFileError::WrongKey`] without any RSA attempt.
pub fn decrypt_server_token_with_cert(
    input: &[u8],
    key: &KeyPair,
    cert: &Certificate,
) -> Result<Vec<u8>, TokenFileError> {
    decrypt(input, key, Some(cert))
}

/// Decrypts and parses in one step; the plaintext is wiped afterwards.
pub fn read_server_token(
    input: &[u8],
    key: &KeyPair,
    cert: Option<&Certificate>,
) -> Result<ServerTokenSecrets, TokenFileError> {
    let plaintext = Zeroizing::new(decrypt(input, key, cert)?);
    parse_token_json(&plaintext)
}

fn decrypt(
    input: &[u8],
    key: &KeyPair,
    cert: Option<&Certificate>,
) -> Result<Vec<u8>, TokenFileError> {
    let ber = unwrap_transport(input)?;
    let env = parse_enveloped(&ber)?;
    let eci = &env.encrypted_content;
    // Single DES is for SCEP's legacy clients only, never for a token.
    let cipher = ContentAlg::from_algorithm(&eci.content_enc_alg, false).map_err(token_error)?;
    let ciphertext = eci
        .encrypted_content
        .as_ref()
        .ok_or_else(|| TokenFileError::Corrupt("no encrypted content in the message".into()))?
        .as_bytes();
    cipher.check_length(ciphertext).map_err(token_error)?;

    let ktris: Vec<&KeyTransRecipientInfo> = env
        .recip_infos
        .0
        .iter()
        .filter_map(|ri| match ri {
            RecipientInfo::Ktri(k) => Some(k),
            _ => None,
        })
        .collect();
    if ktris.is_empty() {
        // Key agreement, KEK or password recipients: Apple uses none of them.
        return Err(TokenFileError::UnsupportedAlgorithm(
            "recipient type other than key transport".into(),
        ));
    }

    // Of all recipients we try, report the most telling failure.
    let mut failure = TokenFileError::WrongKey;
    for ktri in ktris
        .into_iter()
        .filter(|k| cert.is_none_or(|c| c.is_recipient(&k.rid)))
    {
        if ktri.key_enc_alg.oid != RSA_ENCRYPTION {
            let oid = ktri.key_enc_alg.oid.to_string();
            failure = more_telling(failure, TokenFileError::UnsupportedAlgorithm(oid));
            continue;
        }
        let Some(cek) = key.decrypt_pkcs1v15(ktri.enc_key.as_bytes()) else {
            continue;
        };
        // A wrong key passes PKCS#1 v1.5 unpadding with the exact key length only with
        // negligible probability, so failures from here on mean a damaged file.
        if cek.len() != cipher.cipher.key_len() {
            let detail = format!(
                "content key is {} bytes, the cipher needs {}",
                cek.len(),
                cipher.cipher.key_len()
            );
            failure = more_telling(failure, TokenFileError::Corrupt(detail));
            continue;
        }
        match cipher.decrypt(&cek, ciphertext) {
            Ok(plaintext) => return Ok(plaintext),
            Err(e) => failure = more_telling(failure, token_error(e)),
        }
    }
    Err(failure)
}

fn token_error(e: CipherError) -> TokenFileError {
    match e {
        CipherError::Unsupported(oid) => TokenFileError::UnsupportedAlgorithm(oid),
        CipherError::Corrupt(d) => TokenFileError::Corrupt(d),
    }
}

/// A damaged file or an algorithm we lack says more than "this key does not fit".
fn more_telling(current: TokenFileError, new: TokenFileError) -> TokenFileError {
    let rank = |e: &TokenFileError| match e {
        TokenFileError::Corrupt(_) => 2,
        TokenFileError::UnsupportedAlgorithm(_) => 1,
        _ => 0,
    };
    if rank(&new) > rank(&current) {
        new
    } else {
        current
    }
}

/// The DER/BER bytes inside whatever wrapper the admin uploaded.
fn unwrap_transport(input: &[u8]) -> Result<Cow<'_, [u8]>, TokenFileError> {
    if input.len() > MAX_FILE_LEN {
        return Err(TokenFileError::NotSmime(format!(
            "the file is {} bytes, a server token is a few kilobytes",
            input.len()
        )));
    }
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or_else(|| TokenFileError::NotSmime("the file is empty".into()))?;
    let data = &input[start..];
    // DER/BER starts with SEQUENCE (0x30, which is also the character '0'); real CMS
    // always has bytes outside printable ASCII, base64 text never does.
    let is_text = data
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if data[0] == 0x30 && !is_text {
        // Trailing whitespace is left alone here: it may be part of the binary.
        return Ok(Cow::Borrowed(data));
    }
    let body: &[u8] = if starts_with_header(data) {
        match mime_body(data) {
            Some(body) if !body.iter().all(u8::is_ascii_whitespace) => body,
            _ => {
                return Err(TokenFileError::NotSmime(
                    "MIME headers without a body".into(),
                ));
            }
        }
    } else if !is_text {
        return Err(TokenFileError::NotSmime(
            "binary data that is neither DER nor text".into(),
        ));
    } else if let Some(block) = std::str::from_utf8(data).ok().and_then(pem::find_block) {
        if !block.has_end {
            return Err(TokenFileError::Corrupt(format!(
                "the {} block has no END line (file cut off?)",
                block.label
            )));
        }
        block.body.as_bytes()
    } else {
        data
    };
    // Base64 of DER (a SEQUENCE, 0x30) always starts with 'M': only then is broken base64
    // a damaged token rather than some other text.
    let looks_like_der = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'M');
    pem::decode_base64(body)
        .map(Cow::Owned)
        .map_err(|e| match e {
            Base64Error::Truncated if looks_like_der => {
                TokenFileError::Corrupt(e.to_string() + " (file cut off?)")
            }
            Base64Error::Damaged if looks_like_der => TokenFileError::Corrupt(e.to_string()),
            _ => TokenFileError::NotSmime(e.to_string()),
        })
}

/// `Name:` at the start of the first line (RFC 5322 field name). Base64 and PEM lines
/// never contain a colon, so this tells a MIME message apart without reading any header.
fn starts_with_header(data: &[u8]) -> bool {
    let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
    match line.iter().position(|b| *b == b':') {
        Some(0) | None => false,
        Some(i) => line[..i].iter().all(|b| b.is_ascii_graphic()),
    }
}

/// Everything after the first empty line (LF or CRLF).
fn mime_body(data: &[u8]) -> Option<&[u8]> {
    let mut pos = 0;
    for line in data.split(|b| *b == b'\n') {
        pos += line.len() + 1;
        if line.is_empty() || line == b"\r" {
            return data.get(pos.min(data.len())..);
        }
    }
    None
}

fn parse_enveloped(ber: &[u8]) -> Result<EnvelopedData, TokenFileError> {
    if ber.first() != Some(&0x30) {
        return Err(TokenFileError::NotCms("decoded data is not DER".into()));
    }
    let (der, used) = ber::cms_to_der(ber)
        .map_err(|e| TokenFileError::Corrupt(format!("{e} (file cut off or damaged?)")))?;
    // Tolerate whitespace or NUL padding appended to a binary file.
    if !ber[used..]
        .iter()
        .all(|b| b.is_ascii_whitespace() || *b == 0)
    {
        return Err(TokenFileError::Corrupt(
            "unexpected data after the message".into(),
        ));
    }
    let ci = ContentInfo::from_der(&der)
        .map_err(|e| TokenFileError::NotCms(format!("not a CMS ContentInfo ({e})")))?;
    if ci.content_type != ID_ENVELOPED_DATA {
        return Err(TokenFileError::NotCms(format!(
            "content type is {}, not enveloped data (1.2.840.113549.1.7.3)",
            ci.content_type
        )));
    }
    ci.content
        .decode_as::<EnvelopedData>()
        .map_err(|e| TokenFileError::Corrupt(format!("EnvelopedData: {e}")))
}

/// The OAuth 1.0a credentials in a server token. `Debug` shows only the consumer key
/// (an identifier sent in clear with every request, needed to tell ABM server entries
/// apart in logs) and the expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerTokenSecrets {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub access_secret: String,
    /// As Apple writes it, RFC 3339 UTC, e.g. `2027-11-23T09:00:00Z`.
    pub access_token_expiry: String,
}

impl ServerTokenSecrets {
    /// `access_token_expiry` in seconds since 1970 (validated by [`parse_token_json`]).
    pub fn expiry_unix(&self) -> Option<i64> {
        parse_rfc3339(&self.access_token_expiry)
    }

    /// Whether the token is dead at `now_unix`; an unreadable expiry counts as expired.
    pub fn is_expired_at(&self, now_unix: i64) -> bool {
        self.expiry_unix().is_none_or(|e| e <= now_unix)
    }
}

impl fmt::Debug for ServerTokenSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTokenSecrets")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"<redacted>")
            .field("access_token", &"<redacted>")
            .field("access_secret", &"<redacted>")
            .field("access_token_expiry", &self.access_token_expiry)
            .finish()
    }
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Extracts the JSON between `-----BEGIN MESSAGE-----` and `-----END MESSAGE-----` of a
/// decrypted token and checks it: four non-empty strings and an RFC 3339 expiry.
/// Whether the expiry is in the future is the caller's call (it has the clock): see
/// [`ServerTokenSecrets::is_expired_at`].
pub fn parse_token_json(plaintext: &[u8]) -> Result<ServerTokenSecrets, TokenFileError> {
    const BEGIN: &[u8] = b"-----BEGIN MESSAGE-----";
    const END: &[u8] = b"-----END MESSAGE-----";
    let start = find(plaintext, BEGIN).ok_or(TokenFileError::NoTokenJson)? + BEGIN.len();
    let end = start + find(&plaintext[start..], END).ok_or(TokenFileError::NoTokenJson)?;
    // Line breaks may fall anywhere (even inside a long value); spaces are kept.
    let json: Zeroizing<Vec<u8>> = Zeroizing::new(
        plaintext[start..end]
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect(),
    );
    let bad = |d: &str| TokenFileError::BadTokenJson(d.to_string());
    // serde_json's syntax errors give positions only, never the text.
    let value: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|e| TokenFileError::BadTokenJson(format!("not JSON ({e})")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("the message is not a JSON object"))?;
    let field = |name: &str| -> Result<String, TokenFileError> {
        match obj.get(name) {
            None => Err(TokenFileError::BadTokenJson(format!("{name} is missing"))),
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => {
                Err(TokenFileError::BadTokenJson(format!("{name} is empty")))
            }
            Some(serde_json::Value::String(s)) => Ok(s.trim().to_string()),
            Some(_) => Err(TokenFileError::BadTokenJson(format!(
                "{name} is not a string"
            ))),
        }
    };
    let secrets = ServerTokenSecrets {
        consumer_key: field("consumer_key")?,
        consumer_secret: field("consumer_secret")?,
        access_token: field("access_token")?,
        access_secret: field("access_secret")?,
        access_token_expiry: field("access_token_expiry")?,
    };
    if secrets.expiry_unix().is_none() {
        return Err(bad("access_token_expiry is not an RFC 3339 time"));
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_detection() {
        assert!(starts_with_header(b"Content-Type: x\n\nTUlJ"));
        assert!(!starts_with_header(b"MIICAQYJKoZIhvcNAQcDoIIB8jCC\n"));
        assert!(!starts_with_header(b"-----BEGIN PKCS7-----\n"));
        assert!(!starts_with_header(b": x\n"));
        assert_eq!(
            mime_body(b"A: b\r\nC: d\r\n\r\nTUlJ\r\n"),
            Some(&b"TUlJ\r\n"[..])
        );
        assert_eq!(mime_body(b"A: b\n\nTUlJ"), Some(&b"TUlJ"[..]));
        assert_eq!(mime_body(b"A: b\nC: d"), None);
    }

    #[test]
    fn token_json() {
        let ok = b"Content-Type: text/plain;charset=UTF-8\r\n\r\n-----BEGIN MESSAGE-----\r\n{\"consumer_key\":\"CK_1\",\"consumer_secret\":\"CS_1\",\"access_token\":\"AT_1\",\"access_secret\":\"AS_\r\n1\",\"access_token_expiry\":\"2027-11-23T09:00:00Z\"}\r\n-----END MESSAGE-----\r\n";
        let s = parse_token_json(ok).unwrap();
        assert_eq!(s.access_secret, "AS_1");
        assert_eq!(s.expiry_unix(), Some(1_826_960_400));
        assert!(!s.is_expired_at(1_826_960_399));
        assert!(s.is_expired_at(1_826_960_400));
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains("CS_1") && !dbg.contains("AT_1") && !dbg.contains("AS_1"),
            "{dbg}"
        );

        let wrap = |j: &str| format!("-----BEGIN MESSAGE-----\n{j}\n-----END MESSAGE-----\n");
        assert_eq!(parse_token_json(b"{}"), Err(TokenFileError::NoTokenJson));
        assert_eq!(
            parse_token_json(b"-----BEGIN MESSAGE-----\n{}"),
            Err(TokenFileError::NoTokenJson)
        );
        for (json, expect) in [
            ("{\"consumer_key\":\"CK_secretish", "not JSON"),
            ("[1]", "not a JSON object"),
            ("{}", "consumer_key is missing"),
            (
                "{\"consumer_key\":\"CK\",\"consumer_secret\":\" \",\"access_token\":\"AT\",\"access_secret\":\"AS\",\"access_token_expiry\":\"2027-11-23T09:00:00Z\"}",
                "consumer_secret is empty",
            ),
            (
                "{\"consumer_key\":\"CK\",\"consumer_secret\":\"CS\",\"access_token\":7,\"access_secret\":\"AS\",\"access_token_expiry\":\"2027-11-23T09:00:00Z\"}",
                "access_token is not a string",
            ),
            (
                "{\"consumer_key\":\"CK\",\"consumer_secret\":\"CS\",\"access_token\":\"AT\",\"access_secret\":\"AS\",\"access_token_expiry\":\"next year\"}",
                "access_token_expiry is not an RFC 3339 time",
            ),
        ] {
            match parse_token_json(wrap(json).as_bytes()) {
                Err(TokenFileError::BadTokenJson(d)) => {
                    assert!(d.contains(expect), "{d} / {expect}");
                    assert!(!d.contains("secretish"));
                }
                other => panic!("{json}: {other:?}"),
            }
        }
    }
}

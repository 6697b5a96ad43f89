//! OAuth 1.0a (RFC 5849) HMAC-SHA1 signing, as Apple's Device Assignment API wants it
//! for `GET /session`. Pure functions: the caller supplies the timestamp and nonce.
//!
//! Base string = `METHOD&enc(base-string-URI)&enc(sorted "k=v" pairs joined by "&")`,
//! key = `enc(consumer_secret)&enc(access_secret)`, signature = base64(HMAC-SHA1).
//! `realm` is sent but never signed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The four OAuth secrets of a server token (`.p7m`). `Debug` shows only the consumer
/// key, which identifies the ABM/ASM server entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepCredentials {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub access_secret: String,
}

impl DepCredentials {
    /// All four values present (nanodep's `Valid()`).
    pub fn is_complete(&self) -> bool {
        [
            &self.consumer_key,
            &self.consumer_secret,
            &self.access_token,
            &self.access_secret,
        ]
        .iter()
        .all(|s| !s.is_empty())
    }
}

impl std::fmt::Debug for DepCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepCredentials")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"<redacted>")
            .field("access_token", &"<redacted>")
            .field("access_secret", &"<redacted>")
            .finish()
    }
}

pub const SIGNATURE_METHOD: &str = "HMAC-SHA1";
pub const VERSION: &str = "1.0";
/// The realm Apple's examples put in the header (not part of the signature).
pub const REALM: &str = "ADM";

/// The URL cannot be used for a signature base string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidUrl(pub String);

impl std::fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "URL not usable for OAuth signing: {}", self.0)
    }
}

impl std::error::Error for InvalidUrl {}

/// RFC 3986 percent-encoding of everything but the unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`), uppercase hex, over the UTF-8 bytes (RFC 5849 §3.6).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in form-encoded
/// query strings). `None` for a malformed escape or bytes that are not UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The base string URI (RFC 5849 §3.4.1.2): lowercase scheme and host, the port only
/// when it is not the scheme's default, the path; no query or fragment.
pub fn base_string_uri(url: &str) -> Result<String, InvalidUrl> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| InvalidUrl("does not parse".into()))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| InvalidUrl("no scheme".into()))?
        .to_ascii_lowercase();
    let host = uri
        .host()
        .ok_or_else(|| InvalidUrl("no host".into()))?
        .to_ascii_lowercase();
    let port = match (scheme.as_str(), uri.port_u16()) {
        ("http", Some(80)) | ("https", Some(443)) | (_, None) => String::new(),
        (_, Some(p)) => format!(":{p}"),
    };
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    Ok(format!("{scheme}://{host}{port}{path}"))
}

/// The signature base string (RFC 5849 §3.4.1). `params` are the decoded protocol
/// parameters (without `oauth_signature` and `realm`) plus any form-encoded body
/// parameters; the query of `url` is added to them.
pub fn signature_base_string(
    method: &str,
    url: &str,
    params: &[(&str, &str)],
) -> Result<String, InvalidUrl> {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    if let Some((_, query)) = url.split_once('?') {
        let query = query.split('#').next().unwrap_or_default();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = percent_decode(k, true).ok_or_else(|| InvalidUrl("bad query".into()))?;
            let v = percent_decode(v, true).ok_or_else(|| InvalidUrl("bad query".into()))?;
            pairs.push((percent_encode(&k), percent_encode(&v)));
        }
    }
    pairs.sort();
    let normalized = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    Ok(format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode(&base_string_uri(url)?),
        percent_encode(&normalized)
    ))
}

/// base64(HMAC-SHA1(key = enc(consumer_secret) & enc(token_secret), base string)).
pub fn sign(base_string: &str, consumer_secret: &str, token_secret: &str) -> String {
    let key = format!(
        "{}&{}",
        percent_encode(consumer_secret),
        percent_encode(token_secret)
    );
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(base_string.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The protocol parameters of a request signed with `credentials`, in header order,
/// without the signature.
fn protocol_params<'c>(
    credentials: &'c DepCredentials,
    timestamp: &'c str,
    nonce: &'c str,
) -> [(&'static str, &'c str); 6] {
    [
        ("oauth_consumer_key", credentials.consumer_key.as_str()),
        ("oauth_token", credentials.access_token.as_str()),
        ("oauth_signature_method", SIGNATURE_METHOD),
        ("oauth_timestamp", timestamp),
        ("oauth_nonce", nonce),
        ("oauth_version", VERSION),
    ]
}

/// The `Authorization` header value for `method url` (Apple: `GET …/session`):
/// `OAuth realm="ADM", oauth_consumer_key="…", oauth_token="…",
/// oauth_signature_method="HMAC-SHA1", oauth_timestamp="…", oauth_nonce="…",
/// oauth_version="1.0", oauth_signature="…"`, every value percent-encoded.
pub fn authorization_header(
    credentials: &DepCredentials,
    method: &str,
    url: &str,
    timestamp: u64,
    nonce: &str,
) -> Result<String, InvalidUrl> {
    let timestamp = timestamp.to_string();
    let params = protocol_params(credentials, &timestamp, nonce);
    let base = signature_base_string(method, url, &params)?;
    let signature = sign(
        &base,
        &credentials.consumer_secret,
        &credentials.access_secret,
    );
    let mut header = format!("OAuth realm=\"{REALM}\"");
    for (k, v) in params
        .iter()
        .copied()
        .chain([("oauth_signature", signature.as_str())])
    {
        header.push_str(&format!(", {k}=\"{}\"", percent_encode(v)));
    }
    Ok(header)
}

/// The parameters of an `Authorization: OAuth …` header, decoded, in order (including
/// `realm`). `None` if it is not an OAuth header or a value is malformed.
pub fn parse_authorization(value: &str) -> Option<Vec<(String, String)>> {
    let value = value.trim();
    let (scheme, rest) = value.split_at_checked(5)?;
    if !scheme.eq_ignore_ascii_case("OAuth") || !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut out = Vec::new();
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=')?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        out.push((k.trim().to_owned(), percent_decode(v, false)?));
    }
    Some(out)
}

/// Checks an `Authorization` header the way Apple does (for simulators and tests):
/// HMAC-SHA1, each protocol parameter exactly once, the signature recomputed over every
/// parameter but `realm` and `oauth_signature`. Consumer key, token, timestamp and nonce
/// freshness are the caller's to check on the parsed parameters.
pub fn verify_authorization(
    value: &str,
    method: &str,
    url: &str,
    consumer_secret: &str,
    token_secret: &str,
) -> bool {
    let Some(params) = parse_authorization(value) else {
        return false;
    };
    let get = |name: &str| {
        let mut it = params.iter().filter(|(k, _)| k == name);
        match (it.next(), it.next()) {
            (Some((_, v)), None) => Some(v.as_str()),
            _ => None,
        }
    };
    if get("oauth_signature_method") != Some(SIGNATURE_METHOD) {
        return false;
    }
    let required = [
        "oauth_consumer_key",
        "oauth_token",
        "oauth_timestamp",
        "oauth_nonce",
    ];
    if required.iter().any(|n| get(n).is_none()) {
        return false;
    }
    let Some(signature) = get("oauth_signature") else {
        return false;
    };
    let signed: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "realm" && k != "oauth_signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let Ok(base) = signature_base_string(method, url, &signed) else {
        return false;
    };
    let expected = sign(&base, consumer_secret, token_secret);
    bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

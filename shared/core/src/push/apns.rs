//! The APNs provider API as the MDM push uses it: the request that wakes a device and
//! what an answer's body says. Plain functions; sending is the caller's
//! ([`crate::platform::HttpClient`]).
//!
//! The request: HTTP/2 `POST {apns_base_url}/3/device/<hex token>` with
//! - `apns-topic`: the device's `Topic` (TokenUpdate; the push certificate's UID),
//! - `apns-push-type: mdm`, `apns-priority: 10`,
//! - `apns-expiration`: now + [`EXPIRATION_SECS`] (7 days). APNs keeps the last push of
//!   an offline device until then; a device that comes back within a week still learns
//!   that commands wait (our queue keeps them), later pushes replace the stored one,
//! - `apns-id`: a fresh random UUID, to correlate with APNs' answer,
//! - body exactly `{"mdm":"<PushMagic>"}`.
//!
//! Variables: `apns_base_url` (default `https://api.push.apple.com`; the sandbox is
//! `https://api.sandbox.push.apple.com`; tests point it at `tests/apnssim`).
//!
//! Privacy: push tokens and PushMagic never appear in full in errors, reports or stored
//! diagnostics; see [`redact`].

use http::{Method, Request};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use mdm_kv::KvError;

use crate::mdm::enrollment_record::Push;
use crate::platform::Variables;

/// Spin variable naming the APNs provider API base URL.
pub const APNS_BASE_URL: &str = "apns_base_url";
pub const DEFAULT_BASE_URL: &str = "https://api.push.apple.com";
pub const SANDBOX_BASE_URL: &str = "https://api.sandbox.push.apple.com";

/// `apns-expiration` = now + this.
pub const EXPIRATION_SECS: u64 = 7 * 86_400;
/// Largest body APNs accepts for a non-VoIP push.
pub const MAX_PAYLOAD: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushError {
    Store(KvError),
    /// `apns_base_url` (or the stored push data) cannot form a request.
    Config(String),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Store(e) => e.fmt(f),
            PushError::Config(m) => write!(f, "cannot build the APNs request: {m}"),
        }
    }
}

impl std::error::Error for PushError {}

impl From<KvError> for PushError {
    fn from(e: KvError) -> Self {
        PushError::Store(e)
    }
}

/// First 8 characters of a token or PushMagic, then `…`: what may appear in messages.
pub fn redact(secret: &str) -> String {
    let head: String = secret.chars().take(8).collect();
    if head.len() < secret.len() {
        format!("{head}…")
    } else {
        "…".to_owned()
    }
}

/// Short hash of a push token: tells tokens apart without storing them again.
pub fn token_fingerprint(token_hex: &str) -> String {
    hex::encode(&Sha256::digest(token_hex.to_ascii_lowercase().as_bytes())[..8])
}

/// The APNs base URL from `apns_base_url`, without a trailing slash.
pub async fn base_url(vars: &impl Variables) -> String {
    match vars.get(APNS_BASE_URL).await {
        Ok(Some(v)) if !v.trim().is_empty() => v.trim().trim_end_matches('/').to_owned(),
        _ => DEFAULT_BASE_URL.to_owned(),
    }
}

/// A random (version 4) UUID for `apns-id`.
pub fn new_apns_id() -> String {
    crate::random::uuid_v4().to_ascii_lowercase()
}

/// The APNs request for `push`. `now` is Unix seconds; `apns_id` a UUID (or None).
pub fn build_request(
    base_url: &str,
    push: &Push,
    now: u64,
    apns_id: Option<&str>,
) -> Result<Request<Vec<u8>>, PushError> {
    let token = push.token_hex.to_ascii_lowercase();
    if token.is_empty()
        || !token.len().is_multiple_of(2)
        || !token.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(PushError::Config(format!(
            "stored push token {} is not hex",
            redact(&token)
        )));
    }
    if push.topic.is_empty() {
        return Err(PushError::Config("no push topic".into()));
    }
    if push.push_magic.is_empty() {
        return Err(PushError::Config("no PushMagic".into()));
    }
    let body = serde_json::to_vec(&json!({ "mdm": push.push_magic })).expect("serialises");
    let url = format!("{}/3/device/{token}", base_url.trim_end_matches('/'));
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header("apns-topic", &push.topic)
        .header("apns-push-type", "mdm")
        .header("apns-priority", "10")
        .header("apns-expiration", (now + EXPIRATION_SECS).to_string())
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(id) = apns_id {
        b = b.header("apns-id", id);
    }
    b.body(body).map_err(|e| {
        PushError::Config(format!(
            "{} with topic {:?}: {e}",
            base_url.trim_end_matches('/'),
            push.topic
        ))
    })
}

/// APNs' `reason` from an error body (`{"reason": "...", "timestamp": ...}`).
pub(crate) fn error_body(body: &[u8]) -> (Option<String>, Option<u64>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let reason = v
        .get("reason")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(100).collect());
    let ts = v.get("timestamp").and_then(|t| {
        t.as_u64()
            .or_else(|| t.as_str().and_then(|s| s.parse().ok()))
    });
    (reason, ts)
}

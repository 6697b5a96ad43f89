//! Apple's Device Assignment (DEP / ADE) API: sessions, account, devices, profiles.
//!
//! I/O goes through [`HttpClient`] and [`Clock`]; everything else (request building,
//! parsing, error mapping, retry decisions) is plain code. The client
//! - signs `GET /session` with OAuth 1.0a ([`super::oauth`]) and sends the session token
//!   as `X-ADM-Auth-Session` on every other call;
//! - adopts a rotated session token from any response's `X-ADM-Auth-Session`;
//! - on `401` (or `403 FORBIDDEN`, depsim after a restart) creates one new session and
//!   retries once;
//! - on `429` and `5xx` waits (`Retry-After`, seconds or HTTP-date, else exponential
//!   backoff) within [`RetryPolicy`], and otherwise returns [`DepError::RetryLater`] so
//!   the caller can reschedule;
//! - maps Apple's error bodies (plain or JSON-quoted codes, matched by substring) to
//!   [`ApiError`].
//!
//! Errors never carry the OAuth secrets or the session token: bodies and transport
//! messages are redacted before they are kept.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use super::oauth;
pub use super::oauth::DepCredentials;
use super::sync::{FeedError, FeedPage};
use crate::platform::{Clock, HttpClient};

pub const DEFAULT_BASE_URL: &str = "https://mdmenrollment.apple.com";
/// The `X-Server-Protocol-Version` we speak: 10, the first with both the per-serial
/// `THROTTLED` answer (9) and `retry_after_seconds` (10) that assignment retries rely on,
/// and with `os: iPadOS` (7). The recorded version-3 responses in the test vectors parse
/// the same; [`DepClient::with_protocol_version`] pins another.
pub const PROTOCOL_VERSION: &str = "10";
pub const DEFAULT_USER_AGENT: &str = concat!("mdm-server/", env!("CARGO_PKG_VERSION"));
/// `Content-Type` and `Accept` of every call (nanodep's exact string).
pub const MEDIA_TYPE: &str = "application/json;charset=UTF8";
pub const SESSION_HEADER: &str = "X-ADM-Auth-Session";
pub const PROTOCOL_HEADER: &str = "X-Server-Protocol-Version";
/// Serials per assign/remove/details request.
pub const MAX_SERIALS: usize = 1000;
/// Page size when `/account` does not advertise one (Apple's field documentation).
pub const DOCUMENTED_DEFAULT_LIMIT: u32 = 100;
pub const DOCUMENTED_MAX_LIMIT: u32 = 1000;

const EXCERPT_CHARS: usize = 200;

/// How long the client itself waits on `429`/`5xx` before handing the wait to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Total time slept for one call; a wait that would exceed it is returned as
    /// [`DepError::RetryLater`] instead.
    pub max_wait: Duration,
    /// First backoff step when Apple sends no `Retry-After`; doubles per retry.
    pub initial_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            max_wait: Duration::from_secs(60),
            initial_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .max(Duration::from_secs(1))
    }
}

/// A documented error code in the body of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiError {
    // cursors (fetch/sync)
    ExhaustedCursor,
    ExpiredCursor,
    InvalidCursor,
    CursorRequired,
    // access
    TermsNotSigned,
    AccessDenied,
    Forbidden,
    // headers
    UserAgentMissing,
    UserAgentInvalid,
    // requests
    MalformedRequestBody,
    DeviceIdRequired,
    ProfileUuidRequired,
    // profile definition
    ConfigNameRequired,
    ConfigNameInvalid,
    ConfigUrlRequired,
    ConfigUrlInvalid,
    FlagsInvalid,
    DepartmentInvalid,
    SupportPhoneInvalid,
    SupportEmailInvalid,
    MagicInvalid,
    LocaleInvalid,
    // account-driven enrollment, beta enrollment
    MdmServiceDiscoveryUrlRequired,
    MdmServiceDiscoveryUrlNotValid,
    OrgNotSupported,
    AppleSeedForItTurnedOff,
    /// `404` without one of the codes above (e.g. an unknown profile UUID).
    NotFound,
}

impl ApiError {
    pub const ALL: [ApiError; 27] = [
        ApiError::ExhaustedCursor,
        ApiError::ExpiredCursor,
        ApiError::InvalidCursor,
        ApiError::CursorRequired,
        ApiError::TermsNotSigned,
        ApiError::AccessDenied,
        ApiError::Forbidden,
        ApiError::UserAgentMissing,
        ApiError::UserAgentInvalid,
        ApiError::MalformedRequestBody,
        ApiError::DeviceIdRequired,
        ApiError::ProfileUuidRequired,
        ApiError::ConfigNameRequired,
        ApiError::ConfigNameInvalid,
        ApiError::ConfigUrlRequired,
        ApiError::ConfigUrlInvalid,
        ApiError::FlagsInvalid,
        ApiError::DepartmentInvalid,
        ApiError::SupportPhoneInvalid,
        ApiError::SupportEmailInvalid,
        ApiError::MagicInvalid,
        ApiError::LocaleInvalid,
        ApiError::MdmServiceDiscoveryUrlRequired,
        ApiError::MdmServiceDiscoveryUrlNotValid,
        ApiError::OrgNotSupported,
        ApiError::AppleSeedForItTurnedOff,
        ApiError::NotFound,
    ];

    /// Apple's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiError::ExhaustedCursor => "EXHAUSTED_CURSOR",
            ApiError::ExpiredCursor => "EXPIRED_CURSOR",
            ApiError::InvalidCursor => "INVALID_CURSOR",
            ApiError::CursorRequired => "CURSOR_REQUIRED",
            ApiError::TermsNotSigned => "T_C_NOT_SIGNED",
            ApiError::AccessDenied => "ACCESS_DENIED",
            ApiError::Forbidden => "FORBIDDEN",
            ApiError::UserAgentMissing => "USER_AGENT_MISSING",
            ApiError::UserAgentInvalid => "USER_AGENT_INVALID",
            ApiError::MalformedRequestBody => "MALFORMED_REQUEST_BODY",
            ApiError::DeviceIdRequired => "DEVICE_ID_REQUIRED",
            ApiError::ProfileUuidRequired => "PROFILE_UUID_REQUIRED",
            ApiError::ConfigNameRequired => "CONFIG_NAME_REQUIRED",
            ApiError::ConfigNameInvalid => "CONFIG_NAME_INVALID",
            ApiError::ConfigUrlRequired => "CONFIG_URL_REQUIRED",
            ApiError::ConfigUrlInvalid => "CONFIG_URL_INVALID",
            ApiError::FlagsInvalid => "FLAGS_INVALID",
            ApiError::DepartmentInvalid => "DEPARTMENT_INVALID",
            ApiError::SupportPhoneInvalid => "SUPPORT_PHONE_INVALID",
            ApiError::SupportEmailInvalid => "SUPPORT_EMAIL_INVALID",
            ApiError::MagicInvalid => "MAGIC_INVALID",
            ApiError::LocaleInvalid => "LOCALE_INVALID",
            ApiError::MdmServiceDiscoveryUrlRequired => "MDM_SERVICE_DISCOVERY_URL_REQUIRED",
            ApiError::MdmServiceDiscoveryUrlNotValid => "MDM_SERVICE_DISCOVERY_URL_NOT_VALID",
            ApiError::OrgNotSupported => "ORG_NOT_SUPPORTED",
            ApiError::AppleSeedForItTurnedOff => "APPLE_SEED_FOR_IT_TURNED_OFF",
            ApiError::NotFound => "NOT_FOUND",
        }
    }

    /// The documented code in an error body: plain (`INVALID_CURSOR`), JSON-quoted
    /// (`"INVALID_CURSOR"`) or inside a JSON object or sentence; whole words only, the
    /// earliest in the body wins.
    pub fn find(body: &str) -> Option<ApiError> {
        let word = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_';
        let bytes = body.as_bytes();
        ApiError::ALL
            .iter()
            .filter_map(|&code| {
                body.match_indices(code.as_str())
                    .find(|&(at, s)| {
                        let before = at.checked_sub(1).map(|i| bytes[i]);
                        let after = bytes.get(at + s.len()).copied();
                        !before.is_some_and(word) && !after.is_some_and(word)
                    })
                    .map(|(at, _)| (at, code))
            })
            .min_by_key(|&(at, _)| at)
            .map(|(_, code)| code)
    }

    /// A cursor problem of fetch/sync (see `dep-api.md` §5).
    pub fn is_cursor_error(self) -> bool {
        matches!(
            self,
            ApiError::ExhaustedCursor
                | ApiError::ExpiredCursor
                | ApiError::InvalidCursor
                | ApiError::CursorRequired
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call to the Device Assignment API can end with. Messages are safe to log and
/// show: no OAuth secret or session token is ever part of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepError {
    /// No HTTP answer (connection, TLS, denied host, ...).
    Transport(String),
    /// `401` even with a fresh session (or on `/session`): consumer key, token or
    /// signature refused, token expired or revoked, nonce reused.
    Unauthorized { excerpt: String },
    /// An error answer with a documented code.
    Api { status: u16, code: ApiError },
    /// `429`/`5xx` that the client did not wait out: retries used up, or Apple asked for
    /// a longer wait than [`RetryPolicy::max_wait`]. Try again after `after`.
    RetryLater { status: u16, after: Duration },
    /// Any other non-success answer.
    Unexpected { status: u16, excerpt: String },
    /// A success answer whose body is not what the endpoint documents.
    BadJson { path: String, detail: String },
    /// The request was not sent: the arguments cannot make a valid one.
    InvalidRequest(String),
}

impl std::fmt::Display for DepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DepError::Transport(m) => write!(f, "Device Assignment API unreachable: {m}"),
            DepError::Unauthorized { excerpt } => {
                write!(f, "Apple refused the server token (401)")?;
                if !excerpt.is_empty() {
                    write!(f, ": {excerpt}")?;
                }
                Ok(())
            }
            DepError::Api { status, code } => write!(f, "Apple answered {status} {code}"),
            DepError::RetryLater { status, after } => write!(
                f,
                "Apple answered {status}; retry after {} s",
                after.as_secs()
            ),
            DepError::Unexpected { status, excerpt } => {
                write!(f, "unexpected answer {status} from Apple")?;
                if !excerpt.is_empty() {
                    write!(f, ": {excerpt}")?;
                }
                Ok(())
            }
            DepError::BadJson { path, detail } => {
                write!(f, "malformed answer from Apple to {path}: {detail}")
            }
            DepError::InvalidRequest(m) => write!(f, "invalid Device Assignment request: {m}"),
        }
    }
}

impl std::error::Error for DepError {}

impl DepError {
    /// The documented code, if this is an [`DepError::Api`].
    pub fn code(&self) -> Option<ApiError> {
        match self {
            DepError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The same failure in the terms of the sync engine.
    pub fn to_feed_error(&self) -> FeedError {
        match self {
            DepError::Api {
                code: ApiError::ExhaustedCursor,
                ..
            } => FeedError::ExhaustedCursor,
            DepError::Api { code, .. } if code.is_cursor_error() => {
                FeedError::CursorRejected(code.as_str().into())
            }
            DepError::Api {
                code: ApiError::TermsNotSigned,
                ..
            } => FeedError::TermsNotSigned,
            DepError::Api {
                code: ApiError::AccessDenied | ApiError::Forbidden,
                ..
            }
            | DepError::Unauthorized { .. } => FeedError::TokenRejected(self.to_string()),
            DepError::RetryLater { after, .. } => FeedError::Throttled {
                retry_after: after.as_secs().max(1),
            },
            other => FeedError::Other(other.to_string()),
        }
    }
}

/// `/account` (AccountDetail). Missing or null fields read as empty; unknown fields are
/// kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Account {
    #[serde(default, deserialize_with = "lenient_string")]
    pub server_name: String,
    /// The `iss` of the GetToken JWT.
    #[serde(default, deserialize_with = "lenient_string")]
    pub server_uuid: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub admin_id: String,
    /// Deprecated by Apple.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub facilitator_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub org_name: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub org_email: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub org_phone: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub org_address: String,
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_id_hash: Option<String>,
    /// `edu`, `org` or `tvprovider`.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_type: Option<String>,
    /// `v1` or `v2`.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_version: Option<String>,
    #[serde(default, deserialize_with = "lenient_urls")]
    pub urls: Vec<AccountUrl>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `/account`'s `urls`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountUrl {
    #[serde(default, deserialize_with = "lenient_string")]
    pub uri: String,
    #[serde(default, deserialize_with = "lenient_strings")]
    pub http_method: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<UrlLimit>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Page sizes Apple advertises for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UrlLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<u32>,
}

impl Account {
    /// The advertised limits of `uri` (e.g. `/server/devices`).
    pub fn limit(&self, uri: &str) -> Option<UrlLimit> {
        self.urls
            .iter()
            .find(|u| u.uri == uri)
            .and_then(|u| u.limit)
    }

    /// The page size to ask `uri` for: `wanted` or the advertised default, clamped to
    /// `1..=` the advertised maximum (Apple's documented 100/1000 when not advertised).
    pub fn page_size(&self, uri: &str, wanted: Option<u32>) -> u32 {
        let limit = self.limit(uri).unwrap_or_default();
        let maximum = limit.maximum.unwrap_or(DOCUMENTED_MAX_LIMIT).max(1);
        wanted
            .or(limit.default)
            .unwrap_or(DOCUMENTED_DEFAULT_LIMIT)
            .clamp(1, maximum)
    }

    /// Parses an `/account` body.
    pub fn parse(body: &[u8]) -> Result<Account, String> {
        let value = parse_object(body)?;
        serde_json::from_value(Value::Object(value)).map_err(|e| e.to_string())
    }
}

/// One page of `POST /server/devices` (fetch) or `POST /devices/sync`. Devices stay
/// JSON objects so no field Apple adds or changes can make a page unreadable.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DevicePage {
    pub devices: Vec<Map<String, Value>>,
    pub cursor: Option<String>,
    pub more_to_follow: bool,
    /// ISO-8601, as Apple sent it.
    pub fetched_until: Option<String>,
}

impl DevicePage {
    /// Parses a FetchDeviceResponse. `devices` must be an array of objects (missing or
    /// null = none); `more_to_follow` may be a boolean or `"true"`/`"false"`.
    pub fn parse(body: &[u8]) -> Result<DevicePage, String> {
        let mut value = parse_object(body)?;
        let devices = match value.remove("devices") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Value::Object(m) => Ok(m),
                    _ => Err(format!("devices[{i}] is not an object")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("`devices` is not an array".into()),
        };
        let more_to_follow = match value.get("more_to_follow") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err("`more_to_follow` is not a boolean".into()),
        };
        Ok(DevicePage {
            devices,
            cursor: opt_str(&value, "cursor")?,
            more_to_follow,
            fetched_until: opt_str(&value, "fetched_until")?,
        })
    }

    /// The page as the sync engine takes it.
    pub fn into_feed_page(self) -> FeedPage {
        FeedPage {
            devices: self.devices,
            cursor: self.cursor,
            more_to_follow: self.more_to_follow,
        }
    }
}

/// Per-device result of profile and device calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum DeviceStatus {
    Success,
    /// The serial is not in this server's scope.
    NotAccessible,
    Failed,
    /// Assign, protocol 9+: retry after the response's `retry_after_seconds`.
    Throttled,
    Other(String),
}

impl DeviceStatus {
    pub fn as_str(&self) -> &str {
        match self {
            DeviceStatus::Success => "SUCCESS",
            DeviceStatus::NotAccessible => "NOT_ACCESSIBLE",
            DeviceStatus::Failed => "FAILED",
            DeviceStatus::Throttled => "THROTTLED",
            DeviceStatus::Other(s) => s,
        }
    }
}

impl From<String> for DeviceStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "SUCCESS" => DeviceStatus::Success,
            "NOT_ACCESSIBLE" => DeviceStatus::NotAccessible,
            "FAILED" => DeviceStatus::Failed,
            "THROTTLED" => DeviceStatus::Throttled,
            _ => DeviceStatus::Other(s),
        }
    }
}

impl From<DeviceStatus> for String {
    fn from(s: DeviceStatus) -> Self {
        match s {
            DeviceStatus::Other(s) => s,
            known => known.as_str().to_owned(),
        }
    }
}

/// Answer of assign and remove (`{"profile_uuid"?, "devices": {serial: status},
/// "retry_after_seconds"?}`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileDevices {
    pub profile_uuid: Option<String>,
    pub devices: BTreeMap<String, DeviceStatus>,
    pub retry_after_seconds: Option<u64>,
}

impl ProfileDevices {
    pub fn parse(body: &[u8]) -> Result<ProfileDevices, String> {
        let value = parse_object(body)?;
        let devices = match value.get("devices") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(serial, status)| match status {
                    Value::String(s) => Ok((serial.clone(), DeviceStatus::from(s.clone()))),
                    _ => Err(format!("status of {serial} is not a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("`devices` is not an object".into()),
        };
        let retry_after_seconds = match value.get("retry_after_seconds") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        Ok(ProfileDevices {
            profile_uuid: opt_str(&value, "profile_uuid")?,
            devices,
            retry_after_seconds,
        })
    }

    /// Serials with this status.
    pub fn with_status<'s>(&'s self, status: &'s DeviceStatus) -> impl Iterator<Item = &'s str> {
        self.devices
            .iter()
            .filter(move |(_, s)| *s == status)
            .map(|(serial, _)| serial.as_str())
    }
}

/// Answer of `POST /profile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinedProfile {
    pub profile_uuid: String,
    /// Results for the profile's `devices`, if it listed any.
    pub devices: BTreeMap<String, DeviceStatus>,
}

/// Answer of `POST /devices` (details): serial → device fields plus `response_status`.
pub fn parse_device_details(body: &[u8]) -> Result<BTreeMap<String, Map<String, Value>>, String> {
    let mut value = parse_object(body)?;
    match value.remove("devices") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(serial, d)| match d {
                Value::Object(d) => Ok((serial, d)),
                _ => Err(format!("details of {serial} are not an object")),
            })
            .collect(),
        Some(_) => Err("`devices` is not an object".into()),
    }
}

/// The wait a `Retry-After` value asks for: delay-seconds or an HTTP-date (relative to
/// `now`; a date in the past is no wait).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An HTTP-date (RFC 9110 §5.6.7): IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, and the
/// obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`) forms.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month_of = |t: &str| {
        MONTHS
            .iter()
            .position(|m| t.eq_ignore_ascii_case(m))
            .map(|i| i as u8 + 1)
    };
    let (mut day, mut month, mut year, mut hms) = (None, None, None, None);
    for token in s
        .split([' ', ','])
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("GMT"))
    {
        if token.contains(':') {
            let mut parts = token.split(':').map(|p| p.parse::<u8>().ok());
            hms = Some((parts.next()??, parts.next()??, parts.next()??));
            if parts.next().is_some() {
                return None;
            }
        } else if let Some((d, rest)) = token.split_once('-') {
            let (m, y) = rest.split_once('-')?;
            day = Some(d.parse::<u8>().ok()?);
            month = Some(month_of(m)?);
            let y: i32 = y.parse().ok()?;
            // RFC 850 two-digit years (RFC 9110: at most 50 years in the future).
            year = Some(if y < 100 {
                if y < 70 { 2000 + y } else { 1900 + y }
            } else {
                y
            });
        } else if token.bytes().all(|b| b.is_ascii_digit()) {
            if token.len() == 4 {
                year = Some(token.parse().ok()?);
            } else {
                day = Some(token.parse().ok()?);
            }
        } else if let Some(m) = month_of(token) {
            month = Some(m);
        } else if token.len() < 3 || !token.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None; // weekday names are the only other words
        }
    }
    let (h, mi, se) = hms?;
    let date =
        time::Date::from_calendar_date(year?, time::Month::try_from(month?).ok()?, day?).ok()?;
    let t = time::Time::from_hms(h, mi, se).ok()?;
    let unix = time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).ok()?))
}

/// A Device Assignment API client for one server token. Holds the session token; a
/// caller that shares sessions across workers restores it with
/// [`DepClient::with_session`] and saves [`DepClient::session_token`] afterwards.
pub struct DepClient<'a, H: HttpClient, C: Clock> {
    http: &'a H,
    clock: &'a C,
    base_url: String,
    credentials: DepCredentials,
    session: Option<String>,
    user_agent: String,
    protocol_version: String,
    retry: RetryPolicy,
}

impl<H: HttpClient, C: Clock> std::fmt::Debug for DepClient<'_, H, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepClient")
            .field("base_url", &self.base_url)
            .field("credentials", &self.credentials)
            .field("session", &self.session.as_ref().map(|_| "<redacted>"))
            .field("protocol_version", &self.protocol_version)
            .finish_non_exhaustive()
    }
}

impl<'a, H: HttpClient, C: Clock> DepClient<'a, H, C> {
    /// `base_url` is e.g. [`DEFAULT_BASE_URL`] or a simulator's (a path prefix is kept).
    pub fn new(http: &'a H, clock: &'a C, base_url: &str, credentials: DepCredentials) -> Self {
        DepClient {
            http,
            clock,
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials,
            session: None,
            user_agent: DEFAULT_USER_AGENT.into(),
            protocol_version: PROTOCOL_VERSION.into(),
            retry: RetryPolicy::default(),
        }
    }

    /// Starts from a session token obtained earlier (empty = none).
    pub fn with_session(mut self, session: Option<String>) -> Self {
        self.set_session(session);
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_user_agent(mut self, user_agent: &str) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    pub fn with_protocol_version(mut self, version: &str) -> Self {
        self.protocol_version = version.into();
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The current session token (after creation, rotation, or `None` once Apple
    /// refused it). Secret: store it sealed.
    pub fn session_token(&self) -> Option<&str> {
        self.session.as_deref()
    }

    pub fn set_session(&mut self, session: Option<String>) {
        self.session = session.filter(|s| !s.is_empty());
    }

    /// `GET /session`: a new session token from the OAuth secrets, kept for the next
    /// calls.
    pub async fn session(&mut self) -> Result<(), DepError> {
        let path = "/session";
        let response = self.exchange(&Method::GET, path, None, true).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.error_for(status, response.body()));
        }
        // The body holds the new token, so no parser message may echo it.
        let token = serde_json::from_slice::<Value>(response.body())
            .ok()
            .and_then(|v| v.get("auth_session_token")?.as_str().map(str::to_owned))
            .ok_or_else(|| DepError::BadJson {
                path: path.into(),
                detail: "no auth_session_token string".into(),
            })?;
        if token.is_empty() {
            return Err(DepError::BadJson {
                path: path.into(),
                detail: "empty auth_session_token".into(),
            });
        }
        if HeaderValue::from_str(&token).is_err() {
            return Err(DepError::BadJson {
                path: path.into(),
                detail: "auth_session_token is not a valid header value".into(),
            });
        }
        self.session = Some(token);
        Ok(())
    }

    /// `GET /account`.
    pub async fn account(&mut self) -> Result<Account, DepError> {
        let path = "/account";
        let body = self.call(Method::GET, path, None).await?;
        Account::parse(&body).map_err(|e| self.bad_json(path, &e))
    }

    /// `POST /server/devices`: the full device list, a page at a time (no cursor = from
    /// the start).
    pub async fn fetch_devices(
        &mut self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<DevicePage, DepError> {
        let mut body = Map::new();
        if let Some(cursor) = cursor {
            body.insert("cursor".into(), cursor.into());
        }
        if let Some(limit) = limit {
            body.insert("limit".into(), limit.into());
        }
        self.device_page("/server/devices", Value::Object(body))
            .await
    }

    /// `POST /devices/sync`: changes since `cursor`.
    pub async fn sync_devices(
        &mut self,
        cursor: &str,
        limit: Option<u32>,
    ) -> Result<DevicePage, DepError> {
        let mut body = Map::new();
        body.insert("cursor".into(), cursor.into());
        if let Some(limit) = limit {
            body.insert("limit".into(), limit.into());
        }
        self.device_page("/devices/sync", Value::Object(body)).await
    }

    async fn device_page(&mut self, path: &str, body: Value) -> Result<DevicePage, DepError> {
        let body = self.call(Method::POST, path, Some(body)).await?;
        DevicePage::parse(&body).map_err(|e| self.bad_json(path, &e))
    }

    /// `POST /devices`: details of up to [`MAX_SERIALS`] devices, each with its
    /// `response_status`.
    pub async fn device_details<S: AsRef<str>>(
        &mut self,
        serials: &[S],
    ) -> Result<BTreeMap<String, Map<String, Value>>, DepError> {
        let path = "/devices";
        let body = json!({ "devices": serial_list(serials)? });
        let body = self.call(Method::POST, path, Some(body)).await?;
        parse_device_details(&body).map_err(|e| self.bad_json(path, &e))
    }

    /// `POST /profile`: defines a profile (Apple's profile JSON, `dep-api.md` §6).
    pub async fn define_profile(&mut self, profile: &Value) -> Result<DefinedProfile, DepError> {
        let path = "/profile";
        if !profile.is_object() {
            return Err(DepError::InvalidRequest(
                "a profile is a JSON object".into(),
            ));
        }
        let body = self.call(Method::POST, path, Some(profile.clone())).await?;
        let answer = ProfileDevices::parse(&body).map_err(|e| self.bad_json(path, &e))?;
        match answer.profile_uuid {
            Some(profile_uuid) if !profile_uuid.is_empty() => Ok(DefinedProfile {
                profile_uuid,
                devices: answer.devices,
            }),
            _ => Err(self.bad_json(path, "no profile_uuid")),
        }
    }

    /// `GET /profile?profile_uuid=`: a defined profile as Apple keeps it.
    pub async fn get_profile(
        &mut self,
        profile_uuid: &str,
    ) -> Result<Map<String, Value>, DepError> {
        let path = format!(
            "/profile?profile_uuid={}",
            oauth::percent_encode(profile_uuid)
        );
        let body = self.call(Method::GET, &path, None).await?;
        parse_object(&body).map_err(|e| self.bad_json(&path, &e))
    }

    /// `POST /profile/devices`: assigns a profile to up to [`MAX_SERIALS`] devices.
    pub async fn assign_profile<S: AsRef<str>>(
        &mut self,
        profile_uuid: &str,
        serials: &[S],
    ) -> Result<ProfileDevices, DepError> {
        let path = "/profile/devices";
        let body = json!({ "profile_uuid": profile_uuid, "devices": serial_list(serials)? });
        let body = self.call(Method::POST, path, Some(body)).await?;
        ProfileDevices::parse(&body).map_err(|e| self.bad_json(path, &e))
    }

    /// `DELETE /profile/devices` (with a body): removes the profile assignment of up to
    /// [`MAX_SERIALS`] devices.
    pub async fn remove_profile<S: AsRef<str>>(
        &mut self,
        serials: &[S],
        profile_uuid: Option<&str>,
    ) -> Result<ProfileDevices, DepError> {
        let path = "/profile/devices";
        let mut body = json!({ "devices": serial_list(serials)? });
        if let Some(uuid) = profile_uuid {
            body["profile_uuid"] = uuid.into();
        }
        let body = self.call(Method::DELETE, path, Some(body)).await?;
        ProfileDevices::parse(&body).map_err(|e| self.bad_json(path, &e))
    }

    /// One API call with the session: creates a session first if there is none, and
    /// once a new one when Apple says the session is no longer valid. The body of a
    /// success answer.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Vec<u8>, DepError> {
        let body = body
            .map(|b| serde_json::to_vec(&b))
            .transpose()
            .map_err(|e| DepError::InvalidRequest(e.to_string()))?;
        let mut renewed = false;
        if self.session.is_none() {
            self.session().await?;
            renewed = true;
        }
        loop {
            let response = self.exchange(&method, path, body.as_deref(), false).await?;
            let status = response.status();
            if status.is_success() {
                return Ok(response.into_body());
            }
            let session_refused = status == StatusCode::UNAUTHORIZED
                || (status == StatusCode::FORBIDDEN
                    && ApiError::find(&String::from_utf8_lossy(response.body()))
                        == Some(ApiError::Forbidden));
            if session_refused {
                self.session = None;
                if !renewed {
                    renewed = true;
                    self.session().await?;
                    continue;
                }
            }
            return Err(self.error_for(status, response.body()));
        }
    }

    /// Sends one request, waiting out `429`/`5xx` within the retry policy, and adopts a
    /// rotated session token. Any other answer is returned as it is.
    async fn exchange(
        &mut self,
        method: &Method,
        path: &str,
        body: Option<&[u8]>,
        sign: bool,
    ) -> Result<http::Response<Vec<u8>>, DepError> {
        let mut slept = Duration::ZERO;
        let mut attempt = 0;
        loop {
            // Rebuilt every time: a fresh nonce, the latest session token.
            let request = self.build(method, path, body, sign)?;
            let response = self
                .http
                .send(request)
                .await
                .map_err(|e| DepError::Transport(self.redact(&e.0)))?;
            self.adopt_session(response.headers());
            let status = response.status();
            if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                return Ok(response);
            }
            let wait = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, self.clock.now()))
                .unwrap_or_else(|| self.retry.backoff(attempt))
                .max(Duration::from_secs(1));
            if attempt >= self.retry.max_retries || slept + wait > self.retry.max_wait {
                return Err(DepError::RetryLater {
                    status: status.as_u16(),
                    after: wait,
                });
            }
            self.clock.sleep(wait).await;
            slept += wait;
            attempt += 1;
        }
    }

    fn build(
        &self,
        method: &Method,
        path: &str,
        body: Option<&[u8]>,
        sign: bool,
    ) -> Result<Request<Vec<u8>>, DepError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = Request::new(body.map(<[u8]>::to_vec).unwrap_or_default());
        *request.method_mut() = method.clone();
        *request.uri_mut() = url
            .parse()
            .map_err(|_| DepError::InvalidRequest(format!("not a valid URL: {url}")))?;
        let headers = request.headers_mut();
        let plain = |name: &str, v: &str| {
            HeaderValue::from_str(v).map_err(|_| {
                DepError::InvalidRequest(format!("{name} is not a valid header value"))
            })
        };
        headers.insert(USER_AGENT, plain("User-Agent", &self.user_agent)?);
        headers.insert(
            PROTOCOL_HEADER,
            plain(PROTOCOL_HEADER, &self.protocol_version)?,
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        headers.insert(ACCEPT, HeaderValue::from_static(MEDIA_TYPE));
        if sign {
            let nonce = crate::random::hex_id(16);
            let value = oauth::authorization_header(
                &self.credentials,
                method.as_str(),
                &url,
                self.clock.unix_seconds(),
                &nonce,
            )
            .map_err(|e| DepError::InvalidRequest(e.to_string()))?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                DepError::InvalidRequest("OAuth header is not a valid header value".into())
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        } else if let Some(session) = &self.session {
            let mut value = HeaderValue::from_str(session).map_err(|_| {
                DepError::InvalidRequest("session token is not a valid header value".into())
            })?;
            value.set_sensitive(true);
            headers.insert(SESSION_HEADER, value);
        }
        Ok(request)
    }

    fn adopt_session(&mut self, headers: &HeaderMap) {
        if let Some(token) = headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            self.session = Some(token.to_owned());
        }
    }

    fn error_for(&self, status: StatusCode, body: &[u8]) -> DepError {
        let text = String::from_utf8_lossy(body);
        if status == StatusCode::UNAUTHORIZED {
            return DepError::Unauthorized {
                excerpt: self.excerpt(&text),
            };
        }
        if let Some(code) = ApiError::find(&text) {
            return DepError::Api {
                status: status.as_u16(),
                code,
            };
        }
        if status == StatusCode::NOT_FOUND {
            return DepError::Api {
                status: 404,
                code: ApiError::NotFound,
            };
        }
        DepError::Unexpected {
            status: status.as_u16(),
            excerpt: self.excerpt(&text),
        }
    }

    fn bad_json(&self, path: &str, detail: &str) -> DepError {
        DepError::BadJson {
            path: path.into(),
            detail: self.excerpt(detail),
        }
    }

    /// `text` without any secret we know of.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let secrets = [
            Some(self.credentials.consumer_secret.as_str()),
            Some(self.credentials.access_secret.as_str()),
            Some(self.credentials.access_token.as_str()),
            self.session.as_deref(),
        ];
        for secret in secrets.into_iter().flatten().filter(|s| !s.is_empty()) {
            for form in [secret.to_owned(), oauth::percent_encode(secret)] {
                out = out.replace(&form, "<redacted>");
            }
        }
        out
    }

    /// A short, single-line, redacted excerpt of an answer for messages.
    fn excerpt(&self, text: &str) -> String {
        let redacted = self.redact(text);
        let mut out: String = redacted
            .trim()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(EXCERPT_CHARS)
            .collect();
        if redacted.trim().chars().count() > EXCERPT_CHARS {
            out.push('…');
        }
        out
    }
}

fn serial_list<S: AsRef<str>>(serials: &[S]) -> Result<Vec<&str>, DepError> {
    if serials.len() > MAX_SERIALS {
        return Err(DepError::InvalidRequest(format!(
            "{} serials in one request; at most {MAX_SERIALS}",
            serials.len()
        )));
    }
    Ok(serials.iter().map(AsRef::as_ref).collect())
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not JSON ({e})")),
    }
}

fn opt_str(value: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{key}` is not a string")),
    }
}

fn scalar_string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(scalar_string(Value::deserialize(d)?).unwrap_or_default())
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(scalar_string(Value::deserialize(d)?))
}

fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.into_iter().filter_map(scalar_string).collect(),
        other => scalar_string(other).into_iter().collect(),
    })
}

fn lenient_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AccountUrl>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|u| serde_json::from_value(u).ok())
            .collect(),
        _ => vec![],
    })
}

fn lenient_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<UrlLimit>, D::Error> {
    let number = |v: Option<&Value>| match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => Some(UrlLimit {
            default: number(m.get("default")),
            maximum: number(m.get("maximum")),
        }),
        _ => None,
    })
}

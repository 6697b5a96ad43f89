//! The Device Assignment (DEP / ADE) API client's transport and session: how every call
//! is built, authenticated, retried and mapped to an error. The endpoints themselves are
//! in [`super::endpoints`].
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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::Value;

use super::error::{ApiError, DepError};
use super::oauth;
use super::oauth::DepCredentials;
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

    /// One API call with the session: creates a session first if there is none, and
    /// once a new one when Apple says the session is no longer valid. The body of a
    /// success answer.
    pub(super) async fn call(
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

    pub(super) fn bad_json(&self, path: &str, detail: &str) -> DepError {
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

//! The Device Assignment API on top of [`State`]: routing, headers, sessions, OAuth,
//! and one handler per endpoint. Everything here runs under the state lock and is
//! synchronous; delays and dropped connections are the server's business.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::{AUTHORIZATION, HOST, USER_AGENT};
use http::{HeaderMap, Method};
use serde::Serialize;
use serde_json::{Map, Value, json};

use mdm_core::dep::client::{MEDIA_TYPE, PROTOCOL_HEADER, SESSION_HEADER};
use mdm_core::dep::oauth;

use crate::config::{ErrorStyle, UnknownSession};
use crate::cursor::{Cursor, Kind};
use crate::devgen::{Device, iso};
use crate::state::{Op, Session, State, fill_profile_defaults};

/// The newest `X-Server-Protocol-Version` the simulator knows; also what a request
/// without the header gets.
pub const LATEST_PROTOCOL: u32 = 10;

/// Endpoints and their methods.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/session", &["GET"]),
    ("/account", &["GET"]),
    ("/server/devices", &["POST"]),
    ("/devices/sync", &["POST"]),
    ("/devices", &["POST"]),
    ("/devices/disown", &["POST"]),
    ("/profile", &["POST", "GET"]),
    ("/profile/devices", &["DELETE", "POST", "PUT"]),
    ("/device/activationlock", &["POST"]),
    ("/account-driven-enrollment/profile", &["POST"]),
    ("/os-beta-enrollment/tokens", &["GET"]),
];

/// A request as the handlers see it (body already read).
pub struct Req<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// An answer before it becomes a hyper response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json<T: Serialize>(status: u16, value: &T) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(value).expect("serialisable"),
            content_type: Some(MEDIA_TYPE),
            headers: Vec::new(),
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: Vec::new(),
            content_type: None,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// An error answer whose body is `text` in `style`.
pub fn error_reply(style: ErrorStyle, status: u16, text: &str) -> Reply {
    match style {
        ErrorStyle::JsonQuoted => Reply {
            status,
            body: serde_json::to_vec(text).expect("string"),
            content_type: Some(MEDIA_TYPE),
            headers: Vec::new(),
        },
        ErrorStyle::Plain => Reply {
            status,
            body: text.as_bytes().to_vec(),
            content_type: Some("text/plain;charset=UTF8"),
            headers: Vec::new(),
        },
    }
}

/// A device on the wire. Borrowed, so a 1000-device page allocates nothing per field.
#[derive(Serialize)]
struct Wire<'a> {
    serial_number: &'a str,
    model: &'a str,
    description: &'a str,
    color: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    asset_tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_family: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    os: Option<&'a str>,
    profile_status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_uuid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_assign_time: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_push_time: Option<&'a str>,
    device_assigned_by: &'a str,
    device_assigned_date: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    op_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<&'static str>,
}

impl<'a> Wire<'a> {
    fn new(d: &'a Device, version: u32) -> Self {
        let os = match (d.os.as_str(), version) {
            (_, v) if v < 2 => None,
            ("iPadOS", v) if v < 7 => Some("iOS"),
            (os, _) => Some(os),
        };
        Wire {
            serial_number: &d.serial_number,
            model: &d.model,
            description: &d.description,
            color: &d.color,
            asset_tag: d.asset_tag.as_deref(),
            device_family: (version >= 2).then_some(d.device_family.as_str()),
            os,
            profile_status: &d.profile_status,
            profile_uuid: d.profile_uuid.as_deref(),
            profile_assign_time: d.profile_assign_time.as_deref(),
            profile_push_time: d.profile_push_time.as_deref(),
            device_assigned_by: &d.device_assigned_by,
            device_assigned_date: &d.device_assigned_date,
            op_type: None,
            op_date: None,
            response_status: None,
        }
    }
}

#[derive(Serialize)]
struct Page<'a> {
    devices: Vec<Wire<'a>>,
    cursor: String,
    more_to_follow: bool,
    fetched_until: String,
}

fn protocol_version(headers: &HeaderMap) -> u32 {
    headers
        .get(PROTOCOL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(LATEST_PROTOCOL)
}

/// `Ok(None)` when absent or null.
fn limit_of(body: &Map<String, Value>) -> Result<Option<i64>, ()> {
    match body.get("limit") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

enum Serials {
    Ok(Vec<String>),
    Missing,
    Malformed,
}

fn serials_of(body: &Map<String, Value>, max: usize) -> Serials {
    match body.get("devices") {
        None | Some(Value::Null) => Serials::Missing,
        Some(Value::Array(items)) if items.is_empty() => Serials::Missing,
        Some(Value::Array(items)) if items.len() > max => Serials::Malformed,
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(|s| s.trim().to_owned()))
            .collect::<Option<Vec<_>>>()
            .map_or(Serials::Malformed, Serials::Ok),
        Some(_) => Serials::Malformed,
    }
}

pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|part| {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        (oauth::percent_decode(k, true)? == name)
            .then(|| oauth::percent_decode(v, true))
            .flatten()
    })
}

impl State {
    fn err(&self, status: u16, code: &str) -> Reply {
        error_reply(self.cfg.error_style, status, code)
    }

    fn malformed(&self) -> Reply {
        self.err(400, "MALFORMED_REQUEST_BODY")
    }

    /// The JSON object of a body; an empty body reads as `{}` when `empty_ok`.
    fn object(&self, body: &[u8], empty_ok: bool) -> Result<Map<String, Value>, Reply> {
        if empty_ok && body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(self.malformed()),
        }
    }

    fn serials(&self, body: &Map<String, Value>) -> Result<Vec<String>, Reply> {
        match serials_of(body, self.cfg.max_serials) {
            Serials::Ok(s) => Ok(s),
            Serials::Missing => Err(self.err(400, "DEVICE_ID_REQUIRED")),
            Serials::Malformed => Err(self.malformed()),
        }
    }

    /// Answers one API request (faults already applied).
    pub fn handle(&mut self, req: &Req) -> Reply {
        self.stats.requests += 1;
        *self
            .stats
            .requests_by_path
            .entry(req.path.to_owned())
            .or_default() += 1;
        let reply = self.route(req);
        *self
            .stats
            .responses_by_status
            .entry(reply.status)
            .or_default() += 1;
        reply
    }

    /// Counts a request answered by a fault.
    pub fn count_faulted(&mut self, path: &str, status: Option<u16>) {
        self.stats.requests += 1;
        *self
            .stats
            .requests_by_path
            .entry(path.to_owned())
            .or_default() += 1;
        if let Some(status) = status {
            *self.stats.responses_by_status.entry(status).or_default() += 1;
        }
    }

    fn route(&mut self, req: &Req) -> Reply {
        let Some(&(_, methods)) = ROUTES.iter().find(|(p, _)| *p == req.path) else {
            return self.err(404, "NOT_FOUND");
        };
        if !methods.contains(&req.method.as_str()) {
            return self
                .err(405, "METHOD_NOT_ALLOWED")
                .header("Allow", methods.join(", "));
        }
        if self.cfg.require_user_agent {
            match req.headers.get(USER_AGENT).map(|v| v.to_str()) {
                None => return self.err(400, "USER_AGENT_MISSING"),
                Some(Ok(ua)) if ua.trim().is_empty() => {
                    return self.err(400, "USER_AGENT_MISSING");
                }
                Some(Err(_)) => return self.err(400, "USER_AGENT_INVALID"),
                Some(Ok(_)) => {}
            }
        }
        let version = protocol_version(req.headers);
        if req.path == "/session" {
            return self.session(req);
        }

        // The session.
        let token = req
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        let now = self.now_ms();
        match self.sessions.get(&token) {
            None => {
                return match self.cfg.unknown_session {
                    UnknownSession::Unauthorized => self.err(401, "UNAUTHORIZED"),
                    UnknownSession::Forbidden => self.err(403, "FORBIDDEN"),
                };
            }
            Some(s) if s.expires_at_ms <= now => {
                self.sessions.remove(&token);
                return self.err(401, "UNAUTHORIZED");
            }
            Some(_) => {}
        }
        let mut reply = if self.modes.terms_not_signed {
            self.err(403, "T_C_NOT_SIGNED")
        } else if self.modes.access_denied {
            self.err(403, "ACCESS_DENIED")
        } else {
            match (req.method.as_str(), req.path) {
                ("GET", "/account") => self.account(),
                ("POST", "/server/devices") => self.fetch(req, version),
                ("POST", "/devices/sync") => self.sync(req, version),
                ("POST", "/devices") => self.details(req, version),
                ("POST", "/devices/disown") => self.disown(req),
                ("POST", "/profile") => self.define_profile(req, version),
                ("GET", "/profile") => self.get_profile(req),
                ("POST" | "PUT", "/profile/devices") => self.assign(req, version),
                ("DELETE", "/profile/devices") => self.remove_profile(req),
                ("POST", "/device/activationlock") => self.activation_lock(req),
                ("POST", "/account-driven-enrollment/profile") => self.ade_profile(req),
                ("GET", "/os-beta-enrollment/tokens") => {
                    Reply::json(200, &json!({ "betaEnrollmentTokens": [] }))
                }
                _ => self.err(404, "NOT_FOUND"),
            }
        };

        // Rotation.
        let rotate_every = self.cfg.rotate_every.filter(|&n| n > 0);
        let lifetime = self.cfg.session_lifetime.as_millis() as u64;
        if let Some(session) = self.sessions.get_mut(&token) {
            session.requests += 1;
            if rotate_every.is_some_and(|n| session.requests % n == 0) {
                if !self.cfg.keep_rotated_sessions {
                    self.sessions.remove(&token);
                }
                let new = self.issue_session(now + lifetime);
                self.stats.sessions_rotated += 1;
                reply = reply.header(SESSION_HEADER, new);
            }
        }
        reply
    }

    fn issue_session(&mut self, expires_at_ms: u64) -> String {
        let token = crate::servers::session_token(self.org);
        self.sessions.insert(
            token.clone(),
            Session {
                expires_at_ms,
                requests: 0,
            },
        );
        token
    }

    /// `GET /session`: OAuth 1.0a HMAC-SHA1 as Apple checks it.
    fn session(&mut self, req: &Req) -> Reply {
        let reply = self.session_inner(req);
        if reply.status != 200 {
            self.stats.sessions_refused += 1;
        }
        reply
    }

    fn session_inner(&mut self, req: &Req) -> Reply {
        const KNOWN: [&str; 8] = [
            "realm",
            "oauth_consumer_key",
            "oauth_token",
            "oauth_signature_method",
            "oauth_timestamp",
            "oauth_nonce",
            "oauth_version",
            "oauth_signature",
        ];
        let missing = || "Missing required authorization parameter";
        let Some(header) = req.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return self.err(400, missing());
        };
        let Some(params) = oauth::parse_authorization(header) else {
            return self.err(400, missing());
        };
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, v) in &params {
            if !KNOWN.contains(&k.as_str()) {
                return self.err(400, "Unsupported oauth parameters");
            }
            if seen.insert(k, v).is_some() {
                return self.err(400, "Duplicated OAuth protocol parameter");
            }
        }
        match seen.get("oauth_signature_method") {
            None => return self.err(400, missing()),
            Some(&m) if m != oauth::SIGNATURE_METHOD => {
                return self.err(400, "Unsupported signature method");
            }
            Some(_) => {}
        }
        if seen
            .get("oauth_version")
            .is_some_and(|&v| v != oauth::VERSION)
        {
            return self.err(400, "Unsupported oauth parameters");
        }
        let required = [
            "oauth_consumer_key",
            "oauth_token",
            "oauth_timestamp",
            "oauth_nonce",
            "oauth_signature",
        ];
        if required.iter().any(|k| !seen.contains_key(k)) {
            return self.err(400, missing());
        }
        let creds = &self.cfg.credentials;
        if seen["oauth_consumer_key"] != creds.consumer_key {
            return self.err(401, "Unauthorized consumer key");
        }
        if seen["oauth_token"] != creds.access_token || self.modes.token_revoked {
            return self.err(401, "Invalid / expired token");
        }
        if let Some(skew) = self.cfg.max_clock_skew {
            let Ok(ts) = seen["oauth_timestamp"].parse::<u64>() else {
                return self.err(401, "Invalid timestamp");
            };
            if ts.abs_diff(self.now_secs()) > skew.as_secs() {
                return self.err(401, "Invalid timestamp");
            }
        }
        let path = match req.query {
            Some(q) => format!("{}?{q}", req.path),
            None => req.path.to_owned(),
        };
        let url = match &self.cfg.public_base_url {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => {
                let host = req
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("127.0.0.1");
                format!("http://{host}{path}")
            }
        };
        if !oauth::verify_authorization(
            header,
            "GET",
            &url,
            &creds.consumer_secret,
            &creds.access_secret,
        ) {
            return self.err(401, "Invalid signature");
        }
        let nonce = format!("{}\n{}", seen["oauth_consumer_key"], seen["oauth_nonce"]);
        if !self.nonces.insert(nonce) {
            return self.err(401, "Nonce used");
        }
        if self.modes.reject_sessions > 0 {
            self.modes.reject_sessions -= 1;
            return self.err(401, "UNAUTHORIZED");
        }
        if self.modes.terms_not_signed {
            return self.err(403, "T_C_NOT_SIGNED");
        }
        if self.modes.access_denied {
            return self.err(403, "ACCESS_DENIED");
        }
        let expires = self.now_ms() + self.cfg.session_lifetime.as_millis() as u64;
        let token = self.issue_session(expires);
        self.stats.sessions_issued += 1;
        Reply::json(200, &json!({ "auth_session_token": token }))
    }

    /// `GET /account`.
    pub fn account_json(&self) -> Value {
        let a = &self.cfg.account;
        let limit =
            |l: crate::config::PageLimit| json!({"default": l.default, "maximum": l.maximum});
        let urls: Vec<Value> = ROUTES
            .iter()
            .map(|(uri, methods)| {
                let mut u = json!({ "uri": uri, "http_method": methods });
                match *uri {
                    "/server/devices" => u["limit"] = limit(self.cfg.fetch_limit),
                    "/devices/sync" => u["limit"] = limit(self.cfg.sync_limit),
                    _ => {}
                }
                u
            })
            .collect();
        let mut v = json!({
            "server_name": a.server_name,
            "server_uuid": a.server_uuid,
            "admin_id": a.admin_id,
            "org_name": a.org_name,
            "org_email": a.org_email,
            "org_phone": a.org_phone,
            "org_address": a.org_address,
            "org_id": a.org_id,
            "org_id_hash": a.org_id_hash,
            "org_type": a.org_type,
            "org_version": a.org_version,
            "urls": urls,
        });
        if let Some(f) = &a.facilitator_id {
            v["facilitator_id"] = f.as_str().into();
        }
        v
    }

    fn account(&self) -> Reply {
        Reply::json(200, &self.account_json())
    }

    fn decode_cursor(&self, s: &str) -> Option<Cursor> {
        let c = Cursor::decode(self.cursor_key, s)?;
        (c.event <= self.events.len() as u64 && c.position <= self.devices.end()).then_some(c)
    }

    /// A fetch cursor at device index `position` (for benchmarks and tests).
    pub fn fetch_cursor_at(&self, position: u64) -> String {
        Cursor {
            kind: Kind::Fetch,
            position: position.min(self.devices.end()),
            event: self.events.len() as u64,
            issued_ms: self.now_ms(),
            exhausted: false,
        }
        .encode(self.cursor_key)
    }

    fn page_reply(
        &mut self,
        devices: &[(Device, Option<(Op, u64)>)],
        cursor: Cursor,
        more: bool,
        version: u32,
    ) -> Reply {
        self.stats.devices_served += devices.len() as u64;
        let page = Page {
            devices: devices
                .iter()
                .map(|(d, event)| {
                    let mut w = Wire::new(d, version);
                    if let Some((op, at)) = event {
                        w.op_type = Some(op.as_str());
                        w.op_date = Some(iso(*at));
                    }
                    w
                })
                .collect(),
            cursor: cursor.encode(self.cursor_key),
            more_to_follow: more,
            fetched_until: iso(self.now_secs()),
        };
        Reply::json(200, &page)
    }

    /// `POST /server/devices`.
    fn fetch(&mut self, req: &Req, version: u32) -> Reply {
        let body = match self.object(req.body, true) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Ok(limit) = limit_of(&body) else {
            return self.malformed();
        };
        let limit = self.cfg.fetch_limit.resolve(limit);
        let (start, event) = match body.get("cursor") {
            None | Some(Value::Null) => (0, self.events.len() as u64),
            Some(Value::String(s)) if s.is_empty() => (0, self.events.len() as u64),
            Some(Value::String(s)) => match self.decode_cursor(s) {
                None => return self.err(400, "INVALID_CURSOR"),
                Some(c) if c.exhausted || c.kind == Kind::Sync => {
                    return self.err(400, "EXHAUSTED_CURSOR");
                }
                Some(c) => (c.position, c.event),
            },
            Some(_) => return self.err(400, "INVALID_CURSOR"),
        };
        let mut devices = Vec::with_capacity(limit.min(4096));
        let end = self.devices.end();
        let mut i = start;
        while i < end && devices.len() < limit {
            if self.devices.is_live(i) {
                devices.push((self.devices.render(i), None));
            }
            i += 1;
        }
        let more = self.devices.live_from(i) > 0;
        self.stats.devices_fetched += devices.len() as u64;
        let cursor = Cursor {
            kind: Kind::Fetch,
            position: i,
            event,
            issued_ms: self.now_ms(),
            exhausted: !more,
        };
        self.page_reply(&devices, cursor, more, version)
    }

    /// `POST /devices/sync`.
    fn sync(&mut self, req: &Req, version: u32) -> Reply {
        let body = match self.object(req.body, false) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Ok(limit) = limit_of(&body) else {
            return self.malformed();
        };
        let limit = self.cfg.sync_limit.resolve(limit);
        let cursor = match body.get("cursor") {
            None | Some(Value::Null) => return self.err(400, "CURSOR_REQUIRED"),
            Some(Value::String(s)) if s.trim().is_empty() => {
                return self.err(400, "CURSOR_REQUIRED");
            }
            Some(Value::String(s)) => match self.decode_cursor(s) {
                Some(c) => c,
                None => return self.err(400, "INVALID_CURSOR"),
            },
            Some(_) => return self.err(400, "INVALID_CURSOR"),
        };
        let now = self.now_ms();
        if now.saturating_sub(cursor.issued_ms) > self.cfg.cursor_max_age.as_millis() as u64 {
            return self.err(400, "EXPIRED_CURSOR");
        }
        let start = cursor.event as usize;
        let end = (start + limit).min(self.events.len());
        let devices: Vec<_> = self.events[start..end]
            .iter()
            .map(|e| (self.devices.render(e.index), Some((e.op, e.at))))
            .collect();
        let more = end < self.events.len();
        self.stats.devices_synced += devices.len() as u64;
        let next = Cursor {
            kind: Kind::Sync,
            position: 0,
            event: end as u64,
            issued_ms: now,
            exhausted: true,
        };
        self.page_reply(&devices, next, more, version)
    }

    /// `POST /devices`.
    fn details(&mut self, req: &Req, version: u32) -> Reply {
        let serials = match self.object(req.body, false).and_then(|b| self.serials(&b)) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let mut out = Map::new();
        for serial in serials {
            let v = match self.devices.live(&serial) {
                Some(i) => {
                    let d = self.devices.render(i);
                    let mut w = Wire::new(&d, version);
                    w.response_status = Some("SUCCESS");
                    self.stats.devices_served += 1;
                    serde_json::to_value(w).expect("serialisable")
                }
                None => json!({ "serial_number": serial, "response_status": "NOT_ACCESSIBLE" }),
            };
            out.insert(serial, v);
        }
        Reply::json(200, &json!({ "devices": out }))
    }

    /// `POST /devices/disown`.
    fn disown(&mut self, req: &Req) -> Reply {
        let serials = match self.object(req.body, false).and_then(|b| self.serials(&b)) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let mut out = Map::new();
        for serial in serials {
            let status = if self.delete_device(&serial) {
                "SUCCESS"
            } else {
                "NOT_ACCESSIBLE"
            };
            out.insert(serial, status.into());
        }
        self.stats.device_results += out.len() as u64;
        Reply::json(200, &json!({ "devices": out }))
    }

    fn url_ok(&self, url: &str) -> bool {
        if url.len() > 2000 {
            return false;
        }
        let Ok(uri) = url.parse::<http::Uri>() else {
            return false;
        };
        let Some(host) = uri.host() else {
            return false;
        };
        match uri.scheme_str() {
            Some("https") => true,
            Some("http") => {
                self.cfg.allow_loopback_http_profile_url
                    && (host == "localhost" || host == "[::1]" || host.starts_with("127."))
            }
            _ => false,
        }
    }

    /// The 400 code a profile definition earns, if any (`dep-api.md` §6).
    fn validate_profile(&self, p: &Map<String, Value>) -> Result<(), &'static str> {
        const MALFORMED: &str = "MALFORMED_REQUEST_BODY";
        let text = |key: &str| -> Result<Option<&str>, &'static str> {
            match p.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(MALFORMED),
            }
        };
        let flag = |key: &str| -> Result<Option<bool>, &'static str> {
            match p.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(MALFORMED),
            }
        };
        let strings = |key: &str| -> Result<(), &'static str> {
            match p.get(key) {
                None | Some(Value::Null) => Ok(()),
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
                Some(_) => Err(MALFORMED),
            }
        };
        let len = |s: Option<&str>| s.map_or(0, |s| s.chars().count());
        match text("profile_name")? {
            None | Some("") => return Err("CONFIG_NAME_REQUIRED"),
            Some(n) if n.chars().count() > 125 => return Err("CONFIG_NAME_INVALID"),
            Some(_) => {}
        }
        match text("url")? {
            None | Some("") => return Err("CONFIG_URL_REQUIRED"),
            Some(u) if !self.url_ok(u) => return Err("CONFIG_URL_INVALID"),
            Some(_) => {}
        }
        if let Some(u) = text("configuration_web_url")?.filter(|u| !u.is_empty())
            && !self.url_ok(u)
        {
            return Err("CONFIG_URL_INVALID");
        }
        for key in [
            "is_supervised",
            "allow_pairing",
            "is_mandatory",
            "await_device_configured",
            "auto_advance_setup",
            "is_multi_user",
            "do_not_use_profile_from_backup",
            "is_return_to_service",
        ] {
            flag(key)?;
        }
        if flag("is_mdm_removable")? == Some(false) && flag("is_supervised")? != Some(true) {
            return Err("FLAGS_INVALID");
        }
        if len(text("department")?) > 125 {
            return Err("DEPARTMENT_INVALID");
        }
        if len(text("support_phone_number")?) > 50 {
            return Err("SUPPORT_PHONE_INVALID");
        }
        let email = text("support_email_address")?;
        if len(email) > 250 || email.is_some_and(|e| !e.is_empty() && !e.contains('@')) {
            return Err("SUPPORT_EMAIL_INVALID");
        }
        if len(text("org_magic")?) > 256 {
            return Err("MAGIC_INVALID");
        }
        let letters = |s: &str, lens: std::ops::RangeInclusive<usize>| {
            lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic())
        };
        if text("language")?.is_some_and(|l| !l.is_empty() && !letters(l, 2..=3)) {
            return Err("LOCALE_INVALID");
        }
        if text("region")?.is_some_and(|r| !r.is_empty() && !letters(r, 2..=2)) {
            return Err("LOCALE_INVALID");
        }
        for key in [
            "skip_setup_items",
            "anchor_certs",
            "supervising_host_certs",
            "devices",
        ] {
            strings(key)?;
        }
        Ok(())
    }

    fn assign_all(&mut self, serials: &[String], profile: &Arc<str>, version: u32) -> Reply {
        let mut out = Map::new();
        let mut throttled = false;
        for serial in serials {
            let status = self.assign_serial(serial, profile, version);
            throttled |= status == "THROTTLED";
            out.insert(serial.clone(), status.into());
        }
        self.stats.device_results += out.len() as u64;
        let mut v = json!({ "profile_uuid": profile.as_ref(), "devices": out });
        if throttled && version >= 10 {
            v["retry_after_seconds"] = self.cfg.throttle_retry_after.into();
        }
        Reply::json(200, &v)
    }

    /// `POST /profile`.
    fn define_profile(&mut self, req: &Req, version: u32) -> Reply {
        let mut p = match self.object(req.body, false) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if let Err(code) = self.validate_profile(&p) {
            return self.err(400, code);
        }
        let serials = match p.remove("devices") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() > self.cfg.max_serials => {
                return self.malformed();
            }
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(|s| s.trim().to_owned()))
                .collect(),
            Some(_) => return self.malformed(),
        };
        p.remove("profile_uuid");
        fill_profile_defaults(&mut p);
        let uuid = self.new_profile_uuid();
        p.insert("profile_uuid".into(), uuid.as_ref().into());
        self.profiles.insert(uuid.clone(), p);
        self.assign_all(&serials, &uuid, version)
    }

    /// `GET /profile?profile_uuid=`.
    fn get_profile(&mut self, req: &Req) -> Reply {
        let Some(uuid) = query_param(req.query, "profile_uuid").filter(|u| !u.is_empty()) else {
            return self.err(400, "PROFILE_UUID_REQUIRED");
        };
        match self.profiles.get(uuid.as_str()) {
            Some(p) => Reply::json(200, p),
            None => self.err(404, "NOT_FOUND"),
        }
    }

    /// `POST` / `PUT /profile/devices`.
    fn assign(&mut self, req: &Req, version: u32) -> Reply {
        let body = match self.object(req.body, false) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let uuid = match body.get("profile_uuid") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => return self.err(400, "PROFILE_UUID_REQUIRED"),
        };
        let serials = match self.serials(&body) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let Some((uuid, _)) = self.profiles.get_key_value(uuid.as_str()) else {
            return self.err(404, "NOT_FOUND");
        };
        let uuid = uuid.clone();
        self.assign_all(&serials, &uuid, version)
    }

    /// `DELETE /profile/devices`.
    fn remove_profile(&mut self, req: &Req) -> Reply {
        let serials = match self.object(req.body, false).and_then(|b| self.serials(&b)) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let mut out = Map::new();
        for serial in serials {
            let status = self.unassign_serial(&serial);
            out.insert(serial, status.into());
        }
        self.stats.device_results += out.len() as u64;
        Reply::json(200, &json!({ "devices": out }))
    }

    /// `POST /device/activationlock`.
    fn activation_lock(&mut self, req: &Req) -> Reply {
        let body = match self.object(req.body, false) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let serial = match body.get("device") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => return self.malformed(),
        };
        for key in ["escrow_key", "lost_message"] {
            if !matches!(body.get(key), None | Some(Value::Null | Value::String(_))) {
                return self.malformed();
            }
        }
        let status = if self.devices.live(&serial).is_some() {
            self.activation_locks
                .insert(serial.clone(), Value::Object(body));
            "SUCCESS"
        } else {
            "NOT_ACCESSIBLE"
        };
        Reply::json(
            200,
            &json!({ "serial_number": serial, "response_status": status }),
        )
    }

    /// `POST /account-driven-enrollment/profile`.
    fn ade_profile(&mut self, req: &Req) -> Reply {
        let body = match self.object(req.body, false) {
            Ok(b) => b,
            Err(r) => return r,
        };
        match body.get("mdm_service_discovery_url") {
            None | Some(Value::Null) => self.err(400, "MDM_SERVICE_DISCOVERY_URL_REQUIRED"),
            Some(Value::String(s)) if s.is_empty() => {
                self.err(400, "MDM_SERVICE_DISCOVERY_URL_REQUIRED")
            }
            Some(Value::String(s)) if self.url_ok(s) => {
                self.discovery_url = Some(s.clone());
                Reply::empty(200)
            }
            Some(_) => self.err(400, "MDM_SERVICE_DISCOVERY_URL_NOT_VALID"),
        }
    }
}

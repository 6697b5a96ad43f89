//! What a Device Assignment request and answer are here: the endpoint table, [`Req`],
//! [`Reply`], error bodies in the configured style, and reading request bodies
//! (limits, serial lists, query parameters).

use http::{HeaderMap, Method};
use serde::Serialize;
use serde_json::{Map, Value};

use mdm_core::dep::client::{MEDIA_TYPE, PROTOCOL_HEADER};
use mdm_core::dep::oauth;

use crate::config::ErrorStyle;
use crate::state::State;

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

pub(super) fn protocol_version(headers: &HeaderMap) -> u32 {
    headers
        .get(PROTOCOL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(LATEST_PROTOCOL)
}

/// `Ok(None)` when absent or null.
pub(super) fn limit_of(body: &Map<String, Value>) -> Result<Option<i64>, ()> {
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
    pub(super) fn err(&self, status: u16, code: &str) -> Reply {
        error_reply(self.cfg.error_style, status, code)
    }

    pub(super) fn malformed(&self) -> Reply {
        self.err(400, "MALFORMED_REQUEST_BODY")
    }

    /// The JSON object of a body; an empty body reads as `{}` when `empty_ok`.
    pub(super) fn object(&self, body: &[u8], empty_ok: bool) -> Result<Map<String, Value>, Reply> {
        if empty_ok && body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(self.malformed()),
        }
    }

    pub(super) fn serials(&self, body: &Map<String, Value>) -> Result<Vec<String>, Reply> {
        match serials_of(body, self.cfg.max_serials) {
            Serials::Ok(s) => Ok(s),
            Serials::Missing => Err(self.err(400, "DEVICE_ID_REQUIRED")),
            Serials::Malformed => Err(self.malformed()),
        }
    }
}

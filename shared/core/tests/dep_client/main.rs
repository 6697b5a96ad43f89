//! The Device Assignment API client against a scripted fake of Apple's service: OAuth
//! signing (checked by an independent implementation here), sessions and their
//! rotation, re-authentication, error codes, Retry-After and backoff on a manual clock,
//! and every recorded DEP response of the test vectors.
//!
//! This file holds the fake and its helpers; the tests are in one module per concern:
//! `signing`, `sessions`, `errors`, `retry`, `bodies`.

mod bodies;
mod errors;
mod retry;
mod sessions;
mod signing;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use futures::executor::block_on;
use hmac::{Hmac, Mac};
use http::{Method, Request, Response};
use mdm_core::Clock;
use mdm_core::dep::client::{
    DepClient, MEDIA_TYPE, RetryPolicy, parse_http_date, parse_retry_after,
};
use mdm_core::dep::endpoints::MAX_SERIALS;
use mdm_core::dep::error::{ApiError, DepError};
use mdm_core::dep::oauth;
use mdm_core::dep::oauth::DepCredentials;
use mdm_core::dep::sync::FeedError;
use mdm_core::dep::wire::{Account, DevicePage, DeviceStatus};
use mdm_core::platform::TransportError;
use mdm_core::platform::testing::{FnHttp, ManualClock};
use serde_json::{Value, json};
use sha1::Sha1;

const BASE: &str = "https://mdmenrollment.apple.com";
const T0: u64 = 1_800_000_000;

fn creds() -> DepCredentials {
    DepCredentials {
        consumer_key: "CK_48dd68d198350f51258e885ce9a5c37ab7f98543c4a697323d75682a6c10a32501cb247e3db08105db868f73f2c972bdb6ae77112aea803b9219eb52689d42e6".into(),
        consumer_secret: "CS_34c7b2b531a600d99a0e4edcf4a78ded79b86ef318118c2f5bcfee1b011108c32d5302df801adbe29d446eb78f02b13144e323eb9aad51c79f01e50cb45c3a68".into(),
        access_token: "AT_927696831c59ba510cfe4ec1a69e5267c19881257d4bca2906a99d0785b785a6f6fdeb09774954fdd5e2d0ad952e3af52c6d8d2f21c924ba0caf4a031c158b89".into(),
        access_secret: "AS_c31afd7a09691d83548489336e8ff1cb11b82b6bca13f793344496a556b1f4972eaff4dde6deb5ac9cf076fdfa97ec97699c34d515947b9cf9ed31c99dded6ba".into(),
    }
}

// ---------------------------------------------------------------------------------
// An independent OAuth 1.0a check (not using mdm_core::dep::oauth).

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn dec(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn hmac_sha1_b64(key: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks Apple's requirements on the `/session` Authorization header; the parameters.
fn check_oauth(
    req: &Request<Vec<u8>>,
    clock: &ManualClock,
    nonces: &mut HashSet<String>,
) -> Result<BTreeMap<String, String>, String> {
    let header = req
        .headers()
        .get("authorization")
        .ok_or("no Authorization")?
        .to_str()
        .map_err(|_| "not ASCII")?;
    let rest = header
        .strip_prefix("OAuth realm=\"ADM\", ")
        .ok_or("no OAuth realm=\"ADM\"")?;
    let mut params = BTreeMap::new();
    for part in rest.split(", ") {
        let (k, v) = part.split_once('=').ok_or("no =")?;
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or("unquoted")?;
        if params.insert(k.to_owned(), dec(v)).is_some() {
            return Err(format!("duplicate {k}"));
        }
    }
    let keys: Vec<_> = params.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "oauth_consumer_key",
            "oauth_nonce",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_timestamp",
            "oauth_token",
            "oauth_version"
        ]
    );
    let c = creds();
    if params["oauth_consumer_key"] != c.consumer_key || params["oauth_token"] != c.access_token {
        return Err("wrong consumer key or token".into());
    }
    if params["oauth_signature_method"] != "HMAC-SHA1" || params["oauth_version"] != "1.0" {
        return Err("method/version".into());
    }
    if params["oauth_timestamp"] != clock.unix_seconds().to_string() {
        return Err("timestamp is not the clock's".into());
    }
    if params["oauth_nonce"].len() < 16 || !nonces.insert(params["oauth_nonce"].clone()) {
        return Err("nonce reused".into());
    }
    let uri = req.uri();
    let url = format!(
        "{}://{}{}",
        uri.scheme_str().unwrap(),
        uri.authority().unwrap(),
        uri.path()
    );
    let normalized = params
        .iter()
        .filter(|(k, _)| *k != "oauth_signature")
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!("GET&{}&{}", enc(&url), enc(&normalized));
    let key = format!("{}&{}", enc(&c.consumer_secret), enc(&c.access_secret));
    if hmac_sha1_b64(&key, &base) != params["oauth_signature"] {
        return Err("bad signature".into());
    }
    Ok(params)
}

// ---------------------------------------------------------------------------------
// The scripted fake.

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    session: Option<String>,
    body: Value,
}

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    transport: Option<String>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply::raw(status, body.to_string().as_bytes())
    }
    fn text(status: u16, body: &str) -> Reply {
        Reply::raw(status, body.as_bytes())
    }
    fn raw(status: u16, body: &[u8]) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: body.to_vec(),
            transport: None,
        }
    }
    fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
    fn transport(msg: &str) -> Reply {
        Reply {
            transport: Some(msg.into()),
            ..Reply::raw(0, b"")
        }
    }
}

#[derive(Default)]
struct Fake {
    issued: u32,
    valid: HashSet<String>,
    nonces: HashSet<String>,
    seen: Vec<Seen>,
    oauth_failures: Vec<String>,
    /// Replies to API calls made with a valid session, in order.
    script: VecDeque<Reply>,
    /// Replies to `/session` (after the OAuth check) instead of issuing a token.
    session_script: VecDeque<Reply>,
    /// Every API call is answered 401 whatever the session.
    refuse_all: bool,
}

impl Fake {
    fn push(&mut self, r: Reply) {
        self.script.push_back(r);
    }

    fn sessions_created(&self) -> usize {
        self.seen.iter().filter(|s| s.path == "/session").count()
    }

    fn api_calls(&self) -> Vec<&Seen> {
        self.seen.iter().filter(|s| s.path != "/session").collect()
    }

    fn handle(
        &mut self,
        req: Request<Vec<u8>>,
        clock: &ManualClock,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let h = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h("user-agent").as_deref(), Some("mdm-server/0.1.0"));
        assert_eq!(h("x-server-protocol-version").as_deref(), Some("10"));
        assert_eq!(h("content-type").as_deref(), Some(MEDIA_TYPE));
        assert_eq!(h("accept").as_deref(), Some(MEDIA_TYPE));
        let path = req
            .uri()
            .path_and_query()
            .unwrap()
            .as_str()
            .trim_start_matches("/dep")
            .to_owned();
        let session = h("x-adm-auth-session");
        self.seen.push(Seen {
            method: req.method().clone(),
            path: path.clone(),
            session: session.clone(),
            body: serde_json::from_slice(req.body()).unwrap_or(Value::Null),
        });
        let reply = if path == "/session" {
            assert_eq!(req.method(), Method::GET);
            assert!(session.is_none(), "/session carries no session");
            assert!(req.body().is_empty());
            match check_oauth(&req, clock, &mut self.nonces) {
                Err(e) => {
                    self.oauth_failures.push(e);
                    Reply::text(401, "UNAUTHORIZED")
                }
                Ok(_) => match self.session_script.pop_front() {
                    Some(r) => r,
                    None => {
                        self.issued += 1;
                        let token = format!("sess-{}", self.issued);
                        self.valid.insert(token.clone());
                        Reply::json(200, json!({ "auth_session_token": token }))
                    }
                },
            }
        } else {
            assert!(req.headers().get("authorization").is_none());
            if self.refuse_all || !session.is_some_and(|s| self.valid.contains(&s)) {
                Reply::text(401, "UNAUTHORIZED")
            } else {
                self.script
                    .pop_front()
                    .unwrap_or_else(|| panic!("unscripted call {path}"))
            }
        };
        if let Some(msg) = reply.transport {
            return Err(TransportError(msg));
        }
        let mut resp = Response::builder().status(reply.status);
        for (k, v) in &reply.headers {
            if k.eq_ignore_ascii_case("x-adm-auth-session") {
                self.valid.insert(v.clone());
            }
            resp = resp.header(*k, v);
        }
        Ok(resp.body(reply.body).unwrap())
    }
}

type Handler<'a> = Box<dyn Fn(Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> + 'a>;
type Http<'a> = FnHttp<Handler<'a>>;

fn http<'a>(fake: &'a RefCell<Fake>, clock: &'a ManualClock) -> Http<'a> {
    FnHttp(Box::new(move |req| fake.borrow_mut().handle(req, clock)))
}

fn client<'a>(http: &'a Http<'a>, clock: &'a ManualClock) -> DepClient<'a, Http<'a>, ManualClock> {
    DepClient::new(http, clock, BASE, creds())
}

/// A fake whose first session (`sess-1`) already exists, and a client holding it.
fn with_session(fake: &RefCell<Fake>) -> Option<String> {
    let mut f = fake.borrow_mut();
    f.issued = 1;
    f.valid.insert("sess-1".into());
    Some("sess-1".into())
}

fn vector(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/vectors/micromdm-dep/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

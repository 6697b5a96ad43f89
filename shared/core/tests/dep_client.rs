//! The Device Assignment API client against a scripted fake of Apple's service: OAuth
//! signing (checked by an independent implementation here), sessions and their
//! rotation, re-authentication, error codes, Retry-After and backoff on a manual clock,
//! and every recorded DEP response of the test vectors.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use futures::executor::block_on;
use hmac::{Hmac, Mac};
use http::{Method, Request, Response};
use mdm_core::Clock;
use mdm_core::dep::client::{
    Account, DepClient, DepCredentials, DevicePage, DeviceStatus, MEDIA_TYPE, RetryPolicy,
    parse_http_date, parse_retry_after,
};
use mdm_core::dep::endpoints::MAX_SERIALS;
use mdm_core::dep::error::{ApiError, DepError};
use mdm_core::dep::oauth;
use mdm_core::dep::sync::FeedError;
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

// ---------------------------------------------------------------------------------
// OAuth

#[test]
fn oauth_known_answers() {
    // RFC 5849 §1.2 (photos.example.net).
    let base = oauth::signature_base_string(
        "GET",
        "http://photos.example.net/photos?file=vacation.jpg&size=original",
        &[
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "nnch734d00sl2jdk"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131202"),
            ("oauth_nonce", "chapoH"),
        ],
    )
    .unwrap();
    assert_eq!(
        base,
        "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26oauth_token%3Dnnch734d00sl2jdk%26size%3Doriginal"
    );
    assert_eq!(
        oauth::sign(&base, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00"),
        "MdpQcU8iPSUjWoN/UDMsK2sui9I="
    );

    // Twitter's "Creating a signature" example (query + form body parameters).
    let base = oauth::signature_base_string(
        "post",
        "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
        &[
            (
                "status",
                "Hello Ladies + Gentlemen, a signed OAuth request!",
            ),
            ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
            ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1318622958"),
            (
                "oauth_token",
                "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            ),
            ("oauth_version", "1.0"),
        ],
    )
    .unwrap();
    assert!(base.starts_with("POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key"));
    assert!(base.ends_with("%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521"));
    assert_eq!(
        oauth::sign(
            &base,
            "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
        ),
        "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
    );

    // RFC 5849 §3.4.1.1: repeated names, encoded query, empty values, '+' in the body.
    let base = oauth::signature_base_string(
        "POST",
        "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
        &[
            ("c2", ""),
            ("a3", "2 q"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
        ],
    )
    .unwrap();
    assert_eq!(
        base,
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
    );
}

#[test]
fn oauth_encoding_and_uri_normalisation() {
    assert_eq!(oauth::percent_encode("AZaz09-._~"), "AZaz09-._~");
    assert_eq!(
        oauth::percent_encode("Ladies + Gentlemen/=&"),
        "Ladies%20%2B%20Gentlemen%2F%3D%26"
    );
    assert_eq!(oauth::percent_encode("☃"), "%E2%98%83");
    assert_eq!(
        oauth::percent_decode("a%2Bb+c", true).as_deref(),
        Some("a+b c")
    );
    assert_eq!(oauth::percent_decode("%zz", false), None);
    assert_eq!(
        oauth::base_string_uri("HTTPS://MdmEnrollment.Apple.com:443/session").unwrap(),
        "https://mdmenrollment.apple.com/session"
    );
    assert_eq!(
        oauth::base_string_uri("http://Example.com:80/r?x=1#f").unwrap(),
        "http://example.com/r"
    );
    assert_eq!(
        oauth::base_string_uri("http://127.0.0.1:8080/dep/session").unwrap(),
        "http://127.0.0.1:8080/dep/session"
    );
    assert!(oauth::base_string_uri("/session").is_err());
}

#[test]
fn oauth_header_is_apples_format_and_verifies() {
    let c = creds();
    let url = format!("{BASE}/session");
    let header = oauth::authorization_header(&c, "GET", &url, T0, "0123456789abcdef").unwrap();
    assert!(header.starts_with(&format!(
        "OAuth realm=\"ADM\", oauth_consumer_key=\"{}\", oauth_token=\"{}\", oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"{T0}\", oauth_nonce=\"0123456789abcdef\", oauth_version=\"1.0\", oauth_signature=\"",
        c.consumer_key, c.access_token
    )));
    // Independent recomputation.
    let params = oauth::parse_authorization(&header).unwrap();
    let sig = &params
        .iter()
        .find(|(k, _)| k == "oauth_signature")
        .unwrap()
        .1;
    assert!(header.ends_with(&format!("oauth_signature=\"{}\"", enc(sig))));
    let normalized = params
        .iter()
        .filter(|(k, _)| k != "realm" && k != "oauth_signature")
        .map(|(k, v)| (enc(k), enc(v)))
        .collect::<BTreeMap<_, _>>()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!("GET&{}&{}", enc(&url), enc(&normalized));
    assert_eq!(
        *sig,
        hmac_sha1_b64(
            &format!("{}&{}", enc(&c.consumer_secret), enc(&c.access_secret)),
            &base
        )
    );

    assert!(oauth::verify_authorization(
        &header,
        "GET",
        &url,
        &c.consumer_secret,
        &c.access_secret
    ));
    assert!(!oauth::verify_authorization(
        &header,
        "GET",
        &url,
        "CS_wrong",
        &c.access_secret
    ));
    assert!(!oauth::verify_authorization(
        &header,
        "POST",
        &url,
        &c.consumer_secret,
        &c.access_secret
    ));
    let tampered = header.replace(&format!("\"{T0}\""), &format!("\"{}\"", T0 + 1));
    assert!(!oauth::verify_authorization(
        &tampered,
        "GET",
        &url,
        &c.consumer_secret,
        &c.access_secret
    ));
    let plaintext = header.replace("HMAC-SHA1", "PLAINTEXT");
    assert!(!oauth::verify_authorization(
        &plaintext,
        "GET",
        &url,
        &c.consumer_secret,
        &c.access_secret
    ));
    let duplicated = format!("{header}, oauth_nonce=\"x\"");
    assert!(!oauth::verify_authorization(
        &duplicated,
        "GET",
        &url,
        &c.consumer_secret,
        &c.access_secret
    ));
    assert!(oauth::parse_authorization("Bearer abc").is_none());
}

// ---------------------------------------------------------------------------------
// Sessions

#[test]
fn first_call_creates_a_signed_session_and_sends_it() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock);
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("account_response.json")));

    let account = block_on(c.account()).unwrap();
    assert_eq!(account.server_uuid, "6666ED66666666666666666666666666");
    let f = fake.borrow();
    assert!(f.oauth_failures.is_empty(), "{:?}", f.oauth_failures);
    let paths: Vec<_> = f
        .seen
        .iter()
        .map(|s| (s.method.clone(), s.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [(Method::GET, "/session"), (Method::GET, "/account")]
    );
    assert_eq!(f.seen[1].session.as_deref(), Some("sess-1"));
    assert_eq!(c.session_token(), Some("sess-1"));
}

#[test]
fn explicit_session_and_simulator_base_url() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = DepClient::new(&http, &clock, "http://127.0.0.1:8080/dep/", creds());
    block_on(c.session()).unwrap();
    clock.advance(Duration::from_secs(5));
    block_on(c.session()).unwrap();
    let f = fake.borrow();
    assert!(f.oauth_failures.is_empty(), "{:?}", f.oauth_failures);
    assert_eq!(f.nonces.len(), 2, "a fresh nonce per session request");
    assert_eq!(c.session_token(), Some("sess-2"));
    assert_eq!(c.base_url(), "http://127.0.0.1:8080/dep");
}

#[test]
fn rotated_session_token_is_adopted() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut().push(
        Reply::raw(200, &vector("device_response.json")).header("X-ADM-Auth-Session", "rotated-1"),
    );
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("empty_sync_response.json")));

    block_on(c.fetch_devices(None, None)).unwrap();
    assert_eq!(c.session_token(), Some("rotated-1"));
    block_on(c.sync_devices("MDowOjE1", None)).unwrap();
    let f = fake.borrow();
    let sessions: Vec<_> = f.seen.iter().map(|s| s.session.as_deref()).collect();
    assert_eq!(sessions, [Some("sess-1"), Some("rotated-1")]);
    assert_eq!(f.sessions_created(), 0);
}

#[test]
fn expired_session_is_recreated_once_and_the_call_retried() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(Some("stale".into()));
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("account_response.json")));

    block_on(c.account()).unwrap();
    let f = fake.borrow();
    let seen: Vec<_> = f
        .seen
        .iter()
        .map(|s| (s.path.as_str(), s.session.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("/account", Some("stale")),
            ("/session", None),
            ("/account", Some("sess-1"))
        ]
    );
    assert!(f.oauth_failures.is_empty());
    assert_eq!(c.session_token(), Some("sess-1"));
}

#[test]
fn second_401_is_an_error_and_drops_the_session() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut().refuse_all = true;

    let err = block_on(c.account()).unwrap_err();
    assert!(matches!(err, DepError::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        err.to_feed_error(),
        FeedError::TokenRejected(err.to_string())
    );
    assert_eq!(c.session_token(), None);
    {
        let f = fake.borrow();
        assert_eq!(f.sessions_created(), 1);
        assert_eq!(f.api_calls().len(), 2);
    }

    // Without a session to begin with, the fresh one is the only attempt.
    fake.borrow_mut().seen.clear();
    let err = block_on(c.account()).unwrap_err();
    assert!(matches!(err, DepError::Unauthorized { .. }));
    let f = fake.borrow();
    assert_eq!(f.sessions_created(), 1);
    assert_eq!(f.api_calls().len(), 1);
}

#[test]
fn session_refused_by_apple() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock);
    fake.borrow_mut()
        .session_script
        .push_back(Reply::text(401, "UNAUTHORIZED"));
    let err = block_on(c.account()).unwrap_err();
    assert!(matches!(err, DepError::Unauthorized { ref excerpt } if excerpt == "UNAUTHORIZED"));
    assert!(fake.borrow().api_calls().is_empty());

    fake.borrow_mut()
        .session_script
        .push_back(Reply::text(403, "T_C_NOT_SIGNED"));
    let err = block_on(c.session()).unwrap_err();
    assert_eq!(
        err,
        DepError::Api {
            status: 403,
            code: ApiError::TermsNotSigned
        }
    );
    assert_eq!(err.to_feed_error(), FeedError::TermsNotSigned);

    // A bad signature (wrong secret) is a 401 from the fake's independent check.
    let mut wrong = creds();
    wrong.access_secret = "AS_wrong".into();
    let mut c = DepClient::new(&http, &clock, BASE, wrong);
    let err = block_on(c.session()).unwrap_err();
    assert!(matches!(err, DepError::Unauthorized { .. }));
    assert_eq!(fake.borrow().oauth_failures, ["bad signature"]);
}

#[test]
fn forbidden_body_means_a_new_session_but_terms_do_not() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut().push(Reply::text(403, "FORBIDDEN"));
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("account_response.json")));
    block_on(c.account()).unwrap();
    assert_eq!(fake.borrow().sessions_created(), 1);
    assert_eq!(c.session_token(), Some("sess-2"));

    fake.borrow_mut()
        .push(Reply::text(403, "\"T_C_NOT_SIGNED\""));
    let err = block_on(c.account()).unwrap_err();
    assert_eq!(err.code(), Some(ApiError::TermsNotSigned));
    fake.borrow_mut().push(Reply::text(403, "ACCESS_DENIED"));
    let err = block_on(c.account()).unwrap_err();
    assert_eq!(err.code(), Some(ApiError::AccessDenied));
    assert!(matches!(err.to_feed_error(), FeedError::TokenRejected(_)));
    assert_eq!(fake.borrow().sessions_created(), 1, "no re-session loop");
    assert_eq!(c.session_token(), Some("sess-2"));
}

// ---------------------------------------------------------------------------------
// Errors

#[test]
fn every_documented_code_maps_in_every_body_form() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    for code in ApiError::ALL {
        if code == ApiError::NotFound {
            continue;
        }
        let status = match code {
            ApiError::TermsNotSigned | ApiError::AccessDenied => 403,
            _ => 400,
        };
        let s = code.as_str();
        for body in [
            s.to_owned(),
            format!("\"{s}\""),
            format!("{s}\n"),
            json!({ "code": s, "message": "details" }).to_string(),
            format!("error: {s} (see docs)"),
        ] {
            fake.borrow_mut().push(Reply::text(status, &body));
            let err = block_on(c.sync_devices("cursor", Some(100))).unwrap_err();
            assert_eq!(err, DepError::Api { status, code }, "{body}");
            assert!(err.to_string().contains(s));
        }
    }
    assert_eq!(fake.borrow().sessions_created(), 0);
}

#[test]
fn code_matching_needs_whole_words() {
    assert_eq!(
        ApiError::find("INVALID_CURSOR"),
        Some(ApiError::InvalidCursor)
    );
    assert_eq!(ApiError::find("NOT_INVALID_CURSOR_X"), None);
    assert_eq!(ApiError::find("invalid_cursor"), None);
    assert_eq!(
        ApiError::find("CONFIG_URL_INVALID then CONFIG_NAME_REQUIRED"),
        Some(ApiError::ConfigUrlInvalid)
    );
    assert_eq!(
        ApiError::find("MDM_SERVICE_DISCOVERY_URL_NOT_VALID"),
        Some(ApiError::MdmServiceDiscoveryUrlNotValid)
    );
    assert_eq!(ApiError::find(""), None);
}

#[test]
fn cursor_errors_become_feed_errors() {
    let api = |code| DepError::Api { status: 400, code };
    assert_eq!(
        api(ApiError::ExhaustedCursor).to_feed_error(),
        FeedError::ExhaustedCursor
    );
    for code in [
        ApiError::ExpiredCursor,
        ApiError::InvalidCursor,
        ApiError::CursorRequired,
    ] {
        assert!(code.is_cursor_error());
        assert_eq!(
            api(code).to_feed_error(),
            FeedError::CursorRejected(code.as_str().into())
        );
    }
    assert_eq!(
        DepError::RetryLater {
            status: 429,
            after: Duration::from_secs(90)
        }
        .to_feed_error(),
        FeedError::Throttled { retry_after: 90 }
    );
    assert!(matches!(
        api(ApiError::MalformedRequestBody).to_feed_error(),
        FeedError::Other(_)
    ));
}

#[test]
fn undocumented_answers() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));

    fake.borrow_mut().push(Reply::text(404, "Not Found"));
    let err = block_on(c.get_profile("C1F1 2309/8EB5")).unwrap_err();
    assert_eq!(
        err,
        DepError::Api {
            status: 404,
            code: ApiError::NotFound
        }
    );
    assert_eq!(
        fake.borrow().seen.last().unwrap().path,
        "/profile?profile_uuid=C1F1%202309%2F8EB5"
    );

    fake.borrow_mut()
        .push(Reply::text(400, "SOMETHING_NEW\r\nwith detail"));
    let err = block_on(c.account()).unwrap_err();
    assert_eq!(
        err,
        DepError::Unexpected {
            status: 400,
            excerpt: "SOMETHING_NEW  with detail".into()
        }
    );

    fake.borrow_mut().push(Reply::text(418, &"x".repeat(5000)));
    let DepError::Unexpected { status, excerpt } = block_on(c.account()).unwrap_err() else {
        panic!()
    };
    assert_eq!(status, 418);
    assert!(excerpt.chars().count() <= 201, "excerpt is bounded");

    fake.borrow_mut()
        .push(Reply::transport("connection reset by peer"));
    let err = block_on(c.account()).unwrap_err();
    assert_eq!(err, DepError::Transport("connection reset by peer".into()));
}

#[test]
fn secrets_never_appear_in_errors() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    let k = creds();
    let secrets = [
        k.consumer_secret.as_str(),
        k.access_secret.as_str(),
        k.access_token.as_str(),
        "sess-1",
    ];
    let echo = format!(
        "bad request: {} {} {} {} {}",
        k.consumer_secret,
        k.access_secret,
        oauth::percent_encode(&k.access_token),
        "sess-1",
        k.consumer_key
    );
    fake.borrow_mut().push(Reply::text(400, &echo));
    let err = block_on(c.account()).unwrap_err();
    fake.borrow_mut().push(Reply::transport(&echo));
    let err2 = block_on(c.account()).unwrap_err();
    fake.borrow_mut().push(Reply::text(
        200,
        &format!("{{\"server_uuid\": {}", k.access_secret),
    ));
    let err3 = block_on(c.account()).unwrap_err();
    assert!(matches!(err3, DepError::BadJson { .. }));
    for text in [
        err.to_string(),
        format!("{err:?}"),
        err2.to_string(),
        err3.to_string(),
        format!("{:?}", creds()),
        format!("{c:?}"),
    ] {
        for s in secrets {
            assert!(!text.contains(s), "{s} leaked in {text}");
        }
    }
    assert!(err.to_string().contains("<redacted>"));
    assert!(format!("{:?}", creds()).contains(&k.consumer_key));
}

// ---------------------------------------------------------------------------------
// Retry-After and backoff

#[test]
fn retry_after_seconds_is_slept_on_the_clock() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut()
        .push(Reply::text(429, "").header("Retry-After", "7"));
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("device_response.json")));
    let page = block_on(c.fetch_devices(None, Some(500))).unwrap();
    assert_eq!(page.devices.len(), 1);
    assert_eq!(clock.unix_seconds(), T0 + 7);
    let f = fake.borrow();
    assert_eq!(f.api_calls().len(), 2);
    assert_eq!(
        f.api_calls()[1].body,
        f.api_calls()[0].body,
        "same request again"
    );
}

#[test]
fn retry_after_http_date_and_session_requests() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock);
    // 1_800_000_020 = Fri, 15 Jan 2027 08:00:20 GMT
    let date = "Fri, 15 Jan 2027 08:00:20 GMT";
    assert_eq!(
        parse_http_date(date),
        Some(UNIX_EPOCH + Duration::from_secs(T0 + 20))
    );
    fake.borrow_mut()
        .session_script
        .push_back(Reply::text(503, "").header("Retry-After", date));
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("account_response.json")));
    block_on(c.account()).unwrap();
    assert_eq!(clock.unix_seconds(), T0 + 20);
    let f = fake.borrow();
    assert_eq!(f.sessions_created(), 2);
    assert!(
        f.oauth_failures.is_empty(),
        "retried with a fresh nonce and timestamp"
    );
}

#[test]
fn long_waits_are_handed_to_the_caller() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut()
        .push(Reply::text(429, "").header("Retry-After", "3600"));
    let err = block_on(c.sync_devices("c", None)).unwrap_err();
    assert_eq!(
        err,
        DepError::RetryLater {
            status: 429,
            after: Duration::from_secs(3600)
        }
    );
    assert_eq!(clock.unix_seconds(), T0, "no sleep beyond the cap");
    assert_eq!(
        err.to_feed_error(),
        FeedError::Throttled { retry_after: 3600 }
    );

    // The cap is on the total: 40 s slept, the next 40 s would pass 60 s.
    fake.borrow_mut()
        .push(Reply::text(429, "").header("Retry-After", "40"));
    fake.borrow_mut()
        .push(Reply::text(429, "").header("Retry-After", "40"));
    let err = block_on(c.sync_devices("c", None)).unwrap_err();
    assert_eq!(
        err,
        DepError::RetryLater {
            status: 429,
            after: Duration::from_secs(40)
        }
    );
    assert_eq!(clock.unix_seconds(), T0 + 40);
}

#[test]
fn server_errors_back_off_then_give_up() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    for _ in 0..4 {
        fake.borrow_mut()
            .push(Reply::text(503, "Service Unavailable"));
    }
    let err = block_on(c.account()).unwrap_err();
    assert_eq!(
        err,
        DepError::RetryLater {
            status: 503,
            after: Duration::from_secs(8)
        }
    );
    assert_eq!(clock.unix_seconds(), T0 + 1 + 2 + 4);
    assert_eq!(fake.borrow().api_calls().len(), 4);

    // A recovered 500 within the policy.
    let mut c = c.with_retry(RetryPolicy {
        max_retries: 1,
        max_wait: Duration::from_secs(10),
        initial_backoff: Duration::from_secs(3),
    });
    fake.borrow_mut().push(Reply::text(500, "oops"));
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("account_response.json")));
    block_on(c.account()).unwrap();
    assert_eq!(clock.unix_seconds(), T0 + 7 + 3);
}

#[test]
fn retry_after_forms() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
    assert_eq!(
        parse_retry_after(" 120 ", now),
        Some(Duration::from_secs(120))
    );
    for date in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(
            parse_http_date(date),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "{date}"
        );
        assert_eq!(parse_retry_after(date, now), Some(Duration::from_secs(30)));
    }
    assert_eq!(
        parse_retry_after(
            "Sun, 06 Nov 1994 08:49:37 GMT",
            now + Duration::from_secs(99)
        ),
        Some(Duration::ZERO)
    );
    for bad in [
        "soon",
        "-5",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994",
        "",
    ] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad}");
    }
}

// ---------------------------------------------------------------------------------
// Bodies

#[test]
fn malformed_json_answers() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    for (body, path) in [
        ("{not json", "/server/devices"),
        ("[]", "/server/devices"),
        (r#"{"devices": 5}"#, "/server/devices"),
        (r#"{"devices": [1]}"#, "/server/devices"),
        (r#"{"devices": [], "more_to_follow": 3}"#, "/server/devices"),
        (r#"{"devices": [], "cursor": 3}"#, "/server/devices"),
    ] {
        fake.borrow_mut().push(Reply::text(200, body));
        let err = block_on(c.fetch_devices(None, None)).unwrap_err();
        assert!(
            matches!(&err, DepError::BadJson { path: p, .. } if p == path),
            "{body}: {err:?}"
        );
    }
    fake.borrow_mut()
        .push(Reply::text(200, r#"{"devices": {"X": 1}}"#));
    assert!(matches!(
        block_on(c.assign_profile("P", &["X"])),
        Err(DepError::BadJson { .. })
    ));
    fake.borrow_mut()
        .push(Reply::text(200, r#"{"devices": {}}"#));
    assert!(matches!(
        block_on(c.define_profile(&json!({"profile_name": "x"}))),
        Err(DepError::BadJson { .. })
    ));

    for body in [
        json!({ "auth_session_token": "" }).to_string(),
        json!({ "auth_session_token": 5 }).to_string(),
        "<html>".into(),
        json!({ "auth_session_token": "bad\ntoken" }).to_string(),
    ] {
        fake.borrow_mut()
            .session_script
            .push_back(Reply::text(200, &body));
        let err = block_on(c.session()).unwrap_err();
        assert!(
            matches!(&err, DepError::BadJson { path, .. } if path == "/session"),
            "{body}: {err:?}"
        );
    }
    assert_eq!(
        c.session_token(),
        Some("sess-1"),
        "a failed renewal keeps nothing new"
    );
}

#[test]
fn every_recorded_response_parses() {
    let dir = format!(
        "{}/../../tests/vectors/micromdm-dep",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 5);

    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    for name in &names {
        fake.borrow_mut().push(Reply::raw(200, &vector(name)));
        match name.as_str() {
            "account_response.json" => {
                let a = block_on(c.account()).unwrap();
                assert_eq!(a, Account::parse(&vector(name)).unwrap());
                assert_eq!(a.server_name, "dev");
                assert_eq!(a.admin_id, "apple-dep@acme.co");
                assert_eq!(a.facilitator_id.as_deref(), Some("apple-dep@acme.co"));
                assert_eq!(a.org_name, "Acme, Inc");
                assert_eq!(a.org_email, "apple-dep@acme.co");
                assert_eq!(a.org_phone, "8775277454");
                assert!(a.org_address.starts_with("1600 Pennsylvania"));
                assert_eq!(a.org_id.as_deref(), Some("6666666"));
                assert!(a.org_id_hash.is_some());
                assert_eq!(a.org_type.as_deref(), Some("org"));
                assert_eq!(a.org_version.as_deref(), Some("v2"));
                assert_eq!(a.urls.len(), 18);
                assert!(a.extra.is_empty(), "{:?}", a.extra);
                let pd = a.urls.iter().find(|u| u.uri == "/profile/devices").unwrap();
                assert_eq!(pd.http_method, ["DELETE", "POST", "PUT"]);
                assert_eq!(pd.limit, None);
                let fetch = a.limit("/server/devices").unwrap();
                assert_eq!((fetch.default, fetch.maximum), (Some(1000), Some(5000)));
                assert_eq!(a.page_size("/server/devices", None), 1000);
                assert_eq!(a.page_size("/devices/sync", Some(9000)), 5000);
                assert_eq!(a.page_size("/devices/sync", Some(0)), 1);
                assert_eq!(a.page_size("/devices", None), 100);
                assert_eq!(a.page_size("/devices", Some(5000)), 1000);
                // Round trip keeps what Apple sent.
                let back = serde_json::to_value(&a).unwrap();
                let orig: Value = serde_json::from_slice(&vector(name)).unwrap();
                assert_eq!(back, orig);
            }
            "device_response.json" => {
                let p = block_on(c.fetch_devices(None, Some(1000))).unwrap();
                assert_eq!(p, DevicePage::parse(&vector(name)).unwrap());
                assert_eq!(p.devices.len(), 1);
                assert_eq!(p.devices[0]["serial_number"], "C02T0HL0GGC0");
                assert_eq!(p.devices[0]["profile_status"], "assigned");
                assert_eq!(p.devices[0]["device_family"], "Mac");
                assert_eq!(
                    p.cursor.as_deref(),
                    Some("MDowOjE1MzY0Mjc2OTg5MTQ6MTUzNjQyNzY5ODkxNDp0cnVlOjE1MzY0Mjc2OTg5MTQ")
                );
                assert!(!p.more_to_follow);
                assert_eq!(p.fetched_until.as_deref(), Some("2018-09-08T17:28:18Z"));
                let feed = p.into_feed_page();
                assert_eq!(feed.devices.len(), 1);
                assert!(feed.cursor.is_some());
            }
            "empty_sync_response.json" => {
                let p = block_on(c.sync_devices("MDowOjE1MzY0", None)).unwrap();
                assert!(p.devices.is_empty());
                assert!(!p.more_to_follow);
                assert_eq!(
                    p.cursor.as_deref(),
                    Some("MDowOjE1MzY0Mjg0ODkzMDc6MTUzNjQyODQ4OTMwNzp0cnVlOjE1MzY0Mjg0ODkzMDc")
                );
                assert_eq!(p.fetched_until.as_deref(), Some("2018-09-08T17:41:29Z"));
            }
            "device_details_response.json" => {
                let d = block_on(c.device_details(&["C02T0HL0GGC0"])).unwrap();
                assert_eq!(d.len(), 1);
                let mac = &d["C02T0HL0GGC0"];
                assert_eq!(mac["response_status"], "SUCCESS");
                assert_eq!(mac["profile_uuid"], "C1F123098EB5074580041E69883004C3");
                assert_eq!(
                    fake.borrow().seen.last().unwrap().body,
                    json!({ "devices": ["C02T0HL0GGC0"] })
                );
            }
            "fetch_profile_response.json" => {
                let p = block_on(c.get_profile("C1F123098EB5074580041E69883004C3")).unwrap();
                assert_eq!(p["profile_name"], "default");
                assert_eq!(p["url"], "https://mdm.acme.co/mdm/enroll");
                assert_eq!(p["skip_setup_items"], json!(["AppleID", "Android"]));
                assert_eq!(p["await_device_configured"], true);
                let seen = fake.borrow().seen.last().unwrap().clone();
                assert_eq!(seen.method, Method::GET);
                assert_eq!(
                    seen.path,
                    "/profile?profile_uuid=C1F123098EB5074580041E69883004C3"
                );
            }
            other => panic!("no test reads the recorded response {other}"),
        }
    }
}

#[test]
fn paging_requests_and_fields() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut().push(Reply::json(
        200,
        json!({
            "devices": [{"serial_number": "A", "future_field": {"x": 1}}, {"serial_number": "B", "op_type": "added", "op_date": "2024-01-01T00:00:00Z"}],
            "cursor": "c1", "more_to_follow": "true", "fetched_until": "2024-01-01T00:00:00Z",
        }),
    ));
    fake.borrow_mut().push(Reply::json(
        200,
        json!({ "devices": null, "cursor": "c2", "more_to_follow": false }),
    ));
    fake.borrow_mut()
        .push(Reply::json(200, json!({ "cursor": "c3" })));

    let p1 = block_on(c.fetch_devices(None, Some(1000))).unwrap();
    assert!(p1.more_to_follow);
    assert_eq!(p1.devices.len(), 2);
    assert_eq!(p1.devices[0]["future_field"]["x"], 1);
    let p2 = block_on(c.fetch_devices(p1.cursor.as_deref(), None)).unwrap();
    assert_eq!(
        p2,
        DevicePage {
            devices: vec![],
            cursor: Some("c2".into()),
            more_to_follow: false,
            fetched_until: None
        }
    );
    let p3 = block_on(c.sync_devices("c2", Some(200))).unwrap();
    assert_eq!(p3.cursor.as_deref(), Some("c3"));

    let f = fake.borrow();
    let calls: Vec<_> = f
        .api_calls()
        .iter()
        .map(|s| (s.method.clone(), s.path.clone(), s.body.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            (
                Method::POST,
                "/server/devices".into(),
                json!({"limit": 1000})
            ),
            (
                Method::POST,
                "/server/devices".into(),
                json!({"cursor": "c1"})
            ),
            (
                Method::POST,
                "/devices/sync".into(),
                json!({"cursor": "c2", "limit": 200})
            ),
        ]
    );
}

#[test]
fn profile_calls() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    let profile = json!({ "profile_name": "default", "url": "https://mdm.example/enroll", "devices": ["A", "B"] });
    fake.borrow_mut().push(Reply::json(
        200,
        json!({ "profile_uuid": "P1", "devices": { "A": "SUCCESS", "B": "NOT_ACCESSIBLE" } }),
    ));
    let defined = block_on(c.define_profile(&profile)).unwrap();
    assert_eq!(defined.profile_uuid, "P1");
    assert_eq!(defined.devices["A"], DeviceStatus::Success);
    assert_eq!(defined.devices["B"], DeviceStatus::NotAccessible);

    fake.borrow_mut().push(Reply::json(
        200,
        json!({
            "profile_uuid": "P1",
            "devices": { "A": "SUCCESS", "B": "FAILED", "C": "THROTTLED", "D": "SOMETHING_NEW" },
            "retry_after_seconds": 120,
        }),
    ));
    let assigned = block_on(c.assign_profile("P1", &["A", "B", "C", "D"])).unwrap();
    assert_eq!(assigned.profile_uuid.as_deref(), Some("P1"));
    assert_eq!(assigned.retry_after_seconds, Some(120));
    assert_eq!(assigned.devices["B"], DeviceStatus::Failed);
    assert_eq!(
        assigned.devices["D"],
        DeviceStatus::Other("SOMETHING_NEW".into())
    );
    assert_eq!(
        assigned
            .with_status(&DeviceStatus::Throttled)
            .collect::<Vec<_>>(),
        ["C"]
    );

    fake.borrow_mut()
        .push(Reply::json(200, json!({ "devices": { "A": "SUCCESS" } })));
    let serials = vec!["A".to_string()];
    let removed = block_on(c.remove_profile(&serials, Some("P1"))).unwrap();
    assert_eq!(removed.profile_uuid, None);
    assert_eq!(removed.devices["A"], DeviceStatus::Success);

    fake.borrow_mut().push(Reply::text(404, "\"NOT_FOUND\""));
    let err = block_on(c.assign_profile("nope", &["A"])).unwrap_err();
    assert_eq!(err.code(), Some(ApiError::NotFound));

    let f = fake.borrow();
    let calls: Vec<_> = f
        .api_calls()
        .iter()
        .map(|s| (s.method.clone(), s.path.clone(), s.body.clone()))
        .collect();
    assert_eq!(calls[0], (Method::POST, "/profile".into(), profile));
    assert_eq!(
        calls[1],
        (
            Method::POST,
            "/profile/devices".into(),
            json!({ "profile_uuid": "P1", "devices": ["A", "B", "C", "D"] })
        )
    );
    assert_eq!(
        calls[2],
        (
            Method::DELETE,
            "/profile/devices".into(),
            json!({ "devices": ["A"], "profile_uuid": "P1" })
        )
    );
    drop(f);

    // Refused locally: no request.
    let before = fake.borrow().seen.len();
    let many: Vec<String> = (0..=MAX_SERIALS).map(|i| format!("S{i}")).collect();
    assert!(matches!(
        block_on(c.assign_profile("P1", &many)),
        Err(DepError::InvalidRequest(_))
    ));
    assert!(matches!(
        block_on(c.define_profile(&json!(["not", "an", "object"]))),
        Err(DepError::InvalidRequest(_))
    ));
    assert_eq!(fake.borrow().seen.len(), before);
}

//! Server token slots through the admin API, natively, against an in-process stand-in
//! for Apple's Device Assignment service that answers what its tests script.

use std::cell::RefCell;
use std::rc::Rc;

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::dep::TokenId;
use mdm_core::platform::TransportError;
use mdm_core::platform::testing::{FnHttp, ManualClock, MapVariables};
use mdm_core::{Env, routes::admin, routes::sync as scheduler};
use mdm_kv::{Defects, MemoryBackend, Store};
use serde_json::{Value, json};

const KEY: &str = "admin-key-for-token-tests";
const SYNC_KEY: &str = "sync-key-for-token-tests";
const STORAGE_KEY: &str = "storage-key-for-token-tests-0123456789";
const NOW: u64 = 1_800_000_000; // 2027-01-15
const EXPIRY: &str = "2028-01-01T00:00:00Z";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Ok,
    Unauthorized,
    TermsNotSigned,
    Down,
}

struct FakeApple {
    mode: Mode,
    devices: Vec<String>,
    calls: Vec<String>,
}

type Shared = Rc<RefCell<FakeApple>>;
type Http =
    FnHttp<Box<dyn Fn(http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError>>>;
type E = Env<MemoryBackend, Http, ManualClock, MapVariables>;

fn answer(status: u16, body: &str) -> Result<http::Response<Vec<u8>>, TransportError> {
    Ok(http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .unwrap())
}

fn fake_apple(state: Shared) -> Http {
    FnHttp(Box::new(move |req: http::Request<Vec<u8>>| {
        let mut s = state.borrow_mut();
        let path = req.uri().path().to_owned();
        assert!(
            req.uri().to_string().starts_with("http://apple.test/"),
            "{}",
            req.uri()
        );
        s.calls.push(format!("{} {path}", req.method()));
        match (s.mode, path.as_str()) {
            (Mode::Down, _) => answer(503, "SERVICE_UNAVAILABLE"),
            (Mode::Unauthorized, "/session") => answer(401, "UNAUTHORIZED"),
            (_, "/session") => {
                let auth = req
                    .headers()
                    .get("authorization")
                    .unwrap()
                    .to_str()
                    .unwrap();
                assert!(auth.contains("oauth_consumer_key=\"CK_"), "{auth}");
                answer(200, r#"{"auth_session_token":"sess-1"}"#)
            }
            (Mode::TermsNotSigned, _) => answer(403, "T_C_NOT_SIGNED"),
            (_, "/account") => answer(
                200,
                r#"{"server_name":"Our MDM","server_uuid":"UUID-1","admin_id":"a@example.com","org_name":"Example School","org_email":"it@example.com","org_phone":"1","org_address":"Road 1","urls":[]}"#,
            ),
            (_, "/server/devices") => {
                let devices: Vec<Value> = s
                    .devices
                    .iter()
                    .map(|sn| json!({"serial_number": sn, "model": "iPad", "profile_status": "empty", "op_type": "added", "op_date": "2027-01-01T00:00:00Z"}))
                    .collect();
                answer(
                    200,
                    &json!({"devices": devices, "cursor": "cur-1", "more_to_follow": false, "fetched_until": "2027-01-15T08:00:00Z"}).to_string(),
                )
            }
            (_, "/devices/sync") => answer(
                200,
                r#"{"devices":[],"cursor":"cur-2","more_to_follow":false,"fetched_until":"2027-01-15T08:00:00Z"}"#,
            ),
            (_, other) => panic!("unexpected call {other}"),
        }
    }))
}

fn env() -> (E, Shared) {
    let state = Rc::new(RefCell::new(FakeApple {
        mode: Mode::Ok,
        devices: vec!["DMQ1".into(), "DMQ2".into(), "DMQ3".into()],
        calls: Vec::new(),
    }));
    let e = Env {
        store: Store::new(MemoryBackend::with_defects(Defects::spin_sqlite())),
        http: fake_apple(state.clone()),
        clock: ManualClock::at_unix(NOW),
        vars: MapVariables::new([
            ("admin_api_key", KEY),
            ("sync_api_key", SYNC_KEY),
            ("storage_key", STORAGE_KEY),
            ("dep_base_url", "http://apple.test"),
        ]),
    };
    (e, state)
}

fn call(
    e: &E,
    method: Method,
    path: &str,
    body: Vec<u8>,
    content_type: Option<&str>,
) -> http::Response<Vec<u8>> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {KEY}"));
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    block_on(admin::handle(e, b.body(body).unwrap()))
}

fn json_call(e: &E, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let resp = call(
        e,
        method,
        path,
        body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        Some("application/json"),
    );
    (
        resp.status(),
        serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
    )
}

fn create(e: &E, name: &str) -> TokenId {
    let (s, b) = json_call(
        e,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": name})),
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["status"], "awaiting_token");
    TokenId(b["id"].as_u64().unwrap())
}

fn certificate(e: &E, t: TokenId) -> mdm_crypto::Certificate {
    let resp = call(
        e,
        Method::GET,
        &format!("/api/v1/tokens/{t}/public-key"),
        vec![],
        None,
    );
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-pem-file");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".pem")
    );
    mdm_crypto::Certificate::from_pem(std::str::from_utf8(resp.body()).unwrap()).unwrap()
}

fn token_json(ck: &str, expiry: &str) -> String {
    json!({
        "consumer_key": ck,
        "consumer_secret": "CS_very_secret_value",
        "access_token": "AT_very_secret_value",
        "access_secret": "AS_very_secret_value",
        "access_token_expiry": expiry,
    })
    .to_string()
}

fn p7m_for(cert: &mdm_crypto::Certificate, ck: &str, expiry: &str) -> Vec<u8> {
    mdm_crypto::encrypt_server_token(&mdm_crypto::token_plaintext(&token_json(ck, expiry)), cert)
        .unwrap()
}

fn upload(e: &E, t: TokenId, file: Vec<u8>, query: &str) -> (StatusCode, Value) {
    let resp = call(
        e,
        Method::PUT,
        &format!("/api/v1/tokens/{t}/server-token{query}"),
        file,
        Some("application/pkcs7-mime"),
    );
    (
        resp.status(),
        serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
    )
}

fn record_bytes(e: &E, t: TokenId) -> Vec<u8> {
    block_on(e.store.get(&format!("tok:{t}"))).unwrap().unwrap()
}

#[test]
fn create_download_upload_and_view() {
    let (e, apple) = env();
    let t = create(&e, "School district");
    let cert = certificate(&e, t);
    let (s, b) = upload(
        &e,
        t,
        p7m_for(&cert, "CK_one", EXPIRY),
        "?apple_id=admin%40example.com",
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "ok");
    assert_eq!(b["org_name"], "Example School");
    assert_eq!(b["server_uuid"], "UUID-1");
    assert_eq!(b["apple_id"], "admin@example.com");
    assert_eq!(b["access_token_expiry"], EXPIRY);
    assert_eq!(b["days_left"], 350);
    assert_eq!(apple.borrow().calls, vec!["GET /session", "GET /account"]);

    // No secret anywhere: not in answers, not in the store in clear.
    let (_, list) = json_call(&e, Method::GET, "/api/v1/tokens", None);
    let all = format!("{list} {}", String::from_utf8_lossy(&record_bytes(&e, t)));
    for secret in ["CS_very", "AT_very", "AS_very", "PRIVATE KEY", "sess-1"] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let session = block_on(e.store.get(&format!("depsess:{t}")))
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&session).contains("sess-1"));

    // Expiring within 30 days, then expired.
    e.clock.set_unix(NOW + 340 * 86400);
    let (_, b) = json_call(&e, Method::GET, &format!("/api/v1/tokens/{t}"), None);
    assert_eq!(b["status"], "expiring");
    e.clock.set_unix(NOW + 400 * 86400);
    let (_, b) = json_call(&e, Method::GET, &format!("/api/v1/tokens/{t}"), None);
    assert_eq!(b["status"], "expired");
}

#[test]
fn bad_uploads_leave_the_slot_untouched() {
    let (e, apple) = env();
    let t = create(&e, "Main");
    let cert = certificate(&e, t);
    assert_eq!(
        upload(&e, t, p7m_for(&cert, "CK_one", EXPIRY), "").0,
        StatusCode::OK
    );
    let before = record_bytes(&e, t);

    let other = create(&e, "Other");
    let other_cert = certificate(&e, other);
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (
            p7m_for(&other_cert, "CK_one", EXPIRY),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_key",
        ),
        (
            b"hello, this is not a token".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_server_token",
        ),
        (
            p7m_for(&cert, "CK_one", "2020-01-01T00:00:00Z"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expired",
        ),
        (
            p7m_for(&cert, "CK_one", EXPIRY)[..300].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "corrupt",
        ),
        (
            mdm_crypto::encrypt_server_token(b"no markers here", &cert).unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_token_content",
        ),
        (p7m_for(&cert, "CK_two", EXPIRY), StatusCode::CONFLICT, ""),
        (vec![b'A'; 70_000], StatusCode::PAYLOAD_TOO_LARGE, ""),
        (Vec::new(), StatusCode::BAD_REQUEST, ""),
    ];
    for (file, status, code) in cases {
        let (s, b) = upload(&e, t, file, "");
        assert_eq!(s, status, "{b}");
        if !code.is_empty() {
            assert_eq!(b["error"], code, "{b}");
        }
        assert!(b["error"].is_string());
        assert_eq!(
            record_bytes(&e, t),
            before,
            "slot changed by a refused upload"
        );
    }

    // Apple refuses the token, or cannot be reached: refused, nothing changed.
    for (mode, status) in [
        (Mode::Unauthorized, StatusCode::UNPROCESSABLE_ENTITY),
        (Mode::Down, StatusCode::BAD_GATEWAY),
    ] {
        apple.borrow_mut().mode = mode;
        let (s, b) = upload(&e, t, p7m_for(&cert, "CK_one", "2029-01-01T00:00:00Z"), "");
        assert_eq!(s, status, "{b}");
        assert!(!b.to_string().contains("very_secret"), "{b}");
        assert_eq!(record_bytes(&e, t), before);
    }

    // Terms not signed: the token is kept, its status says what to do.
    apple.borrow_mut().mode = Mode::TermsNotSigned;
    let (s, b) = upload(&e, t, p7m_for(&cert, "CK_one", "2029-01-01T00:00:00Z"), "");
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "terms_not_signed");

    // A different ABM server only with force.
    apple.borrow_mut().mode = Mode::Ok;
    let (s, b) = upload(&e, t, p7m_for(&cert, "CK_two", EXPIRY), "?force=true");
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[test]
fn pasted_forms_and_json_upload_work() {
    let (e, _) = env();
    let t = create(&e, "Main");
    let cert = certificate(&e, t);
    let smime = String::from_utf8(p7m_for(&cert, "CK_one", EXPIRY)).unwrap();
    let body = smime.split_once("\r\n\r\n").unwrap().1.to_owned();
    let (s, b) = json_call(
        &e,
        Method::PUT,
        &format!("/api/v1/tokens/{t}/server-token"),
        Some(json!({"token": body, "apple_id": "it@example.com"})),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["apple_id"], "it@example.com");
    let (s, _) = json_call(
        &e,
        Method::PUT,
        &format!("/api/v1/tokens/{t}/server-token"),
        Some(json!({"token": smime, "apple_id": "not an apple id"})),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[test]
fn key_rotation_keeps_the_old_key_until_a_new_token_arrives() {
    let (e, _) = env();
    let t = create(&e, "Main");
    let old = certificate(&e, t);
    assert_eq!(
        upload(&e, t, p7m_for(&old, "CK_one", EXPIRY), "").0,
        StatusCode::OK
    );
    let (s, b) = json_call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/rotate-key"),
        None,
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["key_rotation_pending"], true);
    assert_eq!(b["status"], "ok", "the current token keeps working");
    let new = certificate(&e, t);
    assert_ne!(new.der(), old.der());
    // A renewal made for the old key still opens while the rotation is pending.
    assert_eq!(
        upload(&e, t, p7m_for(&old, "CK_one", EXPIRY), "").0,
        StatusCode::OK
    );
    let (s, b) = upload(&e, t, p7m_for(&new, "CK_one", EXPIRY), "");
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["key_rotation_pending"], false);
    // Now only the new key opens tokens.
    assert_eq!(
        upload(&e, t, p7m_for(&old, "CK_one", EXPIRY), "").0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(certificate(&e, t).der(), new.der());
}

#[test]
fn rename_delete_and_what_blocks_deletion() {
    let (e, _) = env();
    let t = create(&e, "Main");
    let (s, b) = json_call(
        &e,
        Method::PATCH,
        &format!("/api/v1/tokens/{t}"),
        Some(json!({"name": "Renamed"})),
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["name"], "Renamed");
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"colour": "red"}),
    ] {
        let (s, _) = json_call(&e, Method::PATCH, &format!("/api/v1/tokens/{t}"), Some(bad));
        assert!(s.is_client_error());
    }
    let cert = certificate(&e, t);
    assert_eq!(
        upload(&e, t, p7m_for(&cert, "CK_one", EXPIRY), "").0,
        StatusCode::OK
    );
    let (s, b) = json_call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/sync"),
        Some(json!({"kind": "full"})),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["outcome"], "completed");
    let (s, b) = json_call(&e, Method::DELETE, &format!("/api/v1/tokens/{t}"), None);
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["blocked_by"][0]["what"], "devices");
    assert_eq!(b["blocked_by"][0]["count"], 3);
    for sn in ["DMQ1", "DMQ2", "DMQ3"] {
        let (s, _) = json_call(
            &e,
            Method::DELETE,
            &format!("/api/v1/tokens/{t}/devices/{sn}"),
            None,
        );
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    let (s, _) = json_call(&e, Method::DELETE, &format!("/api/v1/tokens/{t}"), None);
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = json_call(&e, Method::GET, &format!("/api/v1/tokens/{t}"), None);
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        block_on(e.store.get(&format!("tok:{t}")))
            .unwrap()
            .is_none()
    );
}

#[test]
fn manual_sync_policy_and_the_scheduler() {
    let (e, apple) = env();
    let t = create(&e, "Main");
    let (s, _) = json_call(&e, Method::POST, &format!("/api/v1/tokens/{t}/sync"), None);
    assert_eq!(s, StatusCode::CONFLICT, "no token uploaded yet");
    let cert = certificate(&e, t);
    assert_eq!(
        upload(&e, t, p7m_for(&cert, "CK_one", EXPIRY), "").0,
        StatusCode::OK
    );

    // First sync is full whatever was asked (no cursor yet).
    let (s, b) = json_call(&e, Method::POST, &format!("/api/v1/tokens/{t}/sync"), None);
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["kind"], "full");
    let (_, b) = json_call(&e, Method::GET, &format!("/api/v1/tokens/{t}"), None);
    assert_eq!(b["device_count"], 3);

    // Again at once: 429 with Retry-After and the next allowed time.
    let resp = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/sync"),
        vec![],
        None,
    );
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "900");
    let b: Value = serde_json::from_slice(resp.body()).unwrap();
    assert!(b["next_allowed_at"].is_string());

    // 15 minutes later a delta runs.
    e.clock.advance(std::time::Duration::from_secs(901));
    let (s, b) = json_call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/sync"),
        Some(json!({"kind": "delta"})),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["kind"], "delta");
    assert!(
        apple
            .borrow()
            .calls
            .iter()
            .any(|c| c == "POST /devices/sync")
    );

    // The scheduler runs a delta once 12 hours have passed, not before.
    let tick = || {
        let req = http::Request::builder()
            .method(Method::POST)
            .uri("/internal/tick")
            .header("authorization", format!("Bearer {SYNC_KEY}"))
            .body(vec![])
            .unwrap();
        let resp = block_on(scheduler::handle(&e, req));
        assert_eq!(resp.status(), StatusCode::OK);
        serde_json::from_slice::<Value>(resp.body()).unwrap()
    };
    assert_eq!(tick()["tokens"][0]["sync"], "not_due");
    e.clock.advance(std::time::Duration::from_secs(12 * 3600));
    let b = tick();
    assert_eq!(b["tokens"][0]["sync"]["kind"], "delta", "{b}");
    assert_eq!(tick()["tokens"][0]["sync"], "not_due");

    // Terms not signed surface on the token.
    apple.borrow_mut().mode = Mode::TermsNotSigned;
    e.clock.advance(std::time::Duration::from_secs(12 * 3600));
    tick();
    let (_, b) = json_call(&e, Method::GET, &format!("/api/v1/tokens/{t}"), None);
    assert_eq!(b["status"], "terms_not_signed", "{b}");
}

#[test]
fn unknown_slots_and_limits() {
    let (e, _) = env();
    for path in [
        "/api/v1/tokens/99",
        "/api/v1/tokens/abc/public-key",
        "/api/v1/tokens/0",
    ] {
        let (s, b) = json_call(&e, Method::GET, path, None);
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(b["error"], "not_found");
    }
    let (s, _) = json_call(
        &e,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "  "})),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = json_call(&e, Method::POST, "/api/v1/tokens", Some(json!({})));
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        b["fields"][0],
        json!({ "field": "name", "rule": "required" }),
        "{b}"
    );
}

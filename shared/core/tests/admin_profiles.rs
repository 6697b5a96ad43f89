//! Enrollment profiles, assignment, default profile and rules through the admin API,
//! natively, against an in-process stand-in for Apple's Device Assignment service.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::dep::TokenId;
use mdm_core::platform::TransportError;
use mdm_core::platform::testing::{FnHttp, ManualClock, MapVariables};
use mdm_core::{Env, routes::admin, routes::sync as scheduler};
use mdm_kv::{Defects, MemoryBackend, Store};
use serde_json::{Value, json};

const KEY: &str = "admin-key-for-profile-tests";
const SYNC_KEY: &str = "sync-key-for-profile-tests";
const NOW: u64 = 1_800_000_000;

#[derive(Default)]
struct FakeApple {
    defined: Vec<Value>,
    /// serial → Apple profile UUID
    assigned: BTreeMap<String, String>,
    throttled_once: BTreeSet<String>,
    devices: Vec<Value>,
    assign_calls: u32,
}

type Shared = Rc<RefCell<FakeApple>>;
type Http =
    FnHttp<Box<dyn Fn(http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError>>>;
type E = Env<MemoryBackend, Http, ManualClock, MapVariables>;

fn answer(status: u16, body: Value) -> Result<http::Response<Vec<u8>>, TransportError> {
    Ok(http::Response::builder()
        .status(status)
        .body(body.to_string().into_bytes())
        .unwrap())
}

fn fake_apple(state: Shared) -> Http {
    FnHttp(Box::new(move |req: http::Request<Vec<u8>>| {
        let mut s = state.borrow_mut();
        let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
        match (req.method().as_str(), req.uri().path()) {
            ("GET", "/session") => answer(200, json!({"auth_session_token": "sess"})),
            ("GET", "/account") => answer(
                200,
                json!({"server_name": "S", "server_uuid": "U", "org_name": "Org"}),
            ),
            ("POST", "/profile") => {
                s.defined.push(body);
                answer(
                    200,
                    json!({"profile_uuid": format!("APPLE-{}", s.defined.len()), "devices": {}}),
                )
            }
            ("POST", "/profile/devices") => {
                s.assign_calls += 1;
                let uuid = body["profile_uuid"].as_str().unwrap().to_owned();
                let serials: Vec<String> = body["devices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                assert!(serials.len() <= 1000, "more than 1000 serials in one call");
                let mut out = serde_json::Map::new();
                let mut throttled = false;
                for sn in serials {
                    let status = if sn.starts_with("NA") {
                        "NOT_ACCESSIBLE"
                    } else if sn.starts_with("FL") {
                        "FAILED"
                    } else if sn.starts_with("TH") && s.throttled_once.insert(sn.clone()) {
                        throttled = true;
                        "THROTTLED"
                    } else {
                        s.assigned.insert(sn.clone(), uuid.clone());
                        "SUCCESS"
                    };
                    out.insert(sn, json!(status));
                }
                let mut a = json!({"profile_uuid": uuid, "devices": out});
                if throttled {
                    a["retry_after_seconds"] = json!(120);
                }
                answer(200, a)
            }
            ("DELETE", "/profile/devices") => {
                let mut out = serde_json::Map::new();
                for sn in body["devices"].as_array().unwrap() {
                    s.assigned.remove(sn.as_str().unwrap());
                    out.insert(sn.as_str().unwrap().to_owned(), json!("SUCCESS"));
                }
                answer(200, json!({"devices": out}))
            }
            ("POST", "/server/devices") => answer(
                200,
                json!({"devices": s.devices.clone(), "cursor": "c1", "more_to_follow": false}),
            ),
            ("POST", "/devices/sync") => answer(
                200,
                json!({"devices": [], "cursor": "c2", "more_to_follow": false}),
            ),
            (m, p) => panic!("unexpected {m} {p}"),
        }
    }))
}

fn call(e: &E, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
        .unwrap();
    let resp = block_on(admin::handle(e, req));
    (
        resp.status(),
        serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
    )
}

fn device(serial: &str, model: &str) -> Value {
    json!({"serial_number": serial, "model": model, "os": "iOS", "device_family": "iPad",
           "profile_status": "empty", "op_type": "added", "op_date": "2027-01-01T00:00:00Z"})
}

/// An env with one token uploaded and `serials` synced into its inventory.
fn env(serials: &[&str]) -> (E, Shared, TokenId) {
    let state = Rc::new(RefCell::new(FakeApple::default()));
    let e = Env {
        store: Store::new(MemoryBackend::with_defects(Defects::spin_sqlite())),
        http: fake_apple(state.clone()),
        clock: ManualClock::at_unix(NOW),
        vars: MapVariables::new([
            ("admin_api_key", KEY),
            ("sync_api_key", SYNC_KEY),
            ("storage_key", "storage-key-for-profile-tests-0123456789"),
            ("dep_base_url", "http://apple.test"),
            ("server_url", "https://mdm.example.com/"),
        ]),
    };
    let (s, b) = call(
        &e,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "Main"})),
    );
    assert_eq!(s, StatusCode::CREATED);
    let t = TokenId(b["id"].as_u64().unwrap());
    let pem = {
        let req = http::Request::builder()
            .uri(format!("/api/v1/tokens/{t}/public-key"))
            .header("authorization", format!("Bearer {KEY}"))
            .body(vec![])
            .unwrap();
        block_on(admin::handle(&e, req)).into_body()
    };
    let cert = mdm_crypto::Certificate::from_pem(std::str::from_utf8(&pem).unwrap()).unwrap();
    let json = r#"{"consumer_key":"CK_p","consumer_secret":"CS_p","access_token":"AT_p","access_secret":"AS_p","access_token_expiry":"2028-01-01T00:00:00Z"}"#;
    let p7m = mdm_crypto::encrypt_server_token(&mdm_crypto::token_plaintext(json), &cert).unwrap();
    let req = http::Request::builder()
        .method(Method::PUT)
        .uri(format!("/api/v1/tokens/{t}/server-token"))
        .header("authorization", format!("Bearer {KEY}"))
        .body(p7m)
        .unwrap();
    assert_eq!(block_on(admin::handle(&e, req)).status(), StatusCode::OK);
    state.borrow_mut().devices = serials.iter().map(|s| device(s, "iPad Pro")).collect();
    if !serials.is_empty() {
        let (s, b) = call(
            &e,
            Method::POST,
            &format!("/api/v1/tokens/{t}/sync"),
            Some(json!({"kind": "full"})),
        );
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    (e, state, t)
}

fn spec(name: &str) -> Value {
    json!({
        "name": name,
        "description": "admins only",
        "platform": "ios",
        "user_affinity": "with_user",
        "locked_enrollment": true,
        "department": "IT",
        "setup_assistant": {"Siri": "hide", "Privacy": "hide"},
        "device_name_template": "{{DEVICETYPE}}-{{SERIAL}}",
    })
}

fn tick(e: &E) -> Value {
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/internal/tick")
        .header("authorization", format!("Bearer {SYNC_KEY}"))
        .body(vec![])
        .unwrap();
    let resp = block_on(scheduler::handle(e, req));
    assert_eq!(resp.status(), StatusCode::OK);
    serde_json::from_slice(resp.body()).unwrap()
}

#[test]
fn profiles_are_validated_then_defined_with_apple() {
    let (e, apple, t) = env(&[]);
    let (s, b) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles"),
        Some(spec("Staff iPads")),
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["apple_uuid"], "APPLE-1");
    let sent = apple.borrow().defined[0].clone();
    assert_eq!(sent["url"], "https://mdm.example.com/mdm/enroll/ade");
    assert_eq!(
        sent["configuration_web_url"],
        "https://mdm.example.com/mdm/enroll/web"
    );
    assert_eq!(sent["is_mdm_removable"], false);
    assert_eq!(sent["is_supervised"], true);
    assert_eq!(sent["department"], "IT");
    let skipped: BTreeSet<&str> = sent["skip_setup_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(skipped, BTreeSet::from(["Privacy", "Siri"]));
    assert!(
        sent.get("description").is_none(),
        "devices never see the description"
    );

    let mut bad = spec("x");
    bad["setup_assistant"] = json!({"NoSuchPane": "hide"});
    bad["device_name_template"] = json!("{{NOPE}}");
    let (s, b) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles"),
        Some(bad),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: BTreeSet<String> = b["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(fields.iter().any(|f| f.contains("setup_assistant")), "{b}");
    assert!(
        fields.iter().any(|f| f.contains("device_name_template")),
        "{b}"
    );
    assert_eq!(
        apple.borrow().defined.len(),
        1,
        "nothing sent to Apple for an invalid profile"
    );

    let (s, b) = call(
        &e,
        Method::GET,
        &format!("/api/v1/tokens/{t}/profiles"),
        None,
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    let (_, b) = call(&e, Method::GET, &format!("/api/v1/tokens/{t}"), None);
    assert_eq!(b["profile_count"], 1);
}

#[test]
fn assignment_results_per_serial_and_throttled_retries() {
    let (e, apple, t) = env(&["OK01", "NA01", "FL01", "TH01"]);
    let (_, p) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles"),
        Some(spec("P")),
    );
    let pid = p["id"].as_u64().unwrap();
    let (s, b) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles/{pid}/devices"),
        Some(json!({"filter": "unassigned"})),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["result"]["counts"],
        json!({"SUCCESS": 1, "NOT_ACCESSIBLE": 1, "FAILED": 1, "THROTTLED": 1})
    );

    let status = |sn: &str| {
        let (_, d) = call(
            &e,
            Method::GET,
            &format!("/api/v1/tokens/{t}/devices/{sn}"),
            None,
        );
        d
    };
    assert_eq!(status("OK01")["assignment"]["status"], "SUCCESS");
    assert_eq!(status("OK01")["profile_status"], "assigned");
    assert_eq!(status("NA01")["assignment"]["status"], "NOT_ACCESSIBLE");
    let th = status("TH01");
    assert_eq!(th["assignment"]["status"], "THROTTLED");
    assert_eq!(
        th["assignment"]["retry_at"],
        mdm_core::time::format_rfc3339(NOW as i64 + 120)
    );

    // Not before Apple's retry_after_seconds; then retried by the scheduler.
    let calls = apple.borrow().assign_calls;
    tick(&e);
    assert_eq!(apple.borrow().assign_calls, calls);
    e.clock.advance(std::time::Duration::from_secs(121));
    tick(&e);
    assert_eq!(status("TH01")["assignment"]["status"], "SUCCESS");
    // FAILED waits a day.
    assert_eq!(status("FL01")["assignment"]["failures"], 1);
    e.clock.advance(std::time::Duration::from_secs(86_400));
    tick(&e);
    assert_eq!(status("FL01")["assignment"]["failures"], 2);

    // Removing the assignment.
    let (s, b) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/unassign"),
        Some(json!({"serials": ["OK01"]})),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(status("OK01")["assignment"]["status"], "REMOVED");
    assert!(!apple.borrow().assigned.contains_key("OK01"));

    for bad in [
        json!({"serials": []}),
        json!({"serials": ["bad serial"]}),
        json!({"filter": "nope"}),
        json!({}),
    ] {
        let (s, _) = call(
            &e,
            Method::POST,
            &format!("/api/v1/tokens/{t}/profiles/{pid}/devices"),
            Some(bad.clone()),
        );
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[test]
fn batches_of_at_most_1000_serials() {
    let serials: Vec<String> = (0..2500).map(|i| format!("S{i:05}")).collect();
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    let (e, apple, t) = env(&refs);
    let (_, p) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles"),
        Some(spec("P")),
    );
    let pid = p["id"].as_u64().unwrap();
    let (s, b) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles/{pid}/devices"),
        Some(json!({"filter": "unassigned"})),
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["result"]["counts"]["SUCCESS"], 2500);
    assert_eq!(b["result"]["apple_calls"], 3);
    assert_eq!(apple.borrow().assigned.len(), 2500);
}

#[test]
fn editing_redefines_and_moves_devices() {
    let (e, apple, t) = env(&["A001", "A002"]);
    let (_, p) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles"),
        Some(spec("P")),
    );
    let pid = p["id"].as_u64().unwrap();
    call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles/{pid}/devices"),
        Some(json!({"serials": ["A001", "A002"]})),
    );

    // Only the name template changed: nothing goes to Apple.
    let mut s2 = spec("P");
    s2["device_name_template"] = json!("iPad-{{SERIAL}}");
    let (s, b) = call(
        &e,
        Method::PUT,
        &format!("/api/v1/tokens/{t}/profiles/{pid}"),
        Some(s2.clone()),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["apple_uuid"], "APPLE-1");
    assert_eq!(b["effective_after_reset"], json!([]));

    s2["locked_enrollment"] = json!(false);
    let (s, b) = call(
        &e,
        Method::PUT,
        &format!("/api/v1/tokens/{t}/profiles/{pid}"),
        Some(s2),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["apple_uuid"], "APPLE-2");
    assert_eq!(b["previous_apple_uuids"], json!(["APPLE-1"]));
    assert_eq!(b["reassigned"]["counts"]["SUCCESS"], 2);
    assert_eq!(b["effective_after_reset"], json!(["locked_enrollment"]));
    assert_eq!(apple.borrow().assigned["A001"], "APPLE-2");
}

#[test]
fn delete_is_refused_while_default_or_assigned() {
    let (e, _, t) = env(&["A001"]);
    let (_, p) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles"),
        Some(spec("P")),
    );
    let pid = p["id"].as_u64().unwrap();
    let (s, _) = call(
        &e,
        Method::PUT,
        &format!("/api/v1/tokens/{t}/default-profile"),
        Some(json!({"profile": pid})),
    );
    assert_eq!(s, StatusCode::OK);
    let (s, b) = call(
        &e,
        Method::DELETE,
        &format!("/api/v1/tokens/{t}/profiles/{pid}"),
        None,
    );
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["blocked_by"][0]["what"], "default_profile");
    let (s, _) = call(&e, Method::DELETE, &format!("/api/v1/tokens/{t}"), None);
    assert_eq!(s, StatusCode::CONFLICT, "token with profiles cannot go");

    call(
        &e,
        Method::PUT,
        &format!("/api/v1/tokens/{t}/default-profile"),
        Some(json!({"profile": null})),
    );
    call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles/{pid}/devices"),
        Some(json!({"serials": ["A001"]})),
    );
    let (s, b) = call(
        &e,
        Method::DELETE,
        &format!("/api/v1/tokens/{t}/profiles/{pid}"),
        None,
    );
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["blocked_by"][0]["count"], 1);
    let (s, b) = call(
        &e,
        Method::DELETE,
        &format!("/api/v1/tokens/{t}/profiles/{pid}?unassign=true"),
        None,
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = call(
        &e,
        Method::GET,
        &format!("/api/v1/tokens/{t}/profiles/{pid}"),
        None,
    );
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, b) = call(&e, Method::GET, &format!("/api/v1/tokens/{t}"), None);
    assert_eq!(b["profile_count"], 0);
    let (s, _) = call(
        &e,
        Method::PUT,
        &format!("/api/v1/tokens/{t}/default-profile"),
        Some(json!({"profile": 99})),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[test]
fn default_profile_and_rules_apply_to_devices_a_sync_brings() {
    let (e, apple, t) = env(&[]);
    let (_, a) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles"),
        Some(spec("Default")),
    );
    let (_, b) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/profiles"),
        Some(spec("Air")),
    );
    let (pa, pb) = (a["id"].as_u64().unwrap(), b["id"].as_u64().unwrap());
    call(
        &e,
        Method::PUT,
        &format!("/api/v1/tokens/{t}/default-profile"),
        Some(json!({"profile": pa})),
    );
    let rules = json!({"rules": [{"name": "Airs", "match": {"model": "ipad air"}, "profile": pb}]});
    let (s, r) = call(
        &e,
        Method::PUT,
        &format!("/api/v1/tokens/{t}/assignment-rules"),
        Some(rules),
    );
    assert_eq!(s, StatusCode::OK, "{r}");
    for bad in [
        json!({"rules": [{"match": {}, "profile": pb}]}),
        json!({"rules": [{"match": {"model": "x"}, "profile": 77}]}),
        json!({"rules": [{"match": {"colour": "x"}, "profile": pb}]}),
    ] {
        let (s, _) = call(
            &e,
            Method::PUT,
            &format!("/api/v1/tokens/{t}/assignment-rules"),
            Some(bad.clone()),
        );
        assert!(s.is_client_error(), "{bad}");
    }

    apple.borrow_mut().devices = vec![
        device("N001", "iPad Air (5th generation)"),
        device("N002", "iPad Pro"),
    ];
    let (s, b) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/sync"),
        Some(json!({"kind": "full"})),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(apple.borrow().assigned["N001"], "APPLE-2");
    assert_eq!(apple.borrow().assigned["N002"], "APPLE-1");

    // Dry run: with a rule sending Pros to the Air profile, N002 would move.
    let dry = json!({"rules": [{"match": {"model": "pro"}, "profile": pb}]});
    let (s, b) = call(
        &e,
        Method::POST,
        &format!("/api/v1/tokens/{t}/assignment-rules/dry-run"),
        Some(dry),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    let moves = b["moves"].as_array().unwrap();
    assert!(
        moves
            .iter()
            .any(|m| m["serial_number"] == "N002" && m["to"] == pb),
        "{b}"
    );
    assert!(
        moves
            .iter()
            .any(|m| m["serial_number"] == "N001" && m["to"] == pa),
        "{b}"
    );
    // Nothing moved for real.
    assert_eq!(apple.borrow().assigned["N002"], "APPLE-1");
}

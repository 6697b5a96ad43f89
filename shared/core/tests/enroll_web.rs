//! Web enrollment with user affinity (`configuration_web_url`) and the local users it
//! signs in: the page, wrong and right passwords, rate limiting, the admin user API
//! (passwords write-only, Argon2id at rest).

mod enrollsupport;

use base64::Engine;
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::enroll::pending;
use mdm_core::{user_password, user_sign_in, users};
use serde_json::json;

use enrollsupport::*;

const UUID: &str = "AAAA0000BBBB1111CCCC2222DDDD3333";
const UDID: &str = "00008030-001A2B3C4D5E802E";
const SERIAL: &str = "F9FXK0ABCDEF";
const PASSWORD: &str = "correct horse battery staple";

fn server() -> Server {
    let s = Server::new();
    s.add_profile(
        1,
        UUID,
        json!({ "name": "Staff", "platform": "ios", "user_affinity": "with_user" }),
    );
    s.sync_device(assigned(SERIAL, UUID));
    let (st, v) = s.admin(
        Method::POST,
        "/api/v1/users",
        &json!({ "username": "Ann.Smith", "password": PASSWORD, "name": "Ann Smith",
                 "email": "ann@example.com" })
        .to_string(),
    );
    assert_eq!(st, StatusCode::CREATED, "{v}");
    s
}

fn deviceinfo(s: &Server, serial: &str) -> String {
    let dev = s.apple.device("6001A957-6FC5-4856-8C5E-DC2E32C61CB9", true);
    let body = dev.sign(
        &machine_info(UDID, serial, Some("17.2"), true),
        Hash::Sha256,
        Form::Ber,
        &[],
    );
    base64::engine::general_purpose::STANDARD.encode(body)
}

fn get_page(s: &Server, info: Option<&str>) -> mdm_core::Response {
    let mut b = http::Request::builder()
        .method(Method::GET)
        .uri("/mdm/enroll/web");
    if let Some(i) = info {
        b = b.header("x-apple-aspen-deviceinfo", i);
    }
    block_on(mdm_core::routes::checkin::handle(
        &s.e,
        b.body(vec![]).unwrap(),
    ))
}

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn sign_in(s: &Server, info: &str, user: &str, password: &str) -> mdm_core::Response {
    let body = format!(
        "username={}&password={}&deviceinfo={}",
        enc(user),
        enc(password),
        enc(info)
    );
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/mdm/enroll/web")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.into_bytes())
        .unwrap();
    block_on(mdm_core::routes::checkin::handle(&s.e, req))
}

fn no_enrollment_state(s: &Server) {
    assert!(
        block_on(pending::get(&s.e.store, UDID, s.now()))
            .unwrap()
            .is_none()
    );
    assert!(
        !s.dump().iter().any(|(k, _)| k.starts_with("scepchal:")),
        "no challenge issued"
    );
}

#[test]
fn the_sign_in_page_needs_a_verified_device() {
    let s = server();
    let r = get_page(&s, None);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(text(&r).contains("Setup Assistant"));
    let info = deviceinfo(&s, SERIAL);
    let r = get_page(&s, Some(&info));
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"));
    let html = text(&r);
    assert!(html.contains("<form method=\"post\" action=\"/mdm/enroll/web\">"));
    assert!(html.contains("name=\"deviceinfo\""));
    assert!(
        html.contains(&info[..40]),
        "device info carried in the form"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    // Refusals are pages too, with their reason.
    let r = get_page(&s, Some(&deviceinfo(&s, "NOTOURS0001")));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(text(&r).contains("device.unknown"));
    let r = get_page(&s, Some("%%%not base64"));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    no_enrollment_state(&s);
}

#[test]
fn a_wrong_password_says_so_and_changes_nothing_else() {
    let s = server();
    let info = deviceinfo(&s, SERIAL);
    let user_before = block_on(users::get(&s.e.store, "ann.smith"))
        .unwrap()
        .unwrap();
    for (user, pw) in [
        ("ann.smith", "wrong password!"),
        ("nobody", PASSWORD),
        ("", ""),
    ] {
        let r = sign_in(&s, &info, user, pw);
        assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert!(text(&r).contains("The user name or password is incorrect."));
        assert!(!text(&r).contains(pw) || pw.is_empty(), "password echoed");
        no_enrollment_state(&s);
    }
    let user_after = block_on(users::get(&s.e.store, "ann.smith"))
        .unwrap()
        .unwrap();
    assert_eq!(user_after, user_before);
    // A disabled user cannot sign in either.
    let (st, _) = s.admin(
        Method::PATCH,
        "/api/v1/users/ann.smith",
        r#"{"disabled":true}"#,
    );
    assert_eq!(st, StatusCode::OK);
    let r = sign_in(&s, &info, "ann.smith", PASSWORD);
    assert!(text(&r).contains("incorrect"));
    no_enrollment_state(&s);
}

#[test]
fn the_right_password_binds_the_user_and_answers_the_profile_from_this_host() {
    let s = server();
    let info = deviceinfo(&s, SERIAL);
    let r = sign_in(&s, &info, "ANN.SMITH", PASSWORD);
    let (profile, _, _) = open_profile(&r);
    let mdm = payload(&profile, "com.apple.mdm");
    assert!(mdm["ServerURL"].as_string().unwrap().starts_with(SERVER));
    let p = block_on(pending::get(&s.e.store, UDID, s.now()))
        .unwrap()
        .unwrap();
    assert_eq!(p.user.as_deref(), Some("ann.smith"));
    // Through SCEP and Authenticate the device record names the user.
    let id = scep_enroll(&s.e, &device_mdm_key(0), UDID, &challenge_of(&profile)).unwrap();
    let r = id.authenticate(&s.e, UDID, SERIAL);
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    let (_, v) = s.admin(Method::GET, &format!("/api/v1/devices/{UDID}"), "");
    assert_eq!(v["user"], "ann.smith");
    let (_, u) = s.admin(Method::GET, "/api/v1/users/ann.smith", "");
    assert!(u["last_sign_in_at"].is_string());
    // The header alone (no hidden field) works too.
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/mdm/enroll/web")
        .header("x-apple-aspen-deviceinfo", &info)
        .body(format!("username=ann.smith&password={}", enc(PASSWORD)).into_bytes())
        .unwrap();
    let r = block_on(mdm_core::routes::checkin::handle(&s.e, req));
    open_profile(&r);
}

#[test]
fn failed_sign_ins_are_rate_limited_per_user() {
    let s = server();
    let info = deviceinfo(&s, SERIAL);
    for _ in 0..user_sign_in::MAX_FAILURES {
        let r = sign_in(&s, &info, "ann.smith", "nope nope nope");
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = sign_in(&s, &info, "ann.smith", PASSWORD);
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    no_enrollment_state(&s);
    // The next window lets the right password in, and resets the count.
    s.e.clock
        .advance(std::time::Duration::from_secs(user_sign_in::FAILURE_WINDOW));
    open_profile(&sign_in(&s, &info, "ann.smith", PASSWORD));
    for _ in 0..user_sign_in::MAX_FAILURES - 1 {
        sign_in(&s, &info, "ann.smith", "nope nope nope");
    }
    open_profile(&sign_in(&s, &info, "ann.smith", PASSWORD));
}

#[test]
fn the_user_api_never_shows_a_password_or_its_hash() {
    let s = server();
    let all = |s: &Server| {
        let mut out = Vec::new();
        for (m, p, b) in [
            (Method::GET, "/api/v1/users", ""),
            (Method::GET, "/api/v1/users/ann.smith", ""),
            (
                Method::PATCH,
                "/api/v1/users/ann.smith",
                r#"{"password":"another secret 1","email":""}"#,
            ),
        ] {
            let (st, v) = s.admin(m, p, b);
            assert_eq!(st, StatusCode::OK, "{v}");
            out.push(v.to_string());
        }
        out
    };
    for body in all(&s) {
        assert!(!body.contains(PASSWORD) && !body.contains("another secret"));
        assert!(
            !body.contains("argon2") && !body.contains("password_hash"),
            "{body}"
        );
    }
    let (_, v) = s.admin(Method::GET, "/api/v1/users/ann.smith", "");
    assert_eq!(v["has_password"], true);
    assert_eq!(
        v["email"],
        serde_json::Value::Null,
        "cleared by the empty string"
    );
    // At rest: an Argon2id hash with our parameters, never the password.
    let rec = block_on(users::get(&s.e.store, "ann.smith"))
        .unwrap()
        .unwrap();
    let hash = rec.password_hash.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(user_password::verify_password("another secret 1", &hash));
    assert!(!user_password::verify_password(PASSWORD, &hash));
    for (_, v) in s.dump() {
        let v = String::from_utf8_lossy(&v);
        assert!(!v.contains("another secret") && !v.contains(PASSWORD));
    }
}

#[test]
fn users_are_created_listed_changed_and_deleted() {
    let s = server();
    let (st, v) = s.admin(Method::POST, "/api/v1/users", r#"{"username":"ann.smith"}"#);
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, v) = s.admin(
        Method::POST,
        "/api/v1/users",
        r#"{"username":"bad name","password":"short","email":"x"}"#,
    );
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["username", "password", "email"]);
    let (st, v) = s.admin(
        Method::POST,
        "/api/v1/users",
        r#"{"username":"bob","unknown":1}"#,
    );
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["fields"][0]["field"], "unknown", "{v}");
    assert!(
        v["fields"][0]["rule"]
            .as_str()
            .unwrap()
            .starts_with("unknown field"),
        "{v}"
    );
    let (st, v) = s.admin(Method::POST, "/api/v1/users", r#"{"username":"#);
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request"))
    );
    for u in ["bob", "carol@example.com"] {
        let (st, v) = s.admin(
            Method::POST,
            "/api/v1/users",
            &json!({ "username": u, "managed_apple_id": format!("{u}@appleid.example.com") })
                .to_string(),
        );
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!(v["has_password"], false);
        assert_eq!(v["groups"], json!([]));
    }
    let (_, v) = s.admin(Method::GET, "/api/v1/users?limit=2", "");
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ann.smith", "bob"]);
    let next = v["next"].as_str().unwrap();
    let (_, v) = s.admin(Method::GET, &format!("/api/v1/users?cursor={next}"), "");
    assert_eq!(v["items"][0]["username"], "carol@example.com");
    assert!(v["next"].is_null());
    // A user without a password cannot sign in.
    let info = deviceinfo(&s, SERIAL);
    assert!(text(&sign_in(&s, &info, "bob", "")).contains("incorrect"));
    // Delete; the name can be used again.
    let (st, _) = s.admin(Method::DELETE, "/api/v1/users/bob", "");
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.admin(Method::GET, "/api/v1/users/bob", "");
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.admin(Method::DELETE, "/api/v1/users/bob", "");
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = s.admin(Method::GET, "/api/v1/users", "");
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let (st, v) = s.admin(
        Method::POST,
        "/api/v1/users",
        r#"{"username":"BOB","password":"a new one!"}"#,
    );
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (_, v) = s.admin(Method::GET, "/api/v1/users", "");
    assert_eq!(v["items"].as_array().unwrap().len(), 3);
    let (st, _) = s.admin(Method::PATCH, "/api/v1/users/nobody", r#"{"name":"x"}"#);
    assert_eq!(st, StatusCode::NOT_FOUND);
}

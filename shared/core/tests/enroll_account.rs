//! Account-driven enrollment: discovery, the 401 bearer challenge, sign-in and token, the
//! BYOD profile (EnrollmentMode, AssignedManagedAppleID), SCEP for an enrollment
//! reference, check-in with EnrollmentID only, the type rules, and User Enrollment's
//! limits on commands and profiles.

mod enrollsupport;

use base64::Engine;
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::routes::checkin;
use serde_json::{Value, json};

use enrollsupport::*;

const MAID: &str = "ann.lee@appleid.example.com";
const EID: &str = "C5E7A1B2-3D4F-4A6B-8C9D-0E1F2A3B4C5D";

fn get(s: &Server, path: &str) -> mdm_core::Response {
    let req = http::Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Vec::new())
        .unwrap();
    block_on(checkin::handle(&s.e, req))
}

fn post(s: &Server, path: &str, auth: Option<&str>, ct: &str, body: &[u8]) -> mdm_core::Response {
    let mut b = http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", ct);
    if let Some(t) = auth {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    block_on(checkin::handle(&s.e, b.body(body.to_vec()).unwrap()))
}

/// Every key and value of the store, as text.
fn dump_text(s: &Server) -> String {
    s.dump()
        .iter()
        .map(|(k, v)| format!("{k}={}\n", String::from_utf8_lossy(v)))
        .collect()
}

fn discover(s: &Server, id: &str, family: &str) -> (StatusCode, Value) {
    let r = get(
        s,
        &format!(
            "/.well-known/com.apple.remotemanagement?user-identifier={id}&model-family={family}"
        ),
    );
    (r.status(), json_body(&r))
}

/// Users, groups: ann (User enrollment group, Managed Apple ID), bob (Device group).
fn setup() -> Server {
    let s = Server::new();
    for (id, t, prio) in [("byod", "user", 10), ("corp", "device", 20)] {
        let (st, v) = s.admin(
            Method::POST,
            "/api/v1/groups",
            &json!({ "id": id, "enrollment_type": t, "priority": prio }).to_string(),
        );
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    for (u, maid, group) in [
        ("ann", MAID, "byod"),
        ("bob", "bob@appleid.example.com", "corp"),
    ] {
        let (st, v) = s.admin(
            Method::POST,
            "/api/v1/users",
            &json!({ "username": u, "password": "correct horse", "managed_apple_id": maid, "groups": [group] })
                .to_string(),
        );
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    s
}

/// Signs in on the page; returns the access token from the redirect.
fn sign_in(s: &Server, user: &str, password: &str) -> Result<String, String> {
    let form = format!(
        "username={}&password={}",
        user.replace('@', "%40"),
        password.replace(' ', "+")
    );
    let r = post(
        s,
        "/mdm/enroll/account/signin",
        None,
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    );
    if r.status() != StatusCode::FOUND {
        return Err(text(&r));
    }
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let token = loc
        .strip_prefix("apple-remotemanagement-user-login://authentication-results?access-token=")
        .unwrap_or_else(|| panic!("{loc}"));
    Ok(token.to_owned())
}

fn enrollment_checkin(
    id: &Identity,
    s: &Server,
    message_type: &str,
    ids: &str,
    extra: &str,
) -> mdm_core::Response {
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>MessageType</key><string>{message_type}</string>{ids}{extra}</dict></plist>"#
    );
    id.send(&s.e, "/mdm/checkin", body.as_bytes())
}

#[test]
fn a_personal_iphone_enrolls_with_a_managed_apple_id_and_no_device_identifier() {
    let s = setup();
    // Discovery: known users get our service, by their type; others Apple's refusal.
    let (st, v) = discover(&s, MAID, "iPhone");
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["Servers"][0]["Version"], "mdm-byod");
    let base = v["Servers"][0]["BaseURL"].as_str().unwrap().to_owned();
    assert_eq!(base, format!("{SERVER}/mdm/enroll/account/byod"));
    let (_, v) = discover(&s, "bob@appleid.example.com", "Mac");
    assert_eq!(v["Servers"][0]["Version"], "mdm-adde", "{v}");
    for (id, fam) in [
        ("nobody@appleid.example.com", "iPhone"),
        (MAID, "AppleTV"),
        ("", "iPhone"),
        (MAID, "Toaster"),
    ] {
        let (st, v) = discover(&s, id, fam);
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("com.apple.well-known.failed")),
            "{id} {fam}"
        );
    }

    // No token: the bearer challenge naming our sign-in page.
    let path = "/mdm/enroll/account/byod";
    let r = post(&s, path, None, "application/octet-stream", b"device info");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Bearer method=\"apple-as-web\", url=\"{SERVER}/mdm/enroll/account/signin\"")
            .as_str()
    );
    assert_eq!(
        post(&s, path, Some("forged"), "application/octet-stream", b"").status(),
        StatusCode::UNAUTHORIZED
    );

    // The page; a wrong password says so; the right one hands back a token.
    let page = get(&s, "/mdm/enroll/account/signin");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(text(&page).contains("<form"));
    assert!(
        sign_in(&s, MAID, "wrong password")
            .unwrap_err()
            .contains("incorrect")
    );
    let token = sign_in(&s, MAID, "correct horse").unwrap();
    assert!(token.len() >= 40);
    // The token is not stored as such.
    assert!(!dump_text(&s).contains(&token));

    // The profile: User Enrollment for ann's Managed Apple ID.
    let r = post(
        &s,
        path,
        Some(&token),
        "application/octet-stream",
        b"device info",
    );
    let (profile, _, _) = open_profile(&r);
    let mdm = payload(&profile, "com.apple.mdm");
    assert_eq!(mdm["EnrollmentMode"].as_string(), Some("BYOD"));
    assert_eq!(mdm["AssignedManagedAppleID"].as_string(), Some(MAID));
    let caps: Vec<&str> = mdm["ServerCapabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_string().unwrap())
        .collect();
    assert!(!caps.iter().any(|c| c.contains("bootstrap")), "{caps:?}");
    // The wrong flow for this user is refused.
    let r = post(
        &s,
        "/mdm/enroll/account/adde",
        Some(&token),
        "application/octet-stream",
        b"",
    );
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{}", text(&r));

    // SCEP for the enrollment reference, then check-in with EnrollmentID only.
    let scep = payload(&profile, "com.apple.security.scep")["PayloadContent"]
        .as_dictionary()
        .unwrap();
    let subject = format!("{:?}", scep["Subject"]);
    let reference = subject
        .split('"')
        .find(|p| p.len() == 36)
        .expect("a reference CN")
        .to_owned();
    let id = scep_enroll(
        &s.e,
        &device_mdm_key(0),
        &reference,
        &challenge_of(&profile),
    )
    .expect("SCEP");
    let ids = format!("<key>EnrollmentID</key><string>{EID}</string>");
    // With a UDID the User Enrollment identity is refused.
    let r = enrollment_checkin(
        &id,
        &s,
        "Authenticate",
        "<key>UDID</key><string>00008030-000A1B2C3D4E802E</string>",
        &format!("<key>Topic</key><string>{TOPIC}</string>"),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{}", text(&r));
    let r = enrollment_checkin(
        &id,
        &s,
        "Authenticate",
        &ids,
        &format!(
            "<key>Topic</key><string>{TOPIC}</string><key>ProductName</key><string>iPhone15,2</string><key>OSVersion</key><string>17.4</string>"
        ),
    );
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    let r = enrollment_checkin(
        &id,
        &s,
        "TokenUpdate",
        &ids,
        &format!(
            "<key>Topic</key><string>{TOPIC}</string><key>PushMagic</key><string>magic</string><key>Token</key><data>AAECAwQFBgc=</data>"
        ),
    );
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    // Bootstrap tokens are not for personal devices.
    let r = enrollment_checkin(&id, &s, "GetBootstrapToken", &ids, "");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let (st, v) = s.admin(Method::GET, &format!("/api/v1/devices/ue:{EID}"), "");
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["enrollment_type"], "user");
    assert_eq!(v["enrollment_id"], EID);
    assert_eq!(
        (&v["udid"], &v["serial_number"]),
        (&Value::Null, &Value::Null),
        "{v}"
    );
    assert_eq!(v["managed_apple_id"], MAID);
    assert_eq!(v["enrolled_via"], "user_enrollment");
    assert_eq!(v["supervised"], false);
    assert_eq!(v["user"], "ann");

    // Limits: forbidden commands, queries and payloads are refused with the reason.
    let queue = |cmd: Value| {
        s.admin(
            Method::POST,
            &format!("/api/v1/devices/ue:{EID}/commands"),
            &cmd.to_string(),
        )
    };
    let (st, v) = queue(json!({ "RequestType": "EraseDevice" }));
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v.to_string().contains("User Enrollment"), "{v}");
    let (st, v) = queue(
        json!({ "RequestType": "DeviceInformation", "Queries": ["OSVersion", "UDID", "SerialNumber"] }),
    );
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v.to_string().contains("UDID, SerialNumber"), "{v}");
    let (st, v) =
        queue(json!({ "RequestType": "DeviceInformation", "Queries": ["OSVersion", "ModelName"] }));
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let profile = |kind: &str| {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>PayloadType</key><string>Configuration</string><key>PayloadContent</key><array><dict><key>PayloadType</key><string>{kind}</string></dict></array></dict></plist>"#
        );
        base64::engine::general_purpose::STANDARD.encode(xml)
    };
    let (st, v) = queue(
        json!({ "RequestType": "InstallProfile", "Payload": profile("com.apple.security.firewall") }),
    );
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v.to_string().contains("Firewall (com.apple.security.firewall) - this is not a valid payload under User Enrollment"), "{v}");
    let (st, v) = queue(
        json!({ "RequestType": "InstallProfile", "Payload": profile("com.apple.wifi.managed") }),
    );
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // Nothing identifies the device: its record is keyed by EnrollmentID.
    let dump = dump_text(&s);
    assert!(!dump.contains("00008030-000A1B2C3D4E802E"));
    assert!(dump.contains(EID));
}

#[test]
fn the_first_enrollment_type_sticks_and_device_users_get_adde() {
    let s = setup();
    let token = sign_in(&s, "ann", "correct horse").unwrap();
    let r = post(
        &s,
        "/mdm/enroll/account/byod",
        Some(&token),
        "application/octet-stream",
        b"",
    );
    assert_eq!(r.status(), StatusCode::OK);
    // The admin moves ann's group to device enrollment: a re-enrollment keeps BYOD.
    let (st, _) = s.admin(
        Method::PATCH,
        "/api/v1/groups/byod",
        r#"{"enrollment_type":"device"}"#,
    );
    assert_eq!(st, StatusCode::OK);
    let (_, v) = discover(&s, MAID, "iPhone");
    assert_eq!(v["Servers"][0]["Version"], "mdm-byod", "{v}");
    // bob: account-driven device enrollment.
    let token = sign_in(&s, "bob", "correct horse").unwrap();
    let r = post(
        &s,
        "/mdm/enroll/account/adde",
        Some(&token),
        "application/octet-stream",
        b"",
    );
    let (profile, _, _) = open_profile(&r);
    let mdm = payload(&profile, "com.apple.mdm");
    assert_eq!(mdm["EnrollmentMode"].as_string(), Some("ADDE"));
    // A user without a Managed Apple ID is not found by discovery.
    let (st, _) = s.admin(
        Method::POST,
        "/api/v1/users",
        r#"{"username":"cat","groups":["byod"]}"#,
    );
    assert_eq!(st, StatusCode::CREATED);
    let (_, list) = s.admin(Method::GET, "/api/v1/users", "");
    assert!(
        list.to_string().contains("a***@appleid.example.com"),
        "{list}"
    );
}

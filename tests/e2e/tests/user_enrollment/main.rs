//! Account-driven User Enrollment (BYOD) end to end, through the real components
//! (Apple: "User Enrollment"): an admin puts a local user with a Managed Apple
//! ID in a group whose enrollment type is "user"; a personal iPhone (and a Mac) discovers
//! us from the Managed Apple ID, is challenged with `Bearer method="apple-as-web"`, signs
//! the person in on our page, enrolls with the bearer token (EnrollmentMode BYOD, SCEP,
//! Authenticate and TokenUpdate with an EnrollmentID) and answers what User Enrollment
//! allows. What it forbids is refused with the reason and never reaches the device; the
//! store never sees the device's UDID, serial number or IMEI; logs and command history
//! read as for a zero-touch (ADE) device; a re-enrollment stays a User Enrollment after
//! the group was switched to device enrollment.
//!
//! This file holds the user and group the tests use, the admin helpers and the checks;
//! the tests are in one module per concern: `personal_device` (the whole enrollment),
//! `takeover` (a signed-in user as the attacker), `outside_server` (a server started
//! elsewhere, as the benchmark drives it).

mod outside_server;
mod personal_device;
mod takeover;

#[path = "../lab/mod.rs"]
mod lab;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use lab::{Lab, PushCert, SERVER_URL};
use mdm_devicesim::{Device, DeviceKind, Http, SimError, Status};
use mdm_e2e::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const GROUP: &str = "byod";
const USER: &str = "ann";
const MAID: &str = "ann.lee@appleid.example.com";
const PASSWORD: &str = "correct horse battery";

fn byod_url() -> String {
    format!("{SERVER_URL}/mdm/enroll/account/byod")
}

fn signin_url() -> String {
    format!("{SERVER_URL}/mdm/enroll/account/signin")
}

fn discovery_url(user: &str, family: &str) -> String {
    format!(
        "{SERVER_URL}/.well-known/com.apple.remotemanagement?user-identifier={}&model-family={family}",
        user.replace('@', "%40")
    )
}

/// A personal device, not in Apple Business Manager and not supervised, with its own
/// IMEI (the simulator's default IMEI is shared by every simulated iPhone, and the ADE
/// iPhone of this test sends its own to the server).
fn personal(lab: &Lab, kind: DeviceKind, os: &str, imei: Option<&str>) -> Device {
    let mut d = Device::random(&lab.apple, kind, os).expect("device");
    d.supervised = false;
    d.imei = imei.map(str::to_owned);
    d
}

/// The identifiers User Enrollment withholds, in every spelling the store could hold.
fn identifiers(d: &Device) -> Vec<String> {
    let mut ids = vec![d.udid.clone(), d.serial.clone()];
    if let Some(imei) = &d.imei {
        ids.push(imei.clone());
        ids.push(imei.replace(' ', ""));
    }
    ids.iter().map(|s| s.to_lowercase()).collect()
}

/// The base64 text that any base64 encoding of bytes containing `s` contains, for each
/// of the three alignments `s` can have (the characters made only of `s`'s bits).
/// Command results are stored as base64 of the device's plist.
fn base64_forms(s: &str) -> Vec<String> {
    (0..3)
        .map(|k| {
            let mut b = vec![0u8; k];
            b.extend_from_slice(s.as_bytes());
            let e = STANDARD.encode(&b);
            e[(8 * k).div_ceil(6)..8 * (k + s.len()) / 6].to_owned()
        })
        .collect()
}

fn contains_base64(text: &str, s: &str) -> bool {
    base64_forms(s).iter().any(|f| text.contains(f.as_str()))
}

/// `text` holds none of `d`'s identifiers, in any case, plain or base64.
fn assert_withheld(what: &str, text: &str, d: &Device) {
    let lower = text.to_lowercase();
    for id in identifiers(d) {
        if let Some(at) = lower.find(&id) {
            let line_start = lower[..at].rfind('\n').map_or(0, |n| n + 1);
            let line_end = lower[at..].find('\n').map_or(lower.len(), |n| at + n);
            panic!("{what} shows {id}: {}", &lower[line_start..line_end]);
        }
    }
    for id in identifiers(d).iter().chain([&d.udid, &d.serial]) {
        assert!(!contains_base64(text, id), "{what} holds {id} in base64");
    }
}

async fn get(lab: &Lab, path: &str) -> Value {
    let (s, v) = lab.app.admin(Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
    v
}

async fn queue(lab: &Lab, device: &str, cmd: &Value) -> (StatusCode, Value) {
    lab.app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{device}/commands"),
            Some(cmd.clone()),
        )
        .await
}

/// Queues `cmd`, which must be accepted; its command UUID.
async fn queue_ok(lab: &Lab, device: &str, cmd: Value) -> String {
    let (s, b) = queue(lab, device, &cmd).await;
    assert_eq!(s, StatusCode::CREATED, "{cmd}: {b}");
    assert_eq!(b["status"], "queued", "{b}");
    b["command_uuid"].as_str().expect("command_uuid").to_owned()
}

/// A configuration profile (base64, as the command API takes data) with these payloads.
fn configuration(payload_types: &[&str]) -> String {
    let items: String = payload_types
        .iter()
        .map(|t| format!("<dict><key>PayloadType</key><string>{t}</string></dict>"))
        .collect();
    STANDARD.encode(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>PayloadType</key><string>Configuration</string><key>PayloadContent</key><array>{items}</array></dict></plist>"#
    ))
}

/// Queues `cmd`, which must be refused with 422 naming every one of `reasons`.
async fn refused(lab: &Lab, device: &str, cmd: Value, reasons: &[&str]) {
    let (s, b) = queue(lab, device, &cmd).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{cmd}: {b}");
    // A payload refused (each key in `fields`), or a command the device cannot run.
    assert!(
        b["error"] == "validation_failed" || b["error"] == "not_supported_by_device",
        "{b}"
    );
    let said = format!("{} {}", b["message"], b["fields"]);
    for reason in reasons {
        assert!(said.contains(reason), "{cmd}: {b}");
    }
}

/// The device's command history (device channel), up to 1,000 entries.
async fn history(lab: &Lab, device: &str) -> Vec<Value> {
    let h = get(
        lab,
        &format!("/api/v1/devices/{device}/commands?limit=1000"),
    )
    .await;
    assert!(h["next"].is_null(), "{h}");
    h["items"].as_array().expect("items").clone()
}

async fn logs(lab: &Lab, device: &str) -> Vec<Value> {
    let l = get(lab, &format!("/api/v1/devices/{device}/logs?limit=1000")).await;
    assert!(l["next"].is_null(), "{l}");
    l["items"].as_array().expect("items").clone()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// (action, status) → how many log entries have them.
fn log_summary(entries: &[Value]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for e in entries {
        let k = (
            e["action"].as_str().unwrap_or_default().to_owned(),
            e["status"].as_str().unwrap_or_default().to_owned(),
        );
        *m.entry(k).or_default() += 1;
    }
    m
}

fn has(summary: &BTreeMap<(String, String), usize>, action: &str, status: &str) -> bool {
    summary.contains_key(&(action.to_owned(), status.to_owned()))
}

/// The whole key-value store as the host keeps it (Spin's SQLite layout, one table):
/// every key and value of every label the components use, as text.
fn dump_store(lab: &Lab) -> String {
    let path = lab.dir.path().join("state/sqlite_key_value.db");
    let db = mdm_host::kv::Db::open(&path, true).expect("the host's key-value file");
    let keys = db.keys("default").expect("keys");
    assert!(
        keys.len() > 20,
        "the store holds the lab: {} keys",
        keys.len()
    );
    let mut out = String::new();
    for k in keys {
        let v = db.get("default", &k).expect("value").unwrap_or_default();
        out.push_str(&k);
        out.push('=');
        out.push_str(&String::from_utf8_lossy(&v));
        out.push('\n');
    }
    out
}

/// Checks the enrollment the simulator just ran: a User Enrollment profile for `MAID`,
/// the identity from our SCEP, and an EnrollmentID that the admin API knows. Returns the
/// device id the admin API uses (`ue:<EnrollmentID>`).
async fn check_user_enrollment(lab: &Lab, d: &Device, platform: &str) -> String {
    lab.check_profile(d);
    let p = d.profile().expect("profile installed");
    assert_eq!(p.mdm.enrollment_mode.as_deref(), Some("BYOD"));
    assert_eq!(p.mdm.assigned_managed_apple_id.as_deref(), Some(MAID));
    let identity = d.mdm_identity().expect("SCEP identity");
    let cn = identity.certificate.common_name().unwrap_or_default();
    assert_withheld("the identity's common name", &cn, d);
    let eid = d.enrollment_id.clone().expect("an EnrollmentID");
    assert_eq!(d.channel_id(), ("EnrollmentID", eid.as_str()));

    // Known as `ue:<EnrollmentID>`: no EnrollmentID can name a UDID's enrollment.
    let id = format!("ue:{eid}");
    let v = get(lab, &format!("/api/v1/devices/{id}")).await;
    assert_eq!(v["device_id"], id.as_str(), "{v}");
    assert_eq!(v["enrollment_id"], eid.as_str(), "{v}");
    assert_eq!(v["enrollment_type"], "user", "{v}");
    assert_eq!(v["enrolled_via"], "user_enrollment", "{v}");
    assert_eq!(v["enrolled"], true, "{v}");
    assert_eq!(v["managed_apple_id"], MAID, "{v}");
    assert_eq!(v["user"], USER, "{v}");
    assert_eq!(v["platform"], platform, "{v}");
    assert_eq!(v["os_version"], d.os_version.as_str(), "{v}");
    assert_eq!(v["push_token"], true, "the TokenUpdate arrived: {v}");
    for k in [
        "udid",
        "serial_number",
        "device_name",
        "dep_token",
        "dep_profile",
    ] {
        assert_eq!(v[k], Value::Null, "{k}: {v}");
    }
    assert_withheld("the device view", &v.to_string(), d);
    // Not known by its UDID or serial number either.
    for id in [&d.udid, &d.serial] {
        let (s, b) = lab
            .app
            .admin(Method::GET, &format!("/api/v1/devices/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }
    // Authenticate and TokenUpdate were logged under the EnrollmentID.
    let log = log_summary(&logs(lab, &id).await);
    assert!(has(&log, "Authenticate", "ok"), "{log:?}");
    assert!(has(&log, "TokenUpdate", "ok"), "{log:?}");
    id
}

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

mod lab;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use lab::{Lab, PushCert, SERVER_URL};
use mdm_devicesim::account::{CALLBACK_PREFIX, challenge_url};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_iphone_user_enrolls_through_the_components() {
    let started = Instant::now();
    let lab = Lab::start(12, PushCert::Trusted).await;
    let app = &lab.app;
    let http = lab.http();

    // 1. A user group set to User Enrollment, and ann in it with a Managed Apple ID.
    let (s, g) = app
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({
                "id": GROUP,
                "name": "Personal devices",
                "enrollment_type": "user",
                "priority": 1,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(g["enrollment_type"], "user", "{g}");
    let (s, u) = app
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({
                "username": USER,
                "password": PASSWORD,
                "managed_apple_id": MAID,
                "groups": [GROUP],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["managed_apple_id"], MAID, "{u}");
    assert_eq!(u["enrollment_type"], "user", "{u}");
    assert_eq!(u["enrollment_type_group"], GROUP, "{u}");
    assert_eq!(u["has_password"], true, "{u}");
    assert!(
        !u.to_string().contains(PASSWORD),
        "the password is write-only"
    );

    // 2. Service discovery: ann's Managed Apple ID leads to the User Enrollment URL;
    //    anyone else gets Apple's refusal.
    let r = http
        .send("GET", &discovery_url(MAID, "iPhone"), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    let servers: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(
        servers,
        json!({ "Servers": [{ "Version": "mdm-byod", "BaseURL": byod_url() }] })
    );
    let mut d = personal(&lab, DeviceKind::Iphone, "17.4", Some("35 209900 176148 1"));
    let found = d.discover(&http, SERVER_URL, MAID).await.unwrap();
    assert_eq!(
        (found.version.as_str(), found.base_url.as_str()),
        ("mdm-byod", byod_url().as_str())
    );
    match d
        .discover(&http, SERVER_URL, "nobody@appleid.example.com")
        .await
    {
        Err(SimError::Status {
            status: 403, body, ..
        }) => {
            let b: Value = serde_json::from_str(&body).expect("JSON refusal");
            assert_eq!(b["code"], "com.apple.well-known.failed", "{b}");
        }
        other => panic!("an unknown user was answered: {other:?}"),
    }

    // 3. The enrollment POST without a token (or with one we never issued) is challenged
    //    to sign in on our page.
    for auth in [None, Some("Bearer not-a-token-we-issued")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = http
            .send("POST", &byod_url(), &headers, b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body_text());
        let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("method=\"apple-as-web\""),
            "{challenge}"
        );
        assert_eq!(challenge_url(challenge), Some(signin_url()), "{challenge}");
    }
    let page = http
        .send("GET", &signin_url(), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body_text().contains("<form"), "{}", page.body_text());
    // A wrong password: the page says so and sends the browser nowhere.
    let r = http
        .send(
            "POST",
            &signin_url(),
            &[("content-type", "application/x-www-form-urlencoded")],
            format!(
                "username={}&password=wrong+password",
                MAID.replace('@', "%40")
            )
            .into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.header("location"),
        None,
        "no redirect on a wrong password"
    );
    assert!(r.body_text().contains("incorrect"), "{}", r.body_text());
    assert!(!r.body_text().contains(CALLBACK_PREFIX));
    match d
        .user_enroll(&http, SERVER_URL, MAID, MAID, "wrong password")
        .await
    {
        Err(SimError::Status { status, body, .. }) => {
            assert_eq!(status, 200);
            assert!(body.contains("incorrect"), "{body}");
        }
        other => panic!("a wrong password enrolled: {other:?}"),
    }
    assert!(d.enrollment_id.is_none() && d.profile().is_none());
    let list = get(&lab, "/api/v1/devices").await;
    assert_eq!(list["items"], json!([]), "nothing enrolled yet: {list}");

    // The right password: token, profile, SCEP, Authenticate, TokenUpdate.
    let flow = d
        .user_enroll(&http, SERVER_URL, MAID, MAID, PASSWORD)
        .await
        .expect("user enrollment");
    assert_eq!(flow.discovery.version, "mdm-byod");
    assert_eq!(flow.sign_in_url, signin_url());
    assert!(!flow.access_token.is_empty());

    // 4. The admin API knows the device by its EnrollmentID only.
    let eid = check_user_enrollment(&lab, &d, "ios").await;
    let list = get(&lab, "/api/v1/devices?enrolled=true").await;
    let listed = list["items"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["device_id"], eid.as_str(), "{list}");
    assert_eq!(listed[0]["enrollment_type"], "user", "{list}");
    assert_withheld("the device list", &list.to_string(), &d);

    // 5. What User Enrollment forbids is refused with the reason, and never queued.
    for (cmd, reason) in [
        (
            json!({"RequestType": "EraseDevice"}),
            &["EraseDevice is not allowed under User Enrollment"][..],
        ),
        (
            json!({"RequestType": "EnableLostMode", "Message": "Lost"}),
            &["EnableLostMode is not allowed under User Enrollment"],
        ),
        (
            json!({"RequestType": "DeviceInformation", "Queries": ["SerialNumber"]}),
            &["not allowed under User Enrollment", "SerialNumber"],
        ),
        (
            json!({"RequestType": "DeviceInformation", "Queries": ["UDID"]}),
            &["not allowed under User Enrollment", "UDID"],
        ),
        (
            json!({"RequestType": "DeviceInformation", "Queries": ["IMEI"]}),
            &["not allowed under User Enrollment", "IMEI"],
        ),
        // Not silently narrowed to the allowed part.
        (
            json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion", "SerialNumber", "WiFiMAC"]}),
            &["SerialNumber", "WiFiMAC"],
        ),
        // A configuration with a payload User Enrollment does not take, next to one it does.
        (
            json!({"RequestType": "InstallProfile", "Payload": configuration(&["com.apple.wifi.managed", "com.apple.vpn.managed"])}),
            &[
                "VPN (com.apple.vpn.managed) - this is not a valid payload under User Enrollment on iOS/iPadOS",
            ],
        ),
    ] {
        refused(&lab, &eid, cmd, reason).await;
    }
    assert_eq!(history(&lab, &eid).await, Vec::<Value>::new());

    // What it allows is queued, pushed, fetched on Idle and answered. DeviceLock is
    // allowed on iOS under User Enrollment (the spec's table; refused on macOS below).
    let pushes_before = lab.apns.pushes().len();
    let allowed = [
        json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion", "BuildVersion", "ProductName", "ModelName"]}),
        json!({"RequestType": "InstalledApplicationList", "ManagedAppsOnly": true}),
        json!({"RequestType": "ProfileList"}),
        json!({"RequestType": "DeviceLock", "Message": "Returned to ann"}),
    ];
    let (s, b) = queue(&lab, &eid, &allowed[0]).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["push"]["outcome"], "delivered", "{b}");
    let mut uuids = BTreeMap::new();
    uuids.insert(
        b["command_uuid"].as_str().unwrap().to_owned(),
        "DeviceInformation",
    );
    for cmd in &allowed[1..] {
        let rt = cmd["RequestType"].as_str().unwrap();
        uuids.insert(queue_ok(&lab, &eid, cmd.clone()).await, rt);
    }
    let pushes = lab
        .apns
        .wait_for_pushes(pushes_before + 1, WAIT)
        .expect("push");
    let p = &pushes[pushes_before];
    assert_eq!(p.path, format!("/3/device/{}", d.push_token_hex()));
    assert_eq!(p.push_magic.as_deref(), Some(d.push_magic.as_str()));
    let answered = d.run_until_idle(&http).await.unwrap();
    let got: BTreeMap<String, &str> = answered
        .iter()
        .map(|a| (a.command.uuid.clone(), a.command.request_type.as_str()))
        .collect();
    assert_eq!(got, uuids, "the device got exactly what was allowed");
    assert!(answered.iter().all(|a| a.status == Status::Acknowledged));
    assert_eq!(d.idle(&http).await.unwrap(), None, "nothing else queued");
    for uuid in uuids.keys() {
        let r = get(&lab, &format!("/api/v1/devices/{eid}/commands/{uuid}")).await;
        assert_eq!(r["status"], "acknowledged", "{r}");
        assert_withheld("a command result", &r.to_string(), &d);
    }
    let v = get(&lab, &format!("/api/v1/devices/{eid}")).await;
    let info = &v["inventory"]["DeviceInformation"]["data"];
    assert_eq!(info["OSVersion"], d.os_version.as_str(), "{v:#}");
    assert_eq!(info["ModelName"], d.model_name.as_str(), "{v:#}");
    assert_eq!(info["SerialNumber"], Value::Null, "{v:#}");
    let apps = &v["inventory"]["InstalledApplicationList"]["data"];
    assert!(apps.to_string().contains("com.example.notes"), "{v:#}");
    assert_withheld("the device view with inventory", &v.to_string(), &d);

    // The same person's Mac: User Enrollment there forbids DeviceLock as well.
    let mut mac = personal(&lab, DeviceKind::Mac, "14.4", None);
    let flow = mac
        .user_enroll(&http, SERVER_URL, MAID, USER, PASSWORD)
        .await
        .expect("the Mac's user enrollment");
    assert_eq!(flow.discovery.version, "mdm-byod");
    let mac_eid = check_user_enrollment(&lab, &mac, "macos").await;
    assert_ne!(mac_eid, eid);
    refused(
        &lab,
        &mac_eid,
        json!({"RequestType": "DeviceLock", "PIN": "123456"}),
        &["DeviceLock is not allowed under User Enrollment on macOS"],
    )
    .await;
    refused(
        &lab,
        &mac_eid,
        json!({"RequestType": "EraseDevice", "PIN": "123456"}),
        &["EraseDevice is not allowed under User Enrollment on macOS"],
    )
    .await;
    refused(
        &lab,
        &mac_eid,
        json!({"RequestType": "InstallProfile", "Payload": configuration(&["com.apple.applicationaccess"])}),
        &["Restrictions (com.apple.applicationaccess) - this is not a valid payload under User Enrollment on macOS"],
    )
    .await;
    refused(
        &lab,
        &mac_eid,
        json!({"RequestType": "DeviceInformation", "Queries": ["SerialNumber", "UDID"]}),
        &["SerialNumber", "UDID"],
    )
    .await;
    assert_eq!(
        mac.idle(&http).await.unwrap(),
        None,
        "nothing reached the Mac"
    );
    assert_eq!(history(&lab, &mac_eid).await, Vec::<Value>::new());

    // 6. Logs and command history read as for a zero-touch device.
    let serials = lab.serials("iPhone", 1);
    assert_eq!(serials.len(), 1, "depsim has an iPhone");
    lab.assign(&serials).await;
    let mut ade = lab.device(&serials[0]);
    lab.enroll(&mut ade).await;
    let ade_uuid = queue_ok(&lab, &ade.udid, json!({"RequestType": "ProfileList"})).await;
    let answered = ade.run_until_idle(&http).await.unwrap();
    assert_eq!(answered.len(), 1);
    let ade_history = history(&lab, &ade.udid).await;
    let ue_history = history(&lab, &eid).await;
    let ue_listed: BTreeSet<&str> = ue_history
        .iter()
        .map(|c| c["command_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(
        ue_listed,
        uuids.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        "the history lists what was queued, nothing refused"
    );
    let ade_entry = ade_history
        .iter()
        .find(|c| c["command_uuid"] == ade_uuid.as_str())
        .expect("the ADE device's ProfileList");
    for c in &ue_history {
        assert_eq!(c["status"], "acknowledged", "{c}");
        assert_eq!(
            keys(c),
            keys(ade_entry),
            "same shape as ADE history: {c} / {ade_entry}"
        );
    }
    let ue_profile_list = ue_history
        .iter()
        .find(|c| c["request_type"] == "ProfileList")
        .expect("ProfileList in the history");
    assert_eq!(ue_profile_list["status"], ade_entry["status"]);
    let (ue_log, ade_log) = (logs(&lab, &eid).await, logs(&lab, &ade.udid).await);
    let (ue_sum, ade_sum) = (log_summary(&ue_log), log_summary(&ade_log));
    for (action, status) in [
        ("Authenticate", "ok"),
        ("TokenUpdate", "ok"),
        ("ProfileList", "Acknowledged"),
    ] {
        assert!(has(&ue_sum, action, status), "UE log {ue_sum:?}");
        assert!(has(&ade_sum, action, status), "ADE log {ade_sum:?}");
    }
    for rt in uuids.values() {
        assert!(has(&ue_sum, rt, "Acknowledged"), "{rt}: {ue_sum:?}");
    }
    for rt in ["EraseDevice", "EnableLostMode"] {
        assert!(
            ue_sum.keys().all(|(a, _)| a != rt),
            "{rt} in the log: {ue_sum:?}"
        );
    }
    let shape = keys(&ade_log[0]);
    for e in ue_log.iter() {
        assert_eq!(keys(e), shape, "same log entry shape as ADE: {e}");
    }
    let filtered = get(
        &lab,
        &format!("/api/v1/devices/{eid}/logs?action=DeviceLock"),
    )
    .await;
    let filtered = filtered["items"].as_array().unwrap();
    assert!(!filtered.is_empty());
    assert!(filtered.iter().all(|e| e["action"] == "DeviceLock"));
    assert_withheld("the logs", &Value::Array(ue_log).to_string(), &d);
    assert_withheld("the history", &Value::Array(ue_history).to_string(), &d);

    // 7. The group switches to device enrollment: new people now get account-driven
    //    Device Enrollment, but ann, who enrolled as a User Enrollment, keeps it.
    let (s, g) = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/groups/{GROUP}"),
            Some(json!({ "enrollment_type": "device" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(g["enrollment_type"], "device", "{g}");
    let (s, b) = app
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({
                "username": "bob",
                "password": PASSWORD,
                "managed_apple_id": "bob.ray@appleid.example.com",
                "groups": [GROUP],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let bob = d
        .discover(&http, SERVER_URL, "bob.ray@appleid.example.com")
        .await
        .unwrap();
    assert_eq!(bob.version, "mdm-adde", "the group's new setting applies");
    // ann removes the enrollment from Settings (CheckOut), then enrolls again.
    d.checkout(&http).await.unwrap();
    let v = get(&lab, &format!("/api/v1/devices/{eid}")).await;
    assert_eq!(v["enrolled"], false, "{v}");
    d.enrollment_id = None;
    let flow = d
        .user_enroll(&http, SERVER_URL, MAID, MAID, PASSWORD)
        .await
        .expect("re-enrollment");
    assert_eq!(flow.discovery.version, "mdm-byod");
    assert_eq!(flow.discovery.base_url, byod_url());
    let eid2 = check_user_enrollment(&lab, &d, "ios").await;
    assert_ne!(eid2, eid, "a new EnrollmentID for the new enrollment");
    refused(
        &lab,
        &eid2,
        json!({"RequestType": "EraseDevice"}),
        &["EraseDevice is not allowed under User Enrollment"],
    )
    .await;
    let uuid = queue_ok(&lab, &eid2, json!({"RequestType": "ProfileList"})).await;
    let answered = d.run_until_idle(&http).await.unwrap();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].command.uuid, uuid);
    assert_eq!(answered[0].status, Status::Acknowledged);

    // The Mac is wiped (no CheckOut: its old enrollment stays on record) and enrolled
    // again: a User Enrollment too.
    mac.enrollment_id = None;
    let flow = mac
        .user_enroll(&http, SERVER_URL, MAID, USER, PASSWORD)
        .await
        .expect("the Mac's re-enrollment");
    assert_eq!(flow.discovery.version, "mdm-byod");
    let mac_eid2 = check_user_enrollment(&lab, &mac, "macos").await;
    assert_ne!(mac_eid2, mac_eid);
    refused(
        &lab,
        &mac_eid2,
        json!({"RequestType": "DeviceLock", "PIN": "123456"}),
        &["DeviceLock is not allowed under User Enrollment on macOS"],
    )
    .await;

    // The store never saw the personal devices' identifiers (the ADE iPhone's are
    // there, which shows the dump would find them).
    let dump = dump_store(&lab);
    let ade_imei = ade.imei.clone().expect("an iPhone has an IMEI");
    for id in [
        &eid,
        &eid2,
        &mac_eid,
        &mac_eid2,
        &ade.udid,
        &ade.serial,
        &ade_imei,
    ] {
        assert!(dump.contains(id.as_str()), "the dump holds {id}");
    }
    // Command results are there in base64 (the device's plist), and would be seen.
    assert!(contains_base64(&dump, "<string>Notes Example</string>"));
    assert_withheld("the store", &dump, &d);
    assert_withheld("the store", &dump, &mac);

    let took = started.elapsed();
    eprintln!("user_enrollment: {:.1} s", took.as_secs_f64());
    lab.shutdown().await;
}

/// The victim's identity still works and its record is the one it had.
async fn assert_untouched(lab: &Lab, victim: &Device, before: &Value) {
    assert_eq!(victim.idle(&lab.http()).await.unwrap(), None);
    let now = get(lab, &format!("/api/v1/devices/{}", victim.udid)).await;
    for k in [
        "enrolled",
        "enrolled_via",
        "enrollment_type",
        "serial_number",
        "user",
    ] {
        assert_eq!(now[k], before[k], "{k}: {now:#}");
    }
}

/// A signed-in user plays the attacker: their account-driven enrollment names the UDID of
/// a device enrolled through ADE (as an ADDE Authenticate, and as a User Enrollment's
/// EnrollmentID). Neither touches the victim's enrollment; the access token enrolls one
/// device, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_cannot_take_over_another_devices_enrollment() {
    let lab = Lab::start(12, PushCert::Trusted).await;
    let app = &lab.app;
    let http = lab.http();
    let serial = lab.serials("iPhone", 1).pop().unwrap();
    lab.assign(std::slice::from_ref(&serial)).await;
    let mut victim = lab.device(&serial);
    lab.enroll(&mut victim).await;
    let before = get(&lab, &format!("/api/v1/devices/{}", victim.udid)).await;
    assert_eq!(before["enrolled_via"], "ade", "{before}");

    for (group, kind, priority) in [("company-owned", "device", 1), ("personal", "user", 2)] {
        let (s, b) = app
            .admin(
                Method::POST,
                "/api/v1/groups",
                Some(json!({ "id": group, "name": group, "enrollment_type": kind, "priority": priority })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    for (user, group) in [("mallory", "company-owned"), ("eve", "personal")] {
        let (s, b) = app
            .admin(
                Method::POST,
                "/api/v1/users",
                Some(json!({
                    "username": user, "password": PASSWORD,
                    "managed_apple_id": format!("{user}@appleid.example.com"),
                    "groups": [group],
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    // Account-driven Device Enrollment naming the victim's UDID.
    let maid = "mallory@appleid.example.com";
    let mut m = personal(&lab, DeviceKind::Iphone, "17.4", None);
    let flow = m
        .account_profile(&http, SERVER_URL, maid, maid, PASSWORD)
        .await
        .unwrap();
    assert_eq!(flow.discovery.version, "mdm-adde");
    m.udid = victim.udid.clone();
    match m.finish_enrollment(&http).await {
        Err(SimError::Status {
            status: 400, body, ..
        }) => {
            assert!(body.contains("cannot replace"), "{body}")
        }
        other => panic!("the takeover went through: {other:?}"),
    }
    assert_untouched(&lab, &victim, &before).await;

    // User Enrollment with the victim's UDID as EnrollmentID: a separate enrollment.
    let maid = "eve@appleid.example.com";
    let mut e = personal(&lab, DeviceKind::Iphone, "17.4", None);
    let flow = e
        .account_profile(&http, SERVER_URL, maid, maid, PASSWORD)
        .await
        .unwrap();
    assert_eq!(flow.discovery.version, "mdm-byod");
    e.enrollment_id = Some(victim.udid.clone());
    e.finish_enrollment(&http)
        .await
        .expect("its own User Enrollment");
    assert_untouched(&lab, &victim, &before).await;
    let own = get(&lab, &format!("/api/v1/devices/ue:{}", victim.udid)).await;
    assert_eq!(own["enrollment_type"], "user", "{own:#}");
    assert_eq!(own["user"], "eve", "{own:#}");

    // The access token was used up by that enrollment.
    let r = http
        .send(
            "POST",
            &flow.discovery.base_url,
            &[("authorization", &format!("Bearer {}", flow.access_token))],
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.status,
        401,
        "a used token enrolled again: {}",
        r.body_text()
    );

    // One token, one enrollment: a second device posting the same token gets a profile for
    // the same enrollment reference, and only the first to Authenticate enrolls.
    let mut first = personal(&lab, DeviceKind::Iphone, "17.4", None);
    let flow = first
        .account_profile(&http, SERVER_URL, maid, maid, PASSWORD)
        .await
        .unwrap();
    let mut second = personal(&lab, DeviceKind::Iphone, "17.4", None);
    second
        .account_profile_with(&http, &flow.discovery.base_url, &flow.access_token)
        .await
        .unwrap();
    let reference = |d: &Device| {
        d.profile()
            .unwrap()
            .scep
            .subject_attr(&["CN"])
            .map(str::to_owned)
    };
    assert!(reference(&first).is_some());
    assert_eq!(reference(&first), reference(&second));
    first
        .finish_enrollment(&http)
        .await
        .expect("the first enrolls");
    assert!(
        second.finish_enrollment(&http).await.is_err(),
        "a second device enrolled with one token"
    );
    lab.shutdown().await;
}

/// What `bench-polls --server` does with a server it did not start: with only the admin
/// key (no Apple service, no Apple CA, no push certificate but the `apns_topic` variable), a
/// benchmark user enrolls an iPhone account-driven, and its signed Idle is answered; without
/// a push topic the server's own reason comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_elsewhere_takes_a_benchmark_device_through_its_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let app = mdm_e2e::App::start_with(
        dir.path(),
        vec![(
            "apns_topic".into(),
            "com.apple.mgmt.External.5f7c1a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b".into(),
        )],
    )
    .await
    .unwrap();
    let e = mdm_e2e::external::enroll_device(app.addr, mdm_e2e::ADMIN_KEY)
        .await
        .expect("enrolled through the admin API");
    let idle = e.device.signed_idle().unwrap();
    let (_, path) = mdm_devicesim::http::split_url(&idle.url).unwrap();
    let (s, _, body) = app
        .raw(
            Method::PUT,
            path,
            &[
                (
                    "content-type".into(),
                    "application/x-apple-aspen-mdm".into(),
                ),
                ("mdm-signature".into(), idle.signature.clone().unwrap()),
            ],
            idle.body.clone(),
        )
        .await
        .unwrap();
    assert_eq!((s, body.len()), (StatusCode::OK, 0), "the signed Idle");
    let (s, u) = app
        .admin(Method::GET, &format!("/api/v1/users/{}", e.username), None)
        .await;
    assert_eq!(
        (s, &u["groups"][0]),
        (StatusCode::OK, &json!(e.group)),
        "{u}"
    );
    // A second run beside the first: its own group, at another priority.
    let again = mdm_e2e::external::enroll_device(app.addr, mdm_e2e::ADMIN_KEY).await;
    assert!(again.is_ok(), "{:?}", again.err());
    // A wrong key is refused before anything is created.
    let wrong = mdm_e2e::external::enroll_device(app.addr, "not-the-key").await;
    let err = format!("{:#}", wrong.err().expect("a wrong admin key"));
    assert!(err.contains("401"), "{err}");
    app.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let app = mdm_e2e::App::start(dir.path()).await.unwrap();
    let err = mdm_e2e::external::enroll_device(app.addr, mdm_e2e::ADMIN_KEY)
        .await
        .err()
        .expect("no push topic, no enrollment");
    assert!(format!("{err:#}").contains("push"), "{err:#}");
    app.shutdown().await;
}

//! The command and device admin API: queueing (JSON and raw plists), validation against
//! the schema and the device, the queue bound, lanes, cancel, history, retention,
//! inventory and the device views.

mod mdmdevice;

use std::time::Duration;

use base64::Engine;
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::Clock;
use mdm_core::mdm::command_retention;
use mdmdevice::{Device, E, Identity, SYNC_KEY, admin_call, admin_raw, env, queue, vector};
use serde_json::{Value, json};

const IPHONE: &str = "00008110-000A1C2E3E88401E";
const MAC: &str = "66ADE930-5FDF-5EC4-8429-15640684C489";

fn commands_path(d: &str) -> String {
    format!("/api/v1/devices/{d}/commands")
}

fn post(e: &E, d: &str, body: &str) -> (StatusCode, Value) {
    admin_call(e, Method::POST, &commands_path(d), body)
}

fn get(e: &E, path: &str) -> (StatusCode, Value) {
    admin_call(e, Method::GET, path, "")
}

fn iphone(e: &E) -> Device<'_> {
    let d = Device::new(e, Identity::self_signed(), IPHONE);
    d.enroll(
        "iPhone15,2",
        "17.4",
        "<key>UnlockToken</key><data>dW5sb2Nr</data>",
    );
    d
}

fn mac(e: &E) -> Device<'_> {
    let d = Device::new(e, Identity::ca_issued(), MAC);
    d.enroll("iMac14,2", "10.12.6", "");
    d
}

/// The device answers DeviceInformation with these query responses.
fn report_device_information(e: &E, d: &Device, responses: &str) {
    let u = queue(
        e,
        &d.udid,
        r#"{"RequestType":"DeviceInformation","Queries":["IsSupervised"]}"#,
    );
    assert_eq!(d.idle().unwrap().0, u);
    let extra = format!("<key>QueryResponses</key><dict>{responses}</dict>");
    assert_eq!(d.report("Acknowledged", Some(&u), &extra), None);
}

fn problems(b: &Value) -> Vec<String> {
    b["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn queue_json_and_raw_plists() {
    let e = env();
    let d = iphone(&e);
    let (s, b) = post(
        &e,
        IPHONE,
        r#"{"RequestType":"DeviceLock","Message":"Call us"}"#,
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let u1 = b["command_uuid"].as_str().unwrap().to_owned();
    assert_eq!(u1.len(), 36);
    assert_eq!(
        (b["lane"].as_str(), b["status"].as_str()),
        (Some("priority"), Some("queued"))
    );

    // A full command plist keeps its CommandUUID.
    let full = br#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>
        <key>CommandUUID</key><string>raw-0001</string>
        <key>Command</key><dict><key>RequestType</key><string>InstallProfile</string>
        <key>Payload</key><data>cHJvZmlsZQ==</data></dict></dict></plist>"#;
    let (s, b) = admin_raw(
        &e,
        Method::POST,
        &commands_path(IPHONE),
        "application/x-apple-plist",
        full,
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["command_uuid"], "raw-0001");
    assert_eq!(b["lane"], "normal");
    // The same UUID again: conflict.
    let (s, _) = admin_raw(
        &e,
        Method::POST,
        &commands_path(IPHONE),
        "application/xml",
        full,
    );
    assert_eq!(s, StatusCode::CONFLICT);
    // Just the inner dictionary, as text/xml, with options in the query.
    let inner = br#"<plist version="1.0"><dict><key>RequestType</key><string>ProfileList</string></dict></plist>"#;
    let (s, b) = admin_raw(
        &e,
        Method::POST,
        &format!("{}?priority=true", commands_path(IPHONE)),
        "text/xml; charset=utf-8",
        inner,
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["lane"], "priority");
    let u3 = b["command_uuid"].as_str().unwrap().to_owned();

    // Priority first (FIFO within it), then the normal lane.
    assert_eq!(d.idle(), Some((u1.clone(), "DeviceLock".into())));
    assert_eq!(d.ack(&u1), Some((u3.clone(), "ProfileList".into())));
    assert_eq!(
        d.ack(&u3),
        Some(("raw-0001".into(), "InstallProfile".into()))
    );
    assert_eq!(d.ack("raw-0001"), None);
}

#[test]
fn clear_passcode_takes_the_escrowed_unlock_token() {
    let e = env();
    let d = iphone(&e);
    let u = queue(&e, IPHONE, r#"{"RequestType":"ClearPasscode"}"#);
    let body = mdmdevice::xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{IPHONE}</string>"
    ));
    let r = d.connect_raw(&body);
    let v: plist::Value = plist::from_bytes(r.body()).unwrap();
    let cmd = v.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap();
    assert_eq!(cmd["UnlockToken"].as_data(), Some(&b"unlock"[..]));
    d.ack(&u);
    // A device that escrowed none: 422 naming the key.
    let m = mac(&e);
    let (s, b) = post(&e, &m.udid, r#"{"RequestType":"ClearPasscode"}"#);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}

/// Whether any stored value holds `needle` in the clear.
fn stored_anywhere(e: &E, needle: &[u8]) -> Vec<String> {
    mdmdevice::dump(e)
        .into_iter()
        .filter(|(_, v)| v.windows(needle.len()).any(|w| w == needle))
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn secrets_rest_sealed_and_are_not_kept_in_history() {
    let e = env();
    let d = iphone(&e);
    let pin = queue(&e, IPHONE, r#"{"RequestType":"DeviceLock","PIN":"918273"}"#);
    let clear = queue(&e, IPHONE, r#"{"RequestType":"ClearPasscode"}"#);
    let token = queue(&e, IPHONE, r#"{"RequestType":"RequestUnlockToken"}"#);
    // Queued: neither the PIN nor the UnlockToken is in any stored value.
    assert_eq!(stored_anywhere(&e, b"918273"), Vec::<String>::new());
    assert_eq!(stored_anywhere(&e, b"dW5sb2Nr"), Vec::<String>::new());
    // The device gets them in the clear.
    let body = mdmdevice::xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{IPHONE}</string>"
    ));
    let r = d.connect_raw(&body);
    let v: plist::Value = plist::from_bytes(r.body()).unwrap();
    let v = v.as_dictionary().unwrap();
    assert_eq!(v["CommandUUID"].as_string(), Some(pin.as_str()));
    assert_eq!(
        v["Command"].as_dictionary().unwrap()["PIN"].as_string(),
        Some("918273")
    );
    assert_eq!(d.ack(&pin).unwrap().0, clear);
    assert_eq!(d.ack(&clear).unwrap().0, token);
    // The device answers with a fresh UnlockToken: the history keeps no copy of it.
    let answer = "<key>UnlockToken</key><data>c2VjcmV0LXRva2Vu</data>";
    assert_eq!(d.report("Acknowledged", Some(&token), answer), None);
    assert_eq!(
        stored_anywhere(&e, b"c2VjcmV0LXRva2Vu"),
        Vec::<String>::new()
    );
    assert_eq!(stored_anywhere(&e, b"secret-token"), Vec::<String>::new());
    let (s, b) = get(&e, &format!("{}/{token}", commands_path(IPHONE)));
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "acknowledged");
    assert_eq!(
        b["response"]["UnlockToken"],
        mdm_core::mdm::command_secrets::REDACTED
    );
}

#[test]
fn payload_problems_are_422_naming_the_key() {
    let e = env();
    iphone(&e);
    let cases: &[(&str, &str)] = &[
        (r#"{"RequestType":"MakeCoffee"}"#, "RequestType"),
        (r#"{"Message":"no type"}"#, "RequestType"),
        (r#"{"RequestType":42}"#, "RequestType"),
        (r#"{"RequestType":"InstallProfile"}"#, "Payload"),
        (
            r#"{"RequestType":"InstallProfile","Payload":"not base64!"}"#,
            "Payload",
        ),
        (r#"{"RequestType":"DeviceLock","PIN":123456}"#, "PIN"),
        (r#"{"RequestType":"DeviceLock","Pin":"123456"}"#, "Pin"),
        (
            r#"{"RequestType":"DeviceInformation","Queries":["NoSuchQuery"]}"#,
            "Queries[0]",
        ),
        (r#"{"RequestType":"EnableLostMode"}"#, ""),
        (r#"{"RequestType":"ProfileList","user":7}"#, "user"),
        (
            r#"{"RequestType":"ProfileList","priority":"yes"}"#,
            "priority",
        ),
    ];
    let before = mdmdevice::dump(&e);
    for (body, key) in cases {
        let (s, b) = post(&e, IPHONE, body);
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert_eq!(b["error"], "validation_failed");
        if !key.is_empty() {
            assert!(problems(&b).iter().any(|k| k == key), "{body}: {b}");
        }
    }
    let bad_plist = br#"<plist version="1.0"><dict><key>RequestType</key><string>InstallProfile</string></dict></plist>"#;
    let (s, b) = admin_raw(
        &e,
        Method::POST,
        &commands_path(IPHONE),
        "application/xml",
        bad_plist,
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problems(&b), vec!["Payload"]);
    // Not JSON, not a plist, not a supported type.
    assert_eq!(post(&e, IPHONE, "{").0, StatusCode::BAD_REQUEST);
    let (s, _) = admin_raw(
        &e,
        Method::POST,
        &commands_path(IPHONE),
        "application/xml",
        b"<nope",
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = admin_raw(
        &e,
        Method::POST,
        &commands_path(IPHONE),
        "text/plain",
        b"{}",
    );
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(mdmdevice::dump(&e), before, "nothing queued");
}

#[test]
fn device_capabilities_are_422_with_the_reason() {
    let e = env();
    let phone = iphone(&e);
    let m = mac(&e);
    // Wrong platform.
    let (s, b) = post(
        &e,
        IPHONE,
        r#"{"RequestType":"SetFirmwarePassword","NewPassword":"x"}"#,
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("not available on iOS"),
        "{b}"
    );
    // OS too old (macOS 10.12.6; DeclarativeManagement needs 13.0).
    let (s, b) = post(&e, MAC, r#"{"RequestType":"DeclarativeManagement"}"#);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        b["message"].as_str().unwrap().contains("13.0 or later"),
        "{b}"
    );
    // A user-channel command on the device channel.
    let (s, b) = post(&e, MAC, r#"{"RequestType":"ActiveNSExtensions"}"#);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        b["message"].as_str().unwrap().contains("user channel"),
        "{b}"
    );
    // Supervision: unknown until DeviceInformation says so, then enforced.
    let lost = r#"{"RequestType":"EnableLostMode","Message":"Lost"}"#;
    let (s, b) = post(&e, IPHONE, lost);
    assert_eq!(
        s,
        StatusCode::CREATED,
        "unknown supervision refuses nothing: {b}"
    );
    let lost_uuid = b["command_uuid"].as_str().unwrap().to_owned();
    phone.idle();
    phone.ack(&lost_uuid);
    report_device_information(&e, &phone, "<key>IsSupervised</key><false/>");
    let (s, b) = post(&e, IPHONE, lost);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(b["message"].as_str().unwrap().contains("supervised"), "{b}");
    report_device_information(&e, &phone, "<key>IsSupervised</key><true/>");
    assert_eq!(post(&e, IPHONE, lost).0, StatusCode::CREATED);
    let _ = m;
}

#[test]
fn user_enrollment_limits_commands() {
    let e = env();
    // User Enrollment: EnrollmentID instead of UDID; EraseDevice is not allowed.
    // Known as `ue:<EnrollmentID>`: no EnrollmentID can name a device enrolled by UDID.
    let ue = Device::new(&e, Identity::self_signed(), "ue:UE-ENROLLMENT-ID");
    mdmdevice::admit(&e, &ue.id, "ue:UE-ENROLLMENT-ID", "", mdmdevice::TOPIC);
    for (mt, extra) in [
        (
            "Authenticate",
            format!(
                "<key>Topic</key><string>{}</string><key>ProductName</key><string>iPhone15,2</string><key>OSVersion</key><string>17.4</string>",
                mdmdevice::TOPIC
            ),
        ),
        (
            "TokenUpdate",
            format!(
                "<key>Topic</key><string>{}</string><key>PushMagic</key><string>m</string><key>Token</key><data>AQ==</data>",
                mdmdevice::TOPIC
            ),
        ),
    ] {
        let r = ue.checkin_raw(&mdmdevice::xml(&format!(
            "<key>MessageType</key><string>{mt}</string><key>EnrollmentID</key><string>UE-ENROLLMENT-ID</string>{extra}"
        )));
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (s, b) = post(
        &e,
        "ue:UE-ENROLLMENT-ID",
        r#"{"RequestType":"EraseDevice"}"#,
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        b["message"].as_str().unwrap().contains("User Enrollment"),
        "{b}"
    );
    assert_eq!(
        post(
            &e,
            "ue:UE-ENROLLMENT-ID",
            r#"{"RequestType":"ProfileList"}"#
        )
        .0,
        StatusCode::CREATED
    );
    let (_, v) = get(&e, "/api/v1/devices/ue:UE-ENROLLMENT-ID");
    assert_eq!(v["enrollment_type"], "user");
    assert_eq!(v["enrollment_id"], "UE-ENROLLMENT-ID");
    assert_eq!(v["udid"], Value::Null);
    assert_eq!(v["device_id"], "ue:UE-ENROLLMENT-ID");
}

#[test]
fn unknown_unenrolled_devices_and_user_channels_are_404() {
    let e = env();
    let m = mac(&e);
    assert_eq!(
        post(&e, "NOPE", r#"{"RequestType":"ProfileList"}"#).0,
        StatusCode::NOT_FOUND
    );
    // A user channel that never checked in.
    let (s, _) = post(&e, MAC, r#"{"RequestType":"ProfileList","user":"nobody"}"#);
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A user channel that checked in.
    let r = m.checkin(
        "TokenUpdate",
        &format!("<key>UserID</key><string>U-501</string><key>UserShortName</key><string>alice</string><key>Topic</key><string>{}</string><key>PushMagic</key><string>m2</string><key>Token</key><data>Ag==</data>", mdmdevice::TOPIC),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let (s, b) = post(&e, MAC, r#"{"RequestType":"ProfileList","user":"U-501"}"#);
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let u = b["command_uuid"].as_str().unwrap().to_owned();
    // Not on the device channel; on the user's.
    assert_eq!(m.idle(), None);
    let user_report = |status: &str, uuid: Option<&str>| {
        let uu = uuid
            .map(|u| format!("<key>CommandUUID</key><string>{u}</string>"))
            .unwrap_or_default();
        mdmdevice::next_command(&m.connect_raw(&mdmdevice::xml(&format!(
            "<key>Status</key><string>{status}</string><key>UDID</key><string>{MAC}</string><key>UserID</key><string>U-501</string>{uu}"
        ))))
    };
    assert_eq!(
        user_report("Idle", None),
        Some((u.clone(), "ProfileList".into()))
    );
    assert_eq!(user_report("Acknowledged", Some(&u)), None);
    let (s, b) = get(&e, &format!("{}/{u}?user=U-501", commands_path(MAC)));
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("acknowledged"))
    );
    let (_, h) = get(&e, &format!("{}?user=U-501", commands_path(MAC)));
    assert_eq!(h["items"].as_array().unwrap().len(), 1);
    let (_, h) = get(&e, &commands_path(MAC));
    assert_eq!(
        h["items"].as_array().unwrap().len(),
        0,
        "the device channel's history is separate"
    );
    // A checked-out device takes no commands (its history stays readable).
    assert_eq!(m.checkin("CheckOut", "").status(), StatusCode::OK);
    let (s, b) = post(&e, MAC, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b["message"].as_str().unwrap().contains("not enrolled"));
    assert_eq!(get(&e, &commands_path(MAC)).0, StatusCode::OK);
    assert_eq!(get(&e, &commands_path("NOPE")).0, StatusCode::NOT_FOUND);
    assert_eq!(get(&e, "/api/v1/devices/NOPE").0, StatusCode::NOT_FOUND);
}

#[test]
fn queue_bound_is_409_queue_full_and_cancel_makes_room() {
    let e = env();
    let d = iphone(&e);
    e.vars.set("command_queue_limit", "3");
    let a = queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    let b = queue(&e, IPHONE, r#"{"RequestType":"SecurityInfo"}"#);
    queue(&e, IPHONE, r#"{"RequestType":"CertificateList"}"#);
    let (s, body) = post(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(body["error"], "queue_full");
    // Cancelling frees a slot at once, before the device passes the entry.
    let (s, _) = admin_call(
        &e,
        Method::DELETE,
        &format!("{}/{b}", commands_path(IPHONE)),
        "",
    );
    assert_eq!(s, StatusCode::OK);
    queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(
        post(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#).0,
        StatusCode::CONFLICT
    );
    // Answers free slots too.
    assert_eq!(d.idle().unwrap().0, a);
    d.ack(&a);
    queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(
        post(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#).0,
        StatusCode::CONFLICT
    );
    e.vars.set("command_queue_limit", "lots");
    let (s, body) = post(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("command_queue_limit")
    );
}

#[test]
fn setup_commands_take_the_priority_lane_while_awaiting_configuration() {
    let e = env();
    let d = Device::new(&e, Identity::self_signed(), IPHONE);
    d.enroll(
        "iPhone15,2",
        "17.4",
        "<key>AwaitingConfiguration</key><true/>",
    );
    let p = queue(
        &e,
        IPHONE,
        r#"{"RequestType":"InstallProfile","Payload":"AA=="}"#,
    );
    let c = queue(&e, IPHONE, r#"{"RequestType":"DeviceConfigured"}"#);
    // Setup done (a later TokenUpdate says so): the normal lane again.
    let r = d.checkin(
        "TokenUpdate",
        &format!("<key>Topic</key><string>{}</string><key>PushMagic</key><string>m</string><key>Token</key><data>AQ==</data>", mdmdevice::TOPIC),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let n = queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    let lock = queue(&e, IPHONE, r#"{"RequestType":"DeviceLock"}"#);
    let mut order = vec![d.idle().unwrap().0];
    while let Some((u, _)) = d.ack(order.last().unwrap()) {
        order.push(u);
    }
    // The server's own DeviceConfigured (queued at the first TokenUpdate) comes first.
    assert_eq!(order.len(), 5, "{order:?}");
    assert_eq!(order[1..], [p, c, lock, n]);
}

#[test]
fn cancel_queued_deferred_in_flight_answered_unknown() {
    let e = env();
    let d = iphone(&e);
    let path = |u: &str| format!("{}/{u}", commands_path(IPHONE));
    let a = queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    let b = queue(&e, IPHONE, r#"{"RequestType":"SecurityInfo"}"#);
    let c = queue(&e, IPHONE, r#"{"RequestType":"CertificateList"}"#);
    let x = queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    // Queued, never delivered: cancelled, never sent.
    let (s, v) = admin_call(&e, Method::DELETE, &path(&b), "");
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert_eq!(
        admin_call(&e, Method::DELETE, &path(&b), "").0,
        StatusCode::CONFLICT
    );
    // In flight: 409.
    assert_eq!(d.idle().unwrap().0, a);
    let (s, v) = admin_call(&e, Method::DELETE, &path(&a), "");
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(v["message"].as_str().unwrap().contains("awaiting"));
    // Deferred with NotNow: cancellable, and not sent after the next Idle.
    assert_eq!(d.not_now(&a).unwrap().0, c);
    assert_eq!(
        admin_call(&e, Method::DELETE, &path(&a), "").0,
        StatusCode::OK
    );
    assert_eq!(d.ack(&c).unwrap().0, x);
    // Answered: 409.
    assert_eq!(
        admin_call(&e, Method::DELETE, &path(&c), "").0,
        StatusCode::CONFLICT
    );
    assert_eq!(d.ack(&x), None);
    assert_eq!(d.idle(), None, "cancelled commands never come back");
    assert_eq!(
        admin_call(&e, Method::DELETE, &path("never"), "").0,
        StatusCode::NOT_FOUND
    );
    let (_, v) = get(&e, &path(&a));
    assert_eq!(v["status"], "cancelled");
    assert!(v["cancelled_at"].is_string());
}

#[test]
fn history_is_newest_first_filtered_and_paginated() {
    let e = env();
    let d = iphone(&e);
    let t0 = e.clock.unix_seconds();
    let mut uuids = Vec::new();
    for i in 0..23 {
        let rt = ["ProfileList", "SecurityInfo", "CertificateList"][i % 3];
        uuids.push(queue(&e, IPHONE, &format!(r#"{{"RequestType":"{rt}"}}"#)));
        e.clock.advance(Duration::from_secs(60));
    }
    // Answer the first ten: acks, two errors, one NotNow; cancel one.
    let mut cur = d.idle().unwrap().0;
    for (i, u) in uuids.iter().enumerate().take(10) {
        assert_eq!(&cur, u);
        let next = match i {
            3 | 7 => d.report("Error", Some(&cur), ""),
            5 => d.not_now(&cur),
            _ => d.ack(&cur),
        };
        cur = next.unwrap().0;
    }
    let (s, _) = admin_call(
        &e,
        Method::DELETE,
        &format!("{}/{}", commands_path(IPHONE), uuids[20]),
        "",
    );
    assert_eq!(s, StatusCode::OK);

    // Everything, newest first, 7 at a time.
    let mut got = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &next {
            Some(n) => format!("?limit=7&cursor={n}"),
            None => "?limit=7".into(),
        };
        let (s, b) = get(&e, &format!("{}{q}", commands_path(IPHONE)));
        assert_eq!(s, StatusCode::OK, "{b}");
        pages += 1;
        got.extend(
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["command_uuid"].as_str().unwrap().to_owned()),
        );
        match b["next"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => break,
        }
    }
    let mut want = uuids.clone();
    want.reverse();
    assert_eq!(got, want);
    assert_eq!(pages, 4);

    let list = |q: &str| -> Vec<String> {
        let (s, b) = get(&e, &format!("{}?{q}", commands_path(IPHONE)));
        assert_eq!(s, StatusCode::OK, "{q}: {b}");
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["command_uuid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        list("status=error"),
        vec![uuids[7].clone(), uuids[3].clone()]
    );
    assert_eq!(list("status=not_now"), vec![uuids[5].clone()]);
    assert_eq!(list("status=cancelled"), vec![uuids[20].clone()]);
    assert_eq!(list("status=acknowledged").len(), 7);
    // In flight counts as queued (no answer yet).
    assert_eq!(list("status=queued").len(), 23 - 10 - 1);
    assert_eq!(list("request_type=SecurityInfo").len(), 8);
    assert_eq!(
        list("request_type=SecurityInfo&status=error"),
        vec![uuids[7].clone()]
    );
    // Date range on enqueue time: minutes 5 to 8.
    let from = t0 + 5 * 60;
    let to = t0 + 8 * 60;
    assert_eq!(
        list(&format!("from={from}&to={to}")),
        vec![
            uuids[8].clone(),
            uuids[7].clone(),
            uuids[6].clone(),
            uuids[5].clone()
        ]
    );
    let from_rfc = mdm_core::time::format_rfc3339(from as i64);
    assert_eq!(list(&format!("from={from_rfc}")).len(), 18);
    assert_eq!(
        list(&format!("from={from_rfc}&limit=3&request_type=ProfileList")).len(),
        3
    );
    for bad in [
        "status=done".to_string(),
        "limit=0".into(),
        "limit=5000".into(),
        "from=yesterday".into(),
        "cursor=x".into(),
        "colour=red".into(),
        format!("from={to}&to={from}"),
    ] {
        let (s, b) = get(&e, &format!("{}?{bad}", commands_path(IPHONE)));
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {b}");
    }
}

fn tick(e: &E) -> Value {
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/internal/tick")
        .header("authorization", format!("Bearer {SYNC_KEY}"))
        .body(vec![])
        .unwrap();
    let resp = block_on(mdm_core::sync::handle(e, req));
    assert_eq!(resp.status(), StatusCode::OK);
    serde_json::from_slice(resp.body()).unwrap()
}

#[test]
fn finished_commands_are_purged_after_the_retention_period() {
    let e = env();
    let d = iphone(&e);
    let old: Vec<String> = (0..5)
        .map(|_| queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#))
        .collect();
    let mut cur = d.idle().unwrap().0;
    for u in &old[..4] {
        assert_eq!(&cur, u);
        cur = d.ack(u).unwrap().0;
    }
    assert_eq!(cur, old[4]);
    d.not_now(&old[4]);
    let cancelled = queue(&e, IPHONE, r#"{"RequestType":"SecurityInfo"}"#);
    admin_call(
        &e,
        Method::DELETE,
        &format!("{}/{cancelled}", commands_path(IPHONE)),
        "",
    );

    // Not yet due.
    let b = tick(&e);
    assert_eq!(b["commands"]["purged"], 0, "{b}");
    e.clock.advance(Duration::from_secs(20 * 86400));
    let recent = queue(&e, IPHONE, r#"{"RequestType":"CertificateList"}"#);
    assert_eq!(d.idle().unwrap().0, old[4]);
    d.ack(&old[4]);
    assert_eq!(d.idle().unwrap().0, recent);
    d.ack(&recent);
    e.clock.advance(Duration::from_secs(11 * 86400));
    let b = tick(&e);
    assert_eq!(
        b["commands"]["purged"], 5,
        "4 answered + 1 cancelled, 31 days old: {b}"
    );
    assert_eq!(b["commands"]["behind"], 2);
    for u in old[..4].iter().chain([&cancelled]) {
        assert_eq!(
            get(&e, &format!("{}/{u}", commands_path(IPHONE))).0,
            StatusCode::NOT_FOUND
        );
    }
    for u in [&old[4], &recent] {
        assert_eq!(
            get(&e, &format!("{}/{u}", commands_path(IPHONE))).0,
            StatusCode::OK
        );
    }
    let (_, h) = get(&e, &commands_path(IPHONE));
    let listed: Vec<&str> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![recent.as_str(), old[4].as_str()]);
    // The floor moved over the purged slots: the history ends without a cursor.
    assert_eq!(h["next"], Value::Null);
    // Nothing of the purged ones is left in the store.
    let left: Vec<String> = e
        .store
        .backend()
        .dump()
        .into_iter()
        .filter(|(k, v)| k.contains(&old[0]) || String::from_utf8_lossy(v).contains(&old[0]))
        .map(|(k, _)| k)
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Configurable days; a bad value is reported, not fatal.
    e.vars.set("command_retention_days", "5");
    e.clock.advance(Duration::from_secs(6 * 86400));
    assert_eq!(tick(&e)["commands"]["purged"], 2);
    e.vars.set("command_retention_days", "0");
    assert!(
        tick(&e)["commands"]["error"]
            .as_str()
            .unwrap()
            .contains("command_retention_days")
    );
}

#[test]
fn purge_work_per_tick_is_bounded() {
    let e = env();
    let d = iphone(&e);
    for _ in 0..12 {
        let u = queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
        assert_eq!(d.idle().unwrap().0, u);
        d.ack(&u);
    }
    let now = mdmdevice::START + 100 * 86400;
    for (purged, behind) in [(5, 7), (5, 2), (2, 0), (0, 0)] {
        let r = block_on(command_retention::purge_expired(&e.store, now, 86400, 5)).unwrap();
        assert_eq!((r.purged, r.behind), (purged, behind));
    }
    let (_, h) = get(&e, &commands_path(IPHONE));
    assert_eq!(h["items"], json!([]));
    assert_eq!(h["next"], Value::Null);
}

#[test]
fn inventory_from_a_captured_device_information_answer() {
    let e = env();
    let m = mac(&e);
    // Queue DeviceInformation under the CommandUUID of the captured answer.
    let cmd = br#"<plist version="1.0"><dict><key>CommandUUID</key><string>76eda240-5488-4989-8339-f2ae160113c4</string>
        <key>Command</key><dict><key>RequestType</key><string>DeviceInformation</string>
        <key>Queries</key><array><string>HostName</string><string>UDID</string></array></dict></dict></plist>"#;
    let (s, b) = admin_raw(
        &e,
        Method::POST,
        &commands_path(MAC),
        "application/x-apple-plist",
        cmd,
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(m.idle().unwrap().0, "76eda240-5488-4989-8339-f2ae160113c4");
    let answer = vector("nanomdm-checkin/DeviceInformation.1.plist");
    assert_eq!(mdmdevice::next_command(&m.connect_raw(&answer)), None);
    let (s, v) = get(&e, &format!("/api/v1/devices/{MAC}"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["inventory"]["DeviceInformation"]["data"]["HostName"],
        "fruit.example.com"
    );
    assert!(v["inventory"]["DeviceInformation"]["reported_at"].is_string());
    let (_, c) = get(
        &e,
        &format!(
            "{}/76eda240-5488-4989-8339-f2ae160113c4",
            commands_path(MAC)
        ),
    );
    assert_eq!(
        c["response"]["QueryResponses"]["HostName"],
        "fruit.example.com"
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(c["raw"].as_str().unwrap())
        .unwrap();
    assert!(
        String::from_utf8(raw)
            .unwrap()
            .contains("fruit.example.com")
    );

    // A later, partial answer merges; the record's facts follow it.
    report_device_information(
        &e,
        &m,
        "<key>OSVersion</key><string>14.4</string><key>IsSupervised</key><true/><key>DeviceName</key><string>Lab iMac</string>",
    );
    let (_, v) = get(&e, &format!("/api/v1/devices/{MAC}"));
    let info = &v["inventory"]["DeviceInformation"]["data"];
    assert_eq!(
        (info["HostName"].as_str(), info["OSVersion"].as_str()),
        (Some("fruit.example.com"), Some("14.4"))
    );
    assert_eq!(v["os_version"], "14.4");
    assert_eq!(v["supervised"], true);
    assert_eq!(v["device_name"], "Lab iMac");
    assert_eq!(v["platform"], "macos");
    // The newer OS now allows what 10.12.6 did not.
    assert_eq!(
        post(&e, MAC, r#"{"RequestType":"DeclarativeManagement"}"#).0,
        StatusCode::CREATED
    );

    // Long lists live under their own key and come back whole.
    let u = queue(&e, MAC, r#"{"RequestType":"InstalledApplicationList"}"#);
    let mut cur = m.idle().unwrap().0;
    if cur != u {
        cur = m.ack(&cur).unwrap().0;
    }
    assert_eq!(cur, u);
    let apps = "<key>InstalledApplicationList</key><array>\
        <dict><key>Identifier</key><string>com.apple.Safari</string><key>Name</key><string>Safari</string></dict>\
        <dict><key>Identifier</key><string>com.example.app</string><key>Name</key><string>Example</string></dict></array>";
    assert_eq!(m.report("Acknowledged", Some(&u), apps), None);
    let (_, v) = get(&e, &format!("/api/v1/devices/{MAC}"));
    let list = v["inventory"]["InstalledApplicationList"]["data"]
        .as_array()
        .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["Identifier"], "com.example.app");
    let rec = block_on(mdm_core::mdm::enrollments::get(&e.store, MAC))
        .unwrap()
        .unwrap();
    assert!(rec.inventory["InstalledApplicationList"].external);
    // An Error answer does not touch the inventory.
    let u = queue(&e, MAC, r#"{"RequestType":"InstalledApplicationList"}"#);
    assert_eq!(m.idle().unwrap().0, u);
    m.report(
        "Error",
        Some(&u),
        "<key>InstalledApplicationList</key><array/>",
    );
    let (_, v) = get(&e, &format!("/api/v1/devices/{MAC}"));
    assert_eq!(
        v["inventory"]["InstalledApplicationList"]["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The list view shows when each section was reported, not the data.
    let (_, l) = get(&e, "/api/v1/devices");
    assert!(l["items"][0]["inventory"]["InstalledApplicationList"]["reported_at"].is_string());
    assert!(
        l["items"][0]["inventory"]["InstalledApplicationList"]
            .get("data")
            .is_none()
    );
}

#[test]
fn device_list_pages_filters_and_shows_no_secrets() {
    let e = env();
    // One device per identity (a certificate binds one enrollment): the two fixtures.
    let a = Device::new(&e, Identity::self_signed(), IPHONE);
    a.enroll(
        "iPhone15,2",
        "17.4",
        "<key>UnlockToken</key><data>c2VjcmV0LXVubG9jaw==</data>",
    );
    let b = mac(&e);
    assert_eq!(b.checkin("CheckOut", "").status(), StatusCode::OK);

    let (s, v) = get(&e, "/api/v1/devices?limit=1");
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["device_id"], IPHONE);
    let next = v["next"].as_str().unwrap().to_owned();
    let (_, v2) = get(&e, &format!("/api/v1/devices?limit=1&cursor={next}"));
    assert_eq!(v2["items"][0]["device_id"], MAC);
    assert_eq!(v2["next"], Value::Null);
    let (_, v3) = get(&e, "/api/v1/devices?enrolled=true");
    assert_eq!(v3["items"].as_array().unwrap().len(), 1);
    assert_eq!(v3["items"][0]["device_id"], IPHONE);
    let (_, v4) = get(&e, "/api/v1/devices?enrolled=false");
    assert_eq!(v4["items"][0]["device_id"], MAC);
    assert_eq!(
        get(&e, "/api/v1/devices?limit=0").0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        get(&e, "/api/v1/devices?enrolled=maybe").0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let (_, d) = get(&e, &format!("/api/v1/devices/{IPHONE}"));
    assert_eq!(d["enrolled"], true);
    assert_eq!(d["push_reachable"], true);
    assert_eq!(d["unlock_token_escrowed"], true);
    assert_eq!(d["enrollment_type"], "device");
    assert_eq!(d["udid"], IPHONE);
    assert_eq!(d["platform"], "ios");
    assert_eq!(d["os_version"], "17.4");
    assert_eq!(d["serial_number"], format!("SN-{IPHONE}"));
    assert_eq!(d["supervised"], Value::Null);
    assert!(d["last_seen_at"].is_string());
    let (_, m) = get(&e, &format!("/api/v1/devices/{MAC}"));
    assert_eq!(
        (m["enrolled"].as_bool(), m["push_reachable"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(m["checked_out_at"].is_string());
    // No secret anywhere: unlock token, push magic, push token.
    for body in [v.to_string(), v2.to_string(), d.to_string(), m.to_string()] {
        for secret in [
            "c2VjcmV0LXVubG9jaw",
            "secret-unlock",
            "magic-",
            "00010203",
            "AAECAw",
        ] {
            assert!(!body.contains(secret), "{secret} in {body}");
        }
    }
}

#[test]
fn bulk_queue_reports_per_device() {
    let e = env();
    let a = iphone(&e);
    let b = mac(&e);
    let (s, v) = admin_call(
        &e,
        Method::POST,
        "/api/v1/commands",
        &json!({"devices": [IPHONE, MAC, "NOPE"], "command": {"RequestType": "DeviceLock", "Message": "m"}}).to_string(),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["queued"].as_u64(), v["failed"].as_u64()),
        (Some(2), Some(1))
    );
    let r = v["results"].as_array().unwrap();
    assert_eq!(r[2]["device"], "NOPE");
    assert_eq!(r[2]["status"], 404);
    let ua = r[0]["command_uuid"].as_str().unwrap();
    let ub = r[1]["command_uuid"].as_str().unwrap();
    assert_ne!(ua, ub, "a CommandUUID per device");
    assert_eq!(a.idle().unwrap().0, ua);
    assert_eq!(b.idle().unwrap().0, ub);
    // A command one device cannot run fails for it alone.
    let (_, v) = admin_call(
        &e,
        Method::POST,
        "/api/v1/commands",
        &json!({"devices": [IPHONE, MAC], "command": {"RequestType": "ScheduleOSUpdateScan"}})
            .to_string(),
    );
    assert_eq!(v["results"][0]["status"], 422, "{v}");
    assert!(v["results"][1]["command_uuid"].is_string(), "{v}");
    // The payload and the request shape are checked once for all.
    for bad in [
        json!({"devices": [IPHONE], "command": {"RequestType": "InstallProfile"}}),
        json!({"devices": [IPHONE], "command": {"RequestType": "ProfileList", "user": "u"}}),
        json!({"devices": [IPHONE, IPHONE], "command": {"RequestType": "ProfileList"}}),
        json!({"devices": [], "command": {"RequestType": "ProfileList"}}),
        json!({"command": {"RequestType": "ProfileList"}}),
        json!({"devices": [IPHONE]}),
        json!({"devices": [IPHONE], "command": {"RequestType": "ProfileList"}, "extra": 1}),
    ] {
        let (s, v) = admin_call(&e, Method::POST, "/api/v1/commands", &bad.to_string());
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
}

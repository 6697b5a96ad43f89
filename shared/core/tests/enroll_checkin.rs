//! From the enrollment request to an enrolled device, as a device does it: ADE request →
//! signed profile → SCEP with the profile's challenge → Authenticate and TokenUpdate
//! signed with the issued identity. Authenticate's refusals, the device record, the
//! one-time challenge, re-enrollment after a wipe, and the deliberate unenroll answer.

mod enrollsupport;

use std::time::Duration;

use base64::Engine;
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::command::records;
use mdm_core::enroll::pending;
use mdm_core::mdm::enrollment_record;
use mdm_core::mdm::enrollment_record::EnrollmentKind;
use mdm_core::queue::{self, Channel};
use mdm_crypto::PkiStatus;
use serde_json::json;

use enrollsupport::*;

const UUID: &str = "7C64A6E2E3D94C7F9B8F6E0C0D4D3B21";
const UDID: &str = "00008030-001A2B3C4D5E802E";
const SERIAL: &str = "F9FXK0ABCDEF";
const UDID2: &str = "00008030-00AAAAAAAAAA802E";
const SERIAL2: &str = "F9FXK0SECOND";

fn server() -> Server {
    let s = Server::new();
    s.add_profile(1, UUID, default_profile());
    s.sync_device(assigned(SERIAL, UUID));
    s.sync_device(assigned(SERIAL2, UUID));
    s
}

/// The ADE request of `udid`/`serial`; returns the profile's challenge.
fn request_profile(s: &Server, udid: &str, serial: &str) -> String {
    let dev = s
        .apple
        .device("6001A957-6FC5-4856-8C5E-DC2E32C61CB9", false);
    let body = dev.sign(
        &machine_info(udid, serial, Some("17.2"), true),
        Hash::Sha1,
        Form::Ber,
        &[],
    );
    let (profile, _, _) = open_profile(&s.enroll_request(body));
    challenge_of(&profile)
}

fn identity(s: &Server, key: usize, udid: &str, challenge: &str) -> Identity {
    scep_enroll(&s.e, &device_mdm_key(key), udid, challenge).expect("SCEP SUCCESS")
}

fn ok(r: &mdm_core::Response) {
    assert_eq!(r.status(), StatusCode::OK, "{}", text(r));
}

fn bad(r: &mdm_core::Response, needle: &str) {
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{}", text(r));
    assert!(text(r).contains(needle), "{}", text(r));
}

#[test]
fn an_ade_device_enrolls_end_to_end_and_its_record_says_how() {
    let s = server();
    let challenge = request_profile(&s, UDID, SERIAL);
    let id = identity(&s, 0, UDID, &challenge);
    ok(&id.authenticate(&s.e, UDID, SERIAL));
    let rec = block_on(enrollment_record::get(&s.e.store, UDID))
        .unwrap()
        .unwrap();
    assert!(!rec.enrolled);
    assert_eq!(rec.serial_number.as_deref(), Some(SERIAL));
    assert_eq!(rec.enrollment_kind, Some(EnrollmentKind::Ade));
    assert_eq!(rec.supervised, Some(true));
    assert_eq!(rec.dep_token, Some(s.token));
    assert_eq!(rec.dep_profile, Some(1));
    assert_eq!(
        rec.identity_serial.as_deref(),
        Some(id.cert.serial_hex().as_str())
    );
    assert_eq!(
        rec.identity_expires_at,
        Some(id.cert.not_after_unix() as u64)
    );
    assert_eq!(rec.imei.as_deref(), Some("35 123456 789012 3"));
    assert!(rec.user.is_none() && rec.push.is_none());

    ok(&id.token_update(&s.e, UDID, ""));
    let rec = block_on(enrollment_record::get(&s.e.store, UDID))
        .unwrap()
        .unwrap();
    assert!(rec.enrolled && rec.awaiting_configuration && rec.push.is_some());
    assert_eq!(rec.enrolled_at, Some(START));
    // The request is used up.
    assert!(
        block_on(pending::get(&s.e.store, UDID, s.now()))
            .unwrap()
            .is_none()
    );

    // The admin view shows the new facts, no secret.
    let (st, v) = s.admin(Method::GET, &format!("/api/v1/devices/{UDID}"), "");
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["enrolled_via"], "ade");
    assert_eq!(v["dep_profile"], 1);
    assert_eq!(v["push_token"], true);
    assert_eq!(v["identity_serial"], id.cert.serial_hex());
    assert!(v["identity_expires_at"].is_string());
    assert_eq!(v["supervised"], true);
    assert_eq!(v["awaiting_configuration"], true);
    let body = v.to_string();
    assert!(!body.contains("magic-") && !body.contains(&challenge));
}

#[test]
fn authenticate_is_refused_without_a_matching_enrollment_request() {
    let s = server();
    let challenge = request_profile(&s, UDID, SERIAL);
    let id = identity(&s, 0, UDID, &challenge);
    let before = s.dump();
    // UDID mismatch: the identity was issued for another UDID (and UDID2 never asked).
    bad(
        &id.authenticate(&s.e, UDID2, SERIAL),
        "issued to another device",
    );
    // Serial mismatch.
    bad(
        &id.authenticate(&s.e, UDID, SERIAL2),
        "SerialNumber differs",
    );
    // Topic mismatch.
    bad(
        &id.checkin(
            &s.e,
            "Authenticate",
            UDID,
            &format!("<key>Topic</key><string>com.apple.mgmt.External.other</string><key>SerialNumber</key><string>{SERIAL}</string>"),
        ),
        "Topic differs",
    );
    assert_eq!(
        fingerprint(&s.dump()),
        fingerprint(&before),
        "nothing stored"
    );

    // Another device's certificate: issued (over SCEP) for UDID, presented by UDID2.
    let _ = request_profile(&s, UDID2, SERIAL2);
    let before = s.dump();
    bad(
        &id.authenticate(&s.e, UDID2, SERIAL2),
        "identity certificate issued to another device",
    );
    assert_eq!(fingerprint(&s.dump()), fingerprint(&before));

    // The request expires.
    s.e.clock.advance(Duration::from_secs(pending::PENDING_TTL));
    bad(
        &id.authenticate(&s.e, UDID, SERIAL),
        "no enrollment request",
    );
    assert!(
        block_on(enrollment_record::get(&s.e.store, UDID))
            .unwrap()
            .is_none()
    );
}

#[test]
fn the_profile_challenge_is_one_time_and_expires_after_15_minutes() {
    let s = server();
    let challenge = request_profile(&s, UDID, SERIAL);
    assert!(scep_enroll(&s.e, &device_mdm_key(0), UDID, &challenge).is_ok());
    // Reused.
    assert_eq!(
        scep_enroll(&s.e, &device_mdm_key(1), UDID, &challenge).err(),
        Some(PkiStatus::Failure)
    );
    // Expired.
    let late = request_profile(&s, UDID, SERIAL);
    s.e.clock.advance(Duration::from_secs(15 * 60 + 1));
    assert_eq!(
        scep_enroll(&s.e, &device_mdm_key(1), UDID, &late).err(),
        Some(PkiStatus::Failure)
    );
    // Within 15 minutes it works.
    let fresh = request_profile(&s, UDID, SERIAL);
    s.e.clock.advance(Duration::from_secs(14 * 60));
    assert!(scep_enroll(&s.e, &device_mdm_key(1), UDID, &fresh).is_ok());
}

fn queue(s: &Server, device: &str, request_type: &str) -> String {
    let cmd = json!({ "RequestType": request_type });
    let (st, v) = s.admin(
        Method::POST,
        &format!("/api/v1/devices/{device}/commands"),
        &cmd.to_string(),
    );
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["command_uuid"].as_str().unwrap().to_owned()
}

fn idle(s: &Server, id: &Identity, udid: &str, user: Option<&str>) -> mdm_core::Response {
    let user = user
        .map(|u| format!("<key>UserID</key><string>{u}</string>"))
        .unwrap_or_default();
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Idle</string><key>UDID</key><string>{udid}</string>{user}</dict></plist>"#
    );
    id.send(&s.e, "/mdm/connect", body.as_bytes())
}

#[test]
fn re_enrollment_after_a_wipe_replaces_the_old_enrollment_cleanly() {
    let s = server();
    let old = identity(&s, 0, UDID, &request_profile(&s, UDID, SERIAL));
    ok(&old.authenticate(&s.e, UDID, SERIAL));
    ok(&old.token_update(&s.e, UDID, ""));
    // A macOS-style user channel, escrowed tokens, queued commands on both channels.
    ok(&old.token_update(
        &s.e,
        UDID,
        "<key>UserID</key><string>USER-1</string><key>UserShortName</key><string>ann</string>",
    ));
    ok(&old.checkin(
        &s.e,
        "SetBootstrapToken",
        UDID,
        "<key>BootstrapToken</key><data>c2VjcmV0</data>",
    ));
    let c1 = queue(&s, UDID, "CertificateList");
    let c2 = queue(&s, UDID, "SecurityInfo");
    // (The admin API refuses user-channel commands for an iPhone; queue it directly.)
    let c3 = "USER-CHANNEL-CMD".to_owned();
    block_on(records::enqueue(
        &s.e.store,
        &Channel::user(UDID, "USER-1"),
        &records::NewCommand {
            uuid: c3.clone(),
            request_type: "ProfileList".into(),
            body: b"<plist/>".to_vec(),
            lane: queue::Lane::Normal,
            sealed: false,
        },
        START,
        100,
    ))
    .unwrap();
    // One command delivered (in flight) when the device is wiped.
    assert!(!idle(&s, &old, UDID, None).body().is_empty());

    // Wiped: the device goes through ADE again, gets a new identity. Until the new
    // identity's first TokenUpdate the old enrollment stays live (a replayed request
    // must not break it), and the admin sees the re-enrollment.
    let new = identity(&s, 1, UDID, &request_profile(&s, UDID, SERIAL));
    ok(&new.authenticate(&s.e, UDID, SERIAL));
    let during = block_on(enrollment_record::get(&s.e.store, UDID))
        .unwrap()
        .unwrap();
    assert!(
        during.enrolled && during.push.is_some(),
        "the old enrollment is live"
    );
    assert!(during.reenrollment.is_some());
    let (_, v) = s.admin(Method::GET, &format!("/api/v1/devices/{UDID}"), "");
    assert!(v["reenrollment"]["started_at"].is_string(), "{v}");
    bad(&idle(&s, &new, UDID, None), "re-enrollment is not complete");
    bad(
        &new.checkin(&s.e, "GetBootstrapToken", UDID, ""),
        "re-enrollment is not complete",
    );
    ok(&old.checkin(&s.e, "GetBootstrapToken", UDID, ""));
    // Its TokenUpdate completes it: the old enrollment goes.
    ok(&new.token_update(&s.e, UDID, ""));
    let rec = block_on(enrollment_record::get(&s.e.store, UDID))
        .unwrap()
        .unwrap();
    assert!(rec.enrolled && rec.unlock_token.is_none() && rec.reenrollment.is_none());
    assert_eq!(rec.cert_hashes.len(), 1);
    assert!(rec.user_channels.is_empty());
    assert_eq!(
        rec.identity_serial.as_deref(),
        Some(new.cert.serial_hex().as_str())
    );
    assert!(
        block_on(enrollment_record::user_channel(&s.e.store, UDID, "USER-1"))
            .unwrap()
            .is_none()
    );
    // The old identity is no longer bound.
    bad(
        &old.checkin(&s.e, "GetBootstrapToken", UDID, ""),
        "not bound",
    );
    bad(&idle(&s, &old, UDID, None), "not bound");
    // The bootstrap token is gone with the old enrollment.
    let r = new.checkin(&s.e, "GetBootstrapToken", UDID, "");
    ok(&r);
    assert!(r.body().is_empty());
    // Queues emptied: nothing is delivered, the history says cancelled.
    let r = idle(&s, &new, UDID, None);
    ok(&r);
    assert!(r.body().is_empty(), "{}", text(&r));
    for uuid in [&c1, &c2] {
        let (st, v) = s.admin(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/commands/{uuid}"),
            "",
        );
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "cancelled", "{v}");
    }
    // The user channel is gone (the admin API no longer finds it); its command record
    // says cancelled.
    let ch = Channel::user(UDID, "USER-1");
    let r = block_on(records::result(&s.e.store, ch.tag(), &c3))
        .unwrap()
        .unwrap();
    assert_eq!(r.status, "Cancelled");
    assert_eq!(block_on(queue::pending(&s.e.store, &ch)).unwrap(), 0);
    assert_eq!(
        block_on(queue::pending(&s.e.store, &Channel::device(UDID))).unwrap(),
        0
    );
    // New commands flow to the new enrollment.
    let c4 = queue(&s, UDID, "CertificateList");
    let r = idle(&s, &new, UDID, None);
    assert!(text(&r).contains(&c4));
    // Listed once.
    let (_, v) = s.admin(Method::GET, "/api/v1/devices", "");
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
}

#[test]
fn a_device_we_hold_no_enrollment_for_is_told_to_unenroll() {
    let s = server();
    let id = identity(&s, 0, UDID, &request_profile(&s, UDID, SERIAL));
    // Never authenticated (or its enrollment was removed here): 403 unrecognized.
    for r in [id.token_update(&s.e, UDID, ""), idle(&s, &id, UDID, None)] {
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{}", text(&r));
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(json_body(&r)["code"], "com.apple.unrecognized.device");
    }
    // A known device presenting a certificate bound elsewhere is an error, not an unenroll.
    ok(&id.authenticate(&s.e, UDID, SERIAL));
    let other = identity(&s, 1, UDID2, &request_profile(&s, UDID2, SERIAL2));
    let r = other.token_update(&s.e, UDID, "");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{}", text(&r));
}

#[test]
fn a_manual_enrollment_with_an_admin_challenge_needs_no_request() {
    let s = server();
    let (st, v) = s.admin(
        Method::POST,
        "/api/v1/enrollment/challenges",
        &json!({ "device_id": UDID2, "serial": SERIAL2 }).to_string(),
    );
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = identity(&s, 0, UDID2, v["challenge"].as_str().unwrap());
    // The admin's challenge names the serial: another one is refused.
    bad(
        &id.authenticate(&s.e, UDID2, SERIAL),
        "SerialNumber differs",
    );
    ok(&id.authenticate(&s.e, UDID2, SERIAL2));
    let rec = block_on(enrollment_record::get(&s.e.store, UDID2))
        .unwrap()
        .unwrap();
    assert_eq!(rec.enrollment_kind, Some(EnrollmentKind::Manual));
    assert_eq!(rec.supervised, None);
    // An identity from an ADE profile's challenge still needs its request.
    let ade = identity(&s, 1, UDID, &request_profile(&s, UDID, SERIAL));
    block_on(pending::remove(&s.e.store, UDID)).unwrap();
    bad(
        &ade.authenticate(&s.e, UDID, SERIAL),
        "no enrollment request",
    );
}

/// Reads the device's queue in delivery order, acknowledging each command.
fn drain(s: &Server, id: &Identity, udid: &str) -> Vec<(String, plist::Dictionary)> {
    let mut out = Vec::new();
    let mut r = idle(s, id, udid, None);
    while r.status() == StatusCode::OK && !r.body().is_empty() {
        let cmd: plist::Dictionary = plist::from_bytes(r.body()).unwrap();
        let uuid = cmd["CommandUUID"].as_string().unwrap().to_owned();
        let inner = cmd["Command"].as_dictionary().unwrap().clone();
        let rt = inner["RequestType"].as_string().unwrap().to_owned();
        out.push((rt, inner));
        let ack = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>UDID</key><string>{udid}</string><key>CommandUUID</key><string>{uuid}</string></dict></plist>"#
        );
        r = id.send(&s.e, "/mdm/connect", ack.as_bytes());
    }
    out
}

#[test]
fn the_profiles_setup_commands_run_before_device_configured() {
    let s = Server::new();
    let payload = base64::engine::general_purpose::STANDARD.encode(b"<plist>wifi</plist>");
    let mut p = default_profile();
    p["device_name_template"] = json!("{{DEVICETYPE}}-{{SERIAL}}");
    p["setup_commands"] = json!([
        { "RequestType": "InstallProfile", "Payload": payload },
        { "RequestType": "Settings", "Settings": [
            { "Item": "TimeZone", "TimeZone": "Europe/Berlin" } ] },
    ]);
    s.add_profile(1, UUID, p);
    s.sync_device(assigned(SERIAL, UUID));
    let challenge = request_profile(&s, UDID, SERIAL);
    let id = identity(&s, 0, UDID, &challenge);
    ok(&id.authenticate(&s.e, UDID, SERIAL));
    ok(&id.token_update(&s.e, UDID, ""));
    // A second TokenUpdate (a new push token) queues nothing again.
    ok(&id.token_update(&s.e, UDID, ""));
    let got = drain(&s, &id, UDID);
    let types: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["Settings", "InstallProfile", "Settings", "DeviceConfigured"]
    );
    let name = &got[0].1["Settings"].as_array().unwrap()[0];
    assert_eq!(
        name.as_dictionary().unwrap()["DeviceName"].as_string(),
        Some(format!("iPhone-{SERIAL}").as_str())
    );
    assert_eq!(
        got[1].1["Payload"].as_data(),
        Some(&b"<plist>wifi</plist>"[..])
    );
    let tz = &got[2].1["Settings"].as_array().unwrap()[0];
    assert_eq!(
        tz.as_dictionary().unwrap()["TimeZone"].as_string(),
        Some("Europe/Berlin")
    );
    let (_, v) = s.admin(Method::GET, &format!("/api/v1/devices/{UDID}"), "");
    assert_eq!(v["awaiting_configuration"], false, "{v}");
}

#[test]
fn setup_commands_also_reach_a_device_that_does_not_await_configuration() {
    let s = Server::new();
    let mut p = default_profile();
    p["await_device_configured"] = json!(false);
    p["setup_commands"] = json!([{ "RequestType": "ProfileList" }]);
    s.add_profile(1, UUID, p);
    s.sync_device(assigned(SERIAL, UUID));
    let challenge = request_profile(&s, UDID, SERIAL);
    let id = identity(&s, 0, UDID, &challenge);
    ok(&id.authenticate(&s.e, UDID, SERIAL));
    ok(&id.checkin(
        &s.e,
        "TokenUpdate",
        UDID,
        &format!(
            "<key>Topic</key><string>{TOPIC}</string><key>PushMagic</key><string>magic</string>\
             <key>Token</key><data>AAECAwQFBgc=</data>"
        ),
    ));
    let got = drain(&s, &id, UDID);
    let types: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["ProfileList"]);
}

#[test]
fn a_renewed_identity_keeps_the_enrollment_its_queue_and_channels() {
    let s = server();
    let challenge = request_profile(&s, UDID, SERIAL);
    let old = identity(&s, 0, UDID, &challenge);
    ok(&old.authenticate(&s.e, UDID, SERIAL));
    ok(&old.token_update(&s.e, UDID, ""));
    // Setup Assistant's DeviceConfigured first, then an admin's command.
    let r = idle(&s, &old, UDID, None);
    let dc: plist::Dictionary = plist::from_bytes(r.body()).unwrap();
    let ack = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>UDID</key><string>{UDID}</string><key>CommandUUID</key><string>{}</string></dict></plist>"#,
        dc["CommandUUID"].as_string().unwrap()
    );
    ok(&old.send(&s.e, "/mdm/connect", ack.as_bytes()));
    let queued = queue(&s, UDID, "ProfileList");

    // The identity is renewed over SCEP; the device signs with the new one from then on.
    let new = scep_renew(&s.e, &old, &device_mdm_key(1)).expect("renewed");
    let r = idle(&s, &new, UDID, None);
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    let cmd: plist::Dictionary = plist::from_bytes(r.body()).unwrap();
    assert_eq!(cmd["CommandUUID"].as_string(), Some(queued.as_str()));
    let rec = block_on(enrollment_record::get(&s.e.store, UDID))
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.identity_serial.as_deref(),
        Some(new.cert.serial_hex().as_str())
    );
    assert!(rec.enrolled && rec.push.is_some(), "nothing reset");
    assert_eq!(rec.cert_hashes.len(), 2);
    // Check-ins too.
    ok(&new.token_update(&s.e, UDID, ""));

    // A renewal of another device's identity does not adopt this one.
    let challenge2 = request_profile(&s, UDID2, SERIAL2);
    let other = identity(&s, 2, UDID2, &challenge2);
    ok(&other.authenticate(&s.e, UDID2, SERIAL2));
    // Not enrolled yet (no TokenUpdate): nothing to renew.
    assert!(scep_renew(&s.e, &other, &device_mdm_key(3)).is_err());
    ok(&other.token_update(&s.e, UDID2, ""));
    let other_new = scep_renew(&s.e, &other, &device_mdm_key(3)).expect("renewed");
    bad(&idle(&s, &other_new, UDID, None), "not bound");
}

/// Retire sticks: once an admin retires a device, its identity is not renewed, a
/// renewal made before does not bring it back (by check-in or by a new Authenticate),
/// and after the device acknowledged the removal nothing of the old enrollment works.
#[test]
fn a_retired_device_does_not_come_back_by_renewal() {
    let s = server();
    let challenge = request_profile(&s, UDID, SERIAL);
    let id = identity(&s, 0, UDID, &challenge);
    ok(&id.authenticate(&s.e, UDID, SERIAL));
    ok(&id.token_update(&s.e, UDID, ""));
    // A renewal made while the device was managed, kept back by the device.
    let renewed_early = scep_renew(&s.e, &id, &device_mdm_key(1)).expect("renewed");

    let (st, v) = s.admin(Method::DELETE, &format!("/api/v1/devices/{UDID}"), "");
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let remove = v["command_uuid"].as_str().unwrap().to_owned();
    // Retiring: no renewal, and the early renewal is not adopted.
    assert!(scep_renew(&s.e, &id, &device_mdm_key(2)).is_err());
    bad(&idle(&s, &renewed_early, UDID, None), "not bound");

    // The device acknowledges the RemoveProfile: the enrollment is gone.
    let ack = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>UDID</key><string>{UDID}</string><key>CommandUUID</key><string>{remove}</string></dict></plist>"#
    );
    let mut drained = 0;
    while let Some(next) = {
        let r = idle(&s, &id, UDID, None);
        (r.status() == StatusCode::OK && !r.body().is_empty())
            .then(|| plist::from_bytes::<plist::Dictionary>(r.body()).unwrap())
    } {
        let uuid = next["CommandUUID"].as_string().unwrap().to_owned();
        let body = if uuid == remove {
            ack.clone()
        } else {
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>UDID</key><string>{UDID}</string><key>CommandUUID</key><string>{uuid}</string></dict></plist>"#
            )
        };
        ok(&id.send(&s.e, "/mdm/connect", body.as_bytes()));
        drained += 1;
        if uuid == remove {
            break;
        }
        assert!(drained < 10);
    }
    let (st, _) = s.admin(Method::GET, &format!("/api/v1/devices/{UDID}"), "");
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Nothing of the old enrollment comes back: no renewal, no check-in, and no
    // Authenticate without a fresh enrollment request.
    assert!(scep_renew(&s.e, &id, &device_mdm_key(2)).is_err());
    assert!(scep_renew(&s.e, &renewed_early, &device_mdm_key(2)).is_err());
    assert_ne!(
        idle(&s, &renewed_early, UDID, None).status(),
        StatusCode::OK
    );
    let r = renewed_early.authenticate(&s.e, UDID, SERIAL);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{}", text(&r));
    let (st, _) = s.admin(Method::GET, &format!("/api/v1/devices/{UDID}"), "");
    assert_eq!(st, StatusCode::NOT_FOUND);
    // A fresh ADE enrollment (the device is still assigned) is allowed.
    let challenge = request_profile(&s, UDID, SERIAL);
    let fresh = identity(&s, 3, UDID, &challenge);
    ok(&fresh.authenticate(&s.e, UDID, SERIAL));
    ok(&fresh.token_update(&s.e, UDID, ""));
}

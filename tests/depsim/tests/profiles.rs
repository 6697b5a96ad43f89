//! Profiles and per-device operations: define, get, assign (POST and PUT), remove,
//! details, disown, activation lock.

mod common;

use common::*;
use http::Method;
use mdm_core::dep::error::ApiError;
use mdm_core::dep::wire::{DeviceStatus, ProfileDevices};
use mdm_core::platform::testing::SystemClock;
use mdm_depsim::client::HyperHttp;
use mdm_depsim::{AssignOutcome, SimConfig};
use serde_json::json;

fn profile() -> serde_json::Value {
    json!({
        "profile_name": "Staff iPads",
        "url": "https://mdm.example.com/enroll",
        "is_supervised": true,
        "is_mdm_removable": false,
        "skip_setup_items": ["AppleID", "Siri"],
        "department": "IT",
        "support_phone_number": "+1 555 0100",
        "language": "en",
        "region": "US",
    })
}

#[tokio::test]
async fn define_get_and_assign_with_per_serial_statuses() {
    let sim = start(SimConfig {
        initial_assigned_percent: 0,
        initial_pushed_percent: 0,
        ..SimConfig::new(10, 4)
    });
    let ctl = sim.control();
    let s = ctl.serials();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim).with_protocol_version("10");

    // Define, assigning at once.
    let mut p = profile();
    p["devices"] = json!([s[0], s[1], "UNKNOWN00001"]);
    let defined = c.define_profile(&p).await.unwrap();
    assert_eq!(defined.profile_uuid.len(), 32);
    assert_eq!(defined.devices[&s[0]], DeviceStatus::Success);
    assert_eq!(defined.devices[&s[1]], DeviceStatus::Success);
    assert_eq!(defined.devices["UNKNOWN00001"], DeviceStatus::NotAccessible);
    let uuid = defined.profile_uuid;

    // Get: as defined plus Apple's defaults, without `devices`.
    let got = c.get_profile(&uuid).await.unwrap();
    assert_eq!(got["profile_name"], "Staff iPads");
    assert_eq!(got["profile_uuid"], uuid.as_str());
    assert_eq!(got["is_mdm_removable"], false);
    assert_eq!(got["allow_pairing"], true);
    assert_eq!(got["skip_setup_items"], json!(["AppleID", "Siri"]));
    assert!(got.get("devices").is_none());
    assert_eq!(
        c.get_profile("00000000000000000000000000000000")
            .await
            .unwrap_err()
            .code(),
        Some(ApiError::NotFound)
    );

    // Assign with scripted results.
    ctl.script_assign(&s[2], AssignOutcome::Failed, 1);
    ctl.script_assign(&s[3], AssignOutcome::Throttled, 1);
    let serials = [&s[2], &s[3], &s[4], &"UNKNOWN00002".to_owned()];
    let r: ProfileDevices = c.assign_profile(&uuid, &serials).await.unwrap();
    assert_eq!(r.profile_uuid.as_deref(), Some(uuid.as_str()));
    assert_eq!(r.devices[&s[2]], DeviceStatus::Failed);
    assert_eq!(r.devices[&s[3]], DeviceStatus::Throttled);
    assert_eq!(r.devices[&s[4]], DeviceStatus::Success);
    assert_eq!(r.devices["UNKNOWN00002"], DeviceStatus::NotAccessible);
    assert_eq!(r.retry_after_seconds, Some(60));
    assert_eq!(
        r.with_status(&DeviceStatus::Throttled).collect::<Vec<_>>(),
        vec![s[3].as_str()]
    );
    // The script is used up: the retry succeeds.
    let r = c.assign_profile(&uuid, &[&s[2], &s[3]]).await.unwrap();
    assert!(r.devices.values().all(|st| *st == DeviceStatus::Success));
    assert_eq!(r.retry_after_seconds, None);

    // Assignment is visible in details and in sync.
    let d = ctl.device(&s[3]).unwrap();
    assert_eq!(d.profile_status, "assigned");
    assert_eq!(d.profile_uuid.as_deref(), Some(uuid.as_str()));
    assert!(d.profile_assign_time.is_some());
    let details = c
        .device_details(&[&s[3], &"UNKNOWN00003".to_owned()])
        .await
        .unwrap();
    assert_eq!(details[&s[3]]["response_status"], "SUCCESS");
    assert_eq!(details[&s[3]]["profile_status"], "assigned");
    assert_eq!(details["UNKNOWN00003"]["response_status"], "NOT_ACCESSIBLE");

    let (_, cursor, _) = fetch_all(&mut c, None).await;
    ctl.push_profile(&s[3]);
    let (events, _) = sync_all(&mut c, &cursor, None).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["profile_status"], "pushed");
    assert!(events[0]["profile_push_time"].is_string());

    // Unknown profile, missing fields.
    assert_eq!(
        c.assign_profile("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", &[&s[0]])
            .await
            .unwrap_err()
            .code(),
        Some(ApiError::NotFound)
    );
    let none: [&str; 0] = [];
    assert_eq!(
        c.assign_profile(&uuid, &none).await.unwrap_err().code(),
        Some(ApiError::DeviceIdRequired)
    );
    assert_eq!(
        c.assign_profile("", &[&s[0]]).await.unwrap_err().code(),
        Some(ApiError::ProfileUuidRequired)
    );
}

#[tokio::test]
async fn throttled_needs_protocol_9() {
    let sim = start(SimConfig::new(5, 4));
    let ctl = sim.control();
    let s = ctl.serials();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim).with_protocol_version("3");
    let uuid = c.define_profile(&profile()).await.unwrap().profile_uuid;
    ctl.script_assign(&s[0], AssignOutcome::Throttled, 1);
    let r = c.assign_profile(&uuid, &[&s[0]]).await.unwrap();
    assert_eq!(r.devices[&s[0]], DeviceStatus::Failed);
    assert_eq!(r.retry_after_seconds, None);
}

#[tokio::test]
async fn assign_with_put_and_remove_with_delete() {
    let sim = start(SimConfig::new(5, 4));
    let ctl = sim.control();
    let s = ctl.serials();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    let uuid = c.define_profile(&profile()).await.unwrap().profile_uuid;
    let session = c.session_token().unwrap().to_owned();

    // nanodep still assigns with PUT.
    let body = json!({"profile_uuid": uuid, "devices": [s[0], s[1]]}).to_string();
    let r = send(
        &http,
        request(
            &sim,
            Method::PUT,
            "/profile/devices",
            Some(&session),
            body.as_bytes(),
        ),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", text(&r));
    let r = ProfileDevices::parse(r.body()).unwrap();
    assert!(r.devices.values().all(|st| *st == DeviceStatus::Success));

    let r = c
        .remove_profile(&[&s[0], &"UNKNOWN00004".to_owned()], Some(&uuid))
        .await
        .unwrap();
    assert_eq!(r.devices[&s[0]], DeviceStatus::Success);
    assert_eq!(r.devices["UNKNOWN00004"], DeviceStatus::NotAccessible);
    let d = ctl.device(&s[0]).unwrap();
    assert_eq!(d.profile_status, "removed");
    assert_eq!(d.profile_uuid, None);
    assert_eq!(ctl.device(&s[1]).unwrap().profile_status, "assigned");
}

#[tokio::test]
async fn profile_validation_codes() {
    let sim = start(SimConfig::new(1, 4));
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    let cases: Vec<(serde_json::Value, ApiError)> = vec![
        (
            json!({"url": "https://x.example/e"}),
            ApiError::ConfigNameRequired,
        ),
        (
            json!({"profile_name": "n".repeat(126), "url": "https://x.example/e"}),
            ApiError::ConfigNameInvalid,
        ),
        (json!({"profile_name": "p"}), ApiError::ConfigUrlRequired),
        (
            json!({"profile_name": "p", "url": "http://mdm.example.com/enroll"}),
            ApiError::ConfigUrlInvalid,
        ),
        (
            json!({"profile_name": "p", "url": "https://x.example/e", "is_mdm_removable": false}),
            ApiError::FlagsInvalid,
        ),
        (
            json!({"profile_name": "p", "url": "https://x.example/e", "department": "d".repeat(126)}),
            ApiError::DepartmentInvalid,
        ),
        (
            json!({"profile_name": "p", "url": "https://x.example/e", "support_phone_number": "1".repeat(51)}),
            ApiError::SupportPhoneInvalid,
        ),
        (
            json!({"profile_name": "p", "url": "https://x.example/e", "support_email_address": "nobody"}),
            ApiError::SupportEmailInvalid,
        ),
        (
            json!({"profile_name": "p", "url": "https://x.example/e", "org_magic": "m".repeat(257)}),
            ApiError::MagicInvalid,
        ),
        (
            json!({"profile_name": "p", "url": "https://x.example/e", "language": "english"}),
            ApiError::LocaleInvalid,
        ),
        (
            json!({"profile_name": "p", "url": "https://x.example/e", "is_supervised": "yes"}),
            ApiError::MalformedRequestBody,
        ),
    ];
    for (profile, code) in cases {
        let err = c.define_profile(&profile).await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{profile}");
    }
    // Local test servers: http on loopback is accepted.
    c.define_profile(&json!({"profile_name": "local", "url": "http://127.0.0.1:3000/enroll"}))
        .await
        .unwrap();
    assert_eq!(
        sim.control().profile_uuids().len(),
        2,
        "pre-existing + local"
    );
}

#[tokio::test]
async fn disown_details_and_activation_lock() {
    let sim = start(SimConfig::new(5, 4));
    let ctl = sim.control();
    let s = ctl.serials();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    c.session().await.unwrap();
    let session = c.session_token().unwrap().to_owned();

    let body = json!({"devices": [s[0], "UNKNOWN00005"]}).to_string();
    let r = send(
        &http,
        request(
            &sim,
            Method::POST,
            "/devices/disown",
            Some(&session),
            body.as_bytes(),
        ),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(v["devices"][&s[0]], "SUCCESS");
    assert_eq!(v["devices"]["UNKNOWN00005"], "NOT_ACCESSIBLE");
    assert!(ctl.device(&s[0]).is_none());
    let details = c.device_details(&[&s[0]]).await.unwrap();
    assert_eq!(details[&s[0]]["response_status"], "NOT_ACCESSIBLE");

    let body = json!({"device": s[1], "escrow_key": "ab".repeat(32)}).to_string();
    let r = send(
        &http,
        request(
            &sim,
            Method::POST,
            "/device/activationlock",
            Some(&session),
            body.as_bytes(),
        ),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        v,
        json!({"serial_number": s[1], "response_status": "SUCCESS"})
    );
    assert_eq!(
        ctl.activation_lock(&s[1]).unwrap()["escrow_key"],
        "ab".repeat(32)
    );

    // A test device with a known serial.
    let mut d = ctl.device_template("F9FXK0ABCDEF");
    d.model = "iPhone 13".into();
    assert_eq!(ctl.add_device(d.clone()).unwrap(), "F9FXK0ABCDEF");
    assert!(ctl.add_device(d).is_err(), "serial taken");
    let details = c.device_details(&["F9FXK0ABCDEF"]).await.unwrap();
    assert_eq!(details["F9FXK0ABCDEF"]["model"], "iPhone 13");
}

//! Queueing a command: JSON and raw plists, the lanes (priority first; setup commands
//! while the device awaits configuration), and one command for many devices.

use super::*;

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

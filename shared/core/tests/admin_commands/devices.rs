//! The device views: inventory from DeviceInformation and other answers, the device
//! list with its pages and filters, and no secrets in either.

use base64::Engine;

use super::*;

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
    let rec = block_on(mdm_core::mdm::enrollment_record::get(&e.store, MAC))
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

//! What is refused: payload problems (422 naming the key), commands the device cannot
//! run, what User Enrollment forbids, unknown and unenrolled devices and user channels.

use super::*;

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

//! User Enrollment (account-driven): a personal iPhone enrolls against the core.

use super::*;

const MAID: &str = "ann.lee@appleid.example.com";

/// The core with a User Enrollment group and ann in it.
fn byod_server() -> InProcess {
    let server = InProcess::new(&[]);
    let (s, b) = server.admin(
        "POST",
        "/api/v1/groups",
        Some(serde_json::json!({ "id": "byod", "enrollment_type": "user", "priority": 1 })),
    );
    assert_eq!(s, 201, "{b}");
    let (s, b) = server.admin(
        "POST",
        "/api/v1/users",
        Some(serde_json::json!({
            "username": "ann", "password": "correct horse", "managed_apple_id": MAID, "groups": ["byod"],
        })),
    );
    assert_eq!(s, 201, "{b}");
    server
}

#[test]
fn a_personal_iphone_user_enrolls_against_the_core() {
    let server = byod_server();
    let mut d = iphone();
    // Unknown accounts and wrong passwords get nowhere.
    let e = block_on(d.discover(&server, BASE, "nobody@appleid.example.com")).unwrap_err();
    assert!(
        matches!(e, SimError::Status { status: 403, ref body, .. } if body.contains("com.apple.well-known.failed")),
        "{e}"
    );
    let e = block_on(d.user_enroll(&server, BASE, MAID, MAID, "wrong password")).unwrap_err();
    assert!(
        matches!(e, SimError::Status { ref body, .. } if body.contains("incorrect")),
        "{e}"
    );
    assert!(d.enrollment_id.is_none());

    let flow = block_on(d.user_enroll(&server, BASE, MAID, MAID, "correct horse")).unwrap();
    assert_eq!(flow.discovery.version, "mdm-byod");
    assert_eq!(
        flow.sign_in_url,
        format!("{BASE}/mdm/enroll/account/signin")
    );
    let mdm = &d.profile().unwrap().mdm;
    assert_eq!(mdm.enrollment_mode.as_deref(), Some("BYOD"));
    assert_eq!(mdm.assigned_managed_apple_id.as_deref(), Some(MAID));
    let eid = d.enrollment_id.clone().expect("an EnrollmentID");

    let (s, dev) = server.admin("GET", &format!("/api/v1/devices/ue:{eid}"), None);
    assert_eq!(s, 200, "{dev}");
    assert_eq!(dev["enrollment_type"], "user");
    assert_eq!(dev["enrolled"], true);
    assert_eq!(dev["managed_apple_id"], MAID);
    assert_eq!(dev["udid"], Json::Null);
    assert_eq!(dev["serial_number"], Json::Null);

    // What User Enrollment forbids is refused with the reason and never queued.
    let queue = |cmd: Json| {
        server.admin(
            "POST",
            &format!("/api/v1/devices/ue:{eid}/commands"),
            Some(cmd),
        )
    };
    for (cmd, needle) in [
        (
            serde_json::json!({"RequestType": "EraseDevice"}),
            "not allowed under User Enrollment",
        ),
        (serde_json::json!({"RequestType": "DeviceLock"}), ""),
        (
            serde_json::json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion", "SerialNumber"]}),
            "SerialNumber",
        ),
    ] {
        let (s, b) = queue(cmd.clone());
        if cmd["RequestType"] == "DeviceLock" {
            // Allowed on iOS under User Enrollment (the spec's table).
            assert_eq!(s, 201, "{b}");
            continue;
        }
        assert_eq!(s, 422, "{cmd}: {b}");
        assert!(b.to_string().contains(needle), "{b}");
    }
    // Allowed commands reach the device and are answered.
    for cmd in [
        serde_json::json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion", "ModelName"]}),
        serde_json::json!({"RequestType": "ProfileList"}),
    ] {
        let (s, b) = queue(cmd);
        assert_eq!(s, 201, "{b}");
    }
    let answered = block_on(d.run_until_idle(&server)).unwrap();
    let types: Vec<&str> = answered
        .iter()
        .map(|a| a.command.request_type.as_str())
        .collect();
    assert_eq!(types, ["DeviceLock", "DeviceInformation", "ProfileList"]);
    let (_, dev) = server.admin("GET", &format!("/api/v1/devices/ue:{eid}"), None);
    assert_eq!(
        dev["inventory"]["DeviceInformation"]["data"]["OSVersion"], "17.4",
        "{dev}"
    );

    // The store never saw the device's identifiers.
    let dump: String = server
        .env
        .store
        .backend()
        .dump()
        .iter()
        .map(|(k, v)| format!("{k}={}\n", String::from_utf8_lossy(v)))
        .collect();
    assert!(dump.contains(&eid));
    for id in [d.udid.as_str(), d.serial.as_str()] {
        assert!(!dump.contains(id), "{id} stored");
    }
    if let Some(imei) = &d.imei {
        assert!(!dump.contains(imei.as_str()));
    }
}

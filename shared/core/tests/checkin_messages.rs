//! Check-in message parsing against captured device plists and hostile input.

use mdm_core::mdm::checkin_message::{CheckinError, CheckinMessage};

fn vector(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/vectors/nanomdm-checkin/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn plist(body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>{body}</dict></plist>"#
    )
    .into_bytes()
}

#[test]
fn captured_authenticate_and_token_updates() {
    for name in ["Authenticate.1.plist", "Authenticate.2.plist"] {
        let CheckinMessage::Authenticate(a) = CheckinMessage::parse(&vector(name)).unwrap() else {
            panic!("{name}")
        };
        assert!(a.topic.starts_with("com.apple.mgmt.External."));
        assert!(a.enrollment.device_id().is_some());
    }
    let CheckinMessage::Authenticate(a) =
        CheckinMessage::parse(&vector("Authenticate.1.plist")).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(a.serial_number.as_deref(), Some("F5JM992LF193"));
    assert_eq!(
        a.enrollment.device_id(),
        Some("663b07bb783e9ade1dae4fbb92ea12afc0ce5b69")
    );

    let CheckinMessage::TokenUpdate(t) =
        CheckinMessage::parse(&vector("TokenUpdate.2.plist")).unwrap()
    else {
        panic!()
    };
    assert_eq!(t.push_magic, "888CEB39-BFFA-40F6-89FA-B60752EB63C2");
    assert_eq!(t.token.len(), 32);
    assert!(!t.awaiting_configuration);
    assert!(matches!(
        CheckinMessage::parse(&vector("TokenUpdate.1.plist")).unwrap(),
        CheckinMessage::TokenUpdate(_)
    ));
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let body = plist(
        "<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>U1</string>\
        <key>Topic</key><string>t</string><key>PushMagic</key><string>pm</string><key>Token</key><data>AAEC</data>\
        <key>UnlockToken</key><data>c2VjcmV0LXVubG9jay10b2tlbg==</data><key>AwaitingConfiguration</key><true/>",
    );
    let m = CheckinMessage::parse(&body).unwrap();
    let CheckinMessage::TokenUpdate(t) = &m else {
        panic!()
    };
    assert!(t.awaiting_configuration);
    assert_eq!(t.unlock_token.as_ref().unwrap().0, b"secret-unlock-token");
    let dbg = format!("{m:?}");
    assert!(
        !dbg.contains("115, 101, 99") && dbg.contains("redacted"),
        "{dbg}"
    );
}

#[test]
fn user_enrollment_and_user_channel_ids() {
    let body = plist(
        "<key>MessageType</key><string>TokenUpdate</string><key>EnrollmentID</key><string>E1</string>\
        <key>EnrollmentUserID</key><string>EU1</string><key>Topic</key><string>t</string>\
        <key>PushMagic</key><string>pm</string><key>Token</key><data>AAEC</data>",
    );
    let m = CheckinMessage::parse(&body).unwrap();
    // Separate key spaces: a User Enrollment is `ue:<EnrollmentID>`.
    assert_eq!(m.enrollment().device_id(), Some("ue:E1"));
    assert_eq!(m.enrollment().user_id(), Some("EU1"));
    assert!(m.enrollment().is_user_enrollment());
}

/// No EnrollmentID can name a UDID's enrollment: UDIDs never contain `:`, and a
/// malformed identifier is refused with the reason.
#[test]
fn identifiers_of_the_two_kinds_cannot_collide() {
    let msg = |ids: &str| {
        CheckinMessage::parse(&plist(&format!(
            "<key>MessageType</key><string>CheckOut</string>{ids}<key>Topic</key><string>t</string>"
        )))
    };
    let udid = "00008110-000A1C2E3E88401E";
    let by_eid = msg(&format!("<key>EnrollmentID</key><string>{udid}</string>")).unwrap();
    assert_eq!(
        by_eid.enrollment().device_id(),
        Some(format!("ue:{udid}").as_str())
    );
    let by_udid = msg(&format!("<key>UDID</key><string>{udid}</string>")).unwrap();
    assert_eq!(by_udid.enrollment().device_id(), Some(udid));
    for bad in ["ue:E1", "a b", "x/y", &"A".repeat(65)] {
        let r = msg(&format!("<key>UDID</key><string>{bad}</string>"));
        assert!(
            matches!(r, Err(CheckinError::Malformed { ref reason, .. }) if reason.contains("UDID")),
            "{bad}: {r:?}"
        );
    }
    let r = msg("<key>EnrollmentID</key><string>two words</string>");
    assert!(
        matches!(r, Err(CheckinError::Malformed { ref reason, .. }) if reason.contains("EnrollmentID")),
        "{r:?}"
    );
}

#[test]
fn hostile_input_gets_a_precise_error() {
    assert!(matches!(
        CheckinMessage::parse(b"not a plist"),
        Err(CheckinError::NotAPlist(_))
    ));
    assert_eq!(
        CheckinMessage::parse(&plist("<key>UDID</key><string>U</string>")),
        Err(CheckinError::MissingMessageType)
    );
    assert_eq!(
        CheckinMessage::parse(&plist(
            "<key>MessageType</key><string>Reboot</string><key>UDID</key><string>U</string>"
        )),
        Err(CheckinError::UnknownMessageType("Reboot".into()))
    );
    assert_eq!(
        CheckinMessage::parse(&plist(
            "<key>MessageType</key><string>Authenticate</string><key>Topic</key><string>t</string>"
        )),
        Err(CheckinError::NoEnrollmentId)
    );
    let e = CheckinMessage::parse(&plist("<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>U</string><key>Topic</key><string>t</string>")).unwrap_err();
    assert!(
        matches!(&e, CheckinError::Malformed { message_type, .. } if message_type == "TokenUpdate"),
        "{e}"
    );
    let e = CheckinMessage::parse(&plist("<key>MessageType</key><string>Authenticate</string><key>UDID</key><integer>5</integer><key>Topic</key><string>t</string>")).unwrap_err();
    assert!(matches!(e, CheckinError::Malformed { .. }), "{e}");
    // Truncations of a real message never panic.
    let real = vector("TokenUpdate.2.plist");
    for cut in 0..real.len() {
        let _ = CheckinMessage::parse(&real[..cut]);
    }
}

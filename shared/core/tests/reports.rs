//! Device reports to the ServerURL.

use mdm_core::mdm::report::{Report, ReportError, Status};

fn plist(body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>{body}</dict></plist>"#
    )
    .into_bytes()
}

#[test]
fn captured_device_information_result() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/nanomdm-checkin/DeviceInformation.1.plist"
    );
    let r = Report::parse(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(r.status, Status::Acknowledged);
    assert!(r.status.completes());
    assert!(r.command_uuid.is_some());
    assert!(r.raw.get("QueryResponses").is_some(), "response keys kept");
}

#[test]
fn idle_error_chain_and_not_now() {
    let idle = Report::parse(&plist(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>U</string>",
    ))
    .unwrap();
    assert_eq!((idle.status, idle.command_uuid), (Status::Idle, None));
    let err = Report::parse(&plist(
        "<key>Status</key><string>Error</string><key>UDID</key><string>U</string><key>CommandUUID</key><string>c1</string>\
         <key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>12021</integer><key>ErrorDomain</key><string>MCMDMErrorDomain</string>\
         <key>USEnglishDescription</key><string>Unknown command</string></dict></array>",
    ))
    .unwrap();
    assert_eq!(err.error_chain[0].error_code, Some(12021));
    assert_eq!(
        err.error_chain[0].us_english_description.as_deref(),
        Some("Unknown command")
    );
    let nn = Report::parse(&plist("<key>Status</key><string>NotNow</string><key>EnrollmentID</key><string>E</string><key>CommandUUID</key><string>c2</string>")).unwrap();
    assert!(!nn.status.completes());
    assert!(nn.enrollment.is_user_enrollment());
}

#[test]
fn hostile_reports_are_refused_precisely() {
    assert!(matches!(
        Report::parse(b"{}"),
        Err(ReportError::NotAPlist(_))
    ));
    assert_eq!(
        Report::parse(&plist("<key>UDID</key><string>U</string>")),
        Err(ReportError::MissingStatus)
    );
    assert_eq!(
        Report::parse(&plist(
            "<key>Status</key><string>Done</string><key>UDID</key><string>U</string>"
        )),
        Err(ReportError::UnknownStatus("Done".into()))
    );
    assert_eq!(
        Report::parse(&plist(
            "<key>Status</key><string>Acknowledged</string><key>UDID</key><string>U</string>"
        )),
        Err(ReportError::MissingCommandUuid)
    );
    assert_eq!(
        Report::parse(&plist("<key>Status</key><string>Idle</string>")),
        Err(ReportError::NoEnrollmentId)
    );
    let bad_chain = plist(
        "<key>Status</key><string>Error</string><key>UDID</key><string>U</string><key>CommandUUID</key><string>c</string><key>ErrorChain</key><string>x</string>",
    );
    assert!(matches!(
        Report::parse(&bad_chain),
        Err(ReportError::Malformed(_))
    ));
}

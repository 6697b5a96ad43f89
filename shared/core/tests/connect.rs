//! The command loop: enrolled device polls, answers, defers; results are kept.

use futures::executor::block_on;
use mdm_core::command::records;
use mdm_core::config::Secret;
use mdm_core::mdm::checkin_message::CheckinMessage;
use mdm_core::mdm::connect::{self, Next};
use mdm_core::mdm::enrollment_record;
use mdm_core::mdm::enrollment_record::Refusal;
use mdm_core::mdm::enrollments;
use mdm_core::mdm::report::Report;
use mdm_core::queue;
use mdm_core::queue::{Channel, Lane};
use mdm_core::record::Record;
use mdm_kv::{Defects, MemoryBackend, Store};

const CERT: &str = "c0ffee";

fn xml(body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>{body}</dict></plist>"#
    )
    .into_bytes()
}

fn enrolled() -> Store<MemoryBackend> {
    let s = Store::new(MemoryBackend::with_defects(Defects::redis()));
    let key = Secret::new("k".into());
    let request = mdm_core::enroll::pending::PendingEnrollment::new("U1", "", "t", 0);
    block_on(mdm_core::enroll::pending::put(&s, &request)).unwrap();
    for body in [
        "<key>MessageType</key><string>Authenticate</string><key>UDID</key><string>U1</string><key>Topic</key><string>t</string>",
        "<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>U1</string><key>Topic</key><string>t</string><key>PushMagic</key><string>p</string><key>Token</key><data>AA==</data>",
    ] {
        block_on(enrollments::checkin(
            &s,
            &key,
            CERT,
            &CheckinMessage::parse(&xml(body)).unwrap(),
            0,
        ))
        .unwrap();
    }
    s
}

fn status(
    s: &Store<MemoryBackend>,
    st: &str,
    uuid: Option<&str>,
    extra: &str,
) -> Result<Next, Refusal> {
    let u = uuid
        .map(|u| format!("<key>CommandUUID</key><string>{u}</string>"))
        .unwrap_or_default();
    let r = Report::parse(&xml(&format!(
        "<key>Status</key><string>{st}</string><key>UDID</key><string>U1</string>{u}{extra}"
    )))
    .unwrap();
    block_on(connect::report(s, CERT, &r, 50))
}

fn enqueue(s: &Store<MemoryBackend>, uuid: &str) {
    block_on(queue::enqueue::enqueue(
        s,
        &Channel::device("U1"),
        uuid,
        "DeviceInformation",
        uuid.as_bytes().to_vec(),
        false,
        Lane::Normal,
        10,
        100,
    ))
    .unwrap();
}

#[test]
fn idle_result_not_now_and_history() {
    let s = enrolled();
    assert_eq!(status(&s, "Idle", None, ""), Ok(Next::Nothing));
    enqueue(&s, "c1");
    enqueue(&s, "c2");
    assert_eq!(
        status(&s, "Idle", None, ""),
        Ok(Next::Command(b"c1".to_vec()))
    );
    assert_eq!(
        status(&s, "NotNow", Some("c1"), ""),
        Ok(Next::Command(b"c2".to_vec()))
    );
    let err = "<key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>12021</integer><key>USEnglishDescription</key><string>Unknown</string></dict></array>";
    assert_eq!(
        status(&s, "Error", Some("c2"), err),
        Ok(Next::Nothing),
        "c1 waits for the next Idle"
    );
    assert_eq!(
        status(&s, "Idle", None, ""),
        Ok(Next::Command(b"c1".to_vec()))
    );
    assert_eq!(
        status(
            &s,
            "Acknowledged",
            Some("c1"),
            "<key>QueryResponses</key><dict/>"
        ),
        Ok(Next::Nothing)
    );
    let r = block_on(records::result(&s, "U1", "c2")).unwrap().unwrap();
    assert_eq!(
        (
            r.status.as_str(),
            r.request_type.as_str(),
            r.error_chain[0].code
        ),
        ("Error", "DeviceInformation", Some(12021))
    );
    assert_eq!(r.enqueued_at, 10);
    assert!(block_on(records::result(&s, "U1", "c1")).unwrap().is_some());
    // A repeated or unknown answer changes nothing and just gets the next command.
    assert_eq!(
        status(&s, "Acknowledged", Some("c1"), ""),
        Ok(Next::Nothing)
    );
    assert_eq!(
        status(&s, "Acknowledged", Some("never"), ""),
        Ok(Next::Nothing)
    );
}

#[test]
fn unbound_or_unenrolled_devices_are_refused() {
    let s = enrolled();
    let r = Report::parse(&xml(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>U1</string>",
    ))
    .unwrap();
    assert!(matches!(
        block_on(connect::report(&s, "other-cert", &r, 0)),
        Err(Refusal::BadRequest(_))
    ));
    let r = Report::parse(&xml(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>U2</string>",
    ))
    .unwrap();
    assert!(matches!(
        block_on(connect::report(&s, CERT, &r, 0)),
        Err(Refusal::BadRequest(_))
    ));
}

#[test]
fn acknowledged_inventory_commands_update_the_device_record() {
    let s = enrolled();
    enqueue(&s, "info");
    status(&s, "Idle", None, "").unwrap();
    let resp = "<key>QueryResponses</key><dict><key>OSVersion</key><string>17.4</string><key>IsSupervised</key><true/><key>BatteryLevel</key><real>0.5</real></dict>";
    status(&s, "Acknowledged", Some("info"), resp).unwrap();
    let raw = block_on(s.get(&enrollment_record::EnrollmentRecord::key("U1")))
        .unwrap()
        .unwrap();
    let rec: enrollment_record::EnrollmentRecord = serde_json::from_slice(&raw).unwrap();
    let inv = &rec.inventory["DeviceInformation"];
    assert_eq!(inv.reported_at, 50);
    assert_eq!(inv.data["OSVersion"], "17.4");
    assert_eq!(inv.data["IsSupervised"], true);
    assert_eq!(inv.data["BatteryLevel"], 0.5);
}

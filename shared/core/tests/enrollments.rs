//! The check-in state machine: binding, enrollment, push info, user channels, bootstrap
//! tokens, and refusals (400, never 401).

use futures::executor::block_on;
use mdm_core::config::Secret;
use mdm_core::mdm::checkin_message::CheckinMessage;
use mdm_core::mdm::enrollment_record;
use mdm_core::mdm::enrollment_record::{EnrollmentRecord, Refusal};
use mdm_core::mdm::enrollments::{self, Reply};
use mdm_core::queue::{self, Channel};
use mdm_core::record::Record;
use mdm_kv::{Defects, MemoryBackend, Store};

const CERT_A: &str = "aa11";
const CERT_B: &str = "bb22";
const TOPIC: &str = "com.apple.mgmt.External.e0bd1eac";

fn key() -> Secret {
    Secret::new("storage-key-for-tests".into())
}

fn msg(body: &str) -> CheckinMessage {
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>{body}</dict></plist>"#
    );
    CheckinMessage::parse(xml.as_bytes()).unwrap()
}

fn authenticate(id: &str) -> CheckinMessage {
    msg(&format!(
        "<key>MessageType</key><string>Authenticate</string><key>UDID</key><string>{id}</string><key>Topic</key><string>{TOPIC}</string><key>SerialNumber</key><string>F5JM992LF193</string>"
    ))
}

fn token_update(id: &str, extra: &str) -> CheckinMessage {
    msg(&format!(
        "<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>{id}</string><key>Topic</key><string>{TOPIC}</string><key>PushMagic</key><string>PM-1</string><key>Token</key><data>AAECAw==</data>{extra}"
    ))
}

fn run(s: &Store<MemoryBackend>, cert: &str, m: &CheckinMessage) -> Result<Reply, Refusal> {
    block_on(enrollments::checkin(s, &key(), cert, m, 1_000))
}

fn record(s: &Store<MemoryBackend>, id: &str) -> EnrollmentRecord {
    serde_json::from_slice(
        &block_on(s.get(&EnrollmentRecord::key(id)))
            .unwrap()
            .unwrap(),
    )
    .unwrap()
}

/// The enrollment request `Authenticate` must match (what the enrollment endpoints
/// leave; see `enroll_checkin.rs` for the real flow).
fn pend(s: &Store<MemoryBackend>, id: &str) {
    use mdm_core::enroll::pending::{self, PendingEnrollment, Via};
    block_on(pending::put(
        s,
        &PendingEnrollment {
            udid: id.into(),
            serial: "F5JM992LF193".into(),
            via: Via::Ade,
            token: None,
            profile: None,
            apple_profile_uuid: None,
            user: None,
            topic: TOPIC.into(),
            supervised: false,
            product: None,
            os_version: None,
            build_version: None,
            grant: None,
            at: 1_000,
        },
    ))
    .unwrap();
}

fn store() -> Store<MemoryBackend> {
    Store::new(MemoryBackend::with_defects(Defects::spin_sqlite()))
}

#[test]
fn authenticate_then_token_update_enrolls_and_opens_the_queue() {
    let s = store();
    assert!(matches!(
        run(&s, CERT_A, &authenticate("U1")),
        Err(Refusal::BadRequest(r)) if r.contains("no enrollment request")
    ));
    assert!(
        s.backend().is_empty(),
        "refused without an enrollment request"
    );
    pend(&s, "U1");
    assert_eq!(run(&s, CERT_A, &authenticate("U1")), Ok(Reply::Empty));
    let r = record(&s, "U1");
    assert!(!r.enrolled && r.push.is_none());
    assert_eq!(r.serial_number.as_deref(), Some("F5JM992LF193"));
    assert_eq!(
        block_on(queue::delivery::next(&s, &Channel::device("U1"), 0)),
        Err(queue::QueueError::NoChannel)
    );

    let tu = token_update(
        "U1",
        "<key>UnlockToken</key><data>dW5sb2NrLXNlY3JldA==</data><key>AwaitingConfiguration</key><true/>",
    );
    assert_eq!(run(&s, CERT_A, &tu), Ok(Reply::Empty));
    let r = record(&s, "U1");
    assert!(r.enrolled && r.awaiting_configuration);
    assert_eq!(r.push.as_ref().unwrap().token_hex, "00010203");
    assert_eq!(r.push.as_ref().unwrap().push_magic, "PM-1");
    assert_eq!(
        enrollment_record::unlock_token(&r, &key()).unwrap(),
        b"unlock-secret"
    );
    assert!(enrollment_record::unlock_token(&r, &Secret::new("other".into())).is_none());
    // No plaintext unlock token anywhere in the store.
    assert!(
        !s.backend()
            .dump()
            .iter()
            .any(|(_, v)| v.windows(13).any(|w| w == b"unlock-secret"))
    );
    assert_eq!(
        block_on(queue::delivery::next(&s, &Channel::device("U1"), 0)),
        Ok(None),
        "queue open"
    );
}

#[test]
fn certificate_binding_is_enforced() {
    let s = store();
    pend(&s, "U1");
    pend(&s, "U2");
    run(&s, CERT_A, &authenticate("U1")).unwrap();
    // Another device cannot use U1's certificate, and U1's messages need its certificate.
    assert!(matches!(
        run(&s, CERT_A, &authenticate("U2")),
        Err(Refusal::BadRequest(_))
    ));
    assert!(matches!(
        run(&s, CERT_B, &token_update("U1", "")),
        Err(Refusal::BadRequest(_))
    ));
    assert!(matches!(
        run(&s, CERT_A, &token_update("U9", "")),
        Err(Refusal::BadRequest(_))
    ));
    // Re-enrolled with a new identity (a new enrollment request): only it is bound.
    run(&s, CERT_B, &authenticate("U1")).unwrap();
    assert_eq!(record(&s, "U1").cert_hashes, [CERT_B]);
    assert!(matches!(
        run(&s, CERT_A, &token_update("U1", "")),
        Err(Refusal::BadRequest(_))
    ));
    assert_eq!(run(&s, CERT_B, &token_update("U1", "")), Ok(Reply::Empty));
    // The request is used up by the TokenUpdate.
    assert!(matches!(
        run(&s, CERT_B, &authenticate("U1")),
        Err(Refusal::BadRequest(_))
    ));
    // An unknown device with an unbound identity is told to unenroll.
    assert!(matches!(
        run(&s, "cc33", &token_update("U9", "")),
        Err(Refusal::Unrecognized(_))
    ));
    // A TokenUpdate for another push topic is refused.
    let wrong = msg(
        "<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>U1</string><key>Topic</key><string>com.other</string><key>PushMagic</key><string>p</string><key>Token</key><data>AA==</data>",
    );
    assert!(matches!(
        run(&s, CERT_B, &wrong),
        Err(Refusal::BadRequest(_))
    ));
}

#[test]
fn user_channel_checkout_and_user_authenticate() {
    let s = store();
    pend(&s, "M1");
    run(&s, CERT_A, &authenticate("M1")).unwrap();
    run(&s, CERT_A, &token_update("M1", "")).unwrap();
    let user = token_update(
        "M1",
        "<key>UserID</key><string>GUID-1</string><key>UserShortName</key><string>ann</string>",
    );
    assert_eq!(run(&s, CERT_A, &user), Ok(Reply::Empty));
    assert_eq!(
        block_on(queue::delivery::next(&s, &Channel::user("M1", "GUID-1"), 0)),
        Ok(None)
    );
    let ua = msg(
        "<key>MessageType</key><string>UserAuthenticate</string><key>UDID</key><string>M1</string><key>UserID</key><string>GUID-2</string>",
    );
    assert_eq!(run(&s, CERT_A, &ua), Ok(Reply::Gone));
    let out = msg(&format!(
        "<key>MessageType</key><string>CheckOut</string><key>UDID</key><string>M1</string><key>Topic</key><string>{TOPIC}</string>"
    ));
    assert_eq!(run(&s, CERT_A, &out), Ok(Reply::Empty));
    let r = record(&s, "M1");
    assert!(!r.enrolled && r.checked_out_at == Some(1_000));
}

#[test]
fn bootstrap_token_escrow_and_user_enrollment_limits() {
    let s = store();
    pend(&s, "M1");
    run(&s, CERT_A, &authenticate("M1")).unwrap();
    let get = msg(
        "<key>MessageType</key><string>GetBootstrapToken</string><key>UDID</key><string>M1</string>",
    );
    assert_eq!(
        run(&s, CERT_A, &get),
        Ok(Reply::Empty),
        "nothing escrowed yet"
    );
    let set = msg(
        "<key>MessageType</key><string>SetBootstrapToken</string><key>UDID</key><string>M1</string><key>BootstrapToken</key><data>Ym9vdHN0cmFw</data>",
    );
    assert_eq!(run(&s, CERT_A, &set), Ok(Reply::Empty));
    let Ok(Reply::Plist(xml)) = run(&s, CERT_A, &get) else {
        panic!()
    };
    let v = plist::Value::from_reader_xml(&xml[..]).unwrap();
    assert_eq!(
        v.as_dictionary().unwrap()["BootstrapToken"]
            .as_data()
            .unwrap(),
        b"bootstrap"
    );
    assert!(
        !s.backend()
            .dump()
            .iter()
            .any(|(_, v)| v.windows(9).any(|w| w == b"bootstrap"))
    );
    let clear = msg(
        "<key>MessageType</key><string>SetBootstrapToken</string><key>UDID</key><string>M1</string>",
    );
    run(&s, CERT_A, &clear).unwrap();
    assert_eq!(run(&s, CERT_A, &get), Ok(Reply::Empty));

    // User Enrollment (EnrollmentID): bootstrap tokens and UserAuthenticate are refused.
    let ue_auth = msg(&format!(
        "<key>MessageType</key><string>Authenticate</string><key>EnrollmentID</key><string>E1</string><key>Topic</key><string>{TOPIC}</string>"
    ));
    pend(&s, "ue:E1");
    run(&s, CERT_B, &ue_auth).unwrap();
    assert!(record(&s, "ue:E1").user_enrollment);
    let ue_set = msg(
        "<key>MessageType</key><string>SetBootstrapToken</string><key>EnrollmentID</key><string>E1</string><key>BootstrapToken</key><data>AA==</data>",
    );
    assert!(matches!(
        run(&s, CERT_B, &ue_set),
        Err(Refusal::BadRequest(_))
    ));
}

/// An admin's retire lands between a check-in's read of the enrollment record and its
/// write: neither update is lost (every read-modify-write of a record is a
/// compare-and-swap with retry).
#[test]
fn a_retire_racing_a_check_in_is_not_lost() {
    let s = store();
    pend(&s, "U1");
    run(&s, CERT_A, &authenticate("U1")).unwrap();
    run(&s, CERT_A, &token_update("U1", "")).unwrap();
    let key = EnrollmentRecord::key("U1");
    for (what, m) in [
        (
            "TokenUpdate",
            token_update("U1", "<key>AwaitingConfiguration</key><true/>"),
        ),
        (
            "CheckOut",
            msg(
                "<key>MessageType</key><string>CheckOut</string><key>UDID</key><string>U1</string>",
            ),
        ),
    ] {
        // The retire lands right after the check-in's first read of the record (and is
        // there for every read after).
        let k = key.clone();
        s.backend().after_read(&key, move |b| {
            let mut rec: EnrollmentRecord = serde_json::from_slice(&b.peek(&k).unwrap()).unwrap();
            if rec.retire.is_none() {
                rec.retire = Some(enrollment_record::Retire {
                    command_uuid: "RETIRE-1".into(),
                    requested_at: 999,
                });
                b.put(&k, serde_json::to_vec(&rec).unwrap());
            }
        });
        run(&s, CERT_A, &m).unwrap();
        s.backend().clear_hooks();
        let rec = record(&s, "U1");
        assert_eq!(
            rec.retire.as_ref().map(|r| r.command_uuid.as_str()),
            Some("RETIRE-1"),
            "{what} undid the retire"
        );
        match what {
            "TokenUpdate" => assert!(rec.awaiting_configuration, "the TokenUpdate was lost"),
            _ => assert!(!rec.enrolled, "the CheckOut was lost"),
        }
    }
}

//! `PUT /mdm/connect` end to end: the command loop with signed reports, NotNow,
//! results, store work per request, and admins queueing while the device polls.

mod mdmdevice;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::commands;
use mdm_core::config::Secret;
use mdm_core::mdm::checkin::CheckinMessage;
use mdm_core::mdm::connect::{self, NewCommand, Next};
use mdm_core::mdm::enrollments;
use mdm_core::mdm::queue::{Channel, Lane};
use mdm_core::mdm::report::Report;
use mdm_kv::{Backend, KvError, MemoryBackend, Store};
use mdmdevice::{Device, Identity, admin_call, device_request, env, queue, xml};

const UDID: &str = "00008110-000A1C2E3E88401E";

fn enrolled(e: &mdmdevice::E) -> Device<'_> {
    let d = Device::new(e, Identity::self_signed(), UDID);
    d.enroll("iPhone15,2", "17.4", "");
    d
}

fn command(e: &mdmdevice::E, uuid: &str) -> serde_json::Value {
    let (s, b) = admin_call(
        e,
        Method::GET,
        &format!("/api/v1/devices/{UDID}/commands/{uuid}"),
        "",
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

#[test]
fn idle_command_acknowledged_next_then_empty() {
    let e = env();
    let d = enrolled(&e);
    assert_eq!(
        d.idle(),
        None,
        "nothing queued: empty 200 ends the exchange"
    );
    let a = queue(
        &e,
        UDID,
        r#"{"RequestType":"DeviceInformation","Queries":["OSVersion"]}"#,
    );
    let b = queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(d.idle(), Some((a.clone(), "DeviceInformation".into())));
    assert_eq!(d.ack(&a), Some((b.clone(), "ProfileList".into())));
    assert_eq!(d.ack(&b), None);
    assert_eq!(d.idle(), None);
    assert_eq!(command(&e, &a)["status"], "acknowledged");
    assert_eq!(command(&e, &b)["status"], "acknowledged");
    // POST is accepted like PUT.
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let r = block_on(commands::handle(
        &e,
        device_request(Method::POST, "/mdm/connect", &body, Some(&d.id.sign(&body))),
    ));
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn a_delivered_command_is_the_exact_plist_queued() {
    let e = env();
    let d = enrolled(&e);
    let profile = base64::engine::general_purpose::STANDARD.encode(b"<profile bytes>");
    let uuid = queue(
        &e,
        UDID,
        &format!(r#"{{"RequestType":"InstallProfile","Payload":"{profile}"}}"#),
    );
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let r = d.connect_raw(&body);
    let v: plist::Value = plist::from_bytes(r.body()).unwrap();
    let top = v.as_dictionary().unwrap();
    assert_eq!(top["CommandUUID"].as_string(), Some(uuid.as_str()));
    let cmd = top["Command"].as_dictionary().unwrap();
    assert_eq!(cmd["RequestType"].as_string(), Some("InstallProfile"));
    assert_eq!(cmd["Payload"].as_data(), Some(&b"<profile bytes>"[..]));
}

#[test]
fn not_now_waits_for_the_next_idle_then_comes_first() {
    let e = env();
    let d = enrolled(&e);
    let a = queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    let b = queue(&e, UDID, r#"{"RequestType":"SecurityInfo"}"#);
    let c = queue(&e, UDID, r#"{"RequestType":"CertificateList"}"#);
    assert_eq!(d.idle().unwrap().0, a);
    assert_eq!(d.not_now(&a).unwrap().0, b, "a is skipped in this exchange");
    assert_eq!(d.not_now(&b).unwrap().0, c);
    assert_eq!(command(&e, &a)["status"], "not_now");
    assert_eq!(command(&e, &a)["delivery"]["state"], "not_now");
    assert_eq!(
        d.ack(&c),
        None,
        "a and b are not resent in the same exchange"
    );
    // A command queued meanwhile is new: it may go out in this exchange...
    let f = queue(
        &e,
        UDID,
        r#"{"RequestType":"ProfileList","ManagedOnly":true}"#,
    );
    // ...but a repeated Idle-less report does not resend the deferred ones.
    assert_eq!(
        d.report("Acknowledged", Some(&c), ""),
        Some((f.clone(), "ProfileList".into()))
    );
    assert_eq!(d.not_now(&f), None);
    // The next exchange: deferred commands first, in their order.
    assert_eq!(d.idle().unwrap().0, a);
    assert_eq!(d.ack(&a).unwrap().0, b);
    assert_eq!(d.not_now(&b).unwrap().0, f);
    assert_eq!(d.ack(&f), None);
    assert_eq!(d.idle().unwrap().0, b);
    assert_eq!(d.ack(&b), None);
    let r = command(&e, &b);
    assert_eq!(r["status"], "acknowledged");
    assert_eq!(r["not_now_count"], 2);
    assert_eq!(r["delivery"], serde_json::Value::Null);
    assert_eq!(d.idle(), None);
}

#[test]
fn unanswered_delivery_is_sent_again() {
    let e = env();
    let d = enrolled(&e);
    let a = queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(d.idle().unwrap().0, a);
    // The reply never reached the device: it polls again.
    assert_eq!(d.idle().unwrap().0, a);
    assert_eq!(command(&e, &a)["delivery"]["deliveries"], 2);
    assert_eq!(d.ack(&a), None);
}

#[test]
fn error_and_command_format_error_results_are_kept() {
    let e = env();
    let d = enrolled(&e);
    let a = queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    let b = queue(&e, UDID, r#"{"RequestType":"SecurityInfo"}"#);
    assert_eq!(d.idle().unwrap().0, a);
    let chain = "<key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>12021</integer>\
        <key>ErrorDomain</key><string>MCMDMErrorDomain</string>\
        <key>LocalizedDescription</key><string>Commande inconnue</string>\
        <key>USEnglishDescription</key><string>Unknown command</string></dict></array>";
    assert_eq!(d.report("Error", Some(&a), chain).unwrap().0, b);
    assert_eq!(d.report("CommandFormatError", Some(&b), ""), None);
    let r = command(&e, &a);
    assert_eq!(r["status"], "error");
    assert_eq!(r["error_chain"][0]["code"], 12021);
    assert_eq!(r["error_chain"][0]["domain"], "MCMDMErrorDomain");
    assert_eq!(r["error_chain"][0]["description"], "Unknown command");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(r["raw"].as_str().unwrap())
        .unwrap();
    let v: plist::Value = plist::from_bytes(&raw).unwrap();
    assert_eq!(
        v.as_dictionary().unwrap()["Status"].as_string(),
        Some("Error")
    );
    assert!(r["answered_at"].is_string());
    let r = command(&e, &b);
    assert_eq!(r["status"], "command_format_error");
    // Neither is sent again.
    assert_eq!(d.idle(), None);
}

#[test]
fn response_keys_are_returned_as_json() {
    let e = env();
    let d = enrolled(&e);
    let a = queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    d.idle();
    let resp = "<key>ProfileList</key><array><dict><key>PayloadIdentifier</key><string>com.example.wifi</string>\
        <key>PayloadContent</key><data>AAEC</data></dict></array>";
    assert_eq!(d.report("Acknowledged", Some(&a), resp), None);
    let r = command(&e, &a);
    assert_eq!(
        r["response"]["ProfileList"][0]["PayloadIdentifier"],
        "com.example.wifi"
    );
    assert_eq!(r["response"]["ProfileList"][0]["PayloadContent"], "AAEC");
    assert!(r["response"].get("UDID").is_none() && r["response"].get("Status").is_none());
}

/// A device's own, bound identity cannot act for another enrolled device: an Idle naming
/// the other device's UDID is refused, its queued command stays where it is, and nothing
/// stored changes (the binding, the record and the queue head are read together now).
#[test]
fn a_bound_identity_cannot_poll_for_another_device() {
    let e = env();
    let victim = enrolled(&e);
    let other_udid = "00008110-000B2D3F4F99512F";
    let attacker = Device::new(&e, Identity::ca_issued(), other_udid);
    attacker.enroll("iPhone15,2", "17.4", "");
    queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let before = mdmdevice::dump(&e);
    let r = block_on(commands::handle(
        &e,
        device_request(
            Method::PUT,
            "/mdm/connect",
            &body,
            Some(&attacker.id.sign(&body)),
        ),
    ));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(r.body()).contains("not bound"));
    assert_eq!(mdmdevice::dump(&e), before);
    // The victim still gets its command.
    let r = block_on(commands::handle(
        &e,
        device_request(
            Method::PUT,
            "/mdm/connect",
            &body,
            Some(&victim.id.sign(&body)),
        ),
    ));
    assert_eq!(r.status(), StatusCode::OK);
    assert!(String::from_utf8_lossy(r.body()).contains("ProfileList"));
}

#[test]
fn reports_are_authenticated_like_check_ins() {
    let e = env();
    let d = enrolled(&e);
    queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let send = |sig: Option<&str>, body: &[u8]| {
        block_on(commands::handle(
            &e,
            device_request(Method::PUT, "/mdm/connect", body, sig),
        ))
    };
    let before = mdmdevice::dump(&e);
    for (what, sig) in [
        ("none", None),
        ("garbage", Some("Zm9v".to_string())),
        ("another body's", Some(d.id.sign(b"<plist><dict/></plist>"))),
    ] {
        let r = send(sig.as_deref(), &body);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(mdmdevice::dump(&e), before, "{what}");
    }
    // Signed by a valid identity that is not this device's.
    let stranger = Identity::ca_issued();
    let r = send(Some(&stranger.sign(&body)), &body);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(r.body()).contains("not bound"));
    assert_eq!(mdmdevice::dump(&e), before);
    // Not a report.
    let junk = xml("<key>Status</key><string>Done</string>");
    let r = send(Some(&d.id.sign(&junk)), &junk);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Too large.
    let big = vec![b' '; commands::MAX_REPORT_BODY + 1];
    assert_eq!(
        send(Some("AAAA"), &big).status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // After CheckOut the device gets nothing.
    assert_eq!(d.checkin("CheckOut", "").status(), StatusCode::OK);
    let r = d.connect_raw(&body);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// The CA check is made for a certificate the server has not bound; a bound one passed it
/// when it was bound, so polls do not repeat it.
#[test]
fn an_unbound_certificate_must_come_from_our_ca() {
    let e = env();
    let d = Device::new(&e, Identity::ca_issued(), UDID);
    d.enroll("iPhone15,2", "17.4", "");
    // From now on only the SCEP CA is ours (the self-signed test anchor is not).
    let ca = std::fs::read(format!(
        "{}/tests/fixtures/device-identity/scepca.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    block_on(e.store.set(mdm_core::mdm::signature::SCEP_CA_CERT_KEY, &ca)).unwrap();
    let idle = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    assert_eq!(d.connect_raw(&idle).status(), StatusCode::OK);
    let before = mdmdevice::dump(&e);
    let outsider = Device::new(&e, Identity::self_signed(), UDID);
    let r = outsider.connect_raw(&idle);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let reason = String::from_utf8_lossy(r.body()).to_string();
    assert!(
        !reason.contains("not bound"),
        "the CA check comes first: {reason}"
    );
    assert_eq!(mdmdevice::dump(&e), before);
}

/// A backend that counts the operations reaching it.
struct Counting {
    inner: MemoryBackend,
    ops: AtomicUsize,
}

impl Counting {
    fn tick(&self) {
        self.ops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Backend for Counting {
    type Cas = <MemoryBackend as Backend>::Cas;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.tick();
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.tick();
        self.inner.set(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.tick();
        self.inner.delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.tick();
        self.inner.exists(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        self.tick();
        self.inner.get_many(keys).await
    }
    async fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        self.tick();
        self.inner.set_many(items).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        self.tick();
        self.inner.delete_many(keys).await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.tick();
        self.inner.increment(key, delta).await
    }
    async fn cas_begin(&self, key: &str) -> Result<Self::Cas, KvError> {
        self.tick();
        self.inner.cas_begin(key).await
    }
    async fn cas_swap(&self, cas: Self::Cas, value: &[u8]) -> Result<bool, KvError> {
        self.tick();
        self.inner.cas_swap(cas, value).await
    }
}

/// The most store operations one device request needed, over a scripted session with
/// `n` queued commands: NotNow on the first quarter, answers to the next quarter, a new
/// exchange that delivers the deferred ones again (and the device answers them all).
fn max_ops_per_request(n: usize) -> usize {
    let s = Store::new(Counting {
        inner: MemoryBackend::new(),
        ops: AtomicUsize::new(0),
    });
    let key = Secret::new("k".into());
    let request = mdm_core::enroll::pending::PendingEnrollment::new(UDID, "", "t", 0);
    block_on(mdm_core::enroll::pending::put(&s, &request)).unwrap();
    for body in [
        format!(
            "<key>MessageType</key><string>Authenticate</string><key>UDID</key><string>{UDID}</string><key>Topic</key><string>t</string>"
        ),
        format!(
            "<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>{UDID}</string><key>Topic</key><string>t</string><key>PushMagic</key><string>p</string><key>Token</key><data>AA==</data>"
        ),
    ] {
        block_on(enrollments::checkin(
            &s,
            &key,
            "cert",
            &CheckinMessage::parse(&xml(&body)).unwrap(),
            0,
        ))
        .unwrap();
    }
    let ch = Channel::device(UDID);
    for i in 0..n {
        let cmd = NewCommand {
            uuid: format!("c{i:05}"),
            request_type: "ProfileList".into(),
            body: format!("c{i:05}").into_bytes(),
            lane: Lane::Normal,
            sealed: false,
        };
        block_on(connect::enqueue(&s, &ch, &cmd, 0, 100_000)).unwrap();
    }
    let max = Mutex::new(0usize);
    let send = |status: &str, uuid: Option<&str>| -> Option<String> {
        let u = uuid
            .map(|u| format!("<key>CommandUUID</key><string>{u}</string>"))
            .unwrap_or_default();
        let r = Report::parse(&xml(&format!(
            "<key>Status</key><string>{status}</string><key>UDID</key><string>{UDID}</string>{u}"
        )))
        .unwrap();
        let before = s.backend().ops.load(Ordering::SeqCst);
        let next = block_on(connect::report(&s, "cert", &r, 1)).unwrap();
        let used = s.backend().ops.load(Ordering::SeqCst) - before;
        let mut m = max.lock().unwrap();
        *m = (*m).max(used);
        match next {
            Next::Command(b) => Some(String::from_utf8(b).unwrap()),
            Next::Nothing => None,
            Next::Sealed { .. } => panic!("ProfileList is not sealed"),
        }
    };
    let k = n / 4;
    let mut cur = send("Idle", None).unwrap();
    for _ in 0..k {
        cur = send("NotNow", Some(&cur)).unwrap();
    }
    for _ in 0..k {
        cur = send("Acknowledged", Some(&cur)).unwrap();
    }
    let mut cur = send("Idle", None).unwrap();
    assert_eq!(cur, "c00000", "deferred commands come first after Idle");
    for i in 1..(n - k) {
        cur = send("Acknowledged", Some(&cur)).unwrap();
        if i < k {
            assert_eq!(cur, format!("c{i:05}"), "deferred commands in their order");
        }
    }
    assert_eq!(send("Acknowledged", Some(&cur)), None, "all answered");
    max.into_inner().unwrap()
}

#[test]
fn store_work_per_request_does_not_grow_with_the_queue() {
    let small = max_ops_per_request(80);
    let large = max_ops_per_request(1200);
    assert!(small <= 30, "{small} operations for one request");
    assert_eq!(large, small, "work per request grew with the queue length");
}

/// Admins queue from several threads (through the admin API) while the device polls and
/// answers (through the connect endpoint), deferring some commands once: nothing lost,
/// nothing delivered again after its answer or twice as new, each admin's order kept.
#[test]
fn admins_queue_concurrently_while_the_device_polls() {
    const ADMINS: usize = 4;
    const EACH: usize = 25;
    let e = env();
    let d = enrolled(&e);
    let done_admins = AtomicUsize::new(0);
    let (queued, (deliveries, deferred)) = std::thread::scope(|scope| {
        let admins: Vec<_> = (0..ADMINS)
            .map(|a| {
                let e = &e;
                let done_admins = &done_admins;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..EACH {
                        let rt = if (a + i) % 2 == 0 {
                            "ProfileList"
                        } else {
                            "SecurityInfo"
                        };
                        mine.push(queue(e, UDID, &format!(r#"{{"RequestType":"{rt}"}}"#)));
                    }
                    done_admins.fetch_add(1, Ordering::SeqCst);
                    mine
                })
            })
            .collect();
        let device = scope.spawn(|| {
            let mut deliveries: Vec<String> = Vec::new();
            let mut acked = std::collections::HashSet::new();
            let mut deferred_once = std::collections::HashSet::new();
            loop {
                let all_queued = done_admins.load(Ordering::SeqCst) == ADMINS;
                let mut next = d.idle();
                let got_any = next.is_some();
                while let Some((uuid, _)) = next {
                    assert!(!acked.contains(&uuid), "{uuid} delivered after its answer");
                    deliveries.push(uuid.clone());
                    // Defer every fifth command once.
                    next = if deliveries.len().is_multiple_of(5)
                        && deferred_once.insert(uuid.clone())
                    {
                        d.not_now(&uuid)
                    } else {
                        acked.insert(uuid.clone());
                        d.ack(&uuid)
                    };
                }
                if all_queued && !got_any {
                    return (deliveries, deferred_once);
                }
                std::thread::yield_now();
            }
        });
        let queued: Vec<Vec<String>> = admins.into_iter().map(|h| h.join().unwrap()).collect();
        (queued, device.join().unwrap())
    });
    let all: Vec<&String> = queued.iter().flatten().collect();
    assert_eq!(all.len(), ADMINS * EACH);
    // First deliveries: each command exactly once, and each admin's in its order.
    let mut first = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for u in &deliveries {
        if seen.insert(u.clone()) {
            first.push(u.clone());
        }
    }
    assert_eq!(first.len(), ADMINS * EACH, "a command was lost");
    for mine in &queued {
        let pos: Vec<usize> = mine
            .iter()
            .map(|u| first.iter().position(|f| f == u).expect("delivered"))
            .collect();
        assert!(
            pos.windows(2).all(|w| w[0] < w[1]),
            "an admin's order changed"
        );
    }
    // Re-deliveries are exactly the deferred ones, once each.
    assert!(!deferred.is_empty());
    assert_eq!(deliveries.len() - first.len(), deferred.len());
    for u in &deferred {
        assert_eq!(deliveries.iter().filter(|d| *d == u).count(), 2, "{u}");
    }
    for u in all {
        assert_eq!(command(&e, u)["status"], "acknowledged", "{u}");
    }
}

/// Only what the CA signed identifies a certificate: the same certificate with its
/// (unsigned) outer signatureAlgorithm encoded another way is refused, so it cannot pose
/// as a new identity (RFC 5280 §4.1.1.2), and a binding made under the old key (the
/// hash of the whole DER) moves to the new one on first use.
#[test]
fn an_unsigned_part_of_a_certificate_makes_no_new_identity() {
    let e = env();
    let d = enrolled(&e);
    let variant = d.id.outer_algorithm_reencoded();
    assert_ne!(variant.cert_der, d.id.cert_der);
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let before = mdmdevice::dump(&e);
    let r = block_on(commands::handle(
        &e,
        device_request(
            Method::PUT,
            "/mdm/connect",
            &body,
            Some(&variant.sign(&body)),
        ),
    ));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(r.body()).contains("signatureAlgorithm"),
        "{:?}",
        String::from_utf8_lossy(r.body())
    );
    assert_eq!(mdmdevice::dump(&e), before);
    let forged = Device::new(&e, variant, "00008110-000FFFFFFFFFFFFF");
    let r = forged.checkin("Authenticate", "");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(mdmdevice::dump(&e), before);

    // A binding stored under the whole-DER hash (before bindings were keyed on what the
    // CA signed) keeps working, and moves.
    block_on(e.store.delete(&format!("certb:{}", d.id.cert_hash()))).unwrap();
    block_on(
        e.store
            .set(&format!("certb:{}", d.id.der_hash()), UDID.as_bytes()),
    )
    .unwrap();
    assert_eq!(d.idle(), None);
    assert_eq!(
        block_on(e.store.get(&format!("certb:{}", d.id.cert_hash()))).unwrap(),
        Some(UDID.as_bytes().to_vec())
    );
    assert_eq!(
        block_on(e.store.get(&format!("certb:{}", d.id.der_hash()))).unwrap(),
        None
    );
}

/// An expired identity acts for nothing, on the check-in and the command endpoint alike
/// (the device renews before the end, signing the renewal with the valid identity).
#[test]
fn an_expired_identity_is_refused() {
    let e = env();
    let d = enrolled(&e);
    assert_eq!(d.idle(), None);
    let end =
        d.id.cert
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs();
    e.clock
        .advance(std::time::Duration::from_secs(end + 1 - mdmdevice::START));
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let before = mdmdevice::dump(&e);
    let r = d.connect_raw(&body);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(r.body()).contains("expired"));
    let r = d.checkin("TokenUpdate", "");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(r.body()).contains("expired"));
    assert_eq!(mdmdevice::dump(&e), before);
}

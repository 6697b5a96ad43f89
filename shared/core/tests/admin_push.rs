//! APNs push wired into the app: queueing a command pushes the device (a failed push never
//! fails the enqueue), bulk enqueues leave the push to the scheduler's tick, a TokenUpdate
//! makes an unreachable device pushable again, and the admin push routes. APNs is a
//! scripted fake HTTP client; the device checks in with signed messages.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use futures::executor::block_on;
use http::{Method, Request, Response, StatusCode};
use mdm_core::config;
use mdm_core::enroll::pending::{self as enroll_pending, PendingEnrollment, Via};
use mdm_core::mdm::checkin::CheckinMessage;
use mdm_core::mdm::enrollments;
use mdm_core::mdm::signature::SCEP_CA_CERT_KEY;
use mdm_core::platform::TransportError;
use mdm_core::platform::testing::{FnHttp, ManualClock, MapVariables};
use mdm_core::{Env, admin, checkin, sync};
use mdm_crypto::{
    Certificate, CertificateAuthority, Csr, CsrParams, IssueOptions, KeyPair, SignOptions,
};
use mdm_kv::{Defects, MemoryBackend, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ADMIN_KEY: &str = "admin-key-for-push-tests";
const SYNC_KEY: &str = "sync-key-for-push-tests";
const T0: u64 = 1_800_000_000;
const TOPIC: &str = "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9";
const IPHONE: &str = "00008110-000A1C2E3E88401E";
const IPAD: &str = "00008103-001A2B3C4D5E6F70";
/// base64 of these bytes goes in TokenUpdate's `Token`.
const TOKEN_B64: &str = "3q2+7wABAgM=";
const TOKEN_HEX: &str = "deadbeef00010203";

type Reply = Result<Response<Vec<u8>>, TransportError>;

/// A scripted APNs: answers from a queue (200 when it is empty), records every request.
#[derive(Default)]
struct FakeApns {
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Request<Vec<u8>>>>,
}

impl FakeApns {
    fn answer(&self, req: Request<Vec<u8>>) -> Reply {
        self.seen.lock().unwrap().push(req);
        self.script.lock().unwrap().pop_front().unwrap_or_else(|| {
            Ok(Response::builder()
                .status(200)
                .header("apns-id", "0F2B6E6A-0000-4000-8000-000000000001")
                .body(vec![])
                .unwrap())
        })
    }

    fn then(&self, status: u16, reason: &str) {
        self.script.lock().unwrap().push_back(Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(format!(r#"{{"reason":"{reason}"}}"#).into_bytes())
            .unwrap()));
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn last(&self) -> (String, http::HeaderMap, Vec<u8>) {
        let seen = self.seen.lock().unwrap();
        let r = seen.last().expect("a push was sent");
        (r.uri().to_string(), r.headers().clone(), r.body().clone())
    }
}

type TestEnv<'a> = Env<
    MemoryBackend,
    FnHttp<Box<dyn Fn(Request<Vec<u8>>) -> Reply + Sync + 'a>>,
    ManualClock,
    MapVariables,
>;

/// A device's MDM identity, issued by the test SCEP CA.
struct Identity {
    key: KeyPair,
    cert: Certificate,
}

impl Identity {
    /// The `Mdm-Signature` header for `body`: detached CMS SignedData.
    fn sign(&self, body: &[u8]) -> String {
        let opts = SignOptions {
            detached: true,
            signing_time_unix: Some(T0 as i64),
            ..SignOptions::default()
        };
        let der = mdm_crypto::sign_data(body, &self.key, &self.cert, &[], &opts).unwrap();
        base64::engine::general_purpose::STANDARD.encode(der)
    }
}

/// The test SCEP CA and one identity per device (RSA key generation is slow: made once).
fn pki() -> &'static (CertificateAuthority, Vec<(&'static str, Identity)>) {
    static PKI: OnceLock<(CertificateAuthority, Vec<(&'static str, Identity)>)> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = CertificateAuthority::generate("Push Test SCEP CA", T0 as i64).unwrap();
        let ids = [IPHONE, IPAD]
            .into_iter()
            .map(|udid| {
                let key = KeyPair::generate().unwrap();
                let csr =
                    Csr::from_der(&mdm_crypto::build_csr(&key, &CsrParams::new(udid)).unwrap())
                        .unwrap();
                let cert = ca.issue(&csr, T0 as i64, &IssueOptions::default()).unwrap();
                (udid, Identity { key, cert })
            })
            .collect();
        (ca, ids)
    })
}

fn identity(udid: &str) -> &'static Identity {
    &pki().1.iter().find(|(u, _)| *u == udid).unwrap().1
}

fn env(apns: &FakeApns) -> TestEnv<'_> {
    let e = Env {
        store: Store::new(MemoryBackend::with_defects(Defects::spin_sqlite())),
        http: FnHttp(Box::new(move |r| apns.answer(r)) as Box<_>),
        clock: ManualClock::at_unix(T0),
        vars: MapVariables::new([
            ("admin_api_key", ADMIN_KEY),
            ("sync_api_key", SYNC_KEY),
            ("storage_key", "storage-key-for-push-tests-0123456789abc"),
            ("apns_base_url", "https://apns.test:2197/"),
        ]),
    };
    let ca = pki().0.ca_certificate().der().to_vec();
    block_on(e.store.set(SCEP_CA_CERT_KEY, &ca)).unwrap();
    e
}

fn xml(body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>{body}</dict></plist>"#
    )
    .into_bytes()
}

fn checkin(e: &TestEnv, id: &Identity, udid: &str, message_type: &str, extra: &str) {
    let body = xml(&format!(
        "<key>MessageType</key><string>{message_type}</string><key>UDID</key><string>{udid}</string>{extra}"
    ));
    let req = http::Request::builder()
        .method(Method::PUT)
        .uri("/mdm/checkin")
        .header("content-type", "application/x-apple-aspen-mdm-checkin")
        .header("mdm-signature", id.sign(&body))
        .body(body)
        .unwrap();
    let resp = block_on(checkin::handle(e, req));
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{message_type}: {}",
        String::from_utf8_lossy(resp.body())
    );
}

fn magic(udid: &str) -> String {
    format!("magic-{udid}")
}

fn token_update(e: &TestEnv, id: &Identity, udid: &str) {
    checkin(
        e,
        id,
        udid,
        "TokenUpdate",
        &format!(
            "<key>Topic</key><string>{TOPIC}</string><key>PushMagic</key><string>{}</string><key>Token</key><data>{TOKEN_B64}</data>",
            magic(udid)
        ),
    );
}

/// An enrollment request answered for `udid` (what `POST /mdm/enroll/ade` leaves).
fn pending(e: &TestEnv, udid: &str) {
    let p = PendingEnrollment {
        udid: udid.into(),
        serial: format!("SN-{udid}"),
        via: Via::Ade,
        token: None,
        profile: None,
        apple_profile_uuid: None,
        user: None,
        topic: TOPIC.into(),
        supervised: true,
        product: Some("iPhone15,2".into()),
        os_version: Some("17.4".into()),
        build_version: None,
        grant: None,
        at: T0,
    };
    block_on(enroll_pending::put(&e.store, &p)).unwrap();
}

/// Authenticate (applied to the enrollment state machine: the identity here was not
/// issued by the server's own SCEP endpoint) + TokenUpdate through the check-in endpoint.
fn enroll(e: &TestEnv, udid: &str) -> &'static Identity {
    let id = identity(udid);
    pending(e, udid);
    authenticate(e, id, udid);
    token_update(e, id, udid);
    id
}

fn authenticate(e: &TestEnv, id: &Identity, udid: &str) {
    let body = xml(&format!(
        "<key>MessageType</key><string>Authenticate</string><key>UDID</key><string>{udid}</string><key>Topic</key><string>{TOPIC}</string><key>SerialNumber</key><string>SN-{udid}</string><key>ProductName</key><string>iPhone15,2</string><key>OSVersion</key><string>17.4</string>"
    ));
    let msg = CheckinMessage::parse(&body).unwrap();
    let key = block_on(config::secret(&e.vars, config::STORAGE_KEY)).unwrap();
    let hash = hex::encode(Sha256::digest(id.cert.der()));
    block_on(enrollments::checkin(&e.store, &key, &hash, &msg, T0)).unwrap();
}

fn admin_call(e: &TestEnv, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN_KEY}"));
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let body = body.map(|v| v.to_string().into_bytes()).unwrap_or_default();
    let resp = block_on(admin::handle(e, b.body(body).unwrap()));
    (
        resp.status(),
        serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
    )
}

fn enqueue(e: &TestEnv, udid: &str) -> Value {
    let (s, b) = admin_call(
        e,
        Method::POST,
        &format!("/api/v1/devices/{udid}/commands"),
        Some(json!({"RequestType": "ProfileList"})),
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

fn tick(e: &TestEnv) -> Value {
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/internal/tick")
        .header("authorization", format!("Bearer {SYNC_KEY}"))
        .body(Vec::new())
        .unwrap();
    let resp = block_on(sync::handle(e, req));
    assert_eq!(resp.status(), StatusCode::OK);
    serde_json::from_slice(resp.body()).unwrap()
}

#[test]
fn queueing_a_command_pushes_the_device() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e, IPHONE);
    assert_eq!(apns.count(), 0, "enrolling pushes nothing");

    let b = enqueue(&e, IPHONE);
    assert_eq!(b["status"], "queued");
    assert_eq!(b["push"]["outcome"], "delivered", "{b}");
    assert_eq!(apns.count(), 1);
    let (uri, headers, body) = apns.last();
    assert_eq!(uri, format!("https://apns.test:2197/3/device/{TOKEN_HEX}"));
    assert_eq!(headers["apns-topic"], TOPIC);
    assert_eq!(headers["apns-push-type"], "mdm");
    assert_eq!(headers["apns-priority"], "10");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, json!({ "mdm": magic(IPHONE) }));

    // A second command right after shares that push; a follow-up is owed.
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "coalesced", "{b}");
    assert!(b["push"]["followup_at"].is_u64());
    assert_eq!(apns.count(), 1);

    // The push routes and the device view.
    let (s, st) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(
        (st["attempts"].as_u64(), st["delivered"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(st["reachable"], true);
    assert_eq!(st["last_reason"], "enqueued");
    let (_, dev) = admin_call(&e, Method::GET, &format!("/api/v1/devices/{IPHONE}"), None);
    assert_eq!(dev["push"]["delivered"], 1, "{dev}");
    let text = serde_json::to_string(&st).unwrap() + &dev.to_string();
    assert!(!text.contains(TOKEN_HEX) && !text.contains(&magic(IPHONE)));

    // The scheduler sends the follow-up once the window has passed.
    e.clock.advance(Duration::from_secs(61));
    let report = tick(&e);
    assert_eq!(report["push"]["delivered"], 1, "{report}");
    assert_eq!(apns.count(), 2);

    // On demand.
    let (s, b) = admin_call(
        &e,
        Method::POST,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["outcome"], "delivered");
    assert_eq!(b["push"]["last_reason"], "admin");
    assert_eq!(apns.count(), 3);
    let (s, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(
        (s, c["apns"]["state"].as_str()),
        (StatusCode::OK, Some("unknown"))
    );
}

#[test]
fn a_failed_push_never_fails_the_enqueue() {
    let apns = FakeApns::default();
    let e = env(&apns);
    let id = enroll(&e, IPHONE);

    // 503: queued anyway, retried by the scheduler.
    apns.then(503, "ServiceUnavailable");
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "retry_scheduled", "{b}");
    assert_eq!(b["push"]["status"], 503);
    let retry_at = b["push"]["retry_at"].as_u64().unwrap();
    // Enqueues wait for the retry.
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "retry_pending", "{b}");
    assert_eq!(apns.count(), 1);
    e.clock.set_unix(retry_at + 60);
    let report = tick(&e);
    assert_eq!(report["push"]["delivered"], 1, "{report}");
    assert_eq!(apns.count(), 2);

    // 403: the certificate is marked failing; the command is still queued.
    e.clock.advance(Duration::from_secs(60));
    apns.then(403, "BadCertificate");
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "certificate_rejected", "{b}");
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(c["apns"]["state"], "failing");
    assert_eq!(c["apns"]["last_failure_reason"], "BadCertificate");

    // 410: unreachable until the next TokenUpdate.
    e.clock.advance(Duration::from_secs(60));
    apns.then(410, "Unregistered");
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "unreachable", "{b}");
    e.clock.advance(Duration::from_secs(60));
    let b = enqueue(&e, IPHONE);
    assert_eq!(
        (b["push"]["outcome"].as_str(), b["push"]["why"].as_str()),
        (Some("skipped"), Some("unreachable")),
        "{b}"
    );
    let (_, st) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(st["reachable"], false, "{st}");
    let pushes = apns.count();
    // The same token again: the check-in clears the mark.
    token_update(&e, id, IPHONE);
    let (_, st) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(st["reachable"], true, "{st}");
    e.clock.advance(Duration::from_secs(60));
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "delivered", "{b}");
    assert_eq!(apns.count(), pushes + 1);
    // Every command was queued.
    let (_, h) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/commands?status=queued"),
        None,
    );
    assert_eq!(h["items"].as_array().unwrap().len(), 6, "{h}");
    // A healthy push marks the certificate ok again.
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(c["apns"]["state"], "ok");
}

#[test]
fn bulk_enqueue_leaves_the_pushes_to_the_tick() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e, IPHONE);
    enroll(&e, IPAD);
    let (s, b) = admin_call(
        &e,
        Method::POST,
        "/api/v1/commands",
        Some(json!({
            "devices": [IPHONE, IPAD, "NOT-ENROLLED"],
            "command": {"RequestType": "SecurityInfo"},
        })),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["queued"], 2);
    assert_eq!(b["results"][0]["push"], "deferred");
    assert_eq!(b["results"][1]["push"], "deferred");
    assert!(b["results"][2].get("push").is_none());
    assert_eq!(apns.count(), 0, "nothing pushed inline");
    let report = tick(&e);
    assert_eq!(report["push"]["delivered"], 2, "{report}");
    assert_eq!(apns.count(), 2);
    // Nothing owed any more.
    e.clock.advance(Duration::from_secs(300));
    let report = tick(&e);
    assert_eq!(report["push"]["pushed"], 0, "{report}");
    assert_eq!(apns.count(), 2);
}

#[test]
fn push_routes_refuse_unknown_and_unpushable_devices() {
    let apns = FakeApns::default();
    let e = env(&apns);
    for method in [Method::POST, Method::GET] {
        let (s, b) = admin_call(&e, method, "/api/v1/devices/NOPE/push", None);
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }
    // Authenticated, no TokenUpdate yet: known, but nothing to push to.
    pending(&e, IPHONE);
    authenticate(&e, identity(IPHONE), IPHONE);
    let (s, b) = admin_call(
        &e,
        Method::POST,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, b) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(
        (s, &b["last_push_at"]),
        (StatusCode::OK, &Value::Null),
        "{b}"
    );
    assert_eq!(apns.count(), 0);
    // Without the admin key nothing is revealed.
    let req = http::Request::builder()
        .method(Method::GET)
        .uri("/api/v1/push/certificate")
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        block_on(admin::handle(&e, req)).status(),
        StatusCode::UNAUTHORIZED
    );
}

/// An MDM push certificate as Apple issues them (subject `UID=<topic>, CN=APSP:<uuid>`),
/// valid from `from` to `to`, in PEM; `topic` None leaves the UID out.
fn push_cert_pem(topic: Option<&str>, from: u64, to: u64) -> String {
    use std::str::FromStr;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::EncodePem;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::{Time, Validity};
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let pem = KeyPair::generate().unwrap().to_pkcs8_pem().unwrap();
        rsa::pkcs8::DecodePrivateKey::from_pkcs8_pem(&pem).unwrap()
    });
    let subject = match topic {
        Some(t) => format!("UID={t},CN=APSP:{},C=US", t.rsplit('.').next().unwrap()),
        None => "CN=Not a push certificate,C=US".to_owned(),
    };
    let time = |t: u64| {
        Time::UtcTime(
            x509_cert::der::asn1::UtcTime::from_unix_duration(Duration::from_secs(t)).unwrap(),
        )
    };
    let validity = Validity {
        not_before: time(from),
        not_after: time(to),
    };
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    let profile = Profile::Leaf {
        issuer: Name::from_str(
            "CN=Apple Application Integration 2 Certification Authority,O=Apple Inc.,C=US",
        )
        .unwrap(),
        enable_key_agreement: false,
        enable_key_encipherment: true,
    };
    CertificateBuilder::new(
        profile,
        SerialNumber::from(7u32),
        validity,
        Name::from_str(&subject).unwrap(),
        spki,
        &signer,
    )
    .unwrap()
    .build::<rsa::pkcs1v15::Signature>()
    .unwrap()
    .to_pem(Default::default())
    .unwrap()
}

fn put_cert(e: &TestEnv, query: &str, body: &[u8]) -> (StatusCode, Value) {
    let req = http::Request::builder()
        .method(Method::PUT)
        .uri(format!("/api/v1/push/certificate{query}"))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .header("content-type", "application/x-pem-file")
        .body(body.to_vec())
        .unwrap();
    let resp = block_on(admin::handle(e, req));
    (
        resp.status(),
        serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
    )
}

#[test]
fn the_push_certificate_names_the_topic_and_warns_before_it_expires() {
    let apns = FakeApns::default();
    let mut e = env(&apns);
    // Nothing uploaded, no variable: enrollment is impossible, and the API says so.
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(c["topic"], Value::Null, "{c}");
    assert!(
        c["warnings"][0].as_str().unwrap().contains("cannot enroll"),
        "{c}"
    );
    let err = block_on(mdm_core::enroll::profile::push_topic(&e)).unwrap_err();
    assert_eq!(err.code, "server.push_topic_missing");
    // The variable alone: used, with a nudge to upload.
    e.vars = MapVariables::new([
        ("admin_api_key", ADMIN_KEY),
        ("storage_key", "storage-key-for-push-tests-0123456789abc"),
        ("apns_topic", TOPIC),
    ]);
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(
        (c["topic"].as_str(), c["topic_source"].as_str()),
        (Some(TOPIC), Some("variable")),
        "{c}"
    );
    assert_eq!(c["certificate"], Value::Null);

    // Refusals leave nothing behind.
    let year = 365 * 86_400;
    let key_pem = KeyPair::generate()
        .unwrap()
        .to_pkcs8_pem()
        .unwrap()
        .to_string();
    let with_key = format!("{}{}", push_cert_pem(Some(TOPIC), T0, T0 + year), key_pem);
    for (body, needle) in [
        (b"".to_vec(), "empty"),
        (b"garbage".to_vec(), "PEM"),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
            "not a certificate",
        ),
        (with_key.into_bytes(), "private key"),
        (push_cert_pem(None, T0, T0 + year).into_bytes(), "no UID"),
        (
            push_cert_pem(Some("com.example.other"), T0, T0 + year).into_bytes(),
            "not an MDM push topic",
        ),
        (
            push_cert_pem(Some(TOPIC), T0 - 2 * year, T0 - year).into_bytes(),
            "expired",
        ),
    ] {
        let (s, b) = put_cert(&e, "", &body);
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{needle}: {b}");
        assert!(b.to_string().contains(needle), "{needle}: {b}");
        assert!(
            !b.to_string().contains("PRIVATE KEY") && !b.to_string().contains(&key_pem[40..80])
        );
    }
    assert!(block_on(e.store.get("pushcert:info")).unwrap().is_none());

    // The real thing (PEM; DER alike).
    let pem = push_cert_pem(Some(TOPIC), T0 - 86_400, T0 + year);
    let (s, b) = put_cert(&e, "", pem.as_bytes());
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(
        (c["topic"].as_str(), c["topic_source"].as_str()),
        (Some(TOPIC), Some("certificate")),
        "{c}"
    );
    let cert = &c["certificate"];
    assert_eq!(cert["days_left"], 365, "{c}");
    assert_eq!(cert["expiry"], "ok");
    assert_eq!(cert["sha256"].as_str().unwrap().len(), 64);
    assert!(cert["subject"].as_str().unwrap().contains("APSP:"), "{c}");
    assert_eq!(c["warnings"], json!([]), "{c}");
    assert_eq!(c["apns"]["state"], "unknown");
    let der = Certificate::from_pem(&pem).unwrap().der().to_vec();
    assert_eq!(put_cert(&e, "", &der).0, StatusCode::OK);

    // 30 days before expiry: expiring, with a warning saying what to do.
    e.clock.advance(Duration::from_secs(year - 30 * 86_400));
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(
        (
            c["certificate"]["expiry"].as_str(),
            c["certificate"]["days_left"].as_u64()
        ),
        (Some("expiring"), Some(30)),
        "{c}"
    );
    assert!(
        c["warnings"][0]
            .as_str()
            .unwrap()
            .contains("same Apple Account"),
        "{c}"
    );
    e.clock.advance(Duration::from_secs(31 * 86_400));
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(c["certificate"]["expiry"], "expired", "{c}");
}

#[test]
fn a_new_topic_is_refused_once_devices_enrolled_unless_forced() {
    let apns = FakeApns::default();
    let e = env(&apns);
    let year = 365 * 86_400;
    let other = "com.apple.mgmt.External.11111111-2222-3333-4444-555555555555";
    // Before any device, switching is harmless.
    assert_eq!(
        put_cert(&e, "", push_cert_pem(Some(other), T0, T0 + year).as_bytes()).0,
        StatusCode::OK
    );
    assert_eq!(
        put_cert(&e, "", push_cert_pem(Some(TOPIC), T0, T0 + year).as_bytes()).0,
        StatusCode::OK
    );
    assert_eq!(
        block_on(mdm_core::enroll::profile::push_topic(&e)).unwrap(),
        TOPIC
    );
    enroll(&e, IPHONE);
    // A renewal (same topic) is fine.
    let renewed = push_cert_pem(Some(TOPIC), T0 + 86_400, T0 + 2 * year);
    assert_eq!(put_cert(&e, "", renewed.as_bytes()).0, StatusCode::OK);
    // Another topic would orphan the device: 409 naming both, nothing changed.
    let (s, b) = put_cert(&e, "", push_cert_pem(Some(other), T0, T0 + year).as_bytes());
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["current_topic"], TOPIC, "{b}");
    assert_eq!(b["new_topic"], other, "{b}");
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(c["topic"], TOPIC);
    assert_eq!(c["certificate"]["days_left"], 2 * 365);
    assert_eq!(
        put_cert(&e, "?force=maybe", b"x").0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Forced: switched, and the response says what it replaced.
    let (s, b) = put_cert(
        &e,
        "?force=true",
        push_cert_pem(Some(other), T0, T0 + year).as_bytes(),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["replaced_topic"], TOPIC, "{b}");
    assert_eq!(
        block_on(mdm_core::enroll::profile::push_topic(&e)).unwrap(),
        other
    );
}

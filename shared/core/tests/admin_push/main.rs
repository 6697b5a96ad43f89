//! APNs push wired into the app: queueing a command pushes the device (a failed push never
//! fails the enqueue), bulk enqueues leave the push to the scheduler's tick, a TokenUpdate
//! makes an unreachable device pushable again, and the admin push routes. APNs is a
//! scripted fake HTTP client; the device checks in with signed messages.
//!
//! This file holds the fake APNs, the test SCEP CA, the environment and the check-in and
//! admin helpers; the tests are in one module per concern: `enqueue`, `routes`,
//! `certificate`.

mod certificate;
mod enqueue;
mod routes;

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use futures::executor::block_on;
use http::{Method, Request, Response, StatusCode};
use mdm_core::config;
use mdm_core::enroll::pending::{self as enroll_pending, PendingEnrollment, Via};
use mdm_core::mdm::checkin_message::CheckinMessage;
use mdm_core::mdm::enrollments;
use mdm_core::mdm::signature::SCEP_CA_CERT_KEY;
use mdm_core::platform::TransportError;
use mdm_core::platform::testing::{FnHttp, ManualClock, MapVariables};
use mdm_core::{Env, routes::admin, routes::checkin, routes::sync};
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

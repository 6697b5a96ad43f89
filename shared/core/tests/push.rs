//! APNs push (`mdm::push`) without a network: request building, answer classification,
//! backoff, coalescing, the retry wheel and its drain, on strict and defective stores.
//! The same paths over real HTTP/2 + TLS run in `tests/apnssim/tests/`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use futures::executor::block_on;
use http::{Request, Response};
use mdm_core::Env;
use mdm_core::mdm::enrollments::{EnrollmentRecord, Push};
use mdm_core::mdm::push::{self, COALESCE_WINDOW_SECS, EXPIRATION_SECS, PushReason};
use mdm_core::mdm::push_outcome::{self, PushOutcome, SkipReason, Verdict};
use mdm_core::mdm::push_send::{self, BACKOFF_MAX_SECS, GIVE_UP_SECS};
use mdm_core::mdm::queue::{self, Channel, Lane};
use mdm_core::mdm::queue_delivery;
use mdm_core::mdm::queue_enqueue;
use mdm_core::mdm::{push_state, push_status};
use mdm_core::platform::TransportError;
use mdm_core::platform::testing::{FnHttp, ManualClock, MapVariables};
use mdm_core::record::Record;
use mdm_kv::{Defects, MemoryBackend, Store};

const T0: u64 = 1_800_000_000;
const TOKEN: &str = "6e3f0a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab";
const TOPIC: &str = "com.apple.mgmt.External.2f1b6d3c-3c55-4c7d-9a0e-6b1f2e3d4c5b";
const MAGIC: &str = "5C0D3A7E-1111-4AAA-8BBB-123456789ABC";

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
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok(ok()))
    }
    fn then(&self, r: Reply) {
        self.script.lock().unwrap().push_back(r);
    }
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn ok() -> Response<Vec<u8>> {
    Response::builder()
        .status(200)
        .header("apns-id", "0F2B6E6A-0000-4000-8000-000000000001")
        .body(vec![])
        .unwrap()
}

fn err(status: u16, reason: &str) -> Reply {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(format!(r#"{{"reason":"{reason}"}}"#).into_bytes())
        .unwrap())
}

fn err_retry_after(status: u16, reason: &str, after: &str) -> Reply {
    let mut r = err(status, reason).unwrap();
    r.headers_mut()
        .insert("retry-after", after.parse().unwrap());
    Ok(r)
}

type TestEnv<'a> = Env<
    MemoryBackend,
    FnHttp<Box<dyn Fn(Request<Vec<u8>>) -> Reply + Sync + 'a>>,
    ManualClock,
    MapVariables,
>;

fn env_with(apns: &FakeApns, defects: Defects) -> TestEnv<'_> {
    Env {
        store: Store::new(MemoryBackend::with_defects(defects)),
        http: FnHttp(Box::new(move |r| apns.answer(r))),
        clock: ManualClock::at_unix(T0),
        vars: MapVariables::new([("apns_base_url", "https://apns.test:2197/")]),
    }
}

fn env(apns: &FakeApns) -> TestEnv<'_> {
    env_with(apns, Defects::strict())
}

fn push_data(token: &str) -> Push {
    Push {
        token_hex: token.into(),
        push_magic: MAGIC.into(),
        topic: TOPIC.into(),
    }
}

/// An enrollment as TokenUpdate leaves it.
fn enroll(store: &Store<MemoryBackend>, id: &str, token: &str) {
    let rec = EnrollmentRecord {
        device_id: id.into(),
        topic: TOPIC.into(),
        enrolled: true,
        enrolled_at: Some(T0),
        push: Some(push_data(token)),
        ..EnrollmentRecord::default()
    };
    block_on(store.set(
        &EnrollmentRecord::key(id),
        &serde_json::to_vec(&rec).unwrap(),
    ))
    .unwrap();
}

fn advance(e: &TestEnv<'_>, secs: u64) {
    e.clock.advance(Duration::from_secs(secs));
}

fn now(e: &TestEnv<'_>) -> u64 {
    use mdm_core::Clock;
    e.clock.unix_seconds()
}

fn state(e: &TestEnv<'_>, id: &str) -> push_status::PushStatus {
    block_on(push_status::push_state(&e.store, id))
        .unwrap()
        .expect("pushed before")
}

// --- the request ------------------------------------------------------------------------

#[test]
fn request_is_exactly_what_apns_expects() {
    let req = push::build_request(
        "https://api.push.apple.com/",
        &push_data(&TOKEN.to_uppercase()),
        T0,
        Some("0f2b6e6a-0000-4000-8000-000000000001"),
    )
    .unwrap();
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(
        req.uri().to_string(),
        format!("https://api.push.apple.com/3/device/{TOKEN}")
    );
    let h = |n: &str| req.headers().get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("apns-topic"), TOPIC);
    assert_eq!(h("apns-push-type"), "mdm");
    assert_eq!(h("apns-priority"), "10");
    assert_eq!(h("apns-expiration"), (T0 + EXPIRATION_SECS).to_string());
    assert_eq!(h("apns-id"), "0f2b6e6a-0000-4000-8000-000000000001");
    assert_eq!(req.body(), format!(r#"{{"mdm":"{MAGIC}"}}"#).as_bytes());

    // A PushMagic needing JSON escapes stays valid JSON.
    let mut odd = push_data(TOKEN);
    odd.push_magic = "a\"b\\c".into();
    let req = push::build_request("https://x", &odd, T0, None).unwrap();
    assert_eq!(req.body(), br#"{"mdm":"a\"b\\c"}"#);
    assert!(req.headers().get("apns-id").is_none());

    for bad in ["", "abc", "zz", "0g"] {
        let e = push::build_request("https://x", &push_data(bad), T0, None).unwrap_err();
        assert!(!e.to_string().contains(TOKEN));
    }
    let mut no_topic = push_data(TOKEN);
    no_topic.topic.clear();
    assert!(push::build_request("https://x", &no_topic, T0, None).is_err());
}

#[test]
fn apns_ids_are_v4_uuids() {
    let a = push::new_apns_id();
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "4");
    assert_ne!(a, push::new_apns_id());
}

#[test]
fn base_url_defaults_to_production() {
    let none = MapVariables::default();
    assert_eq!(
        block_on(push::base_url(&none)),
        "https://api.push.apple.com"
    );
    let set = MapVariables::new([("apns_base_url", " https://api.sandbox.push.apple.com/ ")]);
    assert_eq!(
        block_on(push::base_url(&set)),
        "https://api.sandbox.push.apple.com"
    );
}

#[test]
fn redaction_keeps_only_a_prefix() {
    assert_eq!(push::redact(TOKEN), "6e3f0a1b…");
    assert_eq!(push::redact("short"), "…");
    assert_ne!(
        push::token_fingerprint(TOKEN),
        push::token_fingerprint("00")
    );
    assert_eq!(
        push::token_fingerprint(TOKEN),
        push::token_fingerprint(&TOKEN.to_uppercase())
    );
}

// --- classification ---------------------------------------------------------------------

#[test]
fn answers_are_classified() {
    let at = UNIX_EPOCH + Duration::from_secs(T0);
    let c = |r: Reply| push_outcome::classify(&r, at);
    assert_eq!(
        c(Ok(ok())),
        Verdict::Delivered {
            apns_id: Some("0F2B6E6A-0000-4000-8000-000000000001".into())
        }
    );
    let gone = Ok(Response::builder()
        .status(410)
        .body(br#"{"reason":"Unregistered","timestamp":1799999999000}"#.to_vec())
        .unwrap());
    assert_eq!(
        c(gone),
        Verdict::Unreachable {
            status: 410,
            reason: "Unregistered".into(),
            apns_timestamp: Some(1_799_999_999_000)
        }
    );
    assert!(matches!(
        c(err(410, "ExpiredToken")),
        Verdict::Unreachable { .. }
    ));
    assert!(matches!(
        c(err(400, "BadDeviceToken")),
        Verdict::Unreachable { status: 400, .. }
    ));
    for reason in ["BadCertificate", "BadCertificateEnvironment", "Forbidden"] {
        assert_eq!(
            c(err(403, reason)),
            Verdict::Certificate {
                status: 403,
                reason: reason.into()
            }
        );
    }
    assert_eq!(
        c(err_retry_after(429, "TooManyRequests", "120")),
        Verdict::Retry {
            status: Some(429),
            reason: "TooManyRequests".into(),
            retry_after: Some(Duration::from_secs(120)),
            tls: false
        }
    );
    let date = "Fri, 15 Jan 2027 08:00:00 GMT";
    match c(err_retry_after(503, "ServiceUnavailable", date)) {
        Verdict::Retry { retry_after, .. } => {
            let want = mdm_core::time::parse_rfc3339("2027-01-15T08:00:00Z").unwrap() as u64 - T0;
            assert_eq!(retry_after, Some(Duration::from_secs(want)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c(err(500, "InternalServerError")),
        Verdict::Retry {
            status: Some(500),
            ..
        }
    ));
    assert!(matches!(c(err(503, "Shutdown")), Verdict::Retry { .. }));
    // Without a JSON body the status text stands in for the reason.
    assert_eq!(
        c(Ok(Response::builder()
            .status(502)
            .body(b"<html>".to_vec())
            .unwrap())),
        Verdict::Retry {
            status: Some(502),
            reason: "BadGateway".into(),
            retry_after: None,
            tls: false
        }
    );
    for reason in [
        "BadTopic",
        "TopicDisallowed",
        "MissingTopic",
        "DeviceTokenNotForTopic",
        "BadExpirationDate",
    ] {
        assert_eq!(
            c(err(400, reason)),
            Verdict::Failed {
                status: 400,
                reason: reason.into()
            }
        );
    }
    assert!(matches!(
        c(err(413, "PayloadTooLarge")),
        Verdict::Failed { status: 413, .. }
    ));
    assert!(matches!(
        c(Err(TransportError("connection refused".into()))),
        Verdict::Retry {
            status: None,
            tls: false,
            ..
        }
    ));
    assert!(matches!(
        c(Err(TransportError(
            "TlsAlertReceived(certificate required)".into()
        ))),
        Verdict::Retry { tls: true, .. }
    ));
}

#[test]
fn backoff_doubles_with_jitter_up_to_an_hour() {
    assert_eq!(push_send::backoff_bounds(1), (15, 30));
    assert_eq!(push_send::backoff_bounds(2), (30, 60));
    assert_eq!(push_send::backoff_bounds(7), (960, 1920));
    assert_eq!(push_send::backoff_bounds(8), (1800, 3600));
    assert_eq!(push_send::backoff_bounds(500), (1800, 3600));
    assert_eq!(push_send::retry_delay(1, None, 0.0), 15);
    assert_eq!(push_send::retry_delay(1, None, 1.0), 30);
    // Retry-After wins when it asks for longer, not when shorter; capped at 6 h.
    assert_eq!(
        push_send::retry_delay(1, Some(Duration::from_secs(600)), 0.5),
        600
    );
    assert_eq!(
        push_send::retry_delay(3, Some(Duration::from_secs(5)), 1.0),
        120
    );
    assert_eq!(
        push_send::retry_delay(1, Some(Duration::from_secs(86_400)), 0.0),
        6 * 3600
    );
}

// --- outcomes ---------------------------------------------------------------------------

#[test]
fn delivered_push_is_recorded() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    let out = block_on(push::push_device(&e, "UDID-1", PushReason::Admin)).unwrap();
    assert!(
        matches!(out, PushOutcome::Delivered { apns_id: Some(_) }),
        "{out:?}"
    );
    assert_eq!(apns.count(), 1);
    let req = &apns.seen.lock().unwrap()[0];
    assert_eq!(
        req.uri().to_string(),
        format!("https://apns.test:2197/3/device/{TOKEN}")
    );
    let s = state(&e, "UDID-1");
    assert!(s.reachable);
    assert_eq!(s.last_outcome.as_deref(), Some("delivered"));
    assert_eq!(s.last_status, Some(200));
    assert_eq!(s.last_push_at, Some(T0));
    assert_eq!(s.last_delivered_at, Some(T0));
    assert_eq!(s.last_reason, Some(PushReason::Admin));
    assert_eq!(
        block_on(push_state::certificate_status(&e.store))
            .unwrap()
            .state,
        "unknown"
    );
}

#[test]
fn devices_that_cannot_be_pushed_are_skipped_without_http() {
    let apns = FakeApns::default();
    let e = env(&apns);
    let skipped = |id: &str| block_on(push::push_device(&e, id, PushReason::Admin)).unwrap();
    assert_eq!(
        skipped("nobody"),
        PushOutcome::Skipped {
            why: SkipReason::NoEnrollment
        }
    );
    let mut rec = EnrollmentRecord {
        device_id: "AUTH-ONLY".into(),
        ..EnrollmentRecord::default()
    };
    block_on(e.store.set(
        &EnrollmentRecord::key("AUTH-ONLY"),
        &serde_json::to_vec(&rec).unwrap(),
    ))
    .unwrap();
    assert_eq!(
        skipped("AUTH-ONLY"),
        PushOutcome::Skipped {
            why: SkipReason::NotEnrolled
        }
    );
    rec.enrolled = true;
    block_on(e.store.set(
        &EnrollmentRecord::key("AUTH-ONLY"),
        &serde_json::to_vec(&rec).unwrap(),
    ))
    .unwrap();
    assert_eq!(
        block_on(push::notify_enqueued(&e, "AUTH-ONLY", true)).unwrap(),
        PushOutcome::Skipped {
            why: SkipReason::NoPushToken
        }
    );
    assert_eq!(apns.count(), 0);
    assert_eq!(
        block_on(push_status::push_state(&e.store, "nobody")).unwrap(),
        None
    );
}

fn unreachable_until_token_update(first: Reply) {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    apns.then(first);
    let out = block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap();
    assert!(matches!(out, PushOutcome::Unreachable { .. }), "{out:?}");
    let s = state(&e, "UDID-1");
    assert!(!s.reachable);
    assert!(s.retry.is_none());
    // Not pushed again, whatever is queued, however much later.
    for _ in 0..3 {
        advance(&e, 3600);
        assert_eq!(
            block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap(),
            PushOutcome::Skipped {
                why: SkipReason::Unreachable
            }
        );
    }
    assert_eq!(block_on(push::drain_retries(&e, 10)).pushed, 0);
    assert_eq!(apns.count(), 1);
    // TokenUpdate (same token re-registered): the handler clears the mark.
    block_on(push::clear_unreachable(&e.store, "UDID-1")).unwrap();
    assert!(state(&e, "UDID-1").reachable);
    assert!(matches!(
        block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap(),
        PushOutcome::Delivered { .. }
    ));
    assert_eq!(apns.count(), 2);
}

#[test]
fn gone_410_marks_unreachable_until_token_update() {
    let gone = Ok(Response::builder()
        .status(410)
        .body(br#"{"reason":"Unregistered","timestamp":1799999999000}"#.to_vec())
        .unwrap());
    unreachable_until_token_update(gone);
}

#[test]
fn bad_device_token_marks_unreachable_until_token_update() {
    unreachable_until_token_update(err(400, "BadDeviceToken"));
}

#[test]
fn a_new_token_makes_the_mark_moot_even_without_clearing() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    apns.then(err(410, "Unregistered"));
    block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap();
    assert!(!state(&e, "UDID-1").reachable);
    enroll(&e.store, "UDID-1", "00112233445566778899aabbccddeeff");
    assert!(state(&e, "UDID-1").reachable);
    advance(&e, 60);
    assert!(matches!(
        block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap(),
        PushOutcome::Delivered { .. }
    ));
    let last = apns.seen.lock().unwrap()[1].uri().to_string();
    assert!(last.ends_with("/3/device/00112233445566778899aabbccddeeff"));
    // clear_unreachable on a device never pushed is a no-op.
    block_on(push::clear_unreachable(&e.store, "never-pushed")).unwrap();
    assert_eq!(
        block_on(push_status::push_state(&e.store, "never-pushed")).unwrap(),
        None
    );
}

#[test]
fn forbidden_403_marks_the_certificate_failing_until_a_success() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    enroll(&e.store, "UDID-2", TOKEN);
    apns.then(err(403, "BadCertificateEnvironment"));
    let out = block_on(push::push_device(&e, "UDID-1", PushReason::Admin)).unwrap();
    assert_eq!(
        out,
        PushOutcome::CertificateRejected {
            status: 403,
            reason: "BadCertificateEnvironment".into()
        }
    );
    let c = block_on(push_state::certificate_status(&e.store)).unwrap();
    assert_eq!(c.state, "failing");
    assert_eq!(c.since, Some(T0));
    assert_eq!(c.last_failure_status, Some(403));
    assert_eq!(
        c.last_failure_reason.as_deref(),
        Some("BadCertificateEnvironment")
    );
    // Not retried.
    assert!(state(&e, "UDID-1").retry.is_none());
    advance(&e, 7200);
    assert_eq!(block_on(push::drain_retries(&e, 10)).pushed, 0);
    assert_eq!(apns.count(), 1);
    // The operator fixed the certificate: the next success says so.
    assert!(matches!(
        block_on(push::push_device(&e, "UDID-2", PushReason::Admin)).unwrap(),
        PushOutcome::Delivered { .. }
    ));
    let c = block_on(push_state::certificate_status(&e.store)).unwrap();
    assert_eq!(c.state, "ok");
    assert_eq!(c.since, Some(T0 + 7200));
    assert_eq!(c.failures, 1);
}

#[test]
fn other_client_errors_are_recorded_not_retried() {
    for (status, reason) in [
        (400, "BadTopic"),
        (400, "TopicDisallowed"),
        (400, "DeviceTokenNotForTopic"),
        (413, "PayloadTooLarge"),
        (400, "MissingTopic"),
    ] {
        let apns = FakeApns::default();
        let e = env(&apns);
        enroll(&e.store, "UDID-1", TOKEN);
        apns.then(err(status, reason));
        assert_eq!(
            block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap(),
            PushOutcome::Rejected {
                status,
                reason: reason.into()
            }
        );
        let s = state(&e, "UDID-1");
        assert_eq!(s.last_error.as_deref(), Some(reason));
        assert!(s.retry.is_none() && s.reachable);
        advance(&e, 3600);
        assert_eq!(block_on(push::drain_retries(&e, 10)).pushed, 0);
        assert_eq!(apns.count(), 1);
    }
}

#[test]
fn too_many_requests_honours_retry_after_and_drains_when_due() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    apns.then(err_retry_after(429, "TooManyRequests", "600"));
    let out = block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap();
    assert_eq!(
        out,
        PushOutcome::RetryScheduled {
            status: Some(429),
            reason: "TooManyRequests".into(),
            attempt: 1,
            retry_at: T0 + 600
        }
    );
    // Enqueues meanwhile wait for the retry rather than hammering APNs.
    advance(&e, 100);
    assert_eq!(
        block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap(),
        PushOutcome::RetryPending { retry_at: T0 + 600 }
    );
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!((r.pushed, r.due), (0, 0), "{r:?}");
    assert_eq!(apns.count(), 1);
    advance(&e, 500);
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!((r.pushed, r.delivered), (1, 1), "{r:?}");
    assert_eq!(apns.count(), 2);
    let s = state(&e, "UDID-1");
    assert_eq!(s.last_reason, Some(PushReason::Retry));
    assert!(s.retry.is_none());
    // Nothing left in the wheel.
    advance(&e, 3600);
    assert_eq!(block_on(push::drain_retries(&e, 10)).due, 0);
    assert_eq!(apns.count(), 2);
}

#[test]
fn server_errors_back_off_exponentially_then_give_up_after_a_day() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    for _ in 0..100 {
        apns.then(err(500, "InternalServerError"));
    }
    let out = block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap();
    let PushOutcome::RetryScheduled {
        attempt: 1,
        retry_at,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    let (lo, hi) = push_send::backoff_bounds(1);
    assert!((T0 + lo..=T0 + hi).contains(&retry_at), "{retry_at}");
    let mut attempts = 1;
    let mut gave_up = false;
    while !gave_up {
        let s = state(&e, "UDID-1");
        let retry = s.retry.expect("a retry is pending");
        assert_eq!(retry.attempt, attempts);
        assert_eq!(retry.first_failure_at, T0);
        // Not before it is due ...
        let before = apns.count();
        e.clock.set_unix(retry.next_at - 1);
        block_on(push::drain_retries(&e, 10));
        assert_eq!(apns.count(), before);
        // ... and when due, once.
        let sent_at = retry.next_at + 60;
        e.clock.set_unix(sent_at);
        let r = block_on(push::drain_retries(&e, 10));
        assert_eq!(r.pushed, 1, "{r:?}");
        attempts += 1;
        gave_up = r.gave_up == 1;
        if !gave_up {
            let next = state(&e, "UDID-1").retry.unwrap();
            let (lo, hi) = push_send::backoff_bounds(attempts);
            assert!(
                (sent_at + lo..=sent_at + hi).contains(&next.next_at),
                "attempt {attempts}: {} not in {lo}..={hi} after {sent_at}",
                next.next_at
            );
            assert!(hi <= BACKOFF_MAX_SECS);
        }
    }
    assert!(now(&e) - T0 >= GIVE_UP_SECS);
    assert!(now(&e) - T0 < GIVE_UP_SECS + 2 * BACKOFF_MAX_SECS);
    let s = state(&e, "UDID-1");
    assert_eq!(s.last_outcome.as_deref(), Some("gave_up"));
    assert!(s.retry.is_none());
    // About 8 doublings, then hourly for the rest of the day.
    assert!((25..=60).contains(&attempts), "{attempts}");
    e.clock.set_unix(now(&e) + 86_400);
    assert_eq!(block_on(push::drain_retries(&e, 10)).pushed, 0);
}

#[test]
fn transport_errors_are_retried_and_never_store_the_token() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    apns.then(Err(TransportError(format!(
        "connect to https://apns.test:2197/3/device/{TOKEN} refused ({MAGIC})"
    ))));
    let out = block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap();
    assert!(
        matches!(out, PushOutcome::RetryScheduled { status: None, .. }),
        "{out:?}"
    );
    let push_keys: Vec<(String, String)> = e
        .store
        .backend()
        .dump()
        .into_iter()
        .filter(|(k, _)| k.starts_with("push"))
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let state_json = &push_keys
        .iter()
        .find(|(k, _)| k == "push:UDID-1")
        .unwrap()
        .1;
    assert!(state_json.contains("6e3f0a1b…"), "{state_json}");
    for (k, v) in &push_keys {
        assert!(!v.contains(TOKEN), "token stored in {k}: {v}");
        assert!(!v.contains(MAGIC), "PushMagic stored in {k}: {v}");
    }
    assert!(!format!("{out:?}").contains(TOKEN));
    // Not a TLS failure: the certificate is not suspected.
    assert_eq!(
        block_on(push_state::certificate_status(&e.store))
            .unwrap()
            .state,
        "unknown"
    );
}

#[test]
fn tls_failures_cast_doubt_on_the_certificate_and_are_retried() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    apns.then(Err(TransportError(
        "TLS handshake: alert certificate required".into(),
    )));
    let out = block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap();
    assert!(matches!(out, PushOutcome::RetryScheduled { .. }), "{out:?}");
    let c = block_on(push_state::certificate_status(&e.store)).unwrap();
    assert_eq!(c.state, "failing");
    assert_eq!(c.last_failure_status, None);
}

// --- coalescing -------------------------------------------------------------------------

#[test]
fn ten_enqueues_in_the_window_cause_one_push() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    let mut outcomes = Vec::new();
    for i in 0..10 {
        if i == 5 {
            advance(&e, 2);
        }
        outcomes.push(block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap());
    }
    assert_eq!(apns.count(), 1);
    assert!(matches!(outcomes[0], PushOutcome::Delivered { .. }));
    for o in &outcomes[1..] {
        assert_eq!(
            *o,
            PushOutcome::Coalesced {
                followup_at: Some(T0 + COALESCE_WINDOW_SECS)
            }
        );
    }
    // After the window the next enqueue pushes again.
    advance(&e, COALESCE_WINDOW_SECS);
    assert!(matches!(
        block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap(),
        PushOutcome::Delivered { .. }
    ));
    assert_eq!(apns.count(), 2);
    // That push covered the follow-up: the drain owes nothing.
    advance(&e, 120);
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!(r.pushed, 0, "{r:?}");
}

#[test]
fn a_command_with_nothing_ahead_is_pushed_even_within_the_window() {
    // The device fetched everything the first push was for and ended its exchange: a
    // command queued now would wait for the scheduler's follow-up if it were coalesced.
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    let first = block_on(push::notify_enqueued(&e, "UDID-1", false)).unwrap();
    assert!(matches!(first, PushOutcome::Delivered { .. }), "{first:?}");
    advance(&e, 1);
    let again = block_on(push::notify_enqueued(&e, "UDID-1", false)).unwrap();
    assert!(matches!(again, PushOutcome::Delivered { .. }), "{again:?}");
    assert_eq!(apns.count(), 2);
    // Behind a command still to be fetched, it shares the push of the new window.
    let behind = block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap();
    assert_eq!(
        behind,
        PushOutcome::Coalesced {
            followup_at: Some(T0 + 1 + COALESCE_WINDOW_SECS)
        }
    );
    assert_eq!(apns.count(), 2);
}

#[test]
fn follow_up_push_only_when_commands_are_still_pending() {
    let apns = FakeApns::default();
    let e = env(&apns);
    for id in ["EMPTY", "BUSY"] {
        enroll(&e.store, id, TOKEN);
        block_on(queue::open(&e.store, &Channel::device(id))).unwrap();
        for _ in 0..3 {
            block_on(push::notify_enqueued(&e, id, true)).unwrap();
        }
    }
    assert_eq!(apns.count(), 2);
    block_on(queue_enqueue::enqueue(
        &e.store,
        &Channel::device("BUSY"),
        "cmd-1",
        "DeviceInformation",
        b"<plist/>".to_vec(),
        false,
        Lane::Normal,
        T0,
        100,
    ))
    .unwrap();
    // The follow-up is not due inside the window.
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!(r.pushed, 0, "{r:?}");
    advance(&e, 61);
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!((r.due, r.pushed, r.skipped), (2, 1, 1), "{r:?}");
    assert_eq!(apns.count(), 3);
    assert_eq!(state(&e, "BUSY").last_reason, Some(PushReason::FollowUp));
    assert_eq!(state(&e, "EMPTY").followup_at, None);
    advance(&e, 600);
    assert_eq!(block_on(push::drain_retries(&e, 10)).due, 0);
}

#[test]
fn concurrent_enqueues_elect_one_pusher_on_every_backend() {
    for defects in [Defects::strict(), Defects::spin_sqlite(), Defects::redis()] {
        let apns = FakeApns::default();
        let e = env_with(&apns, defects);
        enroll(&e.store, "UDID-1", TOKEN);
        let outcomes: Vec<PushOutcome> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..10)
                .map(|_| s.spawn(|| block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(apns.count(), 1, "{defects:?}: {outcomes:?}");
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, PushOutcome::Delivered { .. }))
                .count(),
            1
        );
        let s = state(&e, "UDID-1");
        assert_eq!(s.attempts, 1);
        // Calls that saw the state owe a follow-up; calls that raced its creation do not
        // (the creator's push came after their commands).
        assert!(s.followup_at.is_none_or(|t| t == T0 + COALESCE_WINDOW_SECS));
    }
}

// --- the drain --------------------------------------------------------------------------

#[test]
fn drain_is_bounded_by_its_budget_and_resumes() {
    for defects in [Defects::strict(), Defects::spin_sqlite(), Defects::redis()] {
        let apns = FakeApns::default();
        let e = env_with(&apns, defects);
        for i in 0..5 {
            let id = format!("DEV-{i}");
            enroll(&e.store, &id, TOKEN);
            apns.then(err(503, "ServiceUnavailable"));
            block_on(push::notify_enqueued(&e, &id, true)).unwrap();
        }
        assert_eq!(apns.count(), 5);
        advance(&e, 3600);
        let r = block_on(push::drain_retries(&e, 2));
        assert_eq!(
            (r.pushed, r.delivered, r.more),
            (2, 2, true),
            "{defects:?} {r:?}"
        );
        let r = block_on(push::drain_retries(&e, 2));
        assert_eq!((r.pushed, r.more), (2, true), "{r:?}");
        let r = block_on(push::drain_retries(&e, 2));
        assert_eq!((r.pushed, r.more), (1, false), "{r:?}");
        let r = block_on(push::drain_retries(&e, 2));
        assert_eq!((r.pushed, r.due), (0, 0), "{r:?}");
        assert_eq!(apns.count(), 10);
        for i in 0..5 {
            assert!(state(&e, &format!("DEV-{i}")).retry.is_none());
        }
    }
}

#[test]
fn drain_reads_only_the_minutes_since_its_last_run() {
    let apns = FakeApns::default();
    let e = env(&apns);
    // The first run ever covers one turn of the wheel.
    let r = block_on(push::drain_retries(&e, 10));
    assert!(r.slots_scanned >= 1440, "{r:?}");
    advance(&e, 300);
    let r = block_on(push::drain_retries(&e, 10));
    assert!((5..=7).contains(&r.slots_scanned), "{r:?}");
    // Overlapping calls at the same moment are harmless.
    let r2 = block_on(push::drain_retries(&e, 10));
    assert!(r2.slots_scanned <= 2, "{r2:?}");
    // After a long outage, at most one turn.
    advance(&e, 3 * 86_400);
    let r = block_on(push::drain_retries(&e, 10));
    assert!(r.slots_scanned <= 1442, "{r:?}");
    // No per-minute garbage: at most one key per wheel slot plus the cursor.
    let keys = e.store.backend().dump();
    assert!(
        keys.len() <= 3,
        "{:?}",
        keys.iter().map(|k| &k.0).collect::<Vec<_>>()
    );
}

#[test]
fn a_device_leased_by_another_drain_is_not_pushed_twice() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    apns.then(err(500, "InternalServerError"));
    block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap();
    advance(&e, 120);
    // Another drain holds the lease right now.
    let key = "push:UDID-1";
    let mut st: push::PushState =
        serde_json::from_slice(&block_on(e.store.get(key)).unwrap().unwrap()).unwrap();
    st.lease_until = now(&e) + 60;
    block_on(e.store.set(key, &serde_json::to_vec(&st).unwrap())).unwrap();
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!((r.pushed, r.skipped), (0, 1), "{r:?}");
    assert_eq!(apns.count(), 1);
    // The lease expired (that drain died): the entry is still there and is served.
    advance(&e, 120);
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!(r.pushed, 1, "{r:?}");
    assert_eq!(apns.count(), 2);
}

#[test]
fn a_device_that_left_is_dropped_from_the_retries() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    apns.then(err(500, "InternalServerError"));
    block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap();
    let mut rec: EnrollmentRecord = serde_json::from_slice(
        &block_on(e.store.get(&EnrollmentRecord::key("UDID-1")))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    rec.enrolled = false;
    rec.checked_out_at = Some(T0 + 1);
    block_on(e.store.set(
        &EnrollmentRecord::key("UDID-1"),
        &serde_json::to_vec(&rec).unwrap(),
    ))
    .unwrap();
    advance(&e, 3600);
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!((r.pushed, r.skipped), (0, 1), "{r:?}");
    assert!(state(&e, "UDID-1").retry.is_none());
}

#[test]
fn deferred_pushes_go_out_with_the_next_drain() {
    let apns = FakeApns::default();
    let e = env_with(&apns, Defects::redis());
    for id in ["BULK-1", "BULK-2", "BULK-3"] {
        enroll(&e.store, id, TOKEN);
        let ch = Channel::device(id);
        block_on(queue::open(&e.store, &ch)).unwrap();
        block_on(queue_enqueue::enqueue(
            &e.store,
            &ch,
            "cmd-1",
            "DeviceInformation",
            b"<plist/>".to_vec(),
            false,
            Lane::Normal,
            T0,
            100,
        ))
        .unwrap();
        block_on(push::defer_push(&e.store, id, T0)).unwrap();
        // Twice is once.
        block_on(push::defer_push(&e.store, id, T0)).unwrap();
    }
    assert_eq!(apns.count(), 0);
    advance(&e, 1);
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!((r.due, r.pushed, r.delivered), (3, 3, 3), "{r:?}");
    assert_eq!(state(&e, "BULK-2").last_reason, Some(PushReason::FollowUp));
    advance(&e, 300);
    assert_eq!(block_on(push::drain_retries(&e, 10)).due, 0);
    assert_eq!(apns.count(), 3);
}

#[test]
fn a_retry_rescheduled_into_the_minute_being_drained_is_kept() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "UDID-1", TOKEN);
    // Minute-aligned start: the first retry (15-30 s) falls in the same minute.
    e.clock.set_unix(T0 + 1);
    apns.then(err(500, "InternalServerError"));
    apns.then(err(500, "InternalServerError"));
    block_on(push::notify_enqueued(&e, "UDID-1", true)).unwrap();
    let first = state(&e, "UDID-1").retry.unwrap();
    assert_eq!(first.next_at / 60, T0 / 60);
    // Drained inside the same minute: fails again, retried 30-60 s later (same minute or
    // the next), and that entry must survive the drain's clean-up.
    e.clock.set_unix(first.next_at);
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!(r.rescheduled, 1, "{r:?}");
    let second = state(&e, "UDID-1").retry.unwrap();
    assert_eq!(second.attempt, 2);
    e.clock.set_unix(second.next_at + 60);
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!(r.delivered, 1, "{r:?}");
    assert_eq!(apns.count(), 3);
}

// --- commands the device deferred (NotNow) ----------------------------------------------

#[test]
fn deferred_commands_owe_pushes_with_backoff_at_most_four_an_hour() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "D1", TOKEN);
    let ch = Channel::device("D1");
    block_on(queue::open(&e.store, &ch)).unwrap();
    block_on(queue_enqueue::enqueue(
        &e.store,
        &ch,
        "C1",
        "ProfileList",
        b"x".to_vec(),
        false,
        Lane::Normal,
        T0,
        10,
    ))
    .unwrap();
    let mut due = Vec::new();
    for _ in 0..6 {
        let at = block_on(push::after_not_now(&e.store, "D1", now(&e))).unwrap();
        let at = at.expect("a push owed");
        // Owed already: a second exchange ending the same way owes nothing more.
        assert_eq!(
            block_on(push::after_not_now(&e.store, "D1", now(&e))).unwrap(),
            None
        );
        assert_eq!(state(&e, "D1").not_now_at, Some(at));
        // Not before its time.
        let sent = apns.count();
        block_on(push::drain_retries(&e, 10));
        assert_eq!(apns.count(), sent);
        advance(&e, at - now(&e));
        let r = block_on(push::drain_retries(&e, 10));
        assert_eq!((r.pushed, apns.count()), (1, sent + 1), "{r:?}");
        assert_eq!(state(&e, "D1").last_reason, Some(push::PushReason::NotNow));
        due.push(at);
    }
    let gaps: Vec<u64> = std::iter::once(T0)
        .chain(due.iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    assert_eq!(&gaps[..4], &[60, 120, 240, 480]);
    // The fifth would be 960 s later, but four were owed in the hour before it.
    assert_eq!(due[4], due[0] + 3_600);
    assert!(due[5] >= due[1] + 3_600);

    // Nothing pending any more: the owed push is dropped and the backoff starts over.
    block_on(queue_delivery::next(&e.store, &ch, now(&e))).unwrap();
    block_on(queue_delivery::complete(&e.store, &ch, "C1")).unwrap();
    // The answer's request moves the frontier past it (ServerURL asks for the next).
    assert_eq!(
        block_on(queue_delivery::next(&e.store, &ch, now(&e))).unwrap(),
        None
    );
    let at = block_on(push::after_not_now(&e.store, "D1", now(&e)))
        .unwrap()
        .unwrap();
    advance(&e, at - now(&e));
    let sent = apns.count();
    let r = block_on(push::drain_retries(&e, 10));
    assert_eq!((r.pushed, apns.count()), (0, sent), "{r:?}");
    assert_eq!(state(&e, "D1").not_now_at, None);
}

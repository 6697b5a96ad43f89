//! `mdm_core::push` against the simulator over real HTTP/2 + TLS with a client
//! certificate: every outcome path, coalescing, the retry drain, and the TLS refusals.

use std::time::Duration;

use mdm_apnssim::client::H2Client;
use mdm_apnssim::{ApnsSim, Scripted};
use mdm_core::Env;
use mdm_core::mdm::enrollment_record::{EnrollmentRecord, Push};
use mdm_core::platform::testing::{ManualClock, MapVariables};
use mdm_core::push;
use mdm_core::push::apns::EXPIRATION_SECS;
use mdm_core::push::outcome::{PushOutcome, SkipReason};
use mdm_core::push::state::PushReason;
use mdm_core::record::Record;
use mdm_kv::{Defects, MemoryBackend, Store};

const T0: u64 = 1_800_000_000;
const MAGIC: &str = "7A1C0B2E-5D4F-4E3A-9B8C-0D1E2F3A4B5C";

type E = Env<MemoryBackend, H2Client, ManualClock, MapVariables>;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn env_for(base_url: &str, http: H2Client) -> E {
    Env {
        store: Store::new(MemoryBackend::with_defects(Defects::spin_sqlite())),
        http,
        clock: ManualClock::at_unix(T0),
        vars: MapVariables::new([("apns_base_url", base_url)]),
    }
}

fn env(sim: &ApnsSim) -> E {
    env_for(&sim.base_url(), H2Client::for_sim(sim))
}

fn token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn enroll(e: &E, sim: &ApnsSim, id: &str, token: &str) {
    let rec = EnrollmentRecord {
        device_id: id.into(),
        topic: sim.topic().into(),
        enrolled: true,
        enrolled_at: Some(T0),
        push: Some(Push {
            token_hex: token.into(),
            push_magic: MAGIC.into(),
            topic: sim.topic().into(),
        }),
        ..EnrollmentRecord::default()
    };
    futures_block(&e.store, id, rec);
}

fn futures_block(store: &Store<MemoryBackend>, id: &str, rec: EnrollmentRecord) {
    rt().block_on(store.set(
        &EnrollmentRecord::key(id),
        &serde_json::to_vec(&rec).unwrap(),
    ))
    .unwrap();
}

fn status(rt: &tokio::runtime::Runtime, e: &E, id: &str) -> push::status::PushStatus {
    rt.block_on(push::status::push_state(&e.store, id))
        .unwrap()
        .expect("pushed before")
}

#[test]
fn a_push_is_exactly_what_apns_expects_over_h2_with_the_client_certificate() {
    let sim = ApnsSim::start().unwrap();
    let e = env(&sim);
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(1));
    let out = rt
        .block_on(push::push_device(&e, "UDID-1", PushReason::Admin))
        .unwrap();
    let PushOutcome::Delivered { apns_id: Some(id) } = out else {
        panic!("{out:?}")
    };
    let pushes = sim.wait_for_pushes(1, Duration::from_secs(5)).unwrap();
    assert_eq!(pushes.len(), 1);
    let p = &pushes[0];
    assert!(p.http2);
    assert_eq!(p.method, "POST");
    assert_eq!(p.path, format!("/3/device/{}", token(1)));
    assert_eq!(p.token, token(1));
    assert_eq!(p.topic.as_deref(), Some(sim.topic()));
    assert_eq!(p.identity_topic, sim.topic());
    assert_eq!(p.push_type.as_deref(), Some("mdm"));
    assert_eq!(p.priority.as_deref(), Some("10"));
    assert_eq!(
        p.expiration.as_deref(),
        Some((T0 + EXPIRATION_SECS).to_string().as_str())
    );
    assert_eq!(p.body, format!(r#"{{"mdm":"{MAGIC}"}}"#).as_bytes());
    assert_eq!(p.push_magic.as_deref(), Some(MAGIC));
    assert_eq!((p.status, p.reason.as_deref()), (200, None));
    // The apns-id we sent is echoed and kept.
    assert_eq!(p.apns_id.as_deref(), Some(id.as_str()));
    assert!(p.answered_apns_id.eq_ignore_ascii_case(&id));
    let s = status(&rt, &e, "UDID-1");
    assert_eq!(s.last_outcome.as_deref(), Some("delivered"));
    assert!(s.reachable);
    assert_eq!(sim.connections(), 1);
    assert!(sim.tls_failures().is_empty());
}

#[test]
fn gone_410_marks_unreachable_until_clear_unreachable() {
    let sim = ApnsSim::start().unwrap();
    let e = env(&sim);
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(2));
    sim.script(&token(2), Scripted::unregistered());
    let out = rt
        .block_on(push::notify_enqueued(&e, "UDID-1", true))
        .unwrap();
    assert_eq!(
        out,
        PushOutcome::Unreachable {
            status: 410,
            reason: "Unregistered".into()
        }
    );
    let s = status(&rt, &e, "UDID-1");
    assert!(!s.reachable);
    let u = s.unreachable.unwrap();
    assert!(u.apns_timestamp.is_some_and(|t| t > 1_600_000_000_000));
    // No push while unreachable.
    e.clock.advance(Duration::from_secs(600));
    assert_eq!(
        rt.block_on(push::notify_enqueued(&e, "UDID-1", true))
            .unwrap(),
        PushOutcome::Skipped {
            why: SkipReason::Unreachable
        }
    );
    assert_eq!(sim.pushes().len(), 1);
    // TokenUpdate: the handler calls clear_unreachable; pushes flow again.
    rt.block_on(push::clear_unreachable(&e.store, "UDID-1"))
        .unwrap();
    assert!(matches!(
        rt.block_on(push::notify_enqueued(&e, "UDID-1", true))
            .unwrap(),
        PushOutcome::Delivered { .. }
    ));
    assert_eq!(sim.accepted().len(), 1);
    assert_eq!(sim.pushes().len(), 2);
}

#[test]
fn bad_device_token_400_marks_unreachable() {
    let sim = ApnsSim::start().unwrap();
    let e = env(&sim);
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(3));
    sim.script(&token(3), Scripted::bad_device_token());
    assert_eq!(
        rt.block_on(push::notify_enqueued(&e, "UDID-1", true))
            .unwrap(),
        PushOutcome::Unreachable {
            status: 400,
            reason: "BadDeviceToken".into()
        }
    );
    assert!(!status(&rt, &e, "UDID-1").reachable);
    e.clock.advance(Duration::from_secs(7200));
    assert_eq!(rt.block_on(push::drain::drain_retries(&e, 10)).pushed, 0);
    assert_eq!(sim.pushes().len(), 1);
}

#[test]
fn bad_certificate_403_marks_the_certificate_failing() {
    let sim = ApnsSim::start().unwrap();
    let e = env(&sim);
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(4));
    sim.script(&token(4), Scripted::bad_certificate());
    assert_eq!(
        rt.block_on(push::push_device(&e, "UDID-1", PushReason::Admin))
            .unwrap(),
        PushOutcome::CertificateRejected {
            status: 403,
            reason: "BadCertificate".into()
        }
    );
    let c = rt
        .block_on(push::state::certificate_status(&e.store))
        .unwrap();
    assert_eq!(c.state, "failing");
    assert_eq!(c.last_failure_reason.as_deref(), Some("BadCertificate"));
    assert!(status(&rt, &e, "UDID-1").retry.is_none());
    // The next accepted push clears it.
    e.clock.advance(Duration::from_secs(60));
    assert!(matches!(
        rt.block_on(push::push_device(&e, "UDID-1", PushReason::Admin))
            .unwrap(),
        PushOutcome::Delivered { .. }
    ));
    assert_eq!(
        rt.block_on(push::state::certificate_status(&e.store))
            .unwrap()
            .state,
        "ok"
    );
}

#[test]
fn too_many_requests_429_waits_for_retry_after_then_the_drain_delivers() {
    let sim = ApnsSim::start().unwrap();
    let e = env(&sim);
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(5));
    sim.script(
        &token(5),
        Scripted::too_many_requests().with_retry_after("900"),
    );
    assert_eq!(
        rt.block_on(push::notify_enqueued(&e, "UDID-1", true))
            .unwrap(),
        PushOutcome::RetryScheduled {
            status: Some(429),
            reason: "TooManyRequests".into(),
            attempt: 1,
            retry_at: T0 + 900
        }
    );
    e.clock.advance(Duration::from_secs(600));
    assert_eq!(
        rt.block_on(push::notify_enqueued(&e, "UDID-1", true))
            .unwrap(),
        PushOutcome::RetryPending { retry_at: T0 + 900 }
    );
    assert_eq!(rt.block_on(push::drain::drain_retries(&e, 10)).pushed, 0);
    e.clock.advance(Duration::from_secs(400));
    let r = rt.block_on(push::drain::drain_retries(&e, 10));
    assert_eq!((r.pushed, r.delivered), (1, 1), "{r:?}");
    let pushes = sim.pushes();
    assert_eq!(
        pushes.iter().map(|p| p.status).collect::<Vec<_>>(),
        [429, 200]
    );
    assert_eq!(
        status(&rt, &e, "UDID-1").last_reason,
        Some(PushReason::Retry)
    );
}

#[test]
fn server_errors_500_and_503_are_retried_on_a_growing_schedule() {
    let sim = ApnsSim::start().unwrap();
    let e = env(&sim);
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(6));
    sim.script(&token(6), Scripted::internal_server_error().times(2));
    sim.script(
        &token(6),
        Scripted::service_unavailable().with_retry_after("3000"),
    );
    let first = rt
        .block_on(push::notify_enqueued(&e, "UDID-1", true))
        .unwrap();
    assert!(
        matches!(
            first,
            PushOutcome::RetryScheduled {
                status: Some(500),
                attempt: 1,
                ..
            }
        ),
        "{first:?}"
    );
    let mut delays = Vec::new();
    let mut last_at = T0;
    for expected in [500, 503, 200] {
        let retry = status(&rt, &e, "UDID-1").retry.expect("retry pending");
        delays.push(retry.next_at - last_at);
        e.clock.set_unix(retry.next_at + 60);
        last_at = retry.next_at + 60;
        let r = rt.block_on(push::drain::drain_retries(&e, 10));
        assert_eq!(r.pushed, 1, "{r:?}");
        assert_eq!(sim.pushes().last().unwrap().status, expected);
    }
    // 15-30 s, then 30-60 s, then Retry-After 3000 s beat the 60-120 s step.
    assert!((15..=30).contains(&delays[0]), "{delays:?}");
    assert!((30..=60).contains(&delays[1]), "{delays:?}");
    assert_eq!(delays[2], 3000, "{delays:?}");
    let s = status(&rt, &e, "UDID-1");
    assert_eq!(s.last_outcome.as_deref(), Some("delivered"));
    assert!(s.retry.is_none());
    assert_eq!(s.attempts, 4);
}

#[test]
fn connection_refused_is_a_transport_error_retried_later() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let sim = ApnsSim::start().unwrap();
    let e = env_for(
        &format!("https://127.0.0.1:{port}"),
        H2Client::for_sim(&sim),
    );
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(7));
    let out = rt
        .block_on(push::notify_enqueued(&e, "UDID-1", true))
        .unwrap();
    let PushOutcome::RetryScheduled {
        status: None,
        reason,
        attempt: 1,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(reason.contains("connect"), "{reason}");
    assert!(!reason.contains(&token(7)), "token in {reason}");
    assert_eq!(
        rt.block_on(push::state::certificate_status(&e.store))
            .unwrap()
            .state,
        "unknown"
    );
}

#[test]
fn other_client_errors_are_not_retried_topic_disallowed() {
    let sim = ApnsSim::start().unwrap();
    // Connected with the identity of another topic: APNs refuses the device's topic.
    let other = sim
        .issue_identity("com.apple.mgmt.External.00000000-0000-4000-8000-000000000000")
        .unwrap();
    let http = H2Client::new(sim.server_ca_pem(), Some((&other.cert_pem, &other.key_pem))).unwrap();
    let e = env_for(&sim.base_url(), http);
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(8));
    assert_eq!(
        rt.block_on(push::notify_enqueued(&e, "UDID-1", true))
            .unwrap(),
        PushOutcome::Rejected {
            status: 400,
            reason: "TopicDisallowed".into()
        }
    );
    e.clock.advance(Duration::from_secs(3600));
    assert_eq!(rt.block_on(push::drain::drain_retries(&e, 10)).pushed, 0);
    assert_eq!(sim.pushes().len(), 1);
    assert_eq!(
        status(&rt, &e, "UDID-1").last_error.as_deref(),
        Some("TopicDisallowed")
    );
}

#[test]
fn ten_enqueues_cause_one_push() {
    let sim = ApnsSim::start().unwrap();
    let e = env(&sim);
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(9));
    let outcomes: Vec<PushOutcome> = (0..10)
        .map(|_| {
            rt.block_on(push::notify_enqueued(&e, "UDID-1", true))
                .unwrap()
        })
        .collect();
    assert!(matches!(outcomes[0], PushOutcome::Delivered { .. }));
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| matches!(o, PushOutcome::Coalesced { .. }))
    );
    assert!(
        sim.wait_for_pushes(2, Duration::from_millis(300)).is_err(),
        "more than one push"
    );
    assert_eq!(sim.pushes().len(), 1);
    // No command is actually queued here, so the follow-up finds nothing to do.
    e.clock.advance(Duration::from_secs(120));
    let r = rt.block_on(push::drain::drain_retries(&e, 10));
    assert_eq!((r.pushed, r.skipped), (0, 1), "{r:?}");
    assert_eq!(sim.pushes().len(), 1);
}

#[test]
fn without_a_client_certificate_the_handshake_fails() {
    let sim = ApnsSim::start().unwrap();
    let e = env_for(&sim.base_url(), H2Client::without_identity(&sim));
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(10));
    let out = rt
        .block_on(push::push_device(&e, "UDID-1", PushReason::Admin))
        .unwrap();
    let PushOutcome::RetryScheduled {
        status: None,
        reason,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    // Under TLS 1.3 the client learns of the refusal only as a closed connection.
    assert!(reason.contains("transport"), "{reason}");
    assert!(sim.pushes().is_empty());
    let refused = sim
        .wait_for_tls_failures(1, Duration::from_secs(5))
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains("peer sent no certificates"),
        "{refused:?}"
    );
    // Retried like any transport failure: once the certificate is configured, the
    // scheduled retry gets through.
    let retry = status(&rt, &e, "UDID-1").retry.expect("retry scheduled");
    assert_eq!(retry.attempt, 1);
}

#[test]
fn an_identity_from_another_ca_is_refused() {
    let sim = ApnsSim::start().unwrap();
    let e = env_for(&sim.base_url(), H2Client::with_untrusted_identity(&sim));
    let rt = rt();
    enroll(&e, &sim, "UDID-1", &token(11));
    let out = rt
        .block_on(push::push_device(&e, "UDID-1", PushReason::Admin))
        .unwrap();
    assert!(
        matches!(out, PushOutcome::RetryScheduled { status: None, .. }),
        "{out:?}"
    );
    assert!(sim.pushes().is_empty());
    let refused = sim
        .wait_for_tls_failures(1, Duration::from_secs(5))
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("UnknownIssuer"), "{refused:?}");
}

#[test]
fn only_h2_is_served() {
    let sim = ApnsSim::start().unwrap();
    let rt = rt();
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(sim.server_ca_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = rustls_pki_types::CertificateDer::pem_slice_iter(sim.client_cert_pem().as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(sim.client_key_pem().as_bytes()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let addr = sim.addr();
    let result = rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await?;
        // TLS 1.3: the server's verdict arrives with the first read.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut buf = [0u8; 64];
        tls.read(&mut buf).await
    });
    match result {
        Err(_) | Ok(0) => {}
        Ok(n) => panic!("an http/1.1-only client got {n} bytes"),
    }
    let refused = sim
        .wait_for_tls_failures(1, Duration::from_secs(5))
        .unwrap();
    assert!(
        refused[0].contains("known protocol") || refused[0].contains("h2"),
        "{refused:?}"
    );
    assert!(sim.pushes().is_empty());
}

#[test]
fn malformed_pushes_get_apns_reasons() {
    let sim = ApnsSim::start().unwrap();
    let http = H2Client::for_sim(&sim);
    let rt = rt();
    let send = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", sim.base_url()));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(body.to_vec()).unwrap();
        let resp = rt.block_on(mdm_core::HttpClient::send(&http, req)).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(resp.body()).unwrap_or(serde_json::Value::Null);
        (
            resp.status().as_u16(),
            v["reason"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let path = format!("/3/device/{}", token(12));
    let good = [
        ("apns-topic", sim.topic()),
        ("apns-push-type", "mdm"),
        ("apns-priority", "10"),
        ("apns-expiration", "0"),
    ];
    let body = br#"{"mdm":"m"}"#;
    assert_eq!(send("POST", &path, &good, body), (200, String::new()));
    assert_eq!(
        send("POST", &path, &good[1..], body),
        (400, "MissingTopic".into())
    );
    assert_eq!(
        send("POST", &path, &good[..3], body),
        (400, "BadExpirationDate".into())
    );
    assert_eq!(
        send("POST", &path, &good, b""),
        (400, "PayloadEmpty".into())
    );
    assert_eq!(
        send("POST", &path, &good, br#"{"aps":{"alert":"hi"}}"#),
        (400, "BadPayload".into())
    );
    assert_eq!(
        send("POST", "/3/device/nothex", &good, body),
        (400, "BadDeviceToken".into())
    );
    assert_eq!(
        send("GET", &path, &good, b""),
        (405, "MethodNotAllowed".into())
    );
    assert_eq!(
        send("POST", &path, &good, &[b'x'; 5000]),
        (413, "PayloadTooLarge".into())
    );
    assert_eq!(sim.pushes().len(), 8);
}

#[test]
fn listeners_hear_each_later_push_before_its_answer() {
    let sim = ApnsSim::start().unwrap();
    let e = env(&sim);
    let rt = rt();
    for n in 1..=3 {
        enroll(&e, &sim, &format!("UDID-{n}"), &token(n));
    }
    let push = |id: &str| {
        let out = rt
            .block_on(push::push_device(&e, id, PushReason::Admin))
            .unwrap();
        assert!(matches!(out, PushOutcome::Delivered { .. }), "{out:?}");
    };
    push("UDID-1");
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = heard.clone();
    sim.on_push(move |p| h.lock().unwrap().push((p.token.clone(), p.status)));
    for id in ["UDID-2", "UDID-3"] {
        push(id);
        // Heard by the time the pusher has APNs' answer.
        assert_eq!(
            heard.lock().unwrap().last().map(|h| h.0.as_str()),
            Some(token(if id == "UDID-2" { 2 } else { 3 }).as_str())
        );
    }
    assert_eq!(
        *heard.lock().unwrap(),
        vec![(token(2), 200), (token(3), 200)],
        "only pushes after the listener came"
    );
}

//! What each outcome leaves behind: a delivered push recorded, devices that cannot be
//! pushed skipped, bad tokens marked unreachable, a failing certificate, client errors
//! recorded, `Retry-After`, backoff and giving up, transport and TLS failures.

use super::*;

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
        block_on(push::state::certificate_status(&e.store))
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
        block_on(push::status::push_state(&e.store, "nobody")).unwrap(),
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
    assert_eq!(block_on(push::drain::drain_retries(&e, 10)).pushed, 0);
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
        block_on(push::status::push_state(&e.store, "never-pushed")).unwrap(),
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
    let c = block_on(push::state::certificate_status(&e.store)).unwrap();
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
    assert_eq!(block_on(push::drain::drain_retries(&e, 10)).pushed, 0);
    assert_eq!(apns.count(), 1);
    // The operator fixed the certificate: the next success says so.
    assert!(matches!(
        block_on(push::push_device(&e, "UDID-2", PushReason::Admin)).unwrap(),
        PushOutcome::Delivered { .. }
    ));
    let c = block_on(push::state::certificate_status(&e.store)).unwrap();
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
        assert_eq!(block_on(push::drain::drain_retries(&e, 10)).pushed, 0);
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
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert_eq!((r.pushed, r.due), (0, 0), "{r:?}");
    assert_eq!(apns.count(), 1);
    advance(&e, 500);
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert_eq!((r.pushed, r.delivered), (1, 1), "{r:?}");
    assert_eq!(apns.count(), 2);
    let s = state(&e, "UDID-1");
    assert_eq!(s.last_reason, Some(PushReason::Retry));
    assert!(s.retry.is_none());
    // Nothing left in the wheel.
    advance(&e, 3600);
    assert_eq!(block_on(push::drain::drain_retries(&e, 10)).due, 0);
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
    let (lo, hi) = push::send::backoff_bounds(1);
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
        block_on(push::drain::drain_retries(&e, 10));
        assert_eq!(apns.count(), before);
        // ... and when due, once.
        let sent_at = retry.next_at + 60;
        e.clock.set_unix(sent_at);
        let r = block_on(push::drain::drain_retries(&e, 10));
        assert_eq!(r.pushed, 1, "{r:?}");
        attempts += 1;
        gave_up = r.gave_up == 1;
        if !gave_up {
            let next = state(&e, "UDID-1").retry.unwrap();
            let (lo, hi) = push::send::backoff_bounds(attempts);
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
    assert_eq!(block_on(push::drain::drain_retries(&e, 10)).pushed, 0);
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
        block_on(push::state::certificate_status(&e.store))
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
    let c = block_on(push::state::certificate_status(&e.store)).unwrap();
    assert_eq!(c.state, "failing");
    assert_eq!(c.last_failure_status, None);
}

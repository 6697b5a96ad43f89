//! The retry wheel's drain: bounded by its budget, reading only the minutes since its last
//! run, leases between drains, devices that left, deferred pushes.

use super::*;

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
        let r = block_on(push::drain::drain_retries(&e, 2));
        assert_eq!(
            (r.pushed, r.delivered, r.more),
            (2, 2, true),
            "{defects:?} {r:?}"
        );
        let r = block_on(push::drain::drain_retries(&e, 2));
        assert_eq!((r.pushed, r.more), (2, true), "{r:?}");
        let r = block_on(push::drain::drain_retries(&e, 2));
        assert_eq!((r.pushed, r.more), (1, false), "{r:?}");
        let r = block_on(push::drain::drain_retries(&e, 2));
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
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert!(r.slots_scanned >= 1440, "{r:?}");
    advance(&e, 300);
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert!((5..=7).contains(&r.slots_scanned), "{r:?}");
    // Overlapping calls at the same moment are harmless.
    let r2 = block_on(push::drain::drain_retries(&e, 10));
    assert!(r2.slots_scanned <= 2, "{r2:?}");
    // After a long outage, at most one turn.
    advance(&e, 3 * 86_400);
    let r = block_on(push::drain::drain_retries(&e, 10));
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
    let mut st: push::state::PushState =
        serde_json::from_slice(&block_on(e.store.get(key)).unwrap().unwrap()).unwrap();
    st.lease_until = now(&e) + 60;
    block_on(e.store.set(key, &serde_json::to_vec(&st).unwrap())).unwrap();
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert_eq!((r.pushed, r.skipped), (0, 1), "{r:?}");
    assert_eq!(apns.count(), 1);
    // The lease expired (that drain died): the entry is still there and is served.
    advance(&e, 120);
    let r = block_on(push::drain::drain_retries(&e, 10));
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
    let r = block_on(push::drain::drain_retries(&e, 10));
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
        block_on(queue::enqueue::enqueue(
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
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert_eq!((r.due, r.pushed, r.delivered), (3, 3, 3), "{r:?}");
    assert_eq!(state(&e, "BULK-2").last_reason, Some(PushReason::FollowUp));
    advance(&e, 300);
    assert_eq!(block_on(push::drain::drain_retries(&e, 10)).due, 0);
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
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert_eq!(r.rescheduled, 1, "{r:?}");
    let second = state(&e, "UDID-1").retry.unwrap();
    assert_eq!(second.attempt, 2);
    e.clock.set_unix(second.next_at + 60);
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert_eq!(r.delivered, 1, "{r:?}");
    assert_eq!(apns.count(), 3);
}

//! Coalescing: enqueues within the window cause one push, a command with nothing ahead is
//! pushed at once, follow-up pushes, and one pusher elected under concurrency.

use super::*;

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
    let r = block_on(push::drain::drain_retries(&e, 10));
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
    block_on(queue::enqueue::enqueue(
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
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert_eq!(r.pushed, 0, "{r:?}");
    advance(&e, 61);
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert_eq!((r.due, r.pushed, r.skipped), (2, 1, 1), "{r:?}");
    assert_eq!(apns.count(), 3);
    assert_eq!(state(&e, "BUSY").last_reason, Some(PushReason::FollowUp));
    assert_eq!(state(&e, "EMPTY").followup_at, None);
    advance(&e, 600);
    assert_eq!(block_on(push::drain::drain_retries(&e, 10)).due, 0);
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

//! Commands the device deferred (`NotNow`) owe pushes, with backoff.

use super::*;

#[test]
fn deferred_commands_owe_pushes_with_backoff_at_most_four_an_hour() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e.store, "D1", TOKEN);
    let ch = Channel::device("D1");
    block_on(queue::open(&e.store, &ch)).unwrap();
    block_on(queue::enqueue::enqueue(
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
        block_on(push::drain::drain_retries(&e, 10));
        assert_eq!(apns.count(), sent);
        advance(&e, at - now(&e));
        let r = block_on(push::drain::drain_retries(&e, 10));
        assert_eq!((r.pushed, apns.count()), (1, sent + 1), "{r:?}");
        assert_eq!(state(&e, "D1").last_reason, Some(PushReason::NotNow));
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
    block_on(queue::delivery::next(&e.store, &ch, now(&e))).unwrap();
    block_on(queue::delivery::complete(&e.store, &ch, "C1")).unwrap();
    // The answer's request moves the frontier past it (ServerURL asks for the next).
    assert_eq!(
        block_on(queue::delivery::next(&e.store, &ch, now(&e))).unwrap(),
        None
    );
    let at = block_on(push::after_not_now(&e.store, "D1", now(&e)))
        .unwrap()
        .unwrap();
    advance(&e, at - now(&e));
    let sent = apns.count();
    let r = block_on(push::drain::drain_retries(&e, 10));
    assert_eq!((r.pushed, apns.count()), (0, sent), "{r:?}");
    assert_eq!(state(&e, "D1").not_now_at, None);
}

//! Command queues: order, priority, NotNow, completion, holes, bounds, concurrency.

use futures::executor::block_on;
use mdm_core::queue::{self, Channel, HOLE_TTL, Lane, QueueError};
use mdm_kv::{CounterKey, Defects, MemoryBackend, Store};

fn store() -> Store<MemoryBackend> {
    Store::new(MemoryBackend::with_defects(Defects::spin_sqlite()))
}

fn put(s: &Store<MemoryBackend>, ch: &Channel, uuid: &str, lane: Lane) {
    block_on(queue::enqueue::enqueue(
        s,
        ch,
        uuid,
        "DeviceInformation",
        b"<plist/>".to_vec(),
        false,
        lane,
        100,
        1000,
    ))
    .unwrap();
}

fn next(s: &Store<MemoryBackend>, ch: &Channel, now: u64) -> Option<String> {
    block_on(queue::delivery::next(s, ch, now))
        .unwrap()
        .map(|c| c.uuid)
}

fn done(s: &Store<MemoryBackend>, ch: &Channel, uuid: &str) {
    assert!(
        block_on(queue::delivery::complete(s, ch, uuid))
            .unwrap()
            .is_some(),
        "{uuid} not completed"
    );
}

#[test]
fn fifo_with_priority_first_and_completion() {
    let s = store();
    let ch = Channel::device("UDID-1");
    assert_eq!(
        block_on(queue::delivery::next(&s, &ch, 0)),
        Err(QueueError::NoChannel)
    );
    block_on(queue::open(&s, &ch)).unwrap();
    assert_eq!(next(&s, &ch, 0), None);
    put(&s, &ch, "a", Lane::Normal);
    put(&s, &ch, "b", Lane::Normal);
    put(&s, &ch, "lock", Lane::Priority);
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("lock"));
    // Not answered yet: delivered again (the device may not have received it).
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("lock"));
    done(&s, &ch, "lock");
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("a"));
    done(&s, &ch, "a");
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("b"));
    done(&s, &ch, "b");
    assert_eq!(next(&s, &ch, 0), None);
    assert!(
        block_on(queue::delivery::complete(&s, &ch, "b"))
            .unwrap()
            .is_none(),
        "answered twice"
    );
    assert!(
        block_on(queue::delivery::complete(&s, &ch, "never-queued"))
            .unwrap()
            .is_none()
    );
    assert_eq!(block_on(queue::pending(&s, &ch)).unwrap(), 0);
    // Only the head and counters remain: finished entries are cleaned up.
    let left: Vec<String> = s
        .backend()
        .dump()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("cq:") || k.starts_with("cqu:"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn not_now_defers_within_the_exchange_and_resends_after_idle() {
    let s = store();
    let ch = Channel::device("UDID-2");
    block_on(queue::open(&s, &ch)).unwrap();
    put(&s, &ch, "a", Lane::Normal);
    put(&s, &ch, "b", Lane::Normal);
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("a"));
    block_on(queue::delivery::not_now(&s, &ch, "a")).unwrap();
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("b"));
    done(&s, &ch, "b");
    assert_eq!(
        next(&s, &ch, 0),
        None,
        "a must not come back in the same exchange"
    );
    block_on(queue::delivery::idle(&s, &ch)).unwrap();
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("a"));
    done(&s, &ch, "a");
    assert_eq!(next(&s, &ch, 0), None);
}

#[test]
fn device_configured_waits_for_setup_commands_deferred_in_the_exchange() {
    let s = store();
    let ch = Channel::device("UDID-DC");
    block_on(queue::open(&s, &ch)).unwrap();
    put(&s, &ch, "name", Lane::Priority);
    put(&s, &ch, "wifi", Lane::Priority);
    block_on(queue::enqueue::enqueue(
        &s,
        &ch,
        "release",
        "DeviceConfigured",
        b"<plist/>".to_vec(),
        false,
        Lane::Priority,
        100,
        1000,
    ))
    .unwrap();
    put(&s, &ch, "later", Lane::Normal);
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("name"));
    done(&s, &ch, "name");
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("wifi"));
    block_on(queue::delivery::not_now(&s, &ch, "wifi")).unwrap();
    // Not the release while a setup command is still unanswered; other lanes go on.
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("later"));
    done(&s, &ch, "later");
    assert_eq!(next(&s, &ch, 0), None);
    block_on(queue::delivery::idle(&s, &ch)).unwrap();
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("wifi"));
    done(&s, &ch, "wifi");
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("release"));
    done(&s, &ch, "release");
    assert_eq!(next(&s, &ch, 0), None);
}

#[test]
fn user_channels_are_separate_queues() {
    let s = store();
    let dev = Channel::device("UDID-3");
    let user = Channel::user("UDID-3", "user-1");
    block_on(queue::open(&s, &dev)).unwrap();
    block_on(queue::open(&s, &user)).unwrap();
    put(&s, &user, "u", Lane::Normal);
    assert_eq!(next(&s, &dev, 0), None);
    assert_eq!(next(&s, &user, 0).as_deref(), Some("u"));
}

#[test]
fn queue_bound_is_enforced() {
    let s = store();
    let ch = Channel::device("UDID-4");
    block_on(queue::open(&s, &ch)).unwrap();
    for i in 0..3 {
        block_on(queue::enqueue::enqueue(
            &s,
            &ch,
            &format!("c{i}"),
            "X",
            vec![],
            false,
            Lane::Normal,
            0,
            3,
        ))
        .unwrap();
    }
    let r = block_on(queue::enqueue::enqueue(
        &s,
        &ch,
        "c3",
        "X",
        vec![],
        false,
        Lane::Normal,
        0,
        3,
    ));
    assert_eq!(r.unwrap_err(), QueueError::Full { limit: 3 });
    assert_eq!(
        block_on(queue::enqueue::enqueue(
            &s,
            &Channel::device("nope"),
            "x",
            "X",
            vec![],
            false,
            Lane::Normal,
            0,
            3
        ))
        .unwrap_err(),
        QueueError::NoChannel
    );
}

#[test]
fn an_enqueue_in_flight_holds_the_head_until_abandoned() {
    let s = store();
    let ch = Channel::device("UDID-5");
    block_on(queue::open(&s, &ch)).unwrap();
    // Sequence 1 allocated by an enqueue that has not written (or died).
    block_on(s.increment(&CounterKey::new("cq:UDID-5:n").unwrap(), 1)).unwrap();
    put(&s, &ch, "later", Lane::Normal);
    assert_eq!(next(&s, &ch, 1000).as_deref(), Some("later"));
    done(&s, &ch, "later");
    assert_eq!(next(&s, &ch, 1000), None);
    assert_eq!(
        block_on(queue::pending(&s, &ch)).unwrap(),
        2,
        "head waits at the hole"
    );
    assert_eq!(next(&s, &ch, 1000 + HOLE_TTL), None);
    assert_eq!(
        block_on(queue::pending(&s, &ch)).unwrap(),
        0,
        "abandoned hole passed"
    );
}

/// Admins enqueue from several threads while the device polls and answers: every
/// command is delivered, none twice after its answer, each admin's order kept.
#[test]
fn concurrent_enqueue_while_the_device_polls() {
    const ADMINS: usize = 4;
    const EACH: usize = 50;
    let s = store();
    let ch = Channel::device("UDID-6");
    block_on(queue::open(&s, &ch)).unwrap();
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let delivered = std::thread::scope(|scope| {
        for a in 0..ADMINS {
            let (s, ch, finished) = (&s, &ch, &finished);
            scope.spawn(move || {
                for i in 0..EACH {
                    block_on(queue::enqueue::enqueue(
                        s,
                        ch,
                        &format!("a{a}-{i:03}"),
                        "X",
                        vec![],
                        false,
                        Lane::Normal,
                        0,
                        100_000,
                    ))
                    .unwrap();
                }
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        // The device polls until every admin is done and the queue is empty, however
        // slowly the admin threads get scheduled.
        let device = scope.spawn(|| {
            let mut got = Vec::new();
            loop {
                let all_enqueued = finished.load(std::sync::atomic::Ordering::SeqCst) == ADMINS;
                match block_on(queue::delivery::next(&s, &ch, 0)).unwrap() {
                    Some(c) => {
                        assert!(
                            block_on(queue::delivery::complete(&s, &ch, &c.uuid))
                                .unwrap()
                                .is_some(),
                            "{} delivered after its answer",
                            c.uuid
                        );
                        got.push(c.uuid);
                    }
                    None if all_enqueued => return got,
                    None => std::thread::yield_now(),
                }
            }
        });
        device.join().unwrap()
    });
    assert_eq!(delivered.len(), ADMINS * EACH);
    let mut sorted = delivered.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ADMINS * EACH, "a command was delivered twice");
    for a in 0..ADMINS {
        let mine: Vec<&String> = delivered
            .iter()
            .filter(|u| u.starts_with(&format!("a{a}-")))
            .collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "admin {a}'s commands reordered"
        );
    }
}

/// An enqueue that stalled past the hole TTL re-queues itself instead of being lost.
#[test]
fn a_stalled_enqueue_is_requeued_not_lost() {
    let s = store();
    let ch = Channel::device("UDID-7");
    block_on(queue::open(&s, &ch)).unwrap();
    // The head already gave sequence 1 up as abandoned: the enqueue about to be handed
    // number 1 is exactly the stalled one.
    block_on(s.set("cqh:UDID-7", br#"{"next":{"n":2}}"#)).unwrap();
    let cmd = block_on(queue::enqueue::enqueue(
        &s,
        &ch,
        "late",
        "X",
        vec![],
        false,
        Lane::Normal,
        0,
        10,
    ))
    .unwrap();
    assert_eq!(cmd.command.seq, 2, "re-queued under a fresh number");
    assert!(
        block_on(s.get("cq:UDID-7:n:1")).unwrap().is_none(),
        "the unreachable entry is removed"
    );
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("late"));
    done(&s, &ch, "late");
}

/// What stands before a new command: commands still to fetch or answer, in any lane;
/// not answered ones, not deferred ones (the device does not come back for those).
#[test]
fn an_enqueue_says_what_is_ahead_of_it() {
    let s = store();
    let ch = Channel::device("UDID-9");
    block_on(queue::open(&s, &ch)).unwrap();
    let ahead = |uuid: &str, lane: Lane| {
        block_on(queue::enqueue::enqueue(
            &s,
            &ch,
            uuid,
            "ProfileList",
            b"<plist/>".to_vec(),
            false,
            lane,
            100,
            1000,
        ))
        .unwrap()
        .ahead
    };
    assert_eq!(ahead("a", Lane::Normal), 0, "an empty queue");
    assert_eq!(ahead("b", Lane::Priority), 1, "another lane counts");
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("b"));
    assert_eq!(ahead("c", Lane::Normal), 2, "in flight counts");
    done(&s, &ch, "b");
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("a"));
    block_on(queue::delivery::not_now(&s, &ch, "a")).unwrap();
    assert_eq!(next(&s, &ch, 0).as_deref(), Some("c"));
    done(&s, &ch, "c");
    assert_eq!(next(&s, &ch, 0), None, "the exchange ends, a deferred");
    assert_eq!(
        ahead("d", Lane::Normal),
        0,
        "deferred and answered do not count"
    );
}

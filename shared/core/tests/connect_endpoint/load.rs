//! Load: store work per request does not grow with the queue, and admins queue from
//! several threads while the device polls.

use super::*;

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

/// A store holding one device enrolled (Authenticate, TokenUpdate), counting operations.
fn enrolled_counting() -> Store<Counting> {
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
    s
}

fn new_command(i: usize) -> NewCommand {
    NewCommand {
        uuid: format!("c{i:05}"),
        request_type: "ProfileList".into(),
        body: format!("c{i:05}").into_bytes(),
        lane: Lane::Normal,
        sealed: false,
    }
}

/// Queueing a command costs the same few store operations however long the queue is:
/// the duplicate check, the record with its history entry (one batch), the queue's
/// counts, the sequence number, the entry with its UUID index (one batch), the head's
/// check, the metric.
#[test]
fn an_enqueue_costs_a_fixed_number_of_store_operations() {
    let s = enrolled_counting();
    let ch = Channel::device(UDID);
    let mut costs = Vec::new();
    for i in 0..300 {
        let before = s.backend().ops.load(Ordering::SeqCst);
        block_on(records::enqueue(&s, &ch, &new_command(i), 0, 100_000)).unwrap();
        costs.push(s.backend().ops.load(Ordering::SeqCst) - before);
    }
    let (min, max) = (costs.iter().min().unwrap(), costs.iter().max().unwrap());
    assert_eq!(
        min, max,
        "the cost of an enqueue grew with the queue: {costs:?}"
    );
    assert!(*max <= 11, "{max} store operations for one enqueue");
}

/// An answer to a queued command costs a fixed number of store operations, its
/// device-log entry included: the entry takes the RequestType from the command it
/// completed rather than reading the record it has just written, and goes to the store
/// in one batch with the result and its place in the finishing order.
#[test]
fn an_answer_costs_a_fixed_number_of_store_operations_with_its_log_entry() {
    let s = enrolled_counting();
    let ch = Channel::device(UDID);
    for i in 0..2 {
        block_on(records::enqueue(&s, &ch, &new_command(i), 0, 100_000)).unwrap();
    }
    let report = |status: &str, uuid: Option<&str>| {
        let u = uuid
            .map(|u| format!("<key>CommandUUID</key><string>{u}</string>"))
            .unwrap_or_default();
        Report::parse(&xml(&format!(
            "<key>Status</key><string>{status}</string><key>UDID</key><string>{UDID}</string>{u}"
        )))
        .unwrap()
    };
    let first = block_on(connect::report(&s, "cert", &report("Idle", None), 1)).unwrap();
    assert_eq!(first, Next::Command(b"c00000".to_vec()));
    let before = s.backend().ops.load(Ordering::SeqCst);
    let next = block_on(connect::report(
        &s,
        "cert",
        &report("Acknowledged", Some("c00000")),
        2,
    ))
    .unwrap();
    let used = s.backend().ops.load(Ordering::SeqCst) - before;
    assert_eq!(next, Next::Command(b"c00001".to_vec()));
    assert!(used <= 21, "{used} store operations for one answer");
    let log = block_on(mdm_core::mdm::devlog::list(
        &s,
        UDID,
        &mdm_core::mdm::devlog::LogQuery {
            limit: 10,
            ..Default::default()
        },
    ))
    .unwrap();
    let e = &log.entries[0];
    assert_eq!(
        (e.action.as_str(), e.status.as_str()),
        ("ProfileList", "Acknowledged")
    );
}

/// The most store operations one device request needed, over a scripted session with
/// `n` queued commands: NotNow on the first quarter, answers to the next quarter, a new
/// exchange that delivers the deferred ones again (and the device answers them all).
fn max_ops_per_request(n: usize) -> usize {
    let s = enrolled_counting();
    let ch = Channel::device(UDID);
    for i in 0..n {
        block_on(records::enqueue(&s, &ch, &new_command(i), 0, 100_000)).unwrap();
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

//! Operational counters the services bump as things happen (commands answered, pushes
//! sent, syncs run, devices enrolled), stored as store counters so every instance and
//! process adds to the same totals. `GET /metrics` reads them with `increment(0)`, the
//! one way to read a counter on every backend.
//!
//! Keys: `ctr:m:<name>` and `ctr:m:<name>:<label>` (labels are fixed vocabularies or
//! token ids, never free text).

use mdm_kv::{Backend, CounterKey, KvError, Store};

/// A counter and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counter {
    /// Commands queued (one per device channel).
    CommandsEnqueued,
    /// Command answers by the report's Status (`Acknowledged`, `Error`,
    /// `CommandFormatError`, `NotNow`).
    CommandResults(&'static str),
    /// Pushes sent, by what APNs made of them ([`PUSH_OUTCOMES`]).
    Pushes(&'static str),
    /// Enrollments that became enrolled (Authenticate + TokenUpdate) and ended
    /// (CheckOut, retirement): their difference is the enrolled-device gauge.
    Enrolled,
    Unenrolled,
    /// Devices released from Setup Assistant (DeviceConfigured) and put into it.
    AwaitingStarted,
    AwaitingReleased,
    /// DEP sync runs of a token by outcome ([`SYNC_OUTCOMES`]), and the device records
    /// they fetched.
    SyncRuns(u64, &'static str),
    DevicesSynced(u64),
}

pub const COMMAND_STATUSES: &[&str] = &["Acknowledged", "Error", "CommandFormatError", "NotNow"];
/// What APNs made of a push sent (the names of [`crate::push::outcome::PushOutcome`]).
pub const PUSH_OUTCOMES: &[&str] = &[
    "delivered",
    "unreachable",
    "certificate_rejected",
    "rejected",
    "retry_scheduled",
    "gave_up",
];
pub const SYNC_OUTCOMES: &[&str] = &["completed", "timed_out", "failed"];

impl Counter {
    pub fn key(&self) -> CounterKey {
        let name = match self {
            Counter::CommandsEnqueued => "m:cmdq".to_owned(),
            Counter::CommandResults(s) => format!("m:cmdr:{s}"),
            Counter::Pushes(o) => format!("m:push:{o}"),
            Counter::Enrolled => "m:enr:in".to_owned(),
            Counter::Unenrolled => "m:enr:out".to_owned(),
            Counter::AwaitingStarted => "m:await:in".to_owned(),
            Counter::AwaitingReleased => "m:await:out".to_owned(),
            Counter::SyncRuns(t, o) => format!("m:sync:{t}:{o}"),
            Counter::DevicesSynced(t) => format!("m:synced:{t}"),
        };
        CounterKey::new(&name).expect("metric keys are key-safe")
    }
}

/// Adds `n` to `counter`.
pub async fn add<B: Backend>(store: &Store<B>, counter: Counter, n: u64) -> Result<(), KvError> {
    if n > 0 {
        store.increment(&counter.key(), n as i64).await?;
    }
    Ok(())
}

/// Adds one to `counter` where counting is bookkeeping beside work already done: a
/// failure is logged and does not undo or fail that work.
pub async fn bump<B: Backend>(store: &Store<B>, counter: Counter) {
    if let Err(e) = add(store, counter.clone(), 1).await {
        crate::log::warn(
            "metric not counted",
            &[
                ("counter", counter.key().as_str().into()),
                ("error", e.to_string().into()),
            ],
        );
    }
}

/// The current value of `counter` (0 if never bumped).
pub async fn read<B: Backend>(store: &Store<B>, counter: &Counter) -> Result<i64, KvError> {
    read_key(store, &counter.key()).await
}

/// The current value of any store counter.
pub async fn read_key<B: Backend>(store: &Store<B>, key: &CounterKey) -> Result<i64, KvError> {
    store.increment(key, 0).await
}

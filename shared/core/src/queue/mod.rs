//! Command queues, one per enrollment channel (a device, or a user on a device).
//!
//! Key layout (channel `c` is made of key segments, see [`Channel::tag`]):
//! - `ctr:cq:<c>:<lane>`  sequence numbers handed out in a lane (`p` priority, `n` normal)
//! - `cq:<c>:<lane>:<seq>` the [`QueuedCommand`] with its [`EntryState`]; removed once
//!   answered (or cancelled) and passed by the head
//! - `cqu:<c>:<uuid>`     where a pending CommandUUID sits (lane, seq), so a device's
//!   answer or an admin's cancel finds its entry; removed on completion
//! - `cqh:<c>`            the [`Head`]: per lane the *frontier* (every entry before it is
//!   answered, cancelled, or listed as deferred), the commands the
//!   device deferred with NotNow, the exchange number, and sequence
//!   numbers seen missing (an enqueue in flight)
//! - `ctr:cqx:<c>`        commands cancelled by admins, so that cancelled entries stop
//!   counting against the queue bound before the device passes them
//!
//! Admins only increment counters, write new keys and compare-and-swap single entries
//! (cancel), so they never contend with the device on the head; the head is written by the
//! device's own (sequential) requests with CAS. An entry changes state by CAS too
//! (`queued`/`not_now` → `in_flight` on delivery, → `cancelled` on cancel), so a cancel and
//! a delivery of the same command cannot both win.
//!
//!
//! What the server does to a queue (enqueue, cancel, drain) is `enqueue.rs`; what the
//! device's exchange does (next, NotNow, Idle, completion) is `delivery.rs`.

pub mod delivery;
pub mod enqueue;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store};

use crate::record::{Record, Stored};

/// An allocated sequence number whose entry is still missing after this long belongs to
/// an enqueue that died; it no longer holds the head back.
pub const HOLE_TTL: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lane {
    #[serde(rename = "p")]
    Priority,
    #[serde(rename = "n")]
    Normal,
}

impl Lane {
    pub(super) const ALL: [Lane; 2] = [Lane::Priority, Lane::Normal];

    pub(super) fn tag(self) -> &'static str {
        match self {
            Lane::Priority => "p",
            Lane::Normal => "n",
        }
    }
}

/// A queue address: the device channel, optionally a user channel on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel(String);

impl Channel {
    pub fn device(device_id: &str) -> Self {
        Channel(segment(device_id))
    }

    pub fn user(device_id: &str, user_id: &str) -> Self {
        Channel(format!("{}:u:{}", segment(device_id), segment(user_id)))
    }

    /// The channel as key segments (`<device>` or `<device>:u:<user>`), shared by every
    /// per-channel key of the command loop.
    pub fn tag(&self) -> &str {
        &self.0
    }

    pub(super) fn counter(&self, lane: Lane) -> CounterKey {
        CounterKey::new(&format!("cq:{}:{}", self.0, lane.tag())).expect("segments are key-safe")
    }

    pub(super) fn cancelled_counter(&self) -> CounterKey {
        CounterKey::new(&format!("cqx:{}", self.0)).expect("segments are key-safe")
    }
}

/// Where a queued command stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Never delivered.
    #[default]
    Queued,
    /// Delivered, no answer yet. Delivered again when the device asks for a command
    /// without having answered it (the reply may never have reached the device).
    InFlight,
    /// The device answered NotNow (in exchange `not_now_exchange`).
    NotNow,
    /// Answered Acknowledged, Error or CommandFormatError.
    Done,
    /// Cancelled by an admin before delivery.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedCommand {
    pub uuid: String,
    pub request_type: String,
    /// The command plist as sent to the device.
    #[serde(with = "b64")]
    pub body: Vec<u8>,
    pub lane: Lane,
    pub seq: u64,
    pub enqueued_at: u64,
    #[serde(default)]
    pub state: EntryState,
    /// The exchange (see [`Head::exchange`]) of the device's last NotNow.
    #[serde(default)]
    pub not_now_exchange: u64,
    #[serde(default)]
    pub delivered_at: Option<u64>,
    #[serde(default)]
    pub deliveries: u32,
    /// `body` is sealed (the command carries a secret: see
    /// [`crate::command::secrets`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
}

impl Record for QueuedCommand {
    /// (channel, lane, sequence number)
    type Id<'a> = (&'a Channel, Lane, u64);
    const NAME: &'static str = "queued command";
    const ATTEMPTS: usize = 100;
    fn key((ch, lane, seq): (&Channel, Lane, u64)) -> String {
        format!("cq:{}:{}:{seq}", ch.0, lane.tag())
    }
}

/// Where a pending CommandUUID sits (`cqu:<c>:<uuid>`, JSON `[lane, seq]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Location(pub Lane, pub u64);

impl Record for Location {
    /// (channel, CommandUUID)
    type Id<'a> = (&'a Channel, &'a str);
    const NAME: &'static str = "queue index";
    fn key((ch, uuid): (&Channel, &str)) -> String {
        format!("cqu:{}:{}", ch.0, segment(uuid))
    }
}

impl QueuedCommand {
    /// Answered or cancelled: it will never be delivered again.
    pub fn finished(&self) -> bool {
        matches!(self.state, EntryState::Done | EntryState::Cancelled)
    }
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

/// A command behind the frontier that the device answered NotNow: (lane, seq, exchange
/// of that NotNow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferred(pub Lane, pub u64, pub u64);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Per lane, the frontier: the first sequence number not yet passed (1-based).
    pub next: BTreeMap<Lane, u64>,
    /// Exchange number: incremented by an `Idle` that ends an exchange with a NotNow in it.
    #[serde(default)]
    pub exchange: u64,
    /// The device answered NotNow in the current exchange.
    #[serde(default)]
    pub not_now_seen: bool,
    /// Deferred commands behind the frontier, by lane and sequence number.
    #[serde(default)]
    pub deferred: Vec<Deferred>,
    /// Cancelled entries the head has passed or dropped (see `ctr:cqx:<c>`).
    #[serde(default)]
    pub cancelled_passed: u64,
    /// Missing entries and when they were first seen missing.
    #[serde(default)]
    pub holes: BTreeMap<String, u64>,
}

impl Record for Head {
    type Id<'a> = &'a Channel;
    const NAME: &'static str = "queue head";
    const ATTEMPTS: usize = 100;
    fn key(ch: &Channel) -> String {
        format!("cqh:{}", ch.0)
    }
}

impl Head {
    pub(super) fn next(&self, lane: Lane) -> u64 {
        self.next.get(&lane).copied().unwrap_or(1).max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// The channel was never opened (the device is not enrolled).
    NoChannel,
    /// More than the configured number of commands are pending.
    Full {
        limit: u64,
    },
    Store(KvError),
}

impl From<KvError> for QueueError {
    fn from(e: KvError) -> Self {
        QueueError::Store(e)
    }
}

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueError::NoChannel => f.write_str("no such enrollment channel"),
            QueueError::Full { limit } => {
                write!(f, "the queue already holds {limit} pending commands")
            }
            QueueError::Store(e) => e.fmt(f),
        }
    }
}

/// Creates the channel's head. Called by the device's own enrollment check-ins
/// (Authenticate/TokenUpdate), which are sequential, so no race creates it twice.
pub async fn open<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<(), KvError> {
    if !Head::exists(store, ch).await? {
        Head::default().save(store, ch).await?;
    }
    Ok(())
}

/// Whether the channel's queue exists (the channel finished its TokenUpdate).
pub async fn is_open<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<bool, KvError> {
    Head::exists(store, ch).await
}

pub(super) async fn head<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
) -> Result<Option<Head>, KvError> {
    Head::load(store, ch).await
}

/// Commands not yet answered or cancelled, counting ones delivered but not yet answered.
pub async fn pending<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<u64, QueueError> {
    Ok(counts(store, ch).await?.pending)
}

/// [`pending`], and how many of those the device deferred with NotNow.
pub(super) struct Counts {
    pub(super) pending: u64,
    pub(super) deferred: u64,
}

pub(super) async fn counts<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
) -> Result<Counts, QueueError> {
    let h = head(store, ch).await?.ok_or(QueueError::NoChannel)?;
    let deferred = h.deferred.len() as u64;
    let mut n = deferred;
    for lane in Lane::ALL {
        let tail = store.counter(&ch.counter(lane)).await?.max(0) as u64;
        n += (tail + 1).saturating_sub(h.next(lane));
    }
    let cancelled = store.counter(&ch.cancelled_counter()).await?.max(0) as u64;
    Ok(Counts {
        pending: n.saturating_sub(cancelled.saturating_sub(h.cancelled_passed)),
        deferred,
    })
}

/// A pending command by UUID (for the admin API), without changing anything.
pub async fn find<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
) -> Result<Option<QueuedCommand>, KvError> {
    let Some((lane, seq)) = locate(store, ch, uuid).await? else {
        return Ok(None);
    };
    QueuedCommand::load(store, (ch, lane, seq)).await
}

pub(super) async fn modify_head<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    mut change: impl FnMut(&mut Head),
) -> Result<Head, QueueError> {
    Head::modify(store, ch, |h| {
        let before = h.clone();
        change(h);
        Ok::<_, QueueError>(*h != before)
    })
    .await?
    .ok_or(QueueError::NoChannel)
}

/// Why an entry transition did not happen.
enum Refused {
    Kv(KvError),
    State(EntryState),
}

impl From<KvError> for Refused {
    fn from(e: KvError) -> Self {
        Refused::Kv(e)
    }
}

/// Compare-and-swap of one entry. `Ok(None)`: the entry does not exist.
pub(super) async fn transition<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    lane: Lane,
    seq: u64,
    mut change: impl FnMut(&mut QueuedCommand) -> Result<(), EntryState>,
) -> Result<Option<Result<(QueuedCommand, QueuedCommand), EntryState>>, KvError> {
    let mut before = None;
    let r = QueuedCommand::modify(store, (ch, lane, seq), |cmd| {
        before = Some(cmd.clone());
        change(cmd).map_err(Refused::State)?;
        Ok(true)
    })
    .await;
    match r {
        Ok(None) => Ok(None),
        Ok(Some(after)) => Ok(Some(Ok((before.expect("read before the swap"), after)))),
        Err(Refused::State(s)) => Ok(Some(Err(s))),
        Err(Refused::Kv(e)) => Err(e),
    }
}

pub(super) async fn locate<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
) -> Result<Option<(Lane, u64)>, KvError> {
    Ok(Location::load(store, (ch, uuid))
        .await?
        .map(|Location(lane, seq)| (lane, seq)))
}

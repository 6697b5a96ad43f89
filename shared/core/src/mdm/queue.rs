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
//! Delivering the next command reads the head, the lane counters and, normally, one entry:
//! O(1) in the queue length. Commands answered NotNow leave the frontier for the head's
//! deferred list, so they never make the device re-read answered commands behind them. An
//! exchange ends at the device's next `Idle`; a command deferred in the current exchange
//! is not delivered again before that, then comes first again (FIFO within its lane).
//! An enqueue that stalls past [`HOLE_TTL`] notices that the head gave its number up and
//! queues again under a fresh one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store, UpdateError};

/// An allocated sequence number whose entry is still missing after this long belongs to
/// an enqueue that died; it no longer holds the head back.
pub const HOLE_TTL: u64 = 300;
/// Entries read per batch while looking for the next deliverable command.
const SCAN_BATCH: u64 = 8;
/// Attempts of [`next`] when an admin cancels the command it was about to deliver.
const DELIVERY_ATTEMPTS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lane {
    #[serde(rename = "p")]
    Priority,
    #[serde(rename = "n")]
    Normal,
}

impl Lane {
    const ALL: [Lane; 2] = [Lane::Priority, Lane::Normal];

    fn tag(self) -> &'static str {
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

    pub(crate) fn head_key(&self) -> String {
        format!("cqh:{}", self.0)
    }

    fn counter(&self, lane: Lane) -> CounterKey {
        CounterKey::new(&format!("cq:{}:{}", self.0, lane.tag())).expect("segments are key-safe")
    }

    fn cancelled_counter(&self) -> CounterKey {
        CounterKey::new(&format!("cqx:{}", self.0)).expect("segments are key-safe")
    }

    fn entry_key(&self, lane: Lane, seq: u64) -> String {
        format!("cq:{}:{}:{seq}", self.0, lane.tag())
    }

    fn uuid_key(&self, uuid: &str) -> String {
        format!("cqu:{}:{}", self.0, segment(uuid))
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
    /// [`super::command_secrets`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
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

impl Head {
    fn next(&self, lane: Lane) -> u64 {
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

fn decode<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> Result<T, KvError> {
    serde_json::from_slice(raw).map_err(|e| KvError::Backend(format!("{what}: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialises")
}

/// Creates the channel's head. Called by the device's own enrollment check-ins
/// (Authenticate/TokenUpdate), which are sequential, so no race creates it twice.
pub async fn open<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<(), KvError> {
    if !store.exists(&ch.head_key()).await? {
        store.set(&ch.head_key(), &encode(&Head::default())).await?;
    }
    Ok(())
}

/// Whether the channel's queue exists (the channel finished its TokenUpdate).
pub async fn is_open<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<bool, KvError> {
    store.exists(&ch.head_key()).await
}

async fn head<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<Option<Head>, KvError> {
    store
        .get(&ch.head_key())
        .await?
        .map(|raw| decode(&raw, "queue head"))
        .transpose()
}

/// Commands not yet answered or cancelled, counting ones delivered but not yet answered.
pub async fn pending<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<u64, QueueError> {
    Ok(counts(store, ch).await?.pending)
}

/// [`pending`], and how many of those the device deferred with NotNow.
struct Counts {
    pending: u64,
    deferred: u64,
}

async fn counts<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<Counts, QueueError> {
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

/// A command just queued, and what stood before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub command: QueuedCommand,
    /// Commands queued before it that the device has still to fetch or answer (deferred
    /// ones not counted: the device does not come back for those by itself). When there
    /// are some, the device's coming exchange reaches this one too.
    pub ahead: u64,
}

/// Appends a command. `limit` bounds the pending commands of the channel.
#[allow(clippy::too_many_arguments)]
pub async fn enqueue<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
    request_type: &str,
    body: Vec<u8>,
    sealed: bool,
    lane: Lane,
    now: u64,
    limit: u64,
) -> Result<Enqueued, QueueError> {
    let before = counts(store, ch).await?;
    if before.pending >= limit {
        return Err(QueueError::Full { limit });
    }
    let ahead = before.pending.saturating_sub(before.deferred);
    // The UUID index first: once the entry is visible the device may answer it at once.
    // If this call stalled so long that the head gave its sequence number up as an
    // abandoned hole, the entry would never be delivered: take a fresh number.
    loop {
        let seq = store.increment(&ch.counter(lane), 1).await? as u64;
        let cmd = QueuedCommand {
            uuid: uuid.to_owned(),
            request_type: request_type.to_owned(),
            body: body.clone(),
            lane,
            seq,
            enqueued_at: now,
            state: EntryState::Queued,
            not_now_exchange: 0,
            delivered_at: None,
            deliveries: 0,
            sealed,
        };
        store.set(&ch.uuid_key(uuid), &encode(&(lane, seq))).await?;
        store.set(&ch.entry_key(lane, seq), &encode(&cmd)).await?;
        let h = head(store, ch).await?.ok_or(QueueError::NoChannel)?;
        if h.next(lane) <= seq {
            return Ok(Enqueued {
                command: cmd,
                ahead,
            });
        }
        // The head is past us. The frontier only passes an entry it read as answered,
        // cancelled or deferred (all of which were delivered or touched after our write),
        // or one it gave up as an abandoned hole before we wrote it: that entry is still
        // `queued`, and would never be delivered.
        let skipped = match store.get(&ch.entry_key(lane, seq)).await? {
            Some(raw) => {
                decode::<QueuedCommand>(&raw, "queued command")?.state == EntryState::Queued
            }
            None => false,
        };
        if !skipped {
            return Ok(Enqueued {
                command: cmd,
                ahead,
            });
        }
        store.delete(&ch.entry_key(lane, seq)).await?;
    }
}

async fn modify_head<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    mut change: impl FnMut(&mut Head),
) -> Result<Head, QueueError> {
    let r = store
        .update::<KvError>(&ch.head_key(), 100, |raw| {
            let mut h: Head = decode(raw, "queue head")?;
            let before = h.clone();
            change(&mut h);
            Ok((h != before).then(|| encode(&h)))
        })
        .await;
    match r {
        Ok(Some(raw)) => Ok(decode(&raw, "queue head")?),
        Ok(None) => Err(QueueError::NoChannel),
        Err(UpdateError::Kv(e) | UpdateError::Rejected(e)) => Err(QueueError::Store(e)),
    }
}

/// Why an entry transition did not happen.
enum Refused {
    Kv(KvError),
    State(EntryState),
}

/// Compare-and-swap of one entry. `Ok(None)`: the entry does not exist.
async fn transition<B: Backend>(
    store: &Store<B>,
    key: &str,
    mut change: impl FnMut(&mut QueuedCommand) -> Result<(), EntryState>,
) -> Result<Option<Result<(QueuedCommand, QueuedCommand), EntryState>>, KvError> {
    let mut before = None;
    let r = store
        .update::<Refused>(key, 100, |raw| {
            let mut cmd: QueuedCommand = decode(raw, "queued command").map_err(Refused::Kv)?;
            before = Some(cmd.clone());
            change(&mut cmd).map_err(Refused::State)?;
            Ok(Some(encode(&cmd)))
        })
        .await;
    match r {
        Ok(None) => Ok(None),
        Ok(Some(raw)) => Ok(Some(Ok((
            before.expect("read before the swap"),
            decode(&raw, "queued command")?,
        )))),
        Err(UpdateError::Rejected(Refused::State(s))) => Ok(Some(Err(s))),
        Err(UpdateError::Kv(e) | UpdateError::Rejected(Refused::Kv(e))) => Err(e),
    }
}

async fn locate<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
) -> Result<Option<(Lane, u64)>, KvError> {
    store
        .get(&ch.uuid_key(uuid))
        .await?
        .map(|raw| decode(&raw, "queue index"))
        .transpose()
}

/// A new exchange starts (the device said Idle): commands deferred with NotNow become
/// deliverable again. Writes only when the exchange that ends saw a NotNow.
pub async fn idle<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<Head, QueueError> {
    modify_head(store, ch, |h| {
        if h.not_now_seen {
            h.exchange += 1;
            h.not_now_seen = false;
        }
    })
    .await
}

/// [`idle`] given the head as read moments ago (`raw`, None when absent): it is written
/// only when the Idle changes it, through compare-and-swap as always.
pub async fn idle_from<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    raw: Option<&[u8]>,
) -> Result<Head, QueueError> {
    let h: Head = decode(raw.ok_or(QueueError::NoChannel)?, "queue head")?;
    if h.not_now_seen {
        return idle(store, ch).await;
    }
    Ok(h)
}

/// The device answered NotNow: keep the command, but not again in this exchange. Returns
/// the command, or `None` for a UUID this channel does not hold.
pub async fn not_now<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
) -> Result<Option<QueuedCommand>, QueueError> {
    let Some((lane, seq)) = locate(store, ch, uuid).await? else {
        return Ok(None);
    };
    let h = modify_head(store, ch, |h| {
        h.not_now_seen = true;
        let ex = h.exchange;
        for d in h.deferred.iter_mut() {
            if d.0 == lane && d.1 == seq {
                d.2 = ex;
            }
        }
    })
    .await?;
    let r = transition(store, &ch.entry_key(lane, seq), |c| match c.state {
        EntryState::Done | EntryState::Cancelled => Err(c.state),
        _ => {
            c.state = EntryState::NotNow;
            c.not_now_exchange = h.exchange;
            Ok(())
        }
    })
    .await?;
    Ok(match r {
        Some(Ok((_, after))) => Some(after),
        _ => None,
    })
}

/// The device answered (Acknowledged, Error, CommandFormatError): the command leaves the
/// queue. Returns it, or `None` for a UUID this channel does not hold (already answered,
/// cancelled, or never ours).
pub async fn complete<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
) -> Result<Option<QueuedCommand>, QueueError> {
    let Some((lane, seq)) = locate(store, ch, uuid).await? else {
        return Ok(None);
    };
    let key = ch.entry_key(lane, seq);
    let r = transition(store, &key, |c| {
        if c.finished() || c.uuid != uuid {
            return Err(c.state);
        }
        c.state = EntryState::Done;
        Ok(())
    })
    .await?;
    let Some(Ok((_, cmd))) = r else {
        return Ok(None);
    };
    store.delete(&ch.uuid_key(uuid)).await?;
    // A deferred command sits behind the frontier, which will not pass it again.
    let h = head(store, ch).await?.ok_or(QueueError::NoChannel)?;
    if h.deferred.iter().any(|d| d.0 == lane && d.1 == seq) {
        modify_head(store, ch, |h| {
            h.deferred.retain(|d| !(d.0 == lane && d.1 == seq));
        })
        .await?;
        store.delete(&key).await?;
    }
    Ok(Some(cmd))
}

/// What an admin's cancel found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// Removed from the queue; it will not be delivered.
    Cancelled(QueuedCommand),
    /// Delivered to the device and not answered yet.
    InFlight,
    /// Already answered or cancelled.
    Finished,
    /// Not in this channel's queue.
    Unknown,
}

/// Cancels a command that was not delivered, or was deferred with NotNow.
pub async fn cancel<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
) -> Result<Cancel, QueueError> {
    let Some((lane, seq)) = locate(store, ch, uuid).await? else {
        return Ok(Cancel::Unknown);
    };
    let r = transition(store, &ch.entry_key(lane, seq), |c| match c.state {
        EntryState::Queued | EntryState::NotNow if c.uuid == uuid => {
            c.state = EntryState::Cancelled;
            Ok(())
        }
        s => Err(s),
    })
    .await?;
    match r {
        None => Ok(Cancel::Unknown),
        Some(Err(EntryState::InFlight)) => Ok(Cancel::InFlight),
        Some(Err(_)) => Ok(Cancel::Finished),
        Some(Ok((_, cmd))) => {
            store.increment(&ch.cancelled_counter(), 1).await?;
            store.delete(&ch.uuid_key(uuid)).await?;
            Ok(Cancel::Cancelled(cmd))
        }
    }
}

/// Re-enrollment: every command of the channel not answered yet — queued, deferred or
/// in flight alike, since the device that would answer them is gone — is cancelled (as
/// an admin cancel would, so the frontier passes them and the queue bound frees up).
/// Returns them. O(pending commands), read in batches; nothing when the channel was
/// never opened.
pub async fn drain<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
) -> Result<Vec<QueuedCommand>, QueueError> {
    let Some(h) = head(store, ch).await? else {
        return Ok(Vec::new());
    };
    let mut slots: Vec<(Lane, u64)> = h.deferred.iter().map(|d| (d.0, d.1)).collect();
    for lane in Lane::ALL {
        let tail = store.counter(&ch.counter(lane)).await?.max(0) as u64;
        slots.extend((h.next(lane)..=tail).map(|n| (lane, n)));
    }
    let mut out = Vec::new();
    for chunk in slots.chunks(100) {
        let keys: Vec<String> = chunk.iter().map(|(l, n)| ch.entry_key(*l, *n)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        for (key, raw) in keys.iter().zip(store.get_many(&refs).await?) {
            let Some(raw) = raw else { continue };
            let cmd: QueuedCommand = decode(&raw, "queued command")?;
            if cmd.finished() {
                continue;
            }
            let r = transition(store, key, |c| {
                if c.finished() {
                    return Err(c.state);
                }
                c.state = EntryState::Cancelled;
                Ok(())
            })
            .await?;
            if let Some(Ok((_, after))) = r {
                out.push(after);
            }
        }
    }
    if !out.is_empty() {
        store
            .increment(&ch.cancelled_counter(), out.len() as i64)
            .await?;
        let uuids: Vec<String> = out.iter().map(|c| ch.uuid_key(&c.uuid)).collect();
        let refs: Vec<&str> = uuids.iter().map(String::as_str).collect();
        store.delete_many(&refs).await?;
    }
    Ok(out)
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
    store
        .get(&ch.entry_key(lane, seq))
        .await?
        .map(|raw| decode(&raw, "queued command"))
        .transpose()
}

/// What one scan of the queue found and what it changes in the head.
#[derive(Default)]
struct Scan {
    found: Option<(Lane, u64)>,
    advance: BTreeMap<Lane, u64>,
    defer: Vec<Deferred>,
    drop: Vec<(Lane, u64)>,
    cancelled_passed: u64,
    holes: BTreeMap<String, u64>,
    purge: Vec<String>,
}

/// DeviceConfigured ends Setup Assistant, so it must not overtake the enrollment-time
/// commands queued before it in its lane: when one of them was deferred (NotNow) in this
/// exchange, the release waits for the next exchange, where the deferred command comes
/// first.
fn holds_release(cmd: &QueuedCommand, lane: Lane, h: &Head, s: &Scan) -> bool {
    cmd.request_type == "DeviceConfigured"
        && (s.defer.iter().any(|d| d.0 == lane)
            || h.deferred
                .iter()
                .any(|d| d.0 == lane && d.2 == h.exchange && d.1 < cmd.seq))
}

async fn scan<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    h: &Head,
    now: u64,
) -> Result<Scan, QueueError> {
    let mut s = Scan::default();
    let mut holes_seen: Vec<String> = Vec::new();
    let mut scanned: Vec<&str> = Vec::new();
    let mut deferred = h.deferred.clone();
    deferred.sort_by_key(|d| (d.0, d.1));
    'lanes: for lane in Lane::ALL {
        // Deferred commands first: they were queued before anything at the frontier.
        for d in deferred.iter().filter(|d| d.0 == lane && d.2 != h.exchange) {
            let key = ch.entry_key(lane, d.1);
            match store.get(&key).await? {
                None => s.drop.push((lane, d.1)),
                Some(raw) => {
                    let cmd: QueuedCommand = decode(&raw, "queued command")?;
                    if cmd.finished() {
                        if cmd.state == EntryState::Cancelled {
                            s.cancelled_passed += 1;
                        }
                        s.drop.push((lane, d.1));
                        s.purge.push(key);
                    } else if cmd.state == EntryState::NotNow && cmd.not_now_exchange == h.exchange
                    {
                        continue;
                    } else if holds_release(&cmd, lane, h, &s) {
                        continue 'lanes;
                    } else {
                        s.found = Some((lane, d.1));
                        break 'lanes;
                    }
                }
            }
        }
        scanned.push(lane.tag());
        let tail = store.counter(&ch.counter(lane)).await?.max(0) as u64;
        let mut seq = h.next(lane);
        let mut leading = true; // still in the run of passable entries at the frontier
        while seq <= tail {
            let to = (seq + SCAN_BATCH - 1).min(tail);
            let keys: Vec<String> = (seq..=to).map(|n| ch.entry_key(lane, n)).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            for (n, raw) in (seq..=to).zip(store.get_many(&refs).await?) {
                let hole_id = format!("{}{n}", lane.tag());
                match raw {
                    None => {
                        let first = h.holes.get(&hole_id).copied().unwrap_or(now);
                        let abandoned = now.saturating_sub(first) >= HOLE_TTL;
                        if !abandoned {
                            holes_seen.push(hole_id);
                            leading = false;
                        } else if leading {
                            s.advance.insert(lane, n + 1);
                        }
                    }
                    Some(raw) => {
                        let cmd: QueuedCommand = decode(&raw, "queued command")?;
                        if cmd.finished() {
                            if leading {
                                s.advance.insert(lane, n + 1);
                                s.purge.push(ch.entry_key(lane, n));
                                if cmd.state == EntryState::Cancelled {
                                    s.cancelled_passed += 1;
                                }
                            }
                        } else if cmd.state == EntryState::NotNow
                            && cmd.not_now_exchange == h.exchange
                        {
                            // Deferred in this exchange: off the frontier, into the list.
                            if leading {
                                s.advance.insert(lane, n + 1);
                                s.defer.push(Deferred(lane, n, h.exchange));
                            }
                        } else if holds_release(&cmd, lane, h, &s) {
                            continue 'lanes;
                        } else {
                            s.found = Some((lane, n));
                            break 'lanes;
                        }
                    }
                }
            }
            seq = to + 1;
        }
    }
    // Holes of a lane not scanned this time keep their first-seen time.
    s.holes = h
        .holes
        .iter()
        .filter(|(id, _)| !scanned.iter().any(|t| id.starts_with(t)))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for id in holes_seen {
        let first = h.holes.get(&id).copied().unwrap_or(now);
        s.holes.insert(id, first);
    }
    Ok(s)
}

/// The next command to send: priority lane first, FIFO within a lane (commands deferred
/// in an earlier exchange before newer ones), skipping commands deferred in this exchange.
/// Marks it in flight. Also moves the frontier past answered and cancelled commands and
/// abandoned holes, and removes their entries.
pub async fn next<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    now: u64,
) -> Result<Option<QueuedCommand>, QueueError> {
    Ok(next_from(store, ch, now, None).await?.command)
}

/// What [`next_from`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The command to send, marked in flight.
    pub command: Option<QueuedCommand>,
    /// Commands the device deferred (NotNow) that wait behind the frontier. With no
    /// command to send the exchange ends, and these wait for the device's next `Idle`.
    pub deferred: usize,
}

/// [`next`] starting from a head the caller has just read or written (what [`idle`]
/// returns), which saves reading it again. Only the first attempt uses it.
pub async fn next_from<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    now: u64,
    mut known: Option<Head>,
) -> Result<Delivery, QueueError> {
    for _ in 0..DELIVERY_ATTEMPTS {
        let h = match known.take() {
            Some(h) => h,
            None => head(store, ch).await?.ok_or(QueueError::NoChannel)?,
        };
        let s = scan(store, ch, &h, now).await?;
        let changed = !s.advance.is_empty()
            || !s.defer.is_empty()
            || !s.drop.is_empty()
            || s.cancelled_passed > 0
            || s.holes != h.holes;
        let mut deferred = h.deferred.len();
        if changed {
            let head = modify_head(store, ch, |head| {
                for (lane, n) in &s.advance {
                    let cur = head.next(*lane);
                    head.next.insert(*lane, cur.max(*n));
                }
                head.deferred
                    .retain(|d| !s.drop.iter().any(|(l, n)| d.0 == *l && d.1 == *n));
                for d in &s.defer {
                    if !head.deferred.iter().any(|x| x.0 == d.0 && x.1 == d.1) {
                        head.deferred.push(*d);
                    }
                }
                head.deferred.sort_by_key(|d| (d.0, d.1));
                head.cancelled_passed += s.cancelled_passed;
                head.holes = s.holes.clone();
            })
            .await?;
            deferred = head.deferred.len();
            let refs: Vec<&str> = s.purge.iter().map(String::as_str).collect();
            store.delete_many(&refs).await?;
        }
        let Some((lane, seq)) = s.found else {
            return Ok(Delivery {
                command: None,
                deferred,
            });
        };
        let r = transition(store, &ch.entry_key(lane, seq), |c| {
            if c.finished() {
                return Err(c.state);
            }
            c.state = EntryState::InFlight;
            c.delivered_at = Some(now);
            c.deliveries += 1;
            Ok(())
        })
        .await?;
        match r {
            Some(Ok((_, cmd))) => {
                return Ok(Delivery {
                    command: Some(cmd),
                    deferred,
                });
            }
            // Cancelled (or removed) between the scan and the delivery: look again.
            _ => continue,
        }
    }
    Err(QueueError::Store(KvError::Contended(ch.head_key())))
}

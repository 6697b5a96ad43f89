//! Command queues, one per enrollment channel (a device, or a user on a device).
//!
//! Key layout (channel `c` is made of key segments):
//! - `ctr:cq:<c>:<lane>`  sequence numbers handed out in a lane (`p` priority, `n` normal)
//! - `cq:<c>:<lane>:<seq>` the [`QueuedCommand`]; marked done on completion and removed
//!                        once the head has passed it
//! - `cqu:<c>:<uuid>`     where a CommandUUID sits, so a device's result finds its entry
//! - `cqh:<c>`            the [`Head`]: per lane the first sequence number that may still
//!                        be pending, the commands answered NotNow in the current exchange,
//!                        and sequence numbers seen missing (an enqueue in flight)
//!
//! Admins only increment a lane counter and write new keys, so they never contend with
//! the device; the head is written by the device's own (sequential) requests with CAS.
//! Delivering the next command reads the head and, normally, one entry per lane: O(1)
//! whatever the queue length. An enqueue that stalls past [`HOLE_TTL`] notices that the
//! head gave its number up and queues again under a fresh one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store, UpdateError};

/// An allocated sequence number whose entry is still missing after this long belongs to
/// an enqueue that died; it no longer holds the head back.
pub const HOLE_TTL: u64 = 300;
/// Entries read per batch while looking for the next deliverable command.
const SCAN_BATCH: u64 = 8;

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

    fn head_key(&self) -> String {
        format!("cqh:{}", self.0)
    }

    fn counter(&self, lane: Lane) -> CounterKey {
        CounterKey::new(&format!("cq:{}:{}", self.0, lane.tag())).expect("segments are key-safe")
    }

    fn entry_key(&self, lane: Lane, seq: u64) -> String {
        format!("cq:{}:{}:{seq}", self.0, lane.tag())
    }

    fn uuid_key(&self, uuid: &str) -> String {
        format!("cqu:{}:{}", self.0, segment(uuid))
    }
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
    pub done: bool,
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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Per lane, the first sequence number that may still be pending (1-based).
    pub next: BTreeMap<Lane, u64>,
    /// Commands the device answered NotNow in the current exchange (until its next Idle).
    #[serde(default)]
    pub not_now: Vec<String>,
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

/// Creates the channel's head. Called by the device's own enrollment check-ins
/// (Authenticate/TokenUpdate), which are sequential, so no race creates it twice.
pub async fn open<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<(), KvError> {
    if !store.exists(&ch.head_key()).await? {
        store
            .set(
                &ch.head_key(),
                &serde_json::to_vec(&Head::default()).expect("serialises"),
            )
            .await?;
    }
    Ok(())
}

async fn head<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<Option<Head>, KvError> {
    store
        .get(&ch.head_key())
        .await?
        .map(|raw| decode(&raw, "queue head"))
        .transpose()
}

/// Commands waiting in a lane, counting ones delivered but not yet answered.
pub async fn pending<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<u64, QueueError> {
    let h = head(store, ch).await?.ok_or(QueueError::NoChannel)?;
    let mut n = 0;
    for lane in Lane::ALL {
        let tail = store.counter(&ch.counter(lane)).await?.max(0) as u64;
        n += (tail + 1).saturating_sub(h.next(lane));
    }
    Ok(n)
}

/// Appends a command. `limit` bounds the pending commands of the channel.
pub async fn enqueue<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
    request_type: &str,
    body: Vec<u8>,
    lane: Lane,
    now: u64,
    limit: u64,
) -> Result<QueuedCommand, QueueError> {
    if pending(store, ch).await? >= limit {
        return Err(QueueError::Full { limit });
    }
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
            done: false,
        };
        store
            .set(
                &ch.uuid_key(uuid),
                &serde_json::to_vec(&(lane, seq)).expect("serialises"),
            )
            .await?;
        store
            .set(
                &ch.entry_key(lane, seq),
                &serde_json::to_vec(&cmd).expect("serialises"),
            )
            .await?;
        let h = head(store, ch).await?.ok_or(QueueError::NoChannel)?;
        if h.next(lane) <= seq {
            return Ok(cmd);
        }
        // The head is past us. Either the device already delivered and answered the
        // command (its entry is done, or purged), or it gave our number up as abandoned
        // before we wrote it (the entry is still there, never delivered).
        let skipped = match store.get(&ch.entry_key(lane, seq)).await? {
            Some(raw) => !decode::<QueuedCommand>(&raw, "queued command")?.done,
            None => false,
        };
        if !skipped {
            return Ok(cmd);
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
            Ok((h != before).then(|| serde_json::to_vec(&h).expect("serialises")))
        })
        .await;
    match r {
        Ok(Some(raw)) => Ok(decode(&raw, "queue head")?),
        Ok(None) => Err(QueueError::NoChannel),
        Err(UpdateError::Kv(e) | UpdateError::Rejected(e)) => Err(QueueError::Store(e)),
    }
}

/// A new exchange starts (the device said Idle): commands deferred with NotNow become
/// deliverable again.
pub async fn idle<B: Backend>(store: &Store<B>, ch: &Channel) -> Result<(), QueueError> {
    modify_head(store, ch, |h| h.not_now.clear())
        .await
        .map(|_| ())
}

/// The device answered NotNow: keep the command, but not again in this exchange.
pub async fn not_now<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
) -> Result<(), QueueError> {
    modify_head(store, ch, |h| {
        if !h.not_now.iter().any(|u| u == uuid) {
            h.not_now.push(uuid.to_owned());
        }
    })
    .await
    .map(|_| ())
}

/// The device answered (Acknowledged, Error, CommandFormatError): the command leaves the
/// queue. Returns it, or `None` for a UUID this channel does not hold (already answered,
/// or never ours).
pub async fn complete<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
) -> Result<Option<QueuedCommand>, QueueError> {
    let Some(raw) = store.get(&ch.uuid_key(uuid)).await? else {
        return Ok(None);
    };
    let (lane, seq): (Lane, u64) = decode(&raw, "queue index")?;
    let Some(raw) = store.get(&ch.entry_key(lane, seq)).await? else {
        return Ok(None);
    };
    let mut cmd: QueuedCommand = decode(&raw, "queued command")?;
    if cmd.done {
        return Ok(None);
    }
    cmd.done = true;
    store
        .set(
            &ch.entry_key(lane, seq),
            &serde_json::to_vec(&cmd).expect("serialises"),
        )
        .await?;
    store.delete(&ch.uuid_key(uuid)).await?;
    modify_head(store, ch, |h| h.not_now.retain(|u| u != uuid)).await?;
    Ok(Some(cmd))
}

/// The next command to send: priority lane first, FIFO within a lane, skipping commands
/// deferred in this exchange. Also moves the head past answered commands and abandoned
/// holes, and removes their entries.
pub async fn next<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    now: u64,
) -> Result<Option<QueuedCommand>, QueueError> {
    let h = head(store, ch).await?.ok_or(QueueError::NoChannel)?;
    let mut advance: BTreeMap<Lane, u64> = BTreeMap::new();
    let mut holes_seen: Vec<String> = Vec::new();
    let mut purge: Vec<String> = Vec::new();
    let mut found = None;
    let mut scanned: Vec<&str> = Vec::new();
    'lanes: for lane in Lane::ALL {
        scanned.push(lane.tag());
        let tail = store.counter(&ch.counter(lane)).await?.max(0) as u64;
        let mut seq = h.next(lane);
        let mut leading = true; // still in the run of finished entries at the head
        while seq <= tail {
            let to = (seq + SCAN_BATCH - 1).min(tail);
            let keys: Vec<String> = (seq..=to).map(|s| ch.entry_key(lane, s)).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            for (s, raw) in (seq..=to).zip(store.get_many(&refs).await?) {
                let hole_id = format!("{}{s}", lane.tag());
                match raw {
                    None => {
                        let first = h.holes.get(&hole_id).copied().unwrap_or(now);
                        let abandoned = now.saturating_sub(first) >= HOLE_TTL;
                        if !abandoned {
                            holes_seen.push(hole_id);
                            leading = false;
                        } else if leading {
                            advance.insert(lane, s + 1);
                        }
                    }
                    Some(raw) => {
                        let cmd: QueuedCommand = decode(&raw, "queued command")?;
                        if cmd.done {
                            if leading {
                                advance.insert(lane, s + 1);
                                purge.push(ch.entry_key(lane, s));
                            }
                        } else if h.not_now.contains(&cmd.uuid) {
                            leading = false;
                        } else {
                            found = Some(cmd);
                            break 'lanes;
                        }
                    }
                }
            }
            seq = to + 1;
        }
    }
    // Holes of a lane not scanned this time keep their first-seen time.
    let mut holes_now: BTreeMap<String, u64> = h
        .holes
        .iter()
        .filter(|(id, _)| !scanned.iter().any(|t| id.starts_with(t)))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for id in holes_seen {
        let first = h.holes.get(&id).copied().unwrap_or(now);
        holes_now.insert(id, first);
    }
    if !advance.is_empty() || holes_now != h.holes {
        modify_head(store, ch, |head| {
            for (lane, n) in &advance {
                let cur = head.next(*lane);
                head.next.insert(*lane, cur.max(*n));
            }
            head.holes = holes_now.clone();
        })
        .await?;
        let refs: Vec<&str> = purge.iter().map(String::as_str).collect();
        store.delete_many(&refs).await?;
    }
    Ok(found)
}

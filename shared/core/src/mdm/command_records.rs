//! The record of every command from enqueue to answer, behind the admin API and the
//! command loop: [`CommandResult`] (status, times, error chain, the device's report), the
//! channel's history in enqueue order, enqueue and cancel, and the retention purge.
//!
//! Key layout (channel `c` = [`Channel::tag`]):
//! - `res:<c>:<uuid>`        the [`CommandResult`]
//! - `ctr:clog:<c>`          commands enqueued on the channel so far
//! - `clog:<c>:<n>`          the n-th enqueued command's UUID: the history, in enqueue
//!   order, read newest first by the admin API
//! - `clogf:<c>`             history floor: every log slot at or below it is purged
//! - `ctr:cdone`             commands finished (answered or cancelled), all channels
//! - `cdone:<n>`             the n-th finished command's [`Completion`], in finishing
//!   order: what the retention purge walks, without listing keys
//! - `cpurge`                the retention purge's cursor ([`PurgeState`])
//!
//! Every operation reads and writes a fixed number of keys, whatever the length of the
//! queue or of the history.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store};

use super::queue::{Channel, Lane, QueueError};
use super::queue_enqueue;
use super::report::ErrorEntry;

pub(crate) fn decode<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> Result<T, KvError> {
    serde_json::from_slice(raw).map_err(|e| KvError::Backend(format!("{what}: {e}")))
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialises")
}

/// `status` of a command not answered yet (or deferred, see [`STATUS_NOT_NOW`]).
pub const STATUS_QUEUED: &str = "Queued";
/// `status` of a command the device last answered NotNow (still queued).
pub const STATUS_NOT_NOW: &str = "NotNow";
/// `status` of a command an admin cancelled before delivery.
pub const STATUS_CANCELLED: &str = "Cancelled";
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub uuid: String,
    pub request_type: String,
    /// `Queued`, `NotNow`, `Acknowledged`, `Error`, `CommandFormatError` or `Cancelled`.
    pub status: String,
    pub enqueued_at: u64,
    /// When the device's final answer arrived.
    #[serde(default)]
    pub answered_at: Option<u64>,
    #[serde(default)]
    pub error_chain: Vec<ErrorResult>,
    /// Base64 of the device's last report (XML plist), response keys included; empty
    /// before any answer, or when the report was larger than [`super::connect::MAX_RAW_KEPT`].
    #[serde(default)]
    pub raw: String,
    /// Size of a report that was too large to keep.
    #[serde(default)]
    pub raw_omitted_bytes: Option<u64>,
    #[serde(default)]
    pub lane: Option<Lane>,
    /// Position in the channel's history log.
    #[serde(default)]
    pub log: Option<u64>,
    #[serde(default)]
    pub not_now_count: u32,
    #[serde(default)]
    pub last_not_now_at: Option<u64>,
    #[serde(default)]
    pub cancelled_at: Option<u64>,
}

impl CommandResult {
    /// Answered or cancelled.
    pub fn finished(&self) -> bool {
        !matches!(self.status.as_str(), STATUS_QUEUED | STATUS_NOT_NOW)
    }

    /// When it finished, if it did.
    pub fn finished_at(&self) -> Option<u64> {
        self.answered_at.or(self.cancelled_at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResult {
    pub code: Option<i64>,
    pub domain: Option<String>,
    pub description: Option<String>,
}

impl From<&ErrorEntry> for ErrorResult {
    fn from(e: &ErrorEntry) -> Self {
        ErrorResult {
            code: e.error_code,
            domain: e.error_domain.clone(),
            description: e
                .us_english_description
                .clone()
                .or_else(|| e.localized_description.clone()),
        }
    }
}

/// One finished command, in the global finishing order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// Channel tag.
    pub c: String,
    /// CommandUUID.
    pub u: String,
    /// History log position.
    pub n: Option<u64>,
    /// Finished at.
    pub t: u64,
}

pub fn result_key(channel_tag: &str, uuid: &str) -> String {
    format!("res:{channel_tag}:{}", segment(uuid))
}

pub(crate) fn log_counter(channel_tag: &str) -> CounterKey {
    CounterKey::new(&format!("clog:{channel_tag}")).expect("segments are key-safe")
}

pub(crate) fn log_key(channel_tag: &str, n: u64) -> String {
    format!("clog:{channel_tag}:{n}")
}

pub(crate) fn floor_key(channel_tag: &str) -> String {
    format!("clogf:{channel_tag}")
}

pub(crate) fn done_counter() -> CounterKey {
    CounterKey::new("cdone").expect("key-safe")
}

pub(crate) fn done_key(n: u64) -> String {
    format!("cdone:{n}")
}

const PURGE_KEY: &str = "cpurge";

pub(crate) async fn record_completion<B: Backend>(
    store: &Store<B>,
    tag: &str,
    uuid: &str,
    log: Option<u64>,
    at: u64,
) -> Result<(), KvError> {
    let n = store.increment(&done_counter(), 1).await? as u64;
    let c = Completion {
        c: tag.to_owned(),
        u: uuid.to_owned(),
        n: log,
        t: at,
    };
    store.set(&done_key(n), &encode(&c)).await
}

/// A command record by channel tag and UUID.
pub async fn result<B: Backend>(
    store: &Store<B>,
    channel_tag: &str,
    uuid: &str,
) -> Result<Option<CommandResult>, KvError> {
    Ok(store
        .get(&result_key(channel_tag, uuid))
        .await?
        .and_then(|raw| serde_json::from_slice(&raw).ok()))
}

/// A command for [`enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    pub uuid: String,
    pub request_type: String,
    /// The command plist, sealed when `sealed` (a command carrying a secret must be:
    /// [`super::command_secrets::seal`]).
    pub body: Vec<u8>,
    pub lane: Lane,
    pub sealed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueError {
    /// A command with this UUID exists on the channel.
    Duplicate,
    /// A command carrying a secret must be sealed before it is stored.
    Unsealed,
    Queue(QueueError),
}

impl From<QueueError> for EnqueueError {
    fn from(e: QueueError) -> Self {
        EnqueueError::Queue(e)
    }
}

impl From<KvError> for EnqueueError {
    fn from(e: KvError) -> Self {
        EnqueueError::Queue(QueueError::Store(e))
    }
}

/// A command queued: its record, and whether the device's coming exchange reaches it
/// without a push of its own ([`queue_enqueue::Enqueued::ahead`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub record: CommandResult,
    pub behind_others: bool,
}

/// Queues a command and starts its record and history entry. The record is written
/// before the command becomes visible to the device, so an answer always finds it (and
/// is taken back when the queue is full).
pub async fn enqueue<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    cmd: &NewCommand,
    now: u64,
    limit: u64,
) -> Result<Queued, EnqueueError> {
    let tag = ch.tag();
    if super::command_secrets::carries_secret(&cmd.request_type) && !cmd.sealed {
        return Err(EnqueueError::Unsealed);
    }
    if store.exists(&result_key(tag, &cmd.uuid)).await? {
        return Err(EnqueueError::Duplicate);
    }
    let n = store.increment(&log_counter(tag), 1).await? as u64;
    let rec = CommandResult {
        uuid: cmd.uuid.clone(),
        request_type: cmd.request_type.clone(),
        status: STATUS_QUEUED.into(),
        enqueued_at: now,
        answered_at: None,
        error_chain: Vec::new(),
        raw: String::new(),
        raw_omitted_bytes: None,
        lane: Some(cmd.lane),
        log: Some(n),
        not_now_count: 0,
        last_not_now_at: None,
        cancelled_at: None,
    };
    store
        .set(&result_key(tag, &cmd.uuid), &encode(&rec))
        .await?;
    store.set(&log_key(tag, n), cmd.uuid.as_bytes()).await?;
    let queued = queue_enqueue::enqueue(
        store,
        ch,
        &cmd.uuid,
        &cmd.request_type,
        cmd.body.clone(),
        cmd.sealed,
        cmd.lane,
        now,
        limit,
    )
    .await;
    match queued {
        Ok(q) => Ok(Queued {
            record: rec,
            behind_others: q.ahead > 0,
        }),
        Err(e) => {
            store
                .delete_many(&[&result_key(tag, &cmd.uuid), &log_key(tag, n)])
                .await?;
            Err(e.into())
        }
    }
}

/// What an admin's cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled(CommandResult),
    /// Delivered and not answered yet.
    InFlight,
    /// Answered (or cancelled) already.
    Finished(CommandResult),
    Unknown,
}

/// Cancels a command not delivered yet (or deferred with NotNow).
pub async fn cancel<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
    now: u64,
) -> Result<CancelOutcome, QueueError> {
    let tag = ch.tag();
    match queue_enqueue::cancel(store, ch, uuid).await? {
        queue_enqueue::Cancel::Cancelled(cmd) => {
            let mut rec = result(store, tag, uuid).await?.unwrap_or(CommandResult {
                uuid: uuid.to_owned(),
                request_type: cmd.request_type.clone(),
                status: String::new(),
                enqueued_at: cmd.enqueued_at,
                answered_at: None,
                error_chain: Vec::new(),
                raw: String::new(),
                raw_omitted_bytes: None,
                lane: Some(cmd.lane),
                log: None,
                not_now_count: 0,
                last_not_now_at: None,
                cancelled_at: None,
            });
            rec.status = STATUS_CANCELLED.into();
            rec.cancelled_at = Some(now);
            store.set(&result_key(tag, uuid), &encode(&rec)).await?;
            record_completion(store, tag, uuid, rec.log, now).await?;
            Ok(CancelOutcome::Cancelled(rec))
        }
        queue_enqueue::Cancel::InFlight => Ok(CancelOutcome::InFlight),
        queue_enqueue::Cancel::Finished | queue_enqueue::Cancel::Unknown => {
            match result(store, tag, uuid).await? {
                Some(r) if r.finished() => Ok(CancelOutcome::Finished(r)),
                _ => Ok(CancelOutcome::Unknown),
            }
        }
    }
}

/// Re-enrollment: cancels every command of the channel not answered yet (see
/// [`queue_enqueue::drain`]) and marks each cancelled in its record and history. Returns how
/// many.
pub async fn cancel_all<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    now: u64,
) -> Result<u64, QueueError> {
    let tag = ch.tag();
    let drained = queue_enqueue::drain(store, ch).await?;
    for cmd in &drained {
        if let Some(mut rec) = result(store, tag, &cmd.uuid).await? {
            rec.status = STATUS_CANCELLED.into();
            rec.cancelled_at = Some(now);
            store
                .set(&result_key(tag, &cmd.uuid), &encode(&rec))
                .await?;
            record_completion(store, tag, &cmd.uuid, rec.log, now).await?;
        }
    }
    Ok(drained.len() as u64)
}

/// A page of a channel's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub limit: usize,
    /// Only log positions below this (the `next` of the previous page).
    pub before: Option<u64>,
    /// Only this [`CommandResult::status`].
    pub status: Option<String>,
    pub request_type: Option<String>,
    /// Enqueued at or after (Unix seconds).
    pub from: Option<u64>,
    /// Enqueued at or before (Unix seconds).
    pub to: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub commands: Vec<CommandResult>,
    /// Where the next page starts; `None` at the end. A selective filter may return a
    /// short (even empty) page with a `next`: each page reads a bounded part of the log.
    pub next: Option<u64>,
}

/// Log slots read per batch, and at most per page (times the page size).
const LOG_BATCH: u64 = 50;
const LOG_BUDGET_PER_ITEM: u64 = 5;
const LOG_BUDGET_MIN: u64 = 200;
/// Commands enqueued concurrently may land in the log slightly out of time order.
const LOG_TIME_SLACK: u64 = 300;

/// The channel's commands, newest first.
pub async fn history<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    q: &HistoryQuery,
) -> Result<HistoryPage, KvError> {
    let tag = ch.tag();
    let top = store.counter(&log_counter(tag)).await?.max(0) as u64;
    let floor = match store.get(&floor_key(tag)).await? {
        Some(raw) => decode::<u64>(&raw, "history floor")?,
        None => 0,
    };
    let limit = q.limit.max(1);
    let budget = (limit as u64 * LOG_BUDGET_PER_ITEM).max(LOG_BUDGET_MIN);
    let mut pos = q.before.map_or(top, |b| b.saturating_sub(1).min(top));
    let mut out = Vec::new();
    let mut read = 0;
    while pos > floor {
        if read >= budget {
            return Ok(HistoryPage {
                commands: out,
                next: Some(pos + 1),
            });
        }
        let low = pos.saturating_sub(LOG_BATCH - 1).max(floor + 1);
        let slots: Vec<u64> = (low..=pos).rev().collect();
        read += slots.len() as u64;
        let keys: Vec<String> = slots.iter().map(|n| log_key(tag, *n)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let uuids = store.get_many(&refs).await?;
        let found: Vec<(u64, String)> = slots
            .iter()
            .zip(uuids)
            .filter_map(|(n, u)| Some((*n, String::from_utf8(u?).ok()?)))
            .collect();
        let rkeys: Vec<String> = found.iter().map(|(_, u)| result_key(tag, u)).collect();
        let rrefs: Vec<&str> = rkeys.iter().map(String::as_str).collect();
        let recs = store.get_many(&rrefs).await?;
        for ((n, _), raw) in found.iter().zip(recs) {
            let Some(raw) = raw else { continue };
            let Ok(r) = serde_json::from_slice::<CommandResult>(&raw) else {
                continue;
            };
            if let Some(from) = q.from {
                if r.enqueued_at + LOG_TIME_SLACK < from {
                    // Older than the range, and so is everything below.
                    return Ok(HistoryPage {
                        commands: out,
                        next: None,
                    });
                }
                if r.enqueued_at < from {
                    continue;
                }
            }
            if q.to.is_some_and(|to| r.enqueued_at > to)
                || q.status.as_ref().is_some_and(|s| *s != r.status)
                || q.request_type
                    .as_ref()
                    .is_some_and(|t| *t != r.request_type)
            {
                continue;
            }
            out.push(r);
            if out.len() == limit {
                let next = (*n > floor + 1).then_some(*n);
                return Ok(HistoryPage {
                    commands: out,
                    next,
                });
            }
        }
        pos = low - 1;
    }
    Ok(HistoryPage {
        commands: out,
        next: None,
    })
}

/// The retention purge's cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeState {
    /// Every completion slot up to here has been handled.
    pub pos: u64,
    /// A missing slot right after `pos` (a completion being written, or one that died
    /// before writing) and when it was first seen.
    #[serde(default)]
    pub hole: Option<(u64, u64)>,
}

/// A completion slot missing this long is given up.
pub const PURGE_HOLE_GRACE: u64 = 3600;
/// Completion slots handled per tick at most.
pub const PURGE_BUDGET: u64 = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub purged: u64,
    /// More finished commands wait (old enough or not).
    pub behind: u64,
}

/// Deletes the records and history entries of commands finished more than
/// `retention_secs` ago, oldest first, handling at most `budget` completion slots. Safe
/// when two ticks overlap (deletes are idempotent; the cursor only moves forward).
pub async fn purge_expired<B: Backend>(
    store: &Store<B>,
    now: u64,
    retention_secs: u64,
    budget: u64,
) -> Result<PurgeReport, KvError> {
    let state: PurgeState = match store.get(PURGE_KEY).await? {
        Some(raw) => decode(&raw, "purge state")?,
        None => PurgeState::default(),
    };
    let top = store.counter(&done_counter()).await?.max(0) as u64;
    let mut st = state.clone();
    let mut report = PurgeReport::default();
    let mut handled = 0;
    'outer: while st.pos < top && handled < budget {
        let from = st.pos + 1;
        let to = (from + LOG_BATCH - 1)
            .min(top)
            .min(from + (budget - handled) - 1);
        let keys: Vec<String> = (from..=to).map(done_key).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        for (n, raw) in (from..=to).zip(store.get_many(&refs).await?) {
            match raw {
                None => match st.hole {
                    Some((h, seen)) if h == n && now.saturating_sub(seen) >= PURGE_HOLE_GRACE => {}
                    Some((h, _)) if h == n => break 'outer,
                    _ => {
                        st.hole = Some((n, now));
                        break 'outer;
                    }
                },
                Some(raw) => {
                    let c: Completion = decode(&raw, "completion")?;
                    if c.t.saturating_add(retention_secs) > now {
                        break 'outer;
                    }
                    purge_one(store, &c).await?;
                    store.delete(&done_key(n)).await?;
                    report.purged += 1;
                }
            }
            st.pos = n;
            st.hole = None;
            handled += 1;
        }
    }
    report.behind = top.saturating_sub(st.pos);
    if st != state {
        let new = st.clone();
        let r = store
            .update::<KvError>(PURGE_KEY, 20, |raw| {
                let cur: PurgeState = decode(raw, "purge state")?;
                if cur.pos > new.pos {
                    return Ok(None);
                }
                Ok(Some(encode(&new)))
            })
            .await;
        match r {
            Ok(Some(_)) => {}
            // Absent: the first purge ever creates it (a concurrent first tick would write
            // an equally valid cursor).
            Ok(None) if state == PurgeState::default() => {
                if !store.exists(PURGE_KEY).await? {
                    store.set(PURGE_KEY, &encode(&new)).await?;
                }
            }
            Ok(None) => {}
            Err(mdm_kv::UpdateError::Kv(e) | mdm_kv::UpdateError::Rejected(e)) => return Err(e),
        }
    }
    Ok(report)
}

/// Removes one finished command's record and history slot, and moves the channel's
/// history floor over slots that are gone.
async fn purge_one<B: Backend>(store: &Store<B>, c: &Completion) -> Result<(), KvError> {
    // The UUID may have been reused by a newer command on the channel: keep that one.
    if let Some(r) = result(store, &c.c, &c.u).await? {
        if r.finished() && r.finished_at() == Some(c.t) {
            store.delete(&result_key(&c.c, &c.u)).await?;
        } else {
            return Ok(());
        }
    }
    let Some(n) = c.n else {
        return Ok(());
    };
    store.delete(&log_key(&c.c, n)).await?;
    let floor = match store.get(&floor_key(&c.c)).await? {
        Some(raw) => decode::<u64>(&raw, "history floor")?,
        None => 0,
    };
    if n <= floor {
        return Ok(());
    }
    // Never walk onto the newest slot: an enqueue may be about to write it.
    let top = store.counter(&log_counter(&c.c)).await?.max(0) as u64;
    let limit = top.saturating_sub(1).min(floor + 32);
    if limit <= floor {
        return Ok(());
    }
    let keys: Vec<String> = (floor + 1..=limit).map(|k| log_key(&c.c, k)).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut new_floor = floor;
    for (k, v) in (floor + 1..=limit).zip(store.get_many(&refs).await?) {
        if v.is_some() {
            break;
        }
        new_floor = k;
    }
    if new_floor > floor {
        store.set(&floor_key(&c.c), &encode(&new_floor)).await?;
    }
    Ok(())
}

/// Variable: days completed command records are kept (default 30).
pub const COMMAND_RETENTION_DAYS: &str = "command_retention_days";
pub const RETENTION_DAYS_DEFAULT: u64 = 30;

/// The scheduled tick's share: purge expired command records (bounded work). Reports
/// what it did, or the configuration/store error, as JSON; never fails the tick.
pub async fn retention_tick(p: &impl crate::Platform) -> Value {
    use crate::{Clock, Variables};
    let days = match p.vars().get(COMMAND_RETENTION_DAYS).await {
        Ok(None) => RETENTION_DAYS_DEFAULT,
        Ok(Some(v)) if v.trim().is_empty() => RETENTION_DAYS_DEFAULT,
        Ok(Some(v)) => match v.trim().parse::<u64>() {
            Ok(d) if (1..=3650).contains(&d) => d,
            _ => {
                return json!({ "error": format!("variable {COMMAND_RETENTION_DAYS} must be a number of days from 1 to 3650") });
            }
        },
        Err(e) => return json!({ "error": format!("variable {COMMAND_RETENTION_DAYS}: {e}") }),
    };
    let now = p.clock().unix_seconds();
    let mut out = match purge_expired(p.store(), now, days * 86_400, PURGE_BUDGET).await {
        Ok(r) => json!({ "retention_days": days, "purged": r.purged, "behind": r.behind }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    // Device logs keep the same retention as command results.
    out["device_logs"] =
        match super::devlog::purge(p.store(), now, days * 86_400, PURGE_BUDGET).await {
            Ok(r) => json!({ "purged": r.deleted, "behind": r.more }),
            Err(e) => json!({ "error": e.to_string() }),
        };
    out
}

//! The record of every command from enqueue to answer, behind the admin API and the
//! command loop: [`CommandResult`] (status, times, error chain, the device's report), its
//! place in the channel's history, and the records enqueue and cancel write.
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
//!
//! Reading the history a page at a time is `history.rs`; the retention purge
//! (and its cursor `cpurge`), `retention.rs`.
//!
//! Every operation reads and writes a fixed number of keys, whatever the length of the
//! queue or of the history.

use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store};

use crate::mdm::report::ErrorEntry;
use crate::queue;
use crate::queue::{Channel, Lane, QueueError};
use crate::record::{self, Record, Stored, Writes};

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
    /// before any answer, or when the report was larger than [`crate::mdm::connect::MAX_RAW_KEPT`].
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

impl Record for CommandResult {
    /// (channel tag, CommandUUID)
    type Id<'a> = (&'a str, &'a str);
    const NAME: &'static str = "command record";
    const ATTEMPTS: usize = 20;
    fn key((channel_tag, uuid): (&str, &str)) -> String {
        format!("res:{channel_tag}:{}", segment(uuid))
    }
}

impl Record for Completion {
    /// Its place in the finishing order.
    type Id<'a> = u64;
    const NAME: &'static str = "completion";
    fn key(n: u64) -> String {
        format!("cdone:{n}")
    }
}

/// The n-th command enqueued on a channel (`clog:<c>:<n>`, its UUID as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct LoggedCommand(pub String);

impl Record for LoggedCommand {
    /// (channel tag, n)
    type Id<'a> = (&'a str, u64);
    const NAME: &'static str = "command history slot";
    fn key((channel_tag, n): (&str, u64)) -> String {
        format!("clog:{channel_tag}:{n}")
    }
    record::stored_as_text!();
}

/// A channel's history floor (`clogf:<c>`, JSON number): every log slot at or below it
/// is purged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct HistoryFloor(pub u64);

impl Record for HistoryFloor {
    /// The channel tag.
    type Id<'a> = &'a str;
    const NAME: &'static str = "history floor";
    fn key(channel_tag: &str) -> String {
        format!("clogf:{channel_tag}")
    }
}

pub(crate) fn log_counter(channel_tag: &str) -> CounterKey {
    CounterKey::new(&format!("clog:{channel_tag}")).expect("segments are key-safe")
}

pub(crate) fn done_counter() -> CounterKey {
    CounterKey::new("cdone").expect("key-safe")
}

/// Log (and completion) slots read per batch.
pub(crate) const LOG_BATCH: u64 = 50;

pub(crate) async fn record_completion<B: Backend>(
    store: &Store<B>,
    tag: &str,
    uuid: &str,
    log: Option<u64>,
    at: u64,
) -> Result<(), KvError> {
    let mut writes = Writes::default();
    completion_into(store, tag, uuid, log, at, &mut writes).await?;
    writes.save(store).await
}

/// [`record_completion`] with its entry added to `writes`, for a caller that writes it
/// with others (the place in the order is taken now).
pub(crate) async fn completion_into<B: Backend>(
    store: &Store<B>,
    tag: &str,
    uuid: &str,
    log: Option<u64>,
    at: u64,
    writes: &mut Writes,
) -> Result<(), KvError> {
    let n = store.increment(&done_counter(), 1).await? as u64;
    let c = Completion {
        c: tag.to_owned(),
        u: uuid.to_owned(),
        n: log,
        t: at,
    };
    writes.put(&c, n)?;
    Ok(())
}

/// A command record by channel tag and UUID.
pub async fn result<B: Backend>(
    store: &Store<B>,
    channel_tag: &str,
    uuid: &str,
) -> Result<Option<CommandResult>, KvError> {
    CommandResult::load_valid(store, (channel_tag, uuid)).await
}

/// A command for [`enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    pub uuid: String,
    pub request_type: String,
    /// The command plist, sealed when `sealed` (a command carrying a secret must be:
    /// [`crate::command::secrets::seal`]).
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
/// without a push of its own ([`queue::enqueue::Enqueued::ahead`]).
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
    if crate::command::secrets::carries_secret(&cmd.request_type) && !cmd.sealed {
        return Err(EnqueueError::Unsealed);
    }
    if CommandResult::exists(store, (tag, &cmd.uuid)).await? {
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
    Writes::default()
        .put(&rec, (tag, &cmd.uuid))?
        .put(&LoggedCommand(cmd.uuid.clone()), (tag, n))?
        .save(store)
        .await?;
    let queued = queue::enqueue::enqueue(
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
        Ok(q) => {
            crate::metrics::bump(store, crate::metrics::Counter::CommandsEnqueued).await;
            Ok(Queued {
                record: rec,
                behind_others: q.ahead > 0,
            })
        }
        Err(e) => {
            store
                .delete_many(&[
                    &CommandResult::key((tag, &cmd.uuid)),
                    &LoggedCommand::key((tag, n)),
                ])
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
    match queue::enqueue::cancel(store, ch, uuid).await? {
        queue::enqueue::Cancel::Cancelled(cmd) => {
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
            rec.save(store, (tag, uuid)).await?;
            record_completion(store, tag, uuid, rec.log, now).await?;
            Ok(CancelOutcome::Cancelled(rec))
        }
        queue::enqueue::Cancel::InFlight => Ok(CancelOutcome::InFlight),
        queue::enqueue::Cancel::Finished | queue::enqueue::Cancel::Unknown => {
            match result(store, tag, uuid).await? {
                Some(r) if r.finished() => Ok(CancelOutcome::Finished(r)),
                _ => Ok(CancelOutcome::Unknown),
            }
        }
    }
}

/// Re-enrollment: cancels every command of the channel not answered yet (see
/// [`queue::enqueue::drain`]) and marks each cancelled in its record and history. Returns how
/// many.
pub async fn cancel_all<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    now: u64,
) -> Result<u64, QueueError> {
    let tag = ch.tag();
    let drained = queue::enqueue::drain(store, ch).await?;
    for cmd in &drained {
        if let Some(mut rec) = result(store, tag, &cmd.uuid).await? {
            rec.status = STATUS_CANCELLED.into();
            rec.cancelled_at = Some(now);
            rec.save(store, (tag, &cmd.uuid)).await?;
            record_completion(store, tag, &cmd.uuid, rec.log, now).await?;
        }
    }
    Ok(drained.len() as u64)
}

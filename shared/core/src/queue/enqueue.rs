//! The server's side of a command queue: appending a command, and taking out again one not
//! delivered yet (an admin's cancel) or all the channel's unanswered ones (re-enrollment).
//! Storage and key layout are `queue/mod.rs`'s.
//!
//! An enqueue that stalls past [`HOLE_TTL`](crate::queue::HOLE_TTL) notices that the head gave its number up and
//! queues again under a fresh one.

use mdm_kv::{Backend, Store};

use crate::queue::{
    Channel, EntryState, Lane, Location, QueueError, QueuedCommand, counts, head, locate,
    transition,
};
use crate::record::{Record, Stored, Writes};

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
        Writes::default()
            .put(&Location(lane, seq), (ch, uuid))?
            .put(&cmd, (ch, lane, seq))?
            .save(store)
            .await?;
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
        let skipped = QueuedCommand::load(store, (ch, lane, seq))
            .await?
            .is_some_and(|c| c.state == EntryState::Queued);
        if !skipped {
            return Ok(Enqueued {
                command: cmd,
                ahead,
            });
        }
        QueuedCommand::delete(store, (ch, lane, seq)).await?;
    }
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
    let r = transition(store, ch, lane, seq, |c| match c.state {
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
            Location::delete(store, (ch, uuid)).await?;
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
        let ids: Vec<(&Channel, Lane, u64)> = chunk.iter().map(|(l, n)| (ch, *l, *n)).collect();
        for (&(_, lane, seq), cmd) in ids.iter().zip(QueuedCommand::load_many(store, &ids).await?) {
            let Some(cmd) = cmd else { continue };
            if cmd.finished() {
                continue;
            }
            let r = transition(store, ch, lane, seq, |c| {
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
        let uuids: Vec<String> = out.iter().map(|c| Location::key((ch, &c.uuid))).collect();
        let refs: Vec<&str> = uuids.iter().map(String::as_str).collect();
        store.delete_many(&refs).await?;
    }
    Ok(out)
}

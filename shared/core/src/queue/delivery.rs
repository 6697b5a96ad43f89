//! The device's side of a command queue, over one exchange: the next command to send,
//! NotNow, Idle, and the answer that completes a command. Storage and key layout are
//! `queue/mod.rs`'s.
//!
//! Delivering the next command reads the head, the lane counters and, normally, one entry:
//! O(1) in the queue length. Commands answered NotNow leave the frontier for the head's
//! deferred list, so they never make the device re-read answered commands behind them. An
//! exchange ends at the device's next `Idle`; a command deferred in the current exchange
//! is not delivered again before that, then comes first again (FIFO within its lane).

use std::collections::BTreeMap;

use mdm_kv::{Backend, KvError, Store};

use crate::queue::{
    Channel, Deferred, EntryState, HOLE_TTL, Head, Lane, Location, QueueError, QueuedCommand, head,
    locate, modify_head, transition,
};
use crate::record::{Record, Stored};

/// Entries read per batch while looking for the next deliverable command.
const SCAN_BATCH: u64 = 8;
/// Attempts of [`next`] when an admin cancels the command it was about to deliver.
const DELIVERY_ATTEMPTS: usize = 4;

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
    let h = Head::decode_at(&Head::key(ch), raw.ok_or(QueueError::NoChannel)?)?;
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
    let r = transition(store, ch, lane, seq, |c| match c.state {
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
    let r = transition(store, ch, lane, seq, |c| {
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
    Location::delete(store, (ch, uuid)).await?;
    // A deferred command sits behind the frontier, which will not pass it again.
    let h = head(store, ch).await?.ok_or(QueueError::NoChannel)?;
    if h.deferred.iter().any(|d| d.0 == lane && d.1 == seq) {
        modify_head(store, ch, |h| {
            h.deferred.retain(|d| !(d.0 == lane && d.1 == seq));
        })
        .await?;
        QueuedCommand::delete(store, (ch, lane, seq)).await?;
    }
    Ok(Some(cmd))
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
            match QueuedCommand::load(store, (ch, lane, d.1)).await? {
                None => s.drop.push((lane, d.1)),
                Some(cmd) => {
                    if cmd.finished() {
                        if cmd.state == EntryState::Cancelled {
                            s.cancelled_passed += 1;
                        }
                        s.drop.push((lane, d.1));
                        s.purge.push(QueuedCommand::key((ch, lane, d.1)));
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
            let ids: Vec<(&Channel, Lane, u64)> = (seq..=to).map(|n| (ch, lane, n)).collect();
            for (n, entry) in (seq..=to).zip(QueuedCommand::load_many(store, &ids).await?) {
                let hole_id = format!("{}{n}", lane.tag());
                match entry {
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
                    Some(cmd) => {
                        if cmd.finished() {
                            if leading {
                                s.advance.insert(lane, n + 1);
                                s.purge.push(QueuedCommand::key((ch, lane, n)));
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
        let r = transition(store, ch, lane, seq, |c| {
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
    Err(QueueError::Store(KvError::Contended(Head::key(ch))))
}

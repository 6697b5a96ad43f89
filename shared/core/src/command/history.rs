//! A channel's command history, newest first, a bounded page at a time with filters
//! (status, RequestType, enqueue time): read from the log `records.rs` keeps.

use mdm_kv::{Backend, KvError, Store};

use crate::command::records::{CommandResult, HistoryFloor, LOG_BATCH, LoggedCommand, log_counter};
use crate::queue::Channel;
use crate::record::Stored;

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

/// Log slots read at most per page (times the page size).
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
    let floor = HistoryFloor::load(store, tag).await?.unwrap_or_default().0;
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
        let ids: Vec<(&str, u64)> = slots.iter().map(|n| (tag, *n)).collect();
        let uuids = LoggedCommand::load_many_valid(store, &ids).await?;
        let found: Vec<(u64, String)> = slots
            .iter()
            .zip(uuids)
            .filter_map(|(n, u)| Some((*n, u?.0)))
            .collect();
        let rids: Vec<(&str, &str)> = found.iter().map(|(_, u)| (tag, u.as_str())).collect();
        let recs = CommandResult::load_many_valid(store, &rids).await?;
        for ((n, _), r) in found.iter().zip(recs) {
            let Some(r) = r else { continue };
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

//! A channel's command history, newest first, a bounded page at a time with filters
//! (status, RequestType, enqueue time): read from the log `command_records.rs` keeps.

use mdm_kv::{Backend, KvError, Store};

use super::command_records::{
    CommandResult, LOG_BATCH, decode, floor_key, log_counter, log_key, result_key,
};
use super::queue::Channel;

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

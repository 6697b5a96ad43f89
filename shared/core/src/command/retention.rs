//! The retention purge: deletes the records and history entries of commands finished
//! longer ago than the retention, oldest first, walking the finishing order
//! (`cdone:<n>`) rather than listing keys; and the scheduled tick that runs it.
//!
//! Key layout: `cpurge`, the purge's cursor ([`PurgeState`]); the rest is
//! `records.rs`'s.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use mdm_kv::{Backend, KvError, Store};

use crate::command::records::{
    CommandResult, Completion, HistoryFloor, LOG_BATCH, LoggedCommand, done_counter, log_counter,
    result,
};
use crate::record::{Record, Stored};

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

impl Record for PurgeState {
    type Id<'a> = ();
    const NAME: &'static str = "command purge state";
    const ATTEMPTS: usize = 20;
    fn key((): ()) -> String {
        "cpurge".into()
    }
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
    let state = PurgeState::load(store, ()).await?.unwrap_or_default();
    let top = store.counter(&done_counter()).await?.max(0) as u64;
    let mut st = state.clone();
    let mut report = PurgeReport::default();
    let mut handled = 0;
    'outer: while st.pos < top && handled < budget {
        let from = st.pos + 1;
        let to = (from + LOG_BATCH - 1)
            .min(top)
            .min(from + (budget - handled) - 1);
        let slots: Vec<u64> = (from..=to).collect();
        for (n, c) in (from..=to).zip(Completion::load_many(store, &slots).await?) {
            match c {
                None => match st.hole {
                    Some((h, seen)) if h == n && now.saturating_sub(seen) >= PURGE_HOLE_GRACE => {}
                    Some((h, _)) if h == n => break 'outer,
                    _ => {
                        st.hole = Some((n, now));
                        break 'outer;
                    }
                },
                Some(c) => {
                    if c.t.saturating_add(retention_secs) > now {
                        break 'outer;
                    }
                    purge_one(store, &c).await?;
                    Completion::delete(store, n).await?;
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
        let moved = PurgeState::modify(store, (), |cur| {
            if cur.pos > new.pos {
                return Ok::<_, KvError>(false);
            }
            *cur = new.clone();
            Ok(true)
        })
        .await?;
        // Absent: the first purge ever creates it (a concurrent first tick would write an
        // equally valid cursor).
        if moved.is_none()
            && state == PurgeState::default()
            && !PurgeState::exists(store, ()).await?
        {
            new.save(store, ()).await?;
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
            CommandResult::delete(store, (&c.c, &c.u)).await?;
        } else {
            return Ok(());
        }
    }
    let Some(n) = c.n else {
        return Ok(());
    };
    LoggedCommand::delete(store, (&c.c, n)).await?;
    let floor = HistoryFloor::load(store, &c.c).await?.unwrap_or_default().0;
    if n <= floor {
        return Ok(());
    }
    // Never walk onto the newest slot: an enqueue may be about to write it.
    let top = store.counter(&log_counter(&c.c)).await?.max(0) as u64;
    let limit = top.saturating_sub(1).min(floor + 32);
    if limit <= floor {
        return Ok(());
    }
    // Only whether each slot is there counts: read raw.
    let keys: Vec<String> = (floor + 1..=limit)
        .map(|k| LoggedCommand::key((&c.c, k)))
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut new_floor = floor;
    for (k, v) in (floor + 1..=limit).zip(store.get_many(&refs).await?) {
        if v.is_some() {
            break;
        }
        new_floor = k;
    }
    if new_floor > floor {
        HistoryFloor(new_floor).save(store, &c.c).await?;
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
        match crate::mdm::devlog::purge(p.store(), now, days * 86_400, PURGE_BUDGET).await {
            Ok(r) => json!({ "purged": r.deleted, "behind": r.more }),
            Err(e) => json!({ "error": e.to_string() }),
        };
    out
}

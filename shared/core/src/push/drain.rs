//! The scheduled push drain: retries APNs asked us to wait for, follow-ups owed at the
//! end of a coalescing window and pushes owed for NotNow'd commands, found through the
//! timing wheel of [`crate::push::state`] and sent as [`crate::push::send`] sends any push.
//!
//! [`drain_retries`] reads only the wheel slots of the minutes since its cursor (5 per
//! call with a 5-minute scheduler; at most one full turn of 1440 after a long outage) and
//! the devices due in them: O(due) work, never a key listing. A drain claims each device
//! with a short lease in its state, so overlapping drains do not push a device twice.

use serde::Serialize;

use crate::platform::{Clock, Platform};
use crate::push::apns::PushError;
use crate::push::outcome::{PushOutcome, SkipReason};
use crate::push::send::{send_and_record, target};
use crate::push::state::{
    DrainCursor, DueSlot, PushReason, SLOT_BATCH, SLOT_SECS, WHEEL_SLOTS, cursor_claim,
    is_unreachable, load_record, load_state, modify_state, slot_of_minute, unschedule,
};
use crate::queue::{self, Channel, QueueError};
use crate::record::{Record, Stored};

/// How long a drain owns a device it is pushing.
pub const LEASE_SECS: u64 = 120;

/// What one [`drain_retries`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    pub slots_scanned: u64,
    /// Wheel entries due.
    pub due: u64,
    /// Pushes sent, and how they came out.
    pub pushed: u64,
    pub delivered: u64,
    pub rescheduled: u64,
    pub gave_up: u64,
    pub unreachable: u64,
    pub failed: u64,
    /// Due entries with nothing to do (outdated, queue empty, no longer enrolled).
    pub skipped: u64,
    /// The budget ran out: due work is left for the next call.
    pub more: bool,
    /// The last fully processed minute (Unix s / 60).
    pub cursor: Option<u64>,
    /// At most a few errors, for the tick's report.
    pub errors: Vec<String>,
}

enum Claimed {
    Retry,
    FollowUp,
    NotNow,
    NotDue,
    Busy,
}

/// Work on one due wheel entry; returns the outcome (for the report).
async fn drain_one(p: &impl Platform, device_id: &str, now: u64) -> Result<PushOutcome, PushError> {
    let mut claimed = Claimed::NotDue;
    modify_state(p.store(), device_id, true, |st| {
        let retry_due = st.retry.as_ref().is_some_and(|r| r.next_at <= now);
        let followup_due = st.followup_at.is_some_and(|t| t <= now);
        let not_now_due = st.not_now.due_at.is_some_and(|t| t <= now);
        claimed = if !retry_due && !followup_due && !not_now_due {
            Claimed::NotDue
        } else if st.lease_until > now {
            Claimed::Busy
        } else {
            st.lease_until = now + LEASE_SECS;
            if retry_due {
                Claimed::Retry
            } else if followup_due {
                Claimed::FollowUp
            } else {
                Claimed::NotNow
            }
        };
    })
    .await?;
    let reason = match claimed {
        Claimed::NotDue => {
            return Ok(PushOutcome::Skipped {
                why: SkipReason::NotDue,
            });
        }
        Claimed::Busy => {
            return Ok(PushOutcome::Skipped {
                why: SkipReason::Busy,
            });
        }
        Claimed::Retry => PushReason::Retry,
        Claimed::FollowUp => PushReason::FollowUp,
        Claimed::NotNow => PushReason::NotNow,
    };
    let release = |why: SkipReason| async move {
        modify_state(p.store(), device_id, true, |st| {
            st.lease_until = 0;
            st.followup_at = None;
            // Nothing left to wake it for, or no way to: the next deferral starts over.
            st.not_now.due_at = None;
            st.not_now.step = 0;
            if why != SkipReason::QueueEmpty {
                st.retry = None;
            }
        })
        .await?;
        Ok::<_, PushError>(PushOutcome::Skipped { why })
    };
    let rec = load_record(p.store(), device_id).await?;
    let push = match target(rec.as_ref()) {
        Ok(push) => push,
        Err(why) => return release(why).await,
    };
    let st = load_state(p.store(), device_id).await?.unwrap_or_default();
    if is_unreachable(&st, &push) {
        return release(SkipReason::Unreachable).await;
    }
    if matches!(reason, PushReason::FollowUp | PushReason::NotNow) {
        match queue::pending(p.store(), &Channel::device(device_id)).await {
            Ok(0) | Err(QueueError::NoChannel) => return release(SkipReason::QueueEmpty).await,
            // Unknown: push anyway, a spare push is harmless.
            Ok(_) | Err(_) => {}
        }
    }
    let now = p.clock().unix_seconds();
    modify_state(p.store(), device_id, true, |st| {
        st.window_start = now;
        st.followup_at = None;
        // One push wakes the device for everything it owes.
        st.not_now.due_at = None;
    })
    .await?;
    send_and_record(p, device_id, &push, reason).await
}

fn count(report: &mut DrainReport, outcome: &PushOutcome) {
    match outcome {
        PushOutcome::Skipped { .. } | PushOutcome::Coalesced { .. } => report.skipped += 1,
        PushOutcome::RetryPending { .. } => report.skipped += 1,
        o => {
            report.pushed += 1;
            match o {
                PushOutcome::Delivered { .. } => report.delivered += 1,
                PushOutcome::RetryScheduled { .. } => report.rescheduled += 1,
                PushOutcome::GaveUp { .. } => report.gave_up += 1,
                PushOutcome::Unreachable { .. } => report.unreachable += 1,
                _ => report.failed += 1,
            }
        }
    }
}

fn note_error(report: &mut DrainReport, e: impl std::fmt::Display) {
    if report.errors.len() < 5 {
        report.errors.push(e.to_string());
    }
}

/// Sends the retries and follow-up pushes that are due, at most `budget` pushes per call
/// (the scheduled tick calls this). Safe when calls overlap.
pub async fn drain_retries(p: &impl Platform, budget: usize) -> DrainReport {
    let mut report = DrainReport::default();
    let store = p.store();
    let now = p.clock().unix_seconds();
    let current = now / SLOT_SECS;
    let last_complete = current.saturating_sub(1);
    let oldest = last_complete.saturating_sub(WHEEL_SLOTS);
    let cursor_key = DrainCursor::key(());
    // Kept as read: the cursor moves by compare-and-swap on it.
    let cursor_raw = match store.get(&cursor_key).await {
        Ok(v) => v,
        Err(e) => {
            note_error(&mut report, e);
            return report;
        }
    };
    let stored_cursor: Option<u64> = cursor_raw
        .as_deref()
        .and_then(|r| DrainCursor::decode(r).ok())
        .map(|c| c.0);
    // Never scanned (or longer ago than a full turn): one full turn covers every slot.
    let start = stored_cursor.unwrap_or(oldest).max(oldest) + 1;
    let minutes: Vec<u64> = (start..=current).collect();
    let mut done_through = stored_cursor.unwrap_or(oldest).max(oldest);
    let mut budget_left = budget;
    // Entries that need no push still cost store operations: bound them too.
    let mut entries_left = budget.saturating_mul(4).max(16);
    'scan: for chunk in minutes.chunks(SLOT_BATCH) {
        let ids: Vec<u64> = chunk.iter().map(|m| slot_of_minute(*m)).collect();
        let slots = match DueSlot::load_many_valid(store, &ids).await {
            Ok(s) => s,
            Err(e) => {
                note_error(&mut report, e);
                break;
            }
        };
        for (&minute, raw) in chunk.iter().zip(slots) {
            report.slots_scanned += 1;
            let map = raw.unwrap_or_default().0;
            let mut due: Vec<(String, u64)> = map.into_iter().filter(|(_, t)| *t <= now).collect();
            due.sort_by_key(|(d, t)| (*t, d.clone()));
            let mut handled: Vec<(String, u64)> = Vec::new();
            let mut complete = true;
            for (device, at) in due {
                if budget_left == 0 || entries_left == 0 {
                    report.more = true;
                    complete = false;
                    break;
                }
                entries_left -= 1;
                report.due += 1;
                match drain_one(p, &device, now).await {
                    Ok(outcome) => {
                        if !matches!(outcome, PushOutcome::Skipped { .. }) {
                            budget_left -= 1;
                        }
                        let busy = matches!(
                            outcome,
                            PushOutcome::Skipped {
                                why: SkipReason::Busy
                            }
                        );
                        count(&mut report, &outcome);
                        if busy {
                            // Another drain owns it and removes the entry.
                            complete = false;
                        } else {
                            handled.push((device, at));
                        }
                    }
                    Err(e) => {
                        note_error(&mut report, format!("{device}: {e}"));
                        complete = false;
                    }
                }
            }
            if let Err(e) = unschedule(store, slot_of_minute(minute), &handled).await {
                note_error(&mut report, e);
                complete = false;
            }
            if !complete {
                break 'scan;
            }
            if minute <= last_complete {
                done_through = minute;
            }
        }
    }
    if Some(done_through) != stored_cursor {
        let new = DrainCursor(done_through);
        let r = match &cursor_raw {
            Some(old) => {
                async {
                    let value = new.encode_at(&cursor_key)?;
                    store
                        .compare_and_swap(&cursor_key, old, &value)
                        .await
                        .map(|_| ())
                }
                .await
            }
            None => {
                async {
                    if store.claim(&cursor_claim()).await?
                        || !DrainCursor::exists(store, ()).await?
                    {
                        new.save(store, ()).await?;
                    }
                    Ok(())
                }
                .await
            }
        };
        if let Err(e) = r {
            note_error(&mut report, e);
        }
    }
    report.cursor = Some(done_through);
    report
}

//! APNs MDM push (Apple: "Sending MDM Commands to a Device"): waking a device so it connects to
//! the ServerURL and fetches its queued commands.
//!
//! The policy: when a device is pushed — at once, within a push already sent
//! (coalescing), after a retry APNs asked for, or later by the scheduled drain — and when
//! not (unreachable, not enrolled). Sending one push and what its answer does to the
//! device's state is [`crate::push::send`]; what an answer means, [`crate::push::outcome`].
//!
//! Coalescing ([`notify_enqueued`]): the first enqueue pushes at once and opens a window
//! of [`COALESCE_WINDOW_SECS`]; further enqueues within it that land behind commands the
//! device has still to fetch or answer push nothing (the exchange the push starts reaches
//! them) and owe one follow-up push at the window's end, sent by [`drain::drain_retries`] (the
//! scheduled tick) if the device still has pending commands then, in case the push was
//! lost. An enqueue with nothing ahead of it pushes even within the window: the device may
//! have emptied its queue and ended its exchange since the last push, and would otherwise
//! wait for the tick. So a burst of enqueues costs one push per device exchange. The window is claimed with compare-and-swap on the device's push
//! state, so concurrent enqueues agree on the single pusher. While a retry is pending
//! (APNs asked us to back off) enqueues wait for it.
//!
//! The records and their keys: [`crate::push::state`].

pub mod apns;
pub mod certificate;
pub mod drain;
pub mod outcome;
pub mod send;
pub mod state;
pub mod status;

use mdm_kv::{Backend, KvError, Store};

use crate::platform::{Clock, Platform};
use crate::push::apns::PushError;
use crate::push::outcome::{PushOutcome, SkipReason};
use crate::push::send::{send_and_record, target};
use crate::push::state::{NotNowRetry, PushReason, PushState};
use crate::push::state::{is_unreachable, load_record, modify_state, schedule};
use crate::record::Stored;

/// Enqueues within this many seconds of a push share it.
pub const COALESCE_WINDOW_SECS: u64 = 5;
/// First push after an exchange ended with deferred (NotNow) commands.
pub const NOT_NOW_FIRST_DELAY: u64 = 60;
pub const NOT_NOW_MAX_DELAY: u64 = 3_600;
/// Pushes for deferred commands per device in any hour, at most.
pub const NOT_NOW_PER_HOUR: usize = 4;

/// Pushes the device now (admin API, on demand): no coalescing, no backoff, and even a
/// device marked unreachable is tried (the answer refreshes the mark). Opens a coalescing
/// window, so enqueues right after it share this push.
pub async fn push_device(
    p: &impl Platform,
    device_id: &str,
    reason: PushReason,
) -> Result<PushOutcome, PushError> {
    let rec = load_record(p.store(), device_id).await?;
    let push = match target(rec.as_ref()) {
        Ok(push) => push,
        Err(why) => return Ok(PushOutcome::Skipped { why }),
    };
    let now = p.clock().unix_seconds();
    modify_state(p.store(), device_id, true, |st| {
        st.window_start = now;
        st.followup_at = None;
    })
    .await?;
    send_and_record(p, device_id, &push, reason).await
}

enum Decision {
    Push,
    Coalesce { followup_at: u64, new: bool },
    Wait { retry_at: u64 },
    Unreachable,
}

/// Call after a command was queued for `device_id`; `behind_others` when the queue held
/// other commands the device has still to fetch or answer ([`crate::mdm::connect::Queued`]).
/// Pushes unless a push within the last [`COALESCE_WINDOW_SECS`] covers it — the window
/// is open and the command is behind others, so the exchange that push started (or
/// starts) reaches it; then a follow-up is owed at the window's end in case the push was
/// lost, and [`drain::drain_retries`] sends it — or a retry is pending, or the device is
/// unreachable or not enrolled. A command with nothing ahead of it is pushed even in an
/// open window: the device may have emptied its queue since, and would not come back.
pub async fn notify_enqueued(
    p: &impl Platform,
    device_id: &str,
    behind_others: bool,
) -> Result<PushOutcome, PushError> {
    let rec = load_record(p.store(), device_id).await?;
    let push = match target(rec.as_ref()) {
        Ok(push) => push,
        Err(why) => return Ok(PushOutcome::Skipped { why }),
    };
    let now = p.clock().unix_seconds();
    let mut decision = Decision::Push;
    let state = modify_state(p.store(), device_id, false, |st| {
        decision = if is_unreachable(st, &push) {
            Decision::Unreachable
        } else if let Some(r) = st.retry.as_ref().filter(|r| r.next_at > now) {
            Decision::Wait {
                retry_at: r.next_at,
            }
        } else if behind_others
            && st.window_start > 0
            && now < st.window_start + COALESCE_WINDOW_SECS
            || st.lease_until > now
        {
            let new = st.followup_at.is_none();
            let at = *st
                .followup_at
                .get_or_insert((st.window_start + COALESCE_WINDOW_SECS).max(now + 1));
            Decision::Coalesce {
                followup_at: at,
                new,
            }
        } else {
            st.window_start = now;
            st.followup_at = None;
            Decision::Push
        };
    })
    .await?;
    if state.is_none() {
        // A concurrent call is creating this device's state and pushes right after: it
        // found no state after our command was queued, so its push covers the command.
        return Ok(PushOutcome::Coalesced { followup_at: None });
    }
    match decision {
        Decision::Unreachable => Ok(PushOutcome::Skipped {
            why: SkipReason::Unreachable,
        }),
        Decision::Wait { retry_at } => Ok(PushOutcome::RetryPending { retry_at }),
        Decision::Coalesce { followup_at, new } => {
            if new {
                schedule(p.store(), device_id, followup_at).await?;
            }
            Ok(PushOutcome::Coalesced {
                followup_at: Some(followup_at),
            })
        }
        Decision::Push => send_and_record(p, device_id, &push, PushReason::Enqueued).await,
    }
}

/// Owes the device a push at the scheduler's next [`drain::drain_retries`] instead of pushing
/// now: for bulk enqueues, where pushing every device inline would make one request wait
/// on APNs once per device. The drain sends it if the device still has pending commands
/// (and is enrolled and reachable) then.
pub async fn defer_push<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    now: u64,
) -> Result<(), KvError> {
    let mut due = None;
    modify_state(store, device_id, true, |st| {
        due = None;
        if st.followup_at.is_none_or(|t| t > now) {
            st.followup_at = Some(now);
            due = Some(now);
        }
    })
    .await?;
    if let Some(at) = due {
        schedule(store, device_id, at).await?;
    }
    Ok(())
}

impl NotNowRetry {
    /// The next owed push for an exchange that ended at `now` with deferred commands, or
    /// `None` when one is owed already.
    fn owe(&mut self, now: u64) -> Option<u64> {
        if self.due_at.is_some() {
            return None;
        }
        // A device that last deferred long ago starts again from the first delay.
        if self
            .recent
            .last()
            .is_none_or(|t| now.saturating_sub(*t) > 2 * NOT_NOW_MAX_DELAY)
        {
            self.step = 0;
        }
        let delay = NOT_NOW_FIRST_DELAY
            .saturating_mul(1 << self.step.min(16))
            .min(NOT_NOW_MAX_DELAY);
        let mut at = now + delay;
        if self.recent.len() >= NOT_NOW_PER_HOUR {
            let oldest = self.recent[self.recent.len() - NOT_NOW_PER_HOUR];
            at = at.max(oldest + 3_600);
        }
        self.recent.push(at);
        let keep = self.recent.len().saturating_sub(NOT_NOW_PER_HOUR);
        self.recent.drain(..keep);
        self.step = self.step.saturating_add(1);
        self.due_at = Some(at);
        Some(at)
    }
}

/// The device ended an exchange with commands it deferred (NotNow) still queued: it only
/// comes back when pushed, so a push is owed, sent by [`drain::drain_retries`] with backoff
/// (see [`NotNowRetry`]) if the commands are still pending then. Nothing changes while
/// one is owed already. Returns when the push is due, if a new one was owed.
pub async fn after_not_now<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    now: u64,
) -> Result<Option<u64>, KvError> {
    let mut due = None;
    modify_state(store, device_id, true, |st| {
        due = st.not_now.owe(now);
    })
    .await?;
    if let Some(at) = due {
        schedule(store, device_id, at).await?;
    }
    Ok(due)
}

/// Clears the unreachable mark. Call from the TokenUpdate handler after the new token is
/// stored. No-op for a device never pushed.
pub async fn clear_unreachable<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<(), KvError> {
    PushState::modify(store, device_id, |st| {
        Ok::<_, KvError>(st.unreachable.take().is_some())
    })
    .await?;
    Ok(())
}

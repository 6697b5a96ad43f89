//! APNs MDM push (Apple: "Sending MDM Commands to a Device"): waking a device so it connects to
//! the ServerURL and fetches its queued commands.
//!
//! The policy around the APNs client ([`super::apns`]: request building): when to push,
//! what each answer means ([`classify`]), backoff, coalescing and the retry drain.
//! Outbound HTTP goes through [`HttpClient`] (under Spin the push certificate is the
//! runtime config's `[[client_tls]]` for the APNs host: a component cannot present one
//! itself), time through [`Clock`].
//!
//! What an answer does:
//! - 200: delivered (accepted by APNs); clears a pending retry.
//! - 410 (`Unregistered`, `ExpiredToken`) and 400 `BadDeviceToken`: the device is marked
//!   unreachable for the token that failed. It is not pushed again until its next
//!   TokenUpdate: [`clear_unreachable`] clears the mark, and a TokenUpdate bringing a
//!   different token makes the mark moot even without it (the mark carries a fingerprint
//!   of the dead token).
//! - 403 (`BadCertificate`, `BadCertificateEnvironment`, `Forbidden`, ...): the push
//!   certificate is marked failing ([`certificate_status`]); not retried. A later 200
//!   marks it ok again. A transport failure naming TLS or a certificate (a failed
//!   handshake) also marks it failing, but is retried like any transport error. Under
//!   TLS 1.3 a client certificate the server refuses (or none at all: no `[[client_tls]]`)
//!   often surfaces only as a closed connection: then it is a plain transport retry.
//! - 429, 5xx and transport errors: retried with exponential backoff — [`BACKOFF_INITIAL_SECS`]
//!   doubling to [`BACKOFF_MAX_SECS`], each delay drawn uniformly from [half, full] of the
//!   step (jitter) — or after `Retry-After` if APNs asks for longer (capped at
//!   [`RETRY_AFTER_MAX_SECS`]). Given up [`GIVE_UP_SECS`] after the first failure.
//! - any other answer (`BadTopic`, `TopicDisallowed`, `DeviceTokenNotForTopic`,
//!   `PayloadTooLarge`, `MissingTopic`, ...): recorded as a failure with the reason, not
//!   retried (configuration or a bug; repeating would fail the same way).
//!
//! Coalescing ([`notify_enqueued`]): the first enqueue pushes at once and opens a window
//! of [`COALESCE_WINDOW_SECS`]; further enqueues within it that land behind commands the
//! device has still to fetch or answer push nothing (the exchange the push starts reaches
//! them) and owe one follow-up push at the window's end, sent by [`drain_retries`] (the
//! scheduled tick) if the device still has pending commands then, in case the push was
//! lost. An enqueue with nothing ahead of it pushes even within the window: the device may
//! have emptied its queue and ended its exchange since the last push, and would otherwise
//! wait for the tick. So a burst of enqueues costs one push per device exchange. The window is claimed with compare-and-swap on the device's push
//! state, so concurrent enqueues agree on the single pusher. While a retry is pending
//! (APNs asked us to back off) enqueues wait for it.
//!
//! The records and their keys: [`super::push_state`].
//!
//! Privacy: push tokens and PushMagic never appear in full in errors, reports or stored
//! diagnostics; see [`super::apns::redact`].

use std::convert::Infallible;
use std::time::Duration;

use http::Response;
use serde::Serialize;
use serde_json::json;

use mdm_kv::{Backend, KvError, Store, UpdateError};

use super::apns::error_body;
use super::enrollment_record::{EnrollmentRecord, Push};
// The APNs client's API, still reachable by its former path.
pub use super::apns::{
    APNS_BASE_URL, DEFAULT_BASE_URL, EXPIRATION_SECS, MAX_PAYLOAD, PushError, SANDBOX_BASE_URL,
    base_url, build_request, new_apns_id, redact, token_fingerprint,
};
use super::push_state::{
    CAS_ATTEMPTS, CERT_KEY, load_record, load_state, modify_state, schedule, state_key,
};
// The drain and the push records' API, still reachable by their former paths.
pub use super::push_drain::{DrainReport, drain_retries};
pub use super::push_state::{
    CertificateStatus, NotNowRetry, PushReason, PushState, RetryInfo, Unreachable, reset_state,
};
use crate::platform::{Clock, HttpClient, Platform, TransportError};

/// Enqueues within this many seconds of a push share it.
pub const COALESCE_WINDOW_SECS: u64 = 5;
/// First retry step; doubles per attempt up to [`BACKOFF_MAX_SECS`].
pub const BACKOFF_INITIAL_SECS: u64 = 30;
pub const BACKOFF_MAX_SECS: u64 = 3_600;
/// No retry is scheduled once this long has passed since the first failure in a row.
pub const GIVE_UP_SECS: u64 = 86_400;
/// Longest `Retry-After` honoured.
pub const RETRY_AFTER_MAX_SECS: u64 = 6 * 3_600;
/// First push after an exchange ended with deferred (NotNow) commands.
pub const NOT_NOW_FIRST_DELAY: u64 = 60;
pub const NOT_NOW_MAX_DELAY: u64 = 3_600;
/// Pushes for deferred commands per device in any hour, at most.
pub const NOT_NOW_PER_HOUR: usize = 4;
/// How long a drain owns a device it is pushing.
pub const LEASE_SECS: u64 = 120;
/// Why nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No enrollment record for this id.
    NoEnrollment,
    /// Enrolled no longer (checked out) or not yet (Authenticate without TokenUpdate).
    NotEnrolled,
    /// No push token / PushMagic known.
    NoPushToken,
    /// APNs said the current token is dead; waits for the next TokenUpdate.
    Unreachable,
    /// A follow-up found nothing left in the device's queue.
    QueueEmpty,
    /// Nothing was due for this device any more (an outdated wheel entry).
    NotDue,
    /// Another drain is pushing this device right now.
    Busy,
}

/// What a push (or an enqueue notification) came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PushOutcome {
    /// APNs accepted the push (HTTP 200). Accepted is not delivered to the device yet,
    /// but it is all APNs tells.
    Delivered { apns_id: Option<String> },
    /// Within the coalescing window of an earlier push: nothing sent now. `followup_at`:
    /// when a follow-up push is due (sent by the drain if commands are still pending).
    Coalesced { followup_at: Option<u64> },
    /// A retry is already scheduled (APNs asked us to back off); the enqueue waits for it.
    RetryPending { retry_at: u64 },
    /// 410 / 400 BadDeviceToken: marked unreachable until the next TokenUpdate.
    Unreachable { status: u16, reason: String },
    /// 403: the push certificate is marked failing.
    CertificateRejected { status: u16, reason: String },
    /// 429 / 5xx / transport error: retried at `retry_at`.
    RetryScheduled {
        status: Option<u16>,
        reason: String,
        attempt: u32,
        retry_at: u64,
    },
    /// Retryable failures for longer than [`GIVE_UP_SECS`]: no more retries.
    GaveUp {
        status: Option<u16>,
        reason: String,
        attempts: u32,
    },
    /// Any other answer: recorded, not retried.
    Rejected { status: u16, reason: String },
    /// Nothing sent.
    Skipped { why: SkipReason },
}

impl PushOutcome {
    /// Short name, as stored in [`PushState::last_outcome`].
    pub fn name(&self) -> &'static str {
        match self {
            PushOutcome::Delivered { .. } => "delivered",
            PushOutcome::Coalesced { .. } => "coalesced",
            PushOutcome::RetryPending { .. } => "retry_pending",
            PushOutcome::Unreachable { .. } => "unreachable",
            PushOutcome::CertificateRejected { .. } => "certificate_rejected",
            PushOutcome::RetryScheduled { .. } => "retry_scheduled",
            PushOutcome::GaveUp { .. } => "gave_up",
            PushOutcome::Rejected { .. } => "rejected",
            PushOutcome::Skipped { .. } => "skipped",
        }
    }
}

/// What the device API shows ([`push_state`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushStatus {
    pub device_id: String,
    /// False while APNs' last word on the current token was 410 / BadDeviceToken.
    pub reachable: bool,
    pub last_push_at: Option<u64>,
    pub last_reason: Option<PushReason>,
    pub last_outcome: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_apns_id: Option<String>,
    pub last_delivered_at: Option<u64>,
    pub attempts: u64,
    pub delivered: u64,
    pub unreachable: Option<Unreachable>,
    pub retry: Option<RetryInfo>,
    pub followup_at: Option<u64>,
    /// The push owed for commands the device deferred (NotNow), if any.
    pub not_now_at: Option<u64>,
}

/// What an APNs answer means for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered {
        apns_id: Option<String>,
    },
    /// The token is dead (410, 400 BadDeviceToken).
    Unreachable {
        status: u16,
        reason: String,
        apns_timestamp: Option<u64>,
    },
    /// The push certificate was refused (403).
    Certificate {
        status: u16,
        reason: String,
    },
    /// Try again later (429, 5xx, transport). `tls`: the failure was in the TLS
    /// handshake, which also casts doubt on the certificate.
    Retry {
        status: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
        tls: bool,
    },
    /// Anything else: not retried.
    Failed {
        status: u16,
        reason: String,
    },
}

/// Classifies one exchange with APNs. `now` is for an HTTP-date `Retry-After`.
pub fn classify(
    result: &Result<Response<Vec<u8>>, TransportError>,
    now: std::time::SystemTime,
) -> Verdict {
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            let msg = e.0.to_ascii_lowercase();
            let tls =
                msg.contains("tls") || msg.contains("certificate") || msg.contains("handshake");
            return Verdict::Retry {
                status: None,
                reason: format!("transport: {}", e.0.chars().take(200).collect::<String>()),
                retry_after: None,
                tls,
            };
        }
    };
    let status = resp.status();
    let code = status.as_u16();
    let (reason, timestamp) = error_body(resp.body());
    let reason_or = |fallback: &str| {
        reason.clone().unwrap_or_else(|| {
            status
                .canonical_reason()
                .map(|r| r.replace(' ', ""))
                .unwrap_or_else(|| fallback.to_owned())
        })
    };
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match code {
        200 => Verdict::Delivered {
            apns_id: header("apns-id"),
        },
        410 => Verdict::Unreachable {
            status: code,
            reason: reason_or("Unregistered"),
            apns_timestamp: timestamp,
        },
        400 if reason.as_deref() == Some("BadDeviceToken") => Verdict::Unreachable {
            status: code,
            reason: "BadDeviceToken".into(),
            apns_timestamp: timestamp,
        },
        403 => Verdict::Certificate {
            status: code,
            reason: reason_or("Forbidden"),
        },
        _ if code == 429 || status.is_server_error() => Verdict::Retry {
            status: Some(code),
            reason: reason_or("HTTP error"),
            retry_after: header("retry-after")
                .and_then(|v| crate::dep::client::parse_retry_after(&v, now)),
            tls: false,
        },
        _ => Verdict::Failed {
            status: code,
            reason: reason_or("HTTP error"),
        },
    }
}

/// Bounds of the delay before retry number `attempt` (1-based): the step is
/// [`BACKOFF_INITIAL_SECS`] · 2^(attempt-1), capped at [`BACKOFF_MAX_SECS`]; the delay is
/// drawn from [step/2, step].
pub fn backoff_bounds(attempt: u32) -> (u64, u64) {
    let step = BACKOFF_INITIAL_SECS
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(BACKOFF_MAX_SECS);
    (step.div_ceil(2), step)
}

/// The delay before retry `attempt`: backoff with jitter (`jitter` in [0, 1]), or
/// `Retry-After` when that asks for longer (capped at [`RETRY_AFTER_MAX_SECS`]).
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> u64 {
    let (lo, hi) = backoff_bounds(attempt);
    let backoff = lo + ((hi - lo) as f64 * jitter.clamp(0.0, 1.0)).round() as u64;
    let asked = retry_after.map_or(0, |d| d.as_secs().min(RETRY_AFTER_MAX_SECS));
    backoff.max(asked)
}

fn random_jitter() -> f64 {
    let b = crate::random::bytes(4);
    f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])) / f64::from(u32::MAX)
}

// ---------------------------------------------------------------------------------------
// Store helpers
// ---------------------------------------------------------------------------------------

/// The push data of a device that may be pushed, or why not.
pub(crate) fn target(rec: Option<&EnrollmentRecord>) -> Result<Push, SkipReason> {
    let rec = rec.ok_or(SkipReason::NoEnrollment)?;
    if !rec.enrolled || rec.checked_out_at.is_some() {
        return Err(SkipReason::NotEnrolled);
    }
    rec.push.clone().ok_or(SkipReason::NoPushToken)
}

pub(crate) fn is_unreachable(st: &PushState, push: &Push) -> bool {
    st.unreachable
        .as_ref()
        .is_some_and(|u| u.token_fp == token_fingerprint(&push.token_hex))
}

async fn record_certificate_failure<B: Backend>(
    store: &Store<B>,
    status: Option<u16>,
    reason: &str,
    now: u64,
) -> Result<(), KvError> {
    let mut c = certificate_status(store).await?;
    if c.state != "failing" {
        c.state = "failing".into();
        c.since = Some(now);
    }
    c.last_failure_at = Some(now);
    c.last_failure_status = status;
    c.last_failure_reason = Some(reason.to_owned());
    c.failures += 1;
    store
        .set(CERT_KEY, &serde_json::to_vec(&c).expect("serialises"))
        .await
}

async fn record_certificate_ok<B: Backend>(store: &Store<B>, now: u64) -> Result<(), KvError> {
    let mut c = certificate_status(store).await?;
    if c.state == "failing" {
        c.state = "ok".into();
        c.since = Some(now);
        store
            .set(CERT_KEY, &serde_json::to_vec(&c).expect("serialises"))
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Pushing
// ---------------------------------------------------------------------------------------

/// Sends one push to APNs and records the outcome in the device's state (and the
/// certificate status, and the retry wheel).
pub(crate) async fn send_and_record(
    p: &impl Platform,
    device_id: &str,
    push: &Push,
    reason: PushReason,
) -> Result<PushOutcome, PushError> {
    let base = base_url(p.vars()).await;
    let now = p.clock().unix_seconds();
    let apns_id = new_apns_id();
    let request = build_request(&base, push, now, Some(&apns_id))?;
    let result = p.http().send(request).await;
    let verdict = classify(&result, p.clock().now());
    let done = p.clock().unix_seconds();
    record(
        p.store(),
        device_id,
        push,
        reason,
        verdict,
        Some(apns_id),
        done,
    )
    .await
}

/// Applies `verdict` to the device's state; returns the outcome.
async fn record<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    push: &Push,
    reason: PushReason,
    verdict: Verdict,
    sent_apns_id: Option<String>,
    now: u64,
) -> Result<PushOutcome, PushError> {
    let jitter = random_jitter();
    let token = push.token_hex.to_ascii_lowercase();
    let scrub = |s: &str| {
        let mut s = s.replace(&token, &redact(&token));
        if !push.push_magic.is_empty() {
            s = s.replace(&push.push_magic, &redact(&push.push_magic));
        }
        s
    };
    let mut outcome = PushOutcome::Skipped {
        why: SkipReason::NotDue,
    };
    let mut reschedule: Option<u64> = None;
    modify_state(store, device_id, true, |st| {
        reschedule = None;
        st.last_attempt_at = Some(now);
        st.last_reason = Some(reason);
        st.attempts += 1;
        st.lease_until = 0;
        st.last_apns_id = sent_apns_id.clone();
        outcome = match &verdict {
            Verdict::Delivered { apns_id } => {
                st.last_status = Some(200);
                st.last_error = None;
                st.last_delivered_at = Some(now);
                st.delivered += 1;
                st.retry = None;
                st.unreachable = None;
                if apns_id.is_some() {
                    st.last_apns_id = apns_id.clone();
                }
                PushOutcome::Delivered {
                    apns_id: st.last_apns_id.clone(),
                }
            }
            Verdict::Unreachable {
                status,
                reason,
                apns_timestamp,
            } => {
                st.last_status = Some(*status);
                st.last_error = Some(reason.clone());
                st.retry = None;
                st.followup_at = None;
                st.unreachable = Some(Unreachable {
                    since: now,
                    status: *status,
                    reason: reason.clone(),
                    apns_timestamp: *apns_timestamp,
                    token_fp: token_fingerprint(&token),
                });
                PushOutcome::Unreachable {
                    status: *status,
                    reason: reason.clone(),
                }
            }
            Verdict::Certificate { status, reason } => {
                st.last_status = Some(*status);
                st.last_error = Some(reason.clone());
                st.retry = None;
                PushOutcome::CertificateRejected {
                    status: *status,
                    reason: reason.clone(),
                }
            }
            Verdict::Failed { status, reason } => {
                st.last_status = Some(*status);
                st.last_error = Some(reason.clone());
                st.retry = None;
                PushOutcome::Rejected {
                    status: *status,
                    reason: reason.clone(),
                }
            }
            Verdict::Retry {
                status,
                reason,
                retry_after,
                ..
            } => {
                let reason = scrub(reason);
                st.last_status = *status;
                st.last_error = Some(reason.clone());
                let (attempt, first) = match &st.retry {
                    Some(r) => (r.attempt.saturating_add(1), r.first_failure_at.min(now)),
                    None => (1, now),
                };
                if now.saturating_sub(first) >= GIVE_UP_SECS {
                    st.retry = None;
                    PushOutcome::GaveUp {
                        status: *status,
                        reason,
                        attempts: attempt,
                    }
                } else {
                    let at = now + retry_delay(attempt, *retry_after, jitter);
                    st.retry = Some(RetryInfo {
                        attempt,
                        next_at: at,
                        first_failure_at: first,
                        reason: reason.clone(),
                    });
                    reschedule = Some(at);
                    PushOutcome::RetryScheduled {
                        status: *status,
                        reason,
                        attempt,
                        retry_at: at,
                    }
                }
            }
        };
        st.last_outcome = Some(outcome.name().to_owned());
    })
    .await?;
    if let Some(at) = reschedule {
        schedule(store, device_id, at).await?;
    }
    match &verdict {
        Verdict::Delivered { .. } => record_certificate_ok(store, now).await?,
        Verdict::Certificate { status, reason } => {
            record_certificate_failure(store, Some(*status), reason, now).await?
        }
        Verdict::Retry {
            tls: true, reason, ..
        } => record_certificate_failure(store, None, &scrub(reason), now).await?,
        _ => {}
    }
    Ok(outcome)
}

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
/// other commands the device has still to fetch or answer ([`super::connect::Queued`]).
/// Pushes unless a push within the last [`COALESCE_WINDOW_SECS`] covers it — the window
/// is open and the command is behind others, so the exchange that push started (or
/// starts) reaches it; then a follow-up is owed at the window's end in case the push was
/// lost, and [`drain_retries`] sends it — or a retry is pending, or the device is
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

/// Owes the device a push at the scheduler's next [`drain_retries`] instead of pushing
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
/// comes back when pushed, so a push is owed, sent by [`drain_retries`] with backoff
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
    let _ = store
        .update::<Infallible>(&state_key(device_id), CAS_ATTEMPTS, |raw| {
            let mut st: PushState = serde_json::from_slice(raw).unwrap_or_default();
            if st.unreachable.is_none() {
                return Ok(None);
            }
            st.unreachable = None;
            Ok(Some(serde_json::to_vec(&st).expect("serialises")))
        })
        .await
        .map_err(|e| match e {
            UpdateError::Kv(e) => e,
            UpdateError::Rejected(never) => match never {},
        })?;
    Ok(())
}

/// The device's push status for the device API (`None`: never pushed).
pub async fn push_state<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Option<PushStatus>, KvError> {
    let Some(st) = load_state(store, device_id).await? else {
        return Ok(None);
    };
    let rec = load_record(store, device_id).await?;
    let reachable = match (&st.unreachable, rec.as_ref().and_then(|r| r.push.as_ref())) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(_), Some(push)) => !is_unreachable(&st, push),
    };
    Ok(Some(PushStatus {
        device_id: device_id.to_owned(),
        reachable,
        last_push_at: st.last_attempt_at,
        last_reason: st.last_reason,
        last_outcome: st.last_outcome,
        last_status: st.last_status,
        last_error: st.last_error,
        last_apns_id: st.last_apns_id,
        last_delivered_at: st.last_delivered_at,
        attempts: st.attempts,
        delivered: st.delivered,
        unreachable: if reachable { None } else { st.unreachable },
        retry: st.retry,
        followup_at: st.followup_at,
        not_now_at: st.not_now.due_at,
    }))
}

/// The push certificate as APNs last judged it (`state: "unknown"` if it never failed).
pub async fn certificate_status<B: Backend>(
    store: &Store<B>,
) -> Result<CertificateStatus, KvError> {
    let c = store
        .get(CERT_KEY)
        .await?
        .and_then(|raw| serde_json::from_slice::<CertificateStatus>(&raw).ok());
    Ok(c.unwrap_or_else(|| CertificateStatus {
        state: "unknown".into(),
        ..CertificateStatus::default()
    }))
}

// ---------------------------------------------------------------------------------------
// The scheduled drain
// ---------------------------------------------------------------------------------------

/// `POST /api/v1/devices/{device}/push`: push now; answers the outcome and the state.
/// 404 for an unknown device, 409 when it cannot be pushed (not enrolled, no token).
pub async fn admin_push(
    p: &impl Platform,
    device_id: &str,
) -> Result<crate::api::Response, crate::api::ApiError> {
    use crate::api::ApiError;
    let outcome = push_device(p, device_id, PushReason::Admin)
        .await
        .map_err(|e| match e {
            PushError::Store(e) => ApiError::store(e),
            PushError::Config(m) => ApiError::misconfigured(m),
        })?;
    match outcome {
        PushOutcome::Skipped {
            why: SkipReason::NoEnrollment,
        } => Err(ApiError::not_found(format!("no enrollment {device_id:?}"))),
        PushOutcome::Skipped { why } => Err(ApiError::conflict(format!(
            "device cannot be pushed: {}",
            serde_json::to_value(why)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ))),
        outcome => {
            let state = push_state(p.store(), device_id)
                .await
                .map_err(ApiError::store)?;
            Ok(crate::api::ok_json(
                &json!({ "device_id": device_id, "result": outcome, "push": state }),
            ))
        }
    }
}

/// `GET /api/v1/devices/{device}/push`: the device's push status (404 if never pushed
/// and not enrolled).
pub async fn admin_push_state(
    p: &impl Platform,
    device_id: &str,
) -> Result<crate::api::Response, crate::api::ApiError> {
    use crate::api::ApiError;
    match push_state(p.store(), device_id)
        .await
        .map_err(ApiError::store)?
    {
        Some(s) => Ok(crate::api::ok_json(&s)),
        None => {
            if load_record(p.store(), device_id)
                .await
                .map_err(ApiError::store)?
                .is_none()
            {
                return Err(ApiError::not_found(format!("no enrollment {device_id:?}")));
            }
            Ok(crate::api::ok_json(&json!({
                "device_id": device_id, "reachable": true, "last_push_at": null,
            })))
        }
    }
}

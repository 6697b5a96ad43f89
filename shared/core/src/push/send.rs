//! Sending one push to APNs and recording what came of it: the device's push state, the
//! retry backoff, and the push certificate's health.
//!
//! Outbound HTTP goes through [`HttpClient`] (under Spin the push certificate is the
//! runtime config's `[[client_tls]]` for the APNs host: a component cannot present one
//! itself), time through [`Clock`]; the request is built by [`crate::push::apns`].
//!
//! What an answer does:
//! - 200: delivered (accepted by APNs); clears a pending retry.
//! - 410 (`Unregistered`, `ExpiredToken`) and 400 `BadDeviceToken`: the device is marked
//!   unreachable for the token that failed. It is not pushed again until its next
//!   TokenUpdate: [`clear_unreachable`](crate::push::clear_unreachable) clears the mark,
//!   and a TokenUpdate bringing a different token makes the mark moot even without it
//!   (the mark carries a fingerprint of the dead token).
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
//! Privacy: push tokens and PushMagic never appear in full in errors, reports or stored
//! diagnostics; see [`crate::push::apns::redact`].

use crate::metrics::{self, Counter};
use std::time::Duration;

use mdm_kv::{Backend, KvError, Store};

use crate::mdm::enrollment_record::{EnrollmentRecord, Push};
use crate::platform::{Clock, HttpClient, Platform};
use crate::push::apns::{
    PushError, base_url, build_request, new_apns_id, redact, token_fingerprint,
};
use crate::push::outcome::{PushOutcome, SkipReason, Verdict, classify};
use crate::push::state::{
    PushReason, RetryInfo, Unreachable, certificate_status, modify_state, schedule,
};
use crate::record::Stored;

/// First retry step; doubles per attempt up to [`BACKOFF_MAX_SECS`].
pub const BACKOFF_INITIAL_SECS: u64 = 30;
pub const BACKOFF_MAX_SECS: u64 = 3_600;
/// No retry is scheduled once this long has passed since the first failure in a row.
pub const GIVE_UP_SECS: u64 = 86_400;
/// Longest `Retry-After` honoured.
pub const RETRY_AFTER_MAX_SECS: u64 = 6 * 3_600;

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

/// The push data of a device that may be pushed, or why not.
pub(crate) fn target(rec: Option<&EnrollmentRecord>) -> Result<Push, SkipReason> {
    let rec = rec.ok_or(SkipReason::NoEnrollment)?;
    if !rec.enrolled || rec.checked_out_at.is_some() {
        return Err(SkipReason::NotEnrolled);
    }
    rec.push.clone().ok_or(SkipReason::NoPushToken)
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
    c.save(store, ()).await
}

async fn record_certificate_ok<B: Backend>(store: &Store<B>, now: u64) -> Result<(), KvError> {
    let mut c = certificate_status(store).await?;
    if c.state == "failing" {
        c.state = "ok".into();
        c.since = Some(now);
        c.save(store, ()).await?;
    }
    Ok(())
}

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
    metrics::bump(store, Counter::Pushes(outcome.name())).await;
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

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
//! Key layout (`d` = device id as a key segment):
//!
//! | key | value |
//! |---|---|
//! | `push:<d>` | the device's [`PushState`]: outcomes, unreachable mark, retry, coalescing window, drain lease (JSON, changed only with CAS) |
//! | `ctr:push:<d>` | claimed once, by whoever creates `push:<d>` |
//! | `pushcert` | the push certificate's [`CertificateStatus`] (one for the app) |
//! | `pushdue:<s>` | retry / follow-up timing wheel: slot `s` = due minute mod 1440; a JSON map device id → due time (Unix s). Entries are hints, the device's `push:<d>` decides. Never deleted (an emptied slot stays `{}`): at most 1440 such keys |
//! | `ctr:pushdue:<s>` | claimed once, by whoever creates `pushdue:<s>` |
//! | `pushdue:cursor` | the last minute (Unix s / 60) [`drain_retries`] fully processed, decimal |
//! | `ctr:pushdue:cursor` | claimed once, by whoever creates `pushdue:cursor` |
//!
//! [`drain_retries`] reads only the wheel slots of the minutes since its cursor (5 per
//! call with a 5-minute scheduler; at most one full turn of 1440 after a long outage) and
//! the devices due in them: O(due) work, never a key listing. A drain claims each device
//! with a short lease in its state, so overlapping drains do not push a device twice.
//!
//! Privacy: push tokens and PushMagic never appear in full in errors, reports or stored
//! diagnostics; see [`super::apns::redact`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use http::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store, UpdateError};

use super::apns::error_body;
use super::enrollment_record::{self, EnrollmentRecord, Push};
// The APNs client's API, still reachable by its former path.
pub use super::apns::{
    APNS_BASE_URL, DEFAULT_BASE_URL, EXPIRATION_SECS, MAX_PAYLOAD, PushError, SANDBOX_BASE_URL,
    base_url, build_request, new_apns_id, redact, token_fingerprint,
};
use super::queue::{self, Channel, QueueError};
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
const SLOT_SECS: u64 = 60;
const WHEEL_SLOTS: u64 = 1_440;
const CURSOR_KEY: &str = "pushdue:cursor";
const CERT_KEY: &str = "pushcert";
/// CAS attempts per read-modify-write.
const CAS_ATTEMPTS: usize = 32;
/// Slot reads per batch call.
const SLOT_BATCH: usize = 100;

fn state_key(device_id: &str) -> String {
    format!("push:{}", segment(device_id))
}

fn state_claim(device_id: &str) -> CounterKey {
    CounterKey::new(&format!("push:{}", segment(device_id))).expect("segments are key-safe")
}

fn slot_key(slot: u64) -> String {
    format!("pushdue:{slot}")
}

fn slot_claim(slot: u64) -> CounterKey {
    CounterKey::new(&format!("pushdue:{slot}")).expect("static counter name")
}

fn cursor_claim() -> CounterKey {
    CounterKey::new("pushdue:cursor").expect("static counter name")
}

fn slot_of_minute(minute: u64) -> u64 {
    minute % WHEEL_SLOTS
}

// ---------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------

/// Why a push is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushReason {
    /// An administrator asked for it (on-demand push).
    Admin,
    /// A command was queued.
    Enqueued,
    /// Commands queued inside a coalescing window after its push.
    FollowUp,
    /// A scheduled retry of a failed push.
    Retry,
    /// Right after enrollment (TokenUpdate), e.g. to start the await-configuration setup.
    Enrollment,
    /// An exchange ended with commands the device deferred (NotNow): woken again later so
    /// it retries them (see [`after_not_now`]).
    NotNow,
}

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

/// A device's push bookkeeping (`push:<d>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushState {
    pub last_attempt_at: Option<u64>,
    pub last_reason: Option<PushReason>,
    /// [`PushOutcome::name`] of the last attempt.
    pub last_outcome: Option<String>,
    pub last_status: Option<u16>,
    /// APNs' `reason`, or the transport failure (redacted).
    pub last_error: Option<String>,
    pub last_apns_id: Option<String>,
    pub last_delivered_at: Option<u64>,
    pub attempts: u64,
    pub delivered: u64,
    pub unreachable: Option<Unreachable>,
    pub retry: Option<RetryInfo>,
    /// Start of the current coalescing window (time of its push).
    pub window_start: u64,
    /// A follow-up push owed for enqueues inside the window.
    pub followup_at: Option<u64>,
    /// A drain is pushing this device until then.
    pub lease_until: u64,
    /// Pushes owed for commands the device deferred with NotNow.
    pub not_now: NotNowRetry,
}

/// Waking a device again after it deferred commands (NotNow): the first push after
/// [`NOT_NOW_FIRST_DELAY`], each further one in a row after twice the delay (up to
/// [`NOT_NOW_MAX_DELAY`]), and never more than [`NOT_NOW_PER_HOUR`] in any hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotNowRetry {
    /// The owed push, if one is owed.
    pub due_at: Option<u64>,
    /// Owed pushes in a row so far (the delay doubles with each).
    pub step: u32,
    /// Due times of the latest owed pushes (at most [`NOT_NOW_PER_HOUR`]).
    pub recent: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreachable {
    pub since: u64,
    pub status: u16,
    pub reason: String,
    /// APNs' `timestamp` (ms) since which the token is invalid, when it sent one.
    pub apns_timestamp: Option<u64>,
    /// [`token_fingerprint`] of the token APNs refused.
    pub token_fp: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryInfo {
    /// Failed attempts in a row.
    pub attempt: u32,
    pub next_at: u64,
    pub first_failure_at: u64,
    pub reason: String,
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

/// State of the push certificate as APNs judged it (`pushcert`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificateStatus {
    /// `unknown` (never failed), `ok` (a push succeeded since the last failure) or
    /// `failing`.
    pub state: String,
    /// Since when in this state.
    pub since: Option<u64>,
    /// The last failure: HTTP status (None for a TLS failure) and reason.
    pub last_failure_at: Option<u64>,
    pub last_failure_status: Option<u16>,
    pub last_failure_reason: Option<String>,
    pub failures: u64,
}

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

// ---------------------------------------------------------------------------------------
// Pure parts
// ---------------------------------------------------------------------------------------

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

/// Every this many claims on a creation counter while the key is still absent, the
/// claimer creates the key anyway: the first claimer died between claim and write.
const FORCE_CREATE_EVERY: i64 = 50;

/// What [`modify_raw`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Modified {
    Done,
    /// The key is absent and another caller is creating it right now (only when not
    /// waiting for it).
    BeingCreated,
}

/// Read-modify-write of a JSON key that may not exist yet. The key is created (as
/// `init`) by whoever claims `claim` first: compare-and-swap cannot create a key safely
/// on Spin's SQLite. A caller that finds the key absent and loses the claim either
/// returns [`Modified::BeingCreated`] (`wait` false) or retries until the winner has
/// written it. Should the winner die between claim and write, every
/// [`FORCE_CREATE_EVERY`]-th later claimer creates the key.
pub(crate) async fn modify_raw<B: Backend>(
    store: &Store<B>,
    key: &str,
    claim: &CounterKey,
    init: &[u8],
    wait: bool,
    change: &mut impl FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Result<Modified, KvError> {
    for _ in 0..2 * FORCE_CREATE_EVERY {
        match store
            .update::<Infallible>(key, CAS_ATTEMPTS, |raw| Ok(change(raw)))
            .await
        {
            Ok(Some(_)) => return Ok(Modified::Done),
            Ok(None) => {
                let n = store.increment(claim, 1).await?;
                if n == 1 {
                    store.set(key, init).await?;
                } else if n % FORCE_CREATE_EVERY == 0 {
                    if !store.exists(key).await? {
                        store.set(key, init).await?;
                    }
                } else if !wait {
                    return Ok(Modified::BeingCreated);
                }
            }
            Err(UpdateError::Kv(e)) => return Err(e),
            Err(UpdateError::Rejected(never)) => match never {},
        }
    }
    Err(KvError::Contended(key.to_owned()))
}

/// Applies `f` to the device's push state (created empty if absent); returns the state
/// as stored, or `None` when another caller is creating it and `wait` is false.
async fn modify_state<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    wait: bool,
    mut f: impl FnMut(&mut PushState),
) -> Result<Option<PushState>, KvError> {
    let init = serde_json::to_vec(&PushState::default()).expect("serialises");
    let mut last = PushState::default();
    let mut change = |raw: &[u8]| {
        let mut st: PushState = serde_json::from_slice(raw).unwrap_or_default();
        let before = st.clone();
        f(&mut st);
        last = st.clone();
        (st != before).then(|| serde_json::to_vec(&st).expect("serialises"))
    };
    let done = modify_raw(
        store,
        &state_key(device_id),
        &state_claim(device_id),
        &init,
        wait,
        &mut change,
    )
    .await?;
    Ok((done == Modified::Done).then_some(last))
}

/// Forgets the device's push history (its record was deleted). The key is rewritten, not
/// deleted: it was created under a one-time claim (see [`modify_raw`]).
pub async fn reset_state<B: Backend>(store: &Store<B>, device_id: &str) -> Result<(), KvError> {
    if store.exists(&state_key(device_id)).await? {
        let init = serde_json::to_vec(&PushState::default()).expect("serialises");
        store.set(&state_key(device_id), &init).await?;
    }
    Ok(())
}

async fn load_state<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Option<PushState>, KvError> {
    Ok(store
        .get(&state_key(device_id))
        .await?
        .and_then(|raw| serde_json::from_slice(&raw).ok()))
}

async fn load_record<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Option<EnrollmentRecord>, KvError> {
    Ok(store
        .get(&enrollment_record::record_key(device_id))
        .await?
        .and_then(|raw| serde_json::from_slice(&raw).ok()))
}

/// The push data of a device that may be pushed, or why not.
fn target(rec: Option<&EnrollmentRecord>) -> Result<Push, SkipReason> {
    let rec = rec.ok_or(SkipReason::NoEnrollment)?;
    if !rec.enrolled || rec.checked_out_at.is_some() {
        return Err(SkipReason::NotEnrolled);
    }
    rec.push.clone().ok_or(SkipReason::NoPushToken)
}

fn is_unreachable(st: &PushState, push: &Push) -> bool {
    st.unreachable
        .as_ref()
        .is_some_and(|u| u.token_fp == token_fingerprint(&push.token_hex))
}

/// Puts `device_id` into the wheel slot of `due_at`. An entry already there for the
/// device keeps the later of the two times: the drain then serves whatever of the device
/// is due (its state decides), and a drain removing the entry it read (by value) cannot
/// remove a retry scheduled into the same minute meanwhile.
async fn schedule<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    due_at: u64,
) -> Result<(), KvError> {
    let slot = slot_of_minute(due_at / SLOT_SECS);
    let mut change = |raw: &[u8]| {
        let mut m: BTreeMap<String, u64> = serde_json::from_slice(raw).unwrap_or_default();
        match m.get(device_id) {
            Some(&t) if t >= due_at => None,
            _ => {
                m.insert(device_id.to_owned(), due_at);
                Some(serde_json::to_vec(&m).expect("serialises"))
            }
        }
    };
    modify_raw(
        store,
        &slot_key(slot),
        &slot_claim(slot),
        b"{}",
        true,
        &mut change,
    )
    .await
    .map(|_| ())
}

/// Removes `devices` (with the due times they were read with) from a slot.
async fn unschedule<B: Backend>(
    store: &Store<B>,
    slot: u64,
    devices: &[(String, u64)],
) -> Result<(), KvError> {
    if devices.is_empty() {
        return Ok(());
    }
    let mut change = |raw: &[u8]| {
        let mut m: BTreeMap<String, u64> = serde_json::from_slice(raw).unwrap_or_default();
        let before = m.len();
        for (d, t) in devices {
            // Rescheduled into this very slot meanwhile: keep the new entry.
            if m.get(d) == Some(t) {
                m.remove(d);
            }
        }
        (m.len() != before).then(|| serde_json::to_vec(&m).expect("serialises"))
    };
    modify_raw(
        store,
        &slot_key(slot),
        &slot_claim(slot),
        b"{}",
        true,
        &mut change,
    )
    .await
    .map(|_| ())
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
async fn send_and_record(
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
    let cursor_raw = match store.get(CURSOR_KEY).await {
        Ok(v) => v,
        Err(e) => {
            note_error(&mut report, e);
            return report;
        }
    };
    let stored_cursor: Option<u64> = cursor_raw
        .as_deref()
        .and_then(|r| std::str::from_utf8(r).ok())
        .and_then(|s| s.trim().parse().ok());
    // Never scanned (or longer ago than a full turn): one full turn covers every slot.
    let start = stored_cursor.unwrap_or(oldest).max(oldest) + 1;
    let minutes: Vec<u64> = (start..=current).collect();
    let mut done_through = stored_cursor.unwrap_or(oldest).max(oldest);
    let mut budget_left = budget;
    // Entries that need no push still cost store operations: bound them too.
    let mut entries_left = budget.saturating_mul(4).max(16);
    'scan: for chunk in minutes.chunks(SLOT_BATCH) {
        let keys: Vec<String> = chunk.iter().map(|m| slot_key(slot_of_minute(*m))).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let slots = match store.get_many(&refs).await {
            Ok(s) => s,
            Err(e) => {
                note_error(&mut report, e);
                break;
            }
        };
        for (&minute, raw) in chunk.iter().zip(slots) {
            report.slots_scanned += 1;
            let map: BTreeMap<String, u64> = raw
                .and_then(|r| serde_json::from_slice(&r).ok())
                .unwrap_or_default();
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
        let new = done_through.to_string();
        let r = match &cursor_raw {
            Some(old) => store
                .compare_and_swap(CURSOR_KEY, old, new.as_bytes())
                .await
                .map(|_| ()),
            None => {
                async {
                    if store.claim(&cursor_claim()).await? || !store.exists(CURSOR_KEY).await? {
                        store.set(CURSOR_KEY, new.as_bytes()).await?;
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

// ---------------------------------------------------------------------------------------
// Admin API helpers (routes are wired in `admin`)
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

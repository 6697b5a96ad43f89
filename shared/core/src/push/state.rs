//! A device's push bookkeeping and the retry timing wheel, as stored: the records the
//! push policy ([`crate::push`]) reads and changes, always with compare-and-swap.
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
//! | `pushdue:cursor` | the last minute (Unix s / 60) the drain fully processed, decimal |
//! | `ctr:pushdue:cursor` | claimed once, by whoever creates `pushdue:cursor` |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store};

use crate::mdm::enrollment_record::{EnrollmentRecord, Push};
use crate::push::apns::token_fingerprint;
use crate::record::{self, Created, Record, Stored};

pub(crate) const SLOT_SECS: u64 = 60;
pub(crate) const WHEEL_SLOTS: u64 = 1_440;
/// CAS attempts per read-modify-write.
pub(crate) const CAS_ATTEMPTS: usize = 32;
/// Slot reads per batch call.
pub(crate) const SLOT_BATCH: usize = 100;

impl Record for PushState {
    type Id<'a> = &'a str;
    const NAME: &'static str = "push state";
    const ATTEMPTS: usize = CAS_ATTEMPTS;
    fn key(device_id: &str) -> String {
        format!("push:{}", segment(device_id))
    }
    /// Bookkeeping that the next push rebuilds: a damaged value starts over.
    fn fresh_if_damaged() -> Option<Self> {
        Some(PushState::default())
    }
}

impl Created for PushState {
    fn claim(device_id: &str) -> CounterKey {
        CounterKey::new(&format!("push:{}", segment(device_id))).expect("segments are key-safe")
    }
}

/// A slot of the retry / follow-up timing wheel (`pushdue:<s>`): device id → due time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct DueSlot(pub BTreeMap<String, u64>);

impl Record for DueSlot {
    /// The slot: due minute mod [`WHEEL_SLOTS`].
    type Id<'a> = u64;
    const NAME: &'static str = "push timing wheel slot";
    const ATTEMPTS: usize = CAS_ATTEMPTS;
    fn key(slot: u64) -> String {
        format!("pushdue:{slot}")
    }
    /// Entries are hints (the device's push state decides): a damaged slot starts over.
    fn fresh_if_damaged() -> Option<Self> {
        Some(DueSlot::default())
    }
}

impl Created for DueSlot {
    fn claim(slot: u64) -> CounterKey {
        CounterKey::new(&format!("pushdue:{slot}")).expect("static counter name")
    }
}

/// The last minute (Unix s / 60) the drain fully processed (`pushdue:cursor`, decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct DrainCursor(pub u64);

impl Record for DrainCursor {
    type Id<'a> = ();
    const NAME: &'static str = "push drain cursor";
    fn key((): ()) -> String {
        "pushdue:cursor".into()
    }
    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(self.0.to_string().into_bytes())
    }
    fn decode(raw: &[u8]) -> Result<Self, String> {
        let text = record::text(raw)?;
        record::decimal(text.trim().as_bytes()).map(DrainCursor)
    }
}

/// Claimed once, by whoever creates the [`DrainCursor`].
pub(crate) fn cursor_claim() -> CounterKey {
    CounterKey::new("pushdue:cursor").expect("static counter name")
}

impl Record for CertificateStatus {
    type Id<'a> = ();
    const NAME: &'static str = "push certificate status";
    fn key((): ()) -> String {
        "pushcert".into()
    }
}

pub(crate) fn slot_of_minute(minute: u64) -> u64 {
    minute % WHEEL_SLOTS
}

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
    /// it retries them (see [`crate::push::after_not_now`]).
    NotNow,
}

/// A device's push bookkeeping (`push:<d>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushState {
    pub last_attempt_at: Option<u64>,
    pub last_reason: Option<PushReason>,
    /// [`crate::push::outcome::PushOutcome::name`] of the last attempt.
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
/// [`crate::push::NOT_NOW_FIRST_DELAY`], each further one in a row after twice the delay (up to
/// [`crate::push::NOT_NOW_MAX_DELAY`]), and never more than [`crate::push::NOT_NOW_PER_HOUR`] in any hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotNowRetry {
    /// The owed push, if one is owed.
    pub due_at: Option<u64>,
    /// Owed pushes in a row so far (the delay doubles with each).
    pub step: u32,
    /// Due times of the latest owed pushes (at most [`crate::push::NOT_NOW_PER_HOUR`]).
    pub recent: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreachable {
    pub since: u64,
    pub status: u16,
    pub reason: String,
    /// APNs' `timestamp` (ms) since which the token is invalid, when it sent one.
    pub apns_timestamp: Option<u64>,
    /// [`crate::push::apns::token_fingerprint`] of the token APNs refused.
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

/// Applies `f` to the device's push state (created empty if absent); returns the state
/// as stored, or `None` when another caller is creating it and `wait` is false.
pub(crate) async fn modify_state<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    wait: bool,
    mut f: impl FnMut(&mut PushState),
) -> Result<Option<PushState>, KvError> {
    PushState::modify_or_create(store, device_id, wait, |st| {
        let before = st.clone();
        f(st);
        Ok::<_, KvError>(*st != before)
    })
    .await
}

/// Forgets the device's push history (its record was deleted). The key is rewritten, not
/// deleted: it was created under a one-time claim (see [`Store::update_or_create`]).
pub async fn reset_state<B: Backend>(store: &Store<B>, device_id: &str) -> Result<(), KvError> {
    if PushState::exists(store, device_id).await? {
        PushState::default().save(store, device_id).await?;
    }
    Ok(())
}

pub(crate) async fn load_state<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Option<PushState>, KvError> {
    PushState::load_valid(store, device_id).await
}

pub(crate) async fn load_record<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Option<EnrollmentRecord>, KvError> {
    EnrollmentRecord::load_valid(store, device_id).await
}

/// Puts `device_id` into the wheel slot of `due_at`. An entry already there for the
/// device keeps the later of the two times: the drain then serves whatever of the device
/// is due (its state decides), and a drain removing the entry it read (by value) cannot
/// remove a retry scheduled into the same minute meanwhile.
pub(crate) async fn schedule<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    due_at: u64,
) -> Result<(), KvError> {
    let slot = slot_of_minute(due_at / SLOT_SECS);
    DueSlot::modify_or_create(store, slot, true, |m| match m.0.get(device_id) {
        Some(&t) if t >= due_at => Ok::<_, KvError>(false),
        _ => {
            m.0.insert(device_id.to_owned(), due_at);
            Ok(true)
        }
    })
    .await
    .map(|_| ())
}

/// Removes `devices` (with the due times they were read with) from a slot.
pub(crate) async fn unschedule<B: Backend>(
    store: &Store<B>,
    slot: u64,
    devices: &[(String, u64)],
) -> Result<(), KvError> {
    if devices.is_empty() {
        return Ok(());
    }
    DueSlot::modify_or_create(store, slot, true, |m| {
        let before = m.0.len();
        for (d, t) in devices {
            // Rescheduled into this very slot meanwhile: keep the new entry.
            if m.0.get(d) == Some(t) {
                m.0.remove(d);
            }
        }
        Ok::<_, KvError>(m.0.len() != before)
    })
    .await
    .map(|_| ())
}

/// Whether APNs' unreachable mark applies to the device's current token.
pub(crate) fn is_unreachable(st: &PushState, push: &Push) -> bool {
    st.unreachable
        .as_ref()
        .is_some_and(|u| u.token_fp == token_fingerprint(&push.token_hex))
}

/// The push certificate as APNs last judged it (`state: "unknown"` if it never failed).
pub async fn certificate_status<B: Backend>(
    store: &Store<B>,
) -> Result<CertificateStatus, KvError> {
    let c = CertificateStatus::load_valid(store, ()).await?;
    Ok(c.unwrap_or_else(|| CertificateStatus {
        state: "unknown".into(),
        ..CertificateStatus::default()
    }))
}

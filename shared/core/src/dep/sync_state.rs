//! A token's sync state (`dsync:<t>`, JSON) and the rules deciding which sync is due:
//! the 12-hourly delta, full syncs at most weekly (or when a cursor is lost), manual syncs
//! at most every 15 minutes, Apple's Retry-After, and the backoff of a failing token.
//!
//! The record is written when the token slot is created and never deleted while the slot
//! exists, so every later update can use compare-and-swap safely (CAS on an absent key is
//! not safe on Spin's SQLite).

use serde::{Deserialize, Serialize};

use mdm_kv::{Backend, KvError, Store};

use super::TokenId;
use crate::record::{Record, Stored};

impl Record for SyncState {
    type Id<'a> = TokenId;
    const NAME: &'static str = "sync state";
    const ATTEMPTS: usize = 50;
    fn key(token: TokenId) -> String {
        format!("dsync:{token}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    /// Fetch every device (`POST /server/devices`) from the start.
    Full,
    /// Changes since the cursor (`POST /devices/sync`).
    Delta,
}

/// The sync rules. Defaults are the product's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub delta_interval: u64,
    pub manual_min_interval: u64,
    pub full_min_interval: u64,
    /// Apple expires cursors after 7 days.
    pub cursor_max_age: u64,
    /// A whole run gets this long to finish, across every slice (Intune's rule: a sync
    /// request is given 15 minutes); then it ends as timed out and the next one
    /// continues from its cursor.
    pub run_budget: u64,
    /// One call of the engine works this long at most, so one token cannot hold the
    /// scheduler while others wait; a paused run resumes at its next slice.
    pub slice: u64,
    pub lease_ttl: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            delta_interval: 12 * 3600,
            manual_min_interval: 15 * 60,
            full_min_interval: 7 * 86400,
            cursor_max_age: 7 * 86400,
            run_budget: 15 * 60,
            slice: 15,
            lease_ttl: 120,
        }
    }
}

/// First wait after a failed run; doubles per failure in a row up to [`BACKOFF_MAX`].
pub const BACKOFF_INITIAL: u64 = 5 * 60;
pub const BACKOFF_MAX: u64 = 12 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    pub expires_at: u64,
}

/// The run in progress (or interrupted, to be resumed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub kind: SyncKind,
    pub add_only: bool,
    pub manual: bool,
    pub started_at: u64,
    pub pages: u64,
    pub devices_seen: u64,
    /// Cursor of this run's last applied page (a full run starts without one).
    pub cursor: Option<String>,
    /// The full listing this run works on (full runs that are not add-only).
    #[serde(default)]
    pub listing: Option<u64>,
}

/// A full listing of a token's devices: its pages may span several runs (one that times
/// out leaves the rest to the next), then a pass over the inventory flags what it did not
/// contain and recounts the token's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Generation number: devices of the listing carry it (`listed_in`).
    pub generation: u64,
    /// Where fetching continues.
    pub cursor: Option<String>,
    /// Devices Apple listed so far.
    pub fetched: u64,
    pub started_at: u64,
    /// Set once every page was fetched: the inventory pass is under way.
    #[serde(default)]
    pub reconcile: Option<Reconcile>,
}

/// Progress of the pass that ends a full listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconcile {
    /// Last index slot examined.
    pub position: u64,
    /// Live devices counted so far.
    pub live: i64,
    /// Devices flagged removed (absent from the listing) so far.
    pub flagged: u64,
}

/// Progress of the daily maintenance pass over a token's index (purge and recount).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanState {
    /// Last slot scanned in the current pass.
    pub position: u64,
    /// Live devices counted so far in this pass.
    pub live_seen: i64,
}

/// A token whose runs fail waits before the next scheduled try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// Failed runs in a row.
    pub failures: u32,
    pub next_try_at: u64,
    pub reason: String,
}

impl Backoff {
    /// The wait after the `failures`-th failure in a row.
    pub fn delay(failures: u32) -> u64 {
        let steps = failures.saturating_sub(1).min(16);
        BACKOFF_INITIAL.saturating_mul(1 << steps).min(BACKOFF_MAX)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    #[serde(default)]
    pub run: Option<Run>,
    #[serde(default)]
    pub lease: Option<Lease>,
    /// Cursor for the next delta sync, and when Apple issued it.
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub cursor_at: Option<u64>,
    #[serde(default)]
    pub last_full_at: Option<u64>,
    #[serde(default)]
    pub last_delta_at: Option<u64>,
    #[serde(default)]
    pub last_manual_at: Option<u64>,
    /// A failed delta or a rejected cursor: the next sync must be full.
    #[serde(default)]
    pub full_required: bool,
    /// Apple asked us to come back later (429/503 Retry-After).
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_error_at: Option<u64>,
    /// Last completed run's figures.
    #[serde(default)]
    pub last_run: Option<RunSummary>,
    #[serde(default)]
    pub scan: ScanState,
    #[serde(default)]
    pub last_scan_at: Option<u64>,
    /// The full listing not completed yet, if any.
    #[serde(default)]
    pub listing: Option<Listing>,
    /// Generations handed out to listings so far.
    #[serde(default)]
    pub listings: u64,
    /// Devices of the last completed full listing: the denominator of progress.
    #[serde(default)]
    pub listed_devices: Option<u64>,
    #[serde(default)]
    pub backoff: Option<Backoff>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub kind: SyncKind,
    pub add_only: bool,
    pub started_at: u64,
    pub finished_at: u64,
    pub pages: u64,
    pub devices_seen: u64,
    /// `completed`, `failed` or `timed_out`.
    pub outcome: String,
    /// Devices a completed full listing flagged as no longer assigned to us.
    #[serde(default)]
    pub flagged_absent: u64,
}

impl SyncState {
    pub fn running(&self, now: u64) -> bool {
        self.lease.as_ref().is_some_and(|l| l.expires_at > now)
    }

    /// The kind the next scheduled sync would have, ignoring timing.
    fn needed_kind(&self, now: u64, p: &Policy) -> SyncKind {
        let cursor_stale = self
            .cursor_at
            .is_none_or(|at| now.saturating_sub(at) >= p.cursor_max_age);
        if self.full_required || self.cursor.is_none() || cursor_stale || self.listing.is_some() {
            SyncKind::Full
        } else {
            SyncKind::Delta
        }
    }

    /// When a backed-off token may be tried again (None: not backed off).
    pub fn backed_off_until(&self, now: u64) -> Option<u64> {
        self.backoff
            .as_ref()
            .map(|b| b.next_try_at)
            .filter(|t| *t > now)
    }

    /// What a scheduled trigger should do now, if anything.
    pub fn scheduled_plan(&self, now: u64, p: &Policy) -> Option<Plan> {
        if self.running(now)
            || self.retry_after.is_some_and(|t| t > now)
            || self.backed_off_until(now).is_some()
        {
            return None;
        }
        if let Some(run) = &self.run {
            return Some(Plan {
                kind: run.kind,
                add_only: run.add_only,
                manual: run.manual,
            });
        }
        let kind = self.needed_kind(now, p);
        let last = self.last_delta_at.max(self.last_full_at);
        let due = kind == SyncKind::Full
            || last.is_none_or(|t| now.saturating_sub(t) >= p.delta_interval);
        due.then_some(Plan {
            kind,
            add_only: false,
            manual: false,
        })
    }

    /// When the next manual sync is allowed.
    pub fn next_manual_at(&self, p: &Policy) -> Option<u64> {
        self.last_manual_at.map(|t| t + p.manual_min_interval)
    }

    /// An admin asks for a sync. At most one per `manual_min_interval`; a full sync
    /// sooner than `full_min_interval` after the last one only adds unknown serials. A
    /// delta that cannot run (no usable cursor) becomes a full sync. A backed-off token
    /// may be tried by hand: the admin may just have fixed what failed.
    pub fn manual_plan(
        &self,
        requested: SyncKind,
        now: u64,
        p: &Policy,
    ) -> Result<Plan, ManualRefusal> {
        if self.running(now) || self.run.is_some() {
            return Err(ManualRefusal::Running);
        }
        if let Some(next) = self.next_manual_at(p).filter(|t| *t > now) {
            return Err(ManualRefusal::TooSoon {
                next_allowed_at: next,
            });
        }
        if let Some(t) = self.retry_after.filter(|t| *t > now) {
            return Err(ManualRefusal::TooSoon { next_allowed_at: t });
        }
        let kind = match (requested, self.needed_kind(now, p)) {
            (_, SyncKind::Full) | (SyncKind::Full, _) => SyncKind::Full,
            _ => SyncKind::Delta,
        };
        let forced = self.needed_kind(now, p) == SyncKind::Full;
        let recent_full = self
            .last_full_at
            .is_some_and(|t| now.saturating_sub(t) < p.full_min_interval);
        let add_only = kind == SyncKind::Full && recent_full && !forced;
        Ok(Plan {
            kind,
            add_only,
            manual: true,
        })
    }

    /// A run failed: the token waits, longer after each failure in a row.
    pub fn back_off(&mut self, reason: &str, now: u64) {
        let failures = self.backoff.as_ref().map_or(0, |b| b.failures) + 1;
        self.backoff = Some(Backoff {
            failures,
            next_try_at: now + Backoff::delay(failures),
            reason: reason.to_owned(),
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub kind: SyncKind,
    pub add_only: bool,
    pub manual: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManualRefusal {
    Running,
    TooSoon { next_allowed_at: u64 },
}

#[derive(Debug)]
pub enum SyncError {
    Store(KvError),
    /// The token slot has no sync state (it does not exist).
    NoSuchToken,
    /// Another worker took over the lease mid-run (ours expired); we stopped writing.
    LeaseLost,
}

impl From<KvError> for SyncError {
    fn from(e: KvError) -> Self {
        SyncError::Store(e)
    }
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Store(e) => e.fmt(f),
            SyncError::NoSuchToken => f.write_str("no such token"),
            SyncError::LeaseLost => f.write_str("sync lease lost to another worker"),
        }
    }
}

pub async fn init<B: Backend>(store: &Store<B>, token: TokenId) -> Result<(), KvError> {
    SyncState::default().save(store, token).await
}

pub async fn load<B: Backend>(
    store: &Store<B>,
    token: TokenId,
) -> Result<Option<SyncState>, KvError> {
    SyncState::load(store, token).await
}

/// Read-modify-write of the sync state. `change` returns false to leave it untouched.
pub async fn modify<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    change: impl FnMut(&mut SyncState) -> Result<bool, SyncError>,
) -> Result<SyncState, SyncError> {
    SyncState::modify(store, token, change)
        .await?
        .ok_or(SyncError::NoSuchToken)
}

/// A new server token was uploaded into the slot: whatever failed before may work now.
pub async fn clear_backoff<B: Backend>(store: &Store<B>, token: TokenId) -> Result<(), SyncError> {
    match modify(store, token, |s| Ok(s.backoff.take().is_some())).await {
        Ok(_) | Err(SyncError::NoSuchToken) => Ok(()),
        Err(e) => Err(e),
    }
}

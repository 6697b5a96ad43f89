//! The Device Assignment sync engine: which sync is due, and running one resumably under
//! an expiring compare-and-swap lease.
//!
//! Key layout: `dsync:<t>` holds the token's [`SyncState`] (JSON). It is written when the
//! token slot is created and never deleted while the slot exists, so every later update
//! can use compare-and-swap safely (CAS on an absent key is not safe on Spin's SQLite).
//!
//! A run stores the cursor after every applied page. If it dies at any point, its lease
//! expires and the next trigger resumes from that cursor; re-applying a page is harmless
//! (see [`super::inventory::apply_page`]).

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use mdm_kv::{Backend, KvError, Store, UpdateError};

use super::TokenId;
use super::inventory::{self, ApplyMode, PageStats, ScanState};
use crate::{Clock, random};

pub fn state_key(token: TokenId) -> String {
    format!("dsync:{token}")
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
    pub run_budget: u64,
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
            lease_ttl: 120,
        }
    }
}

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub kind: SyncKind,
    pub add_only: bool,
    pub started_at: u64,
    pub finished_at: u64,
    pub pages: u64,
    pub devices_seen: u64,
    pub outcome: String,
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
        if self.full_required || self.cursor.is_none() || cursor_stale {
            SyncKind::Full
        } else {
            SyncKind::Delta
        }
    }

    /// What a scheduled trigger should do now, if anything.
    pub fn scheduled_plan(&self, now: u64, p: &Policy) -> Option<Plan> {
        if self.running(now) || self.retry_after.is_some_and(|t| t > now) {
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
    /// delta that cannot run (no usable cursor) becomes a full sync.
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

/// One page from Apple.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedPage {
    pub devices: Vec<Map<String, Value>>,
    pub cursor: Option<String>,
    pub more_to_follow: bool,
}

/// What can go wrong asking Apple for devices, in the terms the engine acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    /// Fetch with a cursor that has delivered everything: the full fetch is complete.
    ExhaustedCursor,
    /// The cursor is too old or not valid: drop it, the next sync is full.
    CursorRejected(String),
    /// Come back after this many seconds.
    Throttled { retry_after: u64 },
    /// The organisation must accept new terms in Apple Business/School Manager.
    TermsNotSigned,
    /// The token was refused (expired, revoked, wrong secrets).
    TokenRejected(String),
    /// Anything else; the message is safe to show (no secrets).
    Other(String),
}

impl std::fmt::Display for FeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedError::ExhaustedCursor => f.write_str("EXHAUSTED_CURSOR"),
            FeedError::CursorRejected(m) => write!(f, "cursor rejected: {m}"),
            FeedError::Throttled { retry_after } => {
                write!(f, "throttled by Apple, retry after {retry_after} s")
            }
            FeedError::TermsNotSigned => {
                f.write_str("T_C_NOT_SIGNED: accept the new terms in Apple Business Manager")
            }
            FeedError::TokenRejected(m) => write!(f, "server token rejected: {m}"),
            FeedError::Other(m) => f.write_str(m),
        }
    }
}

/// Apple's device endpoints for one token.
pub trait DeviceFeed {
    fn fetch(&mut self, cursor: Option<&str>) -> impl Future<Output = Result<FeedPage, FeedError>>;
    fn sync(&mut self, cursor: &str) -> impl Future<Output = Result<FeedPage, FeedError>>;
}

/// How a call to [`run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// The time budget ran out; the run resumes at the next trigger.
    Paused,
    /// Apple throttled us; resumes after `retry_after`.
    Throttled {
        retry_after: u64,
    },
    /// The run ended with an error (recorded in the state).
    Failed(String),
    /// Another worker holds the lease.
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    pub kind: SyncKind,
    pub pages: u64,
    pub stats: PageStats,
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
    store
        .set(
            &state_key(token),
            &serde_json::to_vec(&SyncState::default()).expect("serialises"),
        )
        .await
}

pub async fn load<B: Backend>(
    store: &Store<B>,
    token: TokenId,
) -> Result<Option<SyncState>, KvError> {
    Ok(match store.get(&state_key(token)).await? {
        Some(raw) => Some(
            serde_json::from_slice(&raw)
                .map_err(|e| KvError::Backend(format!("sync state: {e}")))?,
        ),
        None => None,
    })
}

/// Read-modify-write of the sync state. `change` returns false to leave it untouched.
async fn modify<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    mut change: impl FnMut(&mut SyncState) -> Result<bool, SyncError>,
) -> Result<SyncState, SyncError> {
    let r = store
        .update::<SyncError>(&state_key(token), 50, |raw| {
            let mut s: SyncState = serde_json::from_slice(raw)
                .map_err(|e| SyncError::Store(KvError::Backend(format!("sync state: {e}"))))?;
            if change(&mut s)? {
                Ok(Some(serde_json::to_vec(&s).expect("serialises")))
            } else {
                Ok(None)
            }
        })
        .await;
    match r {
        Ok(Some(raw)) => Ok(serde_json::from_slice(&raw).expect("just serialised")),
        Ok(None) => Err(SyncError::NoSuchToken),
        Err(UpdateError::Kv(e)) => Err(SyncError::Store(e)),
        Err(UpdateError::Rejected(e)) => Err(e),
    }
}

/// Runs (or resumes) a sync for `token` under the lease. Bounded by `policy.run_budget`.
pub async fn run<B: Backend, C: Clock, F: DeviceFeed>(
    store: &Store<B>,
    clock: &C,
    token: TokenId,
    feed: &mut F,
    plan: Plan,
    policy: &Policy,
) -> Result<Report, SyncError> {
    let me = random::hex_id(8);
    let started = clock.unix_seconds();
    let mut busy = false;
    // Take the lease and set up (or adopt) the run.
    let state = modify(store, token, |s| {
        if s.running(started) {
            busy = true;
            return Ok(false);
        }
        busy = false;
        s.lease = Some(Lease {
            holder: me.clone(),
            expires_at: started + policy.lease_ttl,
        });
        let resumable = s.run.as_ref().is_some_and(|r| r.kind == plan.kind);
        if !resumable {
            s.run = Some(Run {
                id: me.clone(),
                kind: plan.kind,
                add_only: plan.add_only,
                manual: plan.manual,
                started_at: started,
                pages: 0,
                devices_seen: 0,
                cursor: match plan.kind {
                    SyncKind::Full => None,
                    SyncKind::Delta => s.cursor.clone(),
                },
            });
        }
        if plan.manual {
            s.last_manual_at = Some(started);
        }
        s.retry_after = None;
        Ok(true)
    })
    .await;
    let state = state?;
    if busy {
        return Ok(Report {
            outcome: Outcome::Busy,
            kind: plan.kind,
            pages: 0,
            stats: PageStats::default(),
        });
    }
    let run = state.run.clone().expect("run just set");
    let mode = if run.add_only {
        ApplyMode::AddOnly
    } else {
        ApplyMode::Upsert
    };
    let mut cursor = run.cursor.clone();
    let mut totals = PageStats::default();
    let mut pages = 0u64;

    let outcome = loop {
        let now = clock.unix_seconds();
        if now.saturating_sub(started) >= policy.run_budget {
            break Outcome::Paused;
        }
        let page = match (run.kind, cursor.as_deref()) {
            (SyncKind::Full, c) => feed.fetch(c).await,
            (SyncKind::Delta, Some(c)) => feed.sync(c).await,
            (SyncKind::Delta, None) => Err(FeedError::CursorRejected(
                "no cursor for a delta sync".into(),
            )),
        };
        let page = match page {
            Ok(p) => p,
            Err(FeedError::ExhaustedCursor) if run.kind == SyncKind::Full => {
                break Outcome::Completed;
            }
            Err(FeedError::Throttled { retry_after }) => {
                break Outcome::Throttled {
                    retry_after: now + retry_after,
                };
            }
            Err(e) => break Outcome::Failed(e.to_string()),
        };
        let stats =
            inventory::apply_page(store, token, page.devices, mode, clock.unix_seconds()).await?;
        add_stats(&mut totals, &stats);
        pages += 1;
        if page.cursor.is_some() {
            cursor = page.cursor.clone();
        }
        let more = page.more_to_follow;
        let now = clock.unix_seconds();
        modify(store, token, |s| {
            if s.lease.as_ref().is_none_or(|l| l.holder != me) {
                return Err(SyncError::LeaseLost);
            }
            s.lease = Some(Lease {
                holder: me.clone(),
                expires_at: now + policy.lease_ttl,
            });
            if let Some(r) = s.run.as_mut() {
                r.pages += 1;
                r.devices_seen += stats.records;
                r.cursor = cursor.clone();
            }
            if cursor.is_some() {
                s.cursor = cursor.clone();
                s.cursor_at = Some(now);
            }
            Ok(true)
        })
        .await?;
        if !more {
            break Outcome::Completed;
        }
    };

    let now = clock.unix_seconds();
    modify(store, token, |s| {
        if s.lease.as_ref().is_none_or(|l| l.holder != me) {
            return Err(SyncError::LeaseLost);
        }
        s.lease = None;
        let finished = |s: &mut SyncState, text: &str| {
            if let Some(r) = s.run.take() {
                s.last_run = Some(RunSummary {
                    kind: r.kind,
                    add_only: r.add_only,
                    started_at: r.started_at,
                    finished_at: now,
                    pages: r.pages,
                    devices_seen: r.devices_seen,
                    outcome: text.to_owned(),
                });
            }
        };
        match &outcome {
            Outcome::Completed => {
                match run.kind {
                    SyncKind::Full => {
                        s.last_full_at = Some(now);
                        s.full_required = false;
                    }
                    SyncKind::Delta => s.last_delta_at = Some(now),
                }
                s.last_error = None;
                s.last_error_at = None;
                finished(s, "completed");
            }
            Outcome::Paused | Outcome::Busy => {}
            Outcome::Throttled { retry_after } => s.retry_after = Some(*retry_after),
            Outcome::Failed(msg) => {
                s.last_error = Some(msg.clone());
                s.last_error_at = Some(now);
                // Any failed run falls back to a full sync next time; a rejected cursor
                // is dropped so it is never sent again.
                s.full_required = true;
                if msg.starts_with("cursor rejected") {
                    s.cursor = None;
                    s.cursor_at = None;
                }
                finished(s, "failed");
            }
        }
        Ok(true)
    })
    .await?;
    Ok(Report {
        outcome,
        kind: run.kind,
        pages,
        stats: totals,
    })
}

fn add_stats(total: &mut PageStats, page: &PageStats) {
    total.records += page.records;
    total.added += page.added;
    total.updated += page.updated;
    total.removed += page.removed;
    total.skipped += page.skipped;
    total.invalid += page.invalid;
}

/// Days after which a device Apple reported removed is purged (30–45, default 30).
pub const PURGE_DAYS_DEFAULT: u64 = 30;
pub const PURGE_DAYS_RANGE: std::ops::RangeInclusive<u64> = 30..=45;
/// A maintenance pass starts at most once a day per token.
pub const SCAN_INTERVAL: u64 = 86400;
/// Index slots scanned per trigger and token, to keep each trigger short.
pub const SCAN_SLOTS_PER_TRIGGER: u64 = 50_000;

/// Result of [`maintain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maintenance {
    NotDue,
    Busy,
    Scanned { purged: u64, pass_complete: bool },
}

/// Runs a slice of the daily maintenance scan (purge + recount) for `token`, under the
/// same lease as syncs so it never interleaves with a sync of the same token.
pub async fn maintain<B: Backend, C: Clock>(
    store: &Store<B>,
    clock: &C,
    token: TokenId,
    purge_days: u64,
    policy: &Policy,
) -> Result<Maintenance, SyncError> {
    let now = clock.unix_seconds();
    let me = random::hex_id(8);
    let mut verdict = Maintenance::NotDue;
    let state = modify(store, token, |s| {
        let in_pass = s.scan.position > 0;
        let due = in_pass
            || s.last_scan_at
                .is_none_or(|t| now.saturating_sub(t) >= SCAN_INTERVAL);
        if !due {
            verdict = Maintenance::NotDue;
            return Ok(false);
        }
        if s.running(now) {
            verdict = Maintenance::Busy;
            return Ok(false);
        }
        verdict = Maintenance::Scanned {
            purged: 0,
            pass_complete: false,
        };
        s.lease = Some(Lease {
            holder: me.clone(),
            expires_at: now + policy.lease_ttl,
        });
        Ok(true)
    })
    .await?;
    if verdict
        != (Maintenance::Scanned {
            purged: 0,
            pass_complete: false,
        })
    {
        return Ok(verdict);
    }
    let mut scan = state.scan;
    let purge_before = now.saturating_sub(
        purge_days.clamp(*PURGE_DAYS_RANGE.start(), *PURGE_DAYS_RANGE.end()) * 86400,
    );
    let (purged, complete) = inventory::maintenance_scan(
        store,
        token,
        &mut scan,
        SCAN_SLOTS_PER_TRIGGER,
        purge_before,
        now,
    )
    .await?;
    modify(store, token, |s| {
        if s.lease.as_ref().is_none_or(|l| l.holder != me) {
            return Err(SyncError::LeaseLost);
        }
        s.lease = None;
        s.scan = scan;
        if complete {
            s.last_scan_at = Some(now);
        }
        Ok(true)
    })
    .await?;
    Ok(Maintenance::Scanned {
        purged,
        pass_complete: complete,
    })
}

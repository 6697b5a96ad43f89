//! The Device Assignment sync engine: runs (or resumes) one sync of a token under an
//! expiring compare-and-swap lease, a slice at a time. The state it keeps and the rules
//! of which sync is due are in [`super::sync_state`].
//!
//! A run stores the cursor after every applied page. If it dies at any point, its lease
//! expires and the next trigger resumes from that cursor; re-applying a page is harmless
//! (see [`super::inventory_apply::apply_page`]). A full listing ends with a bounded pass over the
//! inventory ([`super::reconcile::listing_step`]) before the run counts as completed.

use crate::metrics::{self, Counter};
use std::future::Future;

use serde_json::{Map, Value};

use mdm_kv::{Backend, Store};

use super::TokenId;
use super::inventory_apply::{self, ApplyMode, PageContext, PageStats};
use super::reconcile;
use super::sync_state::{
    Lease, Listing, Plan, Policy, Reconcile, Run, RunSummary, SyncError, SyncKind, SyncState,
    modify,
};
use crate::{Clock, random};

/// Index slots the end-of-listing pass examines per step (between two lease renewals).
pub const RECONCILE_SLOTS_PER_STEP: u64 = 2_000;

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
    /// The whole run took longer than `Policy::run_budget`: it ends, and the next sync
    /// continues from its cursor.
    TimedOut,
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

/// Runs (or resumes) a sync for `token` under the lease, for one slice of
/// `policy.slice` seconds at most.
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
            let listing = if plan.kind == SyncKind::Full && !plan.add_only {
                if s.listing.is_none() {
                    s.listings += 1;
                    s.listing = Some(Listing {
                        generation: s.listings,
                        cursor: None,
                        fetched: 0,
                        started_at: started,
                        reconcile: None,
                    });
                }
                s.listing.clone()
            } else {
                None
            };
            s.run = Some(Run {
                id: me.clone(),
                kind: plan.kind,
                add_only: plan.add_only,
                manual: plan.manual,
                started_at: started,
                pages: 0,
                devices_seen: 0,
                cursor: match plan.kind {
                    SyncKind::Full => listing.as_ref().and_then(|l| l.cursor.clone()),
                    SyncKind::Delta => s.cursor.clone(),
                },
                listing: listing.map(|l| l.generation),
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
    let mut listing = state
        .listing
        .clone()
        .filter(|l| run.listing == Some(l.generation));
    let mut cursor = run.cursor.clone();
    let mut totals = PageStats::default();
    let mut pages = 0u64;
    // A lost cursor is routine (the next sync is full at once); any other failure makes
    // the token wait.
    let mut cursor_lost = false;

    let outcome = loop {
        let now = clock.unix_seconds();
        if now.saturating_sub(run.started_at) >= policy.run_budget {
            break Outcome::TimedOut;
        }
        if now.saturating_sub(started) >= policy.slice {
            break Outcome::Paused;
        }
        // Every page fetched: the pass over the inventory, a step at a time.
        if let Some(l) = listing.as_mut()
            && let Some(mut progress) = l.reconcile
        {
            let done = reconcile::listing_step(
                store,
                token,
                l.generation,
                &mut progress,
                RECONCILE_SLOTS_PER_STEP,
                now,
            )
            .await?;
            l.reconcile = Some(progress);
            let l = l.clone();
            renew(store, token, &me, now, policy, |s| {
                s.listing = Some(l.clone())
            })
            .await?;
            if done {
                break Outcome::Completed;
            }
            continue;
        }
        let asked_at = clock.unix_seconds();
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
                match listing.as_mut() {
                    Some(l) => {
                        l.reconcile = Some(Reconcile::default());
                        let l = l.clone();
                        renew(store, token, &me, now, policy, |s| {
                            s.listing = Some(l.clone())
                        })
                        .await?;
                        continue;
                    }
                    None => break Outcome::Completed,
                }
            }
            Err(FeedError::Throttled { retry_after }) => {
                break Outcome::Throttled {
                    retry_after: now + retry_after,
                };
            }
            Err(e) => {
                cursor_lost = matches!(e, FeedError::CursorRejected(_));
                break Outcome::Failed(e.to_string());
            }
        };
        let cx = PageContext {
            mode,
            asked_at,
            now: clock.unix_seconds(),
            listing: listing.as_ref().map(|l| l.generation),
        };
        let stats = inventory_apply::apply_page(store, token, page.devices, cx).await?;
        metrics::add(store, Counter::DevicesSynced(token.0), stats.records).await?;
        add_stats(&mut totals, &stats);
        pages += 1;
        if page.cursor.is_some() {
            cursor = page.cursor.clone();
        }
        let more = page.more_to_follow;
        if let Some(l) = listing.as_mut() {
            l.cursor = cursor.clone();
            l.fetched += stats.records;
            if !more {
                l.reconcile = Some(Reconcile::default());
            }
        }
        let now = clock.unix_seconds();
        renew(store, token, &me, now, policy, |s| {
            if let Some(r) = s.run.as_mut() {
                r.pages += 1;
                r.devices_seen += stats.records;
                r.cursor = cursor.clone();
            }
            if cursor.is_some() {
                s.cursor = cursor.clone();
                s.cursor_at = Some(now);
            }
            if listing.is_some() {
                s.listing = listing.clone();
            }
            // Apple answered: whatever failed before works again.
            s.backoff = None;
        })
        .await?;
        if !more && listing.is_none() {
            break Outcome::Completed;
        }
    };

    let now = clock.unix_seconds();
    modify(store, token, |s| {
        if s.lease.as_ref().is_none_or(|l| l.holder != me) {
            return Err(SyncError::LeaseLost);
        }
        s.lease = None;
        let finished = |s: &mut SyncState, text: &str, flagged: u64| {
            if let Some(r) = s.run.take() {
                s.last_run = Some(RunSummary {
                    kind: r.kind,
                    add_only: r.add_only,
                    started_at: r.started_at,
                    finished_at: now,
                    pages: r.pages,
                    devices_seen: r.devices_seen,
                    outcome: text.to_owned(),
                    flagged_absent: flagged,
                });
            }
        };
        match &outcome {
            Outcome::Completed => {
                let mut flagged = 0;
                match run.kind {
                    SyncKind::Full => {
                        s.last_full_at = Some(now);
                        s.full_required = false;
                        if run.listing.is_some()
                            && let Some(l) = s.listing.take()
                        {
                            let pass = l.reconcile.unwrap_or_default();
                            flagged = pass.flagged;
                            s.listed_devices = Some(pass.live.max(0) as u64);
                            // The listing just recounted: a maintenance pass begun
                            // before it would set an older count.
                            s.scan = Default::default();
                        }
                    }
                    SyncKind::Delta => s.last_delta_at = Some(now),
                }
                s.last_error = None;
                s.last_error_at = None;
                s.backoff = None;
                finished(s, "completed", flagged);
            }
            Outcome::Paused | Outcome::Busy => {}
            Outcome::Throttled { retry_after } => s.retry_after = Some(*retry_after),
            Outcome::TimedOut => {
                s.last_error = Some(format!(
                    "the sync did not finish within {} minutes; the next one continues where it stopped",
                    policy.run_budget / 60
                ));
                s.last_error_at = Some(now);
                finished(s, "timed_out", 0);
            }
            Outcome::Failed(msg) => {
                s.last_error = Some(msg.clone());
                s.last_error_at = Some(now);
                // Any failed run falls back to a full sync next time; a rejected cursor
                // is dropped so it is never sent again (a listing it belonged to starts
                // over).
                s.full_required = true;
                if cursor_lost {
                    s.cursor = None;
                    s.cursor_at = None;
                    if run.kind == SyncKind::Full {
                        s.listing = None;
                    }
                } else {
                    s.back_off(msg, now);
                }
                finished(s, "failed", 0);
            }
        }
        Ok(true)
    })
    .await?;
    let ended = match &outcome {
        Outcome::Completed => Some("completed"),
        Outcome::TimedOut => Some("timed_out"),
        Outcome::Failed(_) => Some("failed"),
        Outcome::Paused | Outcome::Busy | Outcome::Throttled { .. } => None,
    };
    // A sync's own counts fail it like any other store write: its state is saved, and a
    // worker that dies here reports nothing either.
    if let Some(o) = ended {
        metrics::add(store, Counter::SyncRuns(token.0, o), 1).await?;
    }
    Ok(Report {
        outcome,
        kind: run.kind,
        pages,
        stats: totals,
    })
}

/// Renews our lease and records progress; fails when another worker took the lease.
async fn renew<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    me: &str,
    now: u64,
    policy: &Policy,
    mut progress: impl FnMut(&mut SyncState),
) -> Result<(), SyncError> {
    modify(store, token, |s| {
        if s.lease.as_ref().is_none_or(|l| l.holder != me) {
            return Err(SyncError::LeaseLost);
        }
        s.lease = Some(Lease {
            holder: me.to_owned(),
            expires_at: now + policy.lease_ttl,
        });
        progress(s);
        Ok(true)
    })
    .await
    .map(|_| ())
}

fn add_stats(total: &mut PageStats, page: &PageStats) {
    total.records += page.records;
    total.added += page.added;
    total.updated += page.updated;
    total.removed += page.removed;
    total.skipped += page.skipped;
    total.invalid += page.invalid;
}

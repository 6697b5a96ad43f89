//! Bounded passes over a token's device index: the pass that ends a full listing (flags
//! the devices Apple no longer listed, recounts the token's devices) and the daily
//! maintenance pass (purges devices removed long ago, recounts). Each call examines a
//! bounded number of index slots and keeps its progress in the sync state, so a 200,000
//! device token is reconciled across scheduler ticks, never in one request.

use mdm_kv::{Backend, KvError, Store};

use super::TokenId;
use super::inventory::{self, DeviceRecord, Removal, SCAN_BATCH};
use super::sync_state::{self, Lease, Policy, Reconcile, ScanState, SyncError};
use crate::record::Stored;
use crate::{Clock, random};

/// Days after which a device Apple reported removed is purged (30–45, default 30).
pub const PURGE_DAYS_DEFAULT: u64 = 30;
pub const PURGE_DAYS_RANGE: std::ops::RangeInclusive<u64> = 30..=45;
/// A maintenance pass starts at most once a day per token.
pub const SCAN_INTERVAL: u64 = 86400;
/// Index slots scanned per trigger and token, to keep each trigger short.
pub const SCAN_SLOTS_PER_TRIGGER: u64 = 50_000;

async fn last_slot<B: Backend>(store: &Store<B>, token: TokenId) -> Result<u64, KvError> {
    Ok(store
        .counter(&inventory::index_counter(token))
        .await?
        .max(0) as u64)
}

/// Sets the token's live-device counter to `live` (it drifts when a run dies between a
/// page's records and its counter update).
async fn set_live_count<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    live: i64,
) -> Result<(), KvError> {
    let counter = inventory::live_counter(token);
    let counted = store.counter(&counter).await?;
    if counted != live {
        store.increment(&counter, live - counted).await?;
    }
    Ok(())
}

/// Flags one live device as absent from listing `generation`, unless it was listed (or
/// removed, or deleted) meanwhile. Compare-and-swap: an admin may delete it concurrently.
async fn flag_absent<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    serial: &str,
    generation: u64,
    now: u64,
) -> Result<bool, KvError> {
    let mut flagged = false;
    // A record that does not decode is passed over, as one the listing contained.
    DeviceRecord::modify_valid(store, (token, serial), |r| {
        flagged = false;
        if r.tombstone || r.removed_at.is_some() || r.listed_in == Some(generation) {
            return Ok::<_, KvError>(false);
        }
        r.removed_at = Some(now);
        r.removed_by = Some(Removal::Absent);
        r.updated_at = now;
        flagged = true;
        Ok(true)
    })
    .await?;
    Ok(flagged)
}

/// One step of the pass that ends full listing `generation`: examines up to `max_slots`
/// slots after `progress.position`, flags live devices the listing did not contain
/// (`removed_at`, [`Removal::Absent`]) and counts live devices. When the pass reaches the
/// last slot the counter is set to the count and `true` is returned.
pub async fn listing_step<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    generation: u64,
    progress: &mut Reconcile,
    max_slots: u64,
    now: u64,
) -> Result<bool, KvError> {
    let last = last_slot(store, token).await?;
    let end = progress.position.saturating_add(max_slots).min(last);
    let mut slot = progress.position;
    while slot < end {
        let to = (slot + SCAN_BATCH).min(end);
        for (_, r) in inventory::read_slot_heads(store, token, slot + 1, to).await? {
            if r.tombstone {
                continue;
            }
            progress.live += 1;
            if r.removed_at.is_none()
                && r.listed_in != Some(generation)
                && flag_absent(store, token, &r.serial_number, generation, now).await?
            {
                progress.flagged += 1;
            }
        }
        slot = to;
    }
    progress.position = slot;
    if slot >= last {
        set_live_count(store, token, progress.live).await?;
        return Ok(true);
    }
    Ok(false)
}

/// Scans up to `max_slots` index slots from `state.position`: tombstones devices that
/// Apple reported removed before `purge_before`, and at the end of a full pass corrects
/// the live-device counter. Returns the number purged and whether the pass completed
/// (state reset for the next pass).
pub async fn maintenance_scan<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    state: &mut ScanState,
    max_slots: u64,
    purge_before: u64,
    now: u64,
) -> Result<(u64, bool), KvError> {
    let last = last_slot(store, token).await?;
    let end = state.position.saturating_add(max_slots).min(last);
    let mut purged = 0;
    let mut slot = state.position;
    while slot < end {
        let to = (slot + SCAN_BATCH).min(end);
        let mut writes = Vec::new();
        for (_, mut r) in inventory::read_slots(store, token, slot + 1, to).await? {
            if r.tombstone {
                continue;
            }
            if r.removed_at.is_some_and(|t| t < purge_before) {
                r.tombstone = true;
                r.apple.clear();
                r.updated_at = now;
                writes.push(r);
                purged += 1;
            } else {
                state.live_seen += 1;
            }
        }
        let items: Vec<((TokenId, &str), &DeviceRecord)> = writes
            .iter()
            .map(|r| ((token, r.serial_number.as_str()), r))
            .collect();
        DeviceRecord::save_many(store, &items).await?;
        slot = to;
    }
    if purged > 0 {
        store
            .increment(&inventory::live_counter(token), -(purged as i64))
            .await?;
    }
    state.position = slot;
    if slot >= last {
        set_live_count(store, token, state.live_seen).await?;
        *state = ScanState::default();
        return Ok((purged, true));
    }
    Ok((purged, false))
}

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
    let state = sync_state::modify(store, token, |s| {
        let in_pass = s.scan.position > 0;
        let due = in_pass
            || s.last_scan_at
                .is_none_or(|t| now.saturating_sub(t) >= SCAN_INTERVAL);
        if !due {
            verdict = Maintenance::NotDue;
            return Ok(false);
        }
        // A paused run or an unfinished listing pass owns the counts; wait for it.
        if s.running(now) || s.run.is_some() {
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
    if !matches!(verdict, Maintenance::Scanned { .. }) {
        return Ok(verdict);
    }
    let mut scan = state.scan;
    let purge_before = now.saturating_sub(
        purge_days.clamp(*PURGE_DAYS_RANGE.start(), *PURGE_DAYS_RANGE.end()) * 86400,
    );
    let (purged, complete) = maintenance_scan(
        store,
        token,
        &mut scan,
        SCAN_SLOTS_PER_TRIGGER,
        purge_before,
        now,
    )
    .await?;
    sync_state::modify(store, token, |s| {
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

//! Listing a token's inventory for administrators: one page at a time in index order,
//! filtered by assignment, serial prefix and removal, with our newer assignment answers
//! laid over Apple's fields. Each call reads a bounded number of index slots; [`select`]
//! walks every page for a filter.

use mdm_kv::{Backend, KvError, Store};

use super::TokenId;
use super::assignment::AssignmentResult;
use super::inventory::{DeviceRecord, SCAN_BATCH, index_counter, read_slots};
use crate::record::Stored;

/// Which devices a listing shows, by profile assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// No profile (never assigned, or `profile_status` removed/empty).
    Unassigned,
    /// Any profile.
    Any,
    /// This profile UUID.
    Profile(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Continue after this index slot (the `next` of the previous page); 0 = from the start.
    pub after: u64,
    pub limit: usize,
    pub assignment: Option<Assignment>,
    pub serial_prefix: Option<String>,
    /// `Some(true)`: only devices Apple reported removed; `Some(false)`: only present ones.
    pub removed: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub devices: Vec<DeviceRecord>,
    /// Pass as `after` for the next page; `None` when the listing is complete.
    pub next: Option<u64>,
}

/// Slots read per listing call at most, so a selective filter over a large inventory
/// returns partial pages (with `next`) instead of one unbounded scan.
pub const MAX_SCAN: u64 = 20_000;

fn matches(r: &DeviceRecord, q: &ListQuery) -> bool {
    if let Some(p) = &q.serial_prefix
        && !r
            .serial_number
            .to_ascii_uppercase()
            .starts_with(&p.to_ascii_uppercase())
    {
        return false;
    }
    if let Some(removed) = q.removed
        && r.removed_at.is_some() != removed
    {
        return false;
    }
    let assigned = r.assigned();
    match &q.assignment {
        None => true,
        Some(Assignment::Unassigned) => !assigned,
        Some(Assignment::Any) => assigned,
        Some(Assignment::Profile(uuid)) => assigned && r.profile_uuid() == Some(uuid.as_str()),
    }
}

/// Our last assignment answer for each of `serials`, in order.
async fn assignments<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    serials: &[&str],
) -> Result<Vec<Option<AssignmentResult>>, KvError> {
    if serials.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<(TokenId, &str)> = serials.iter().map(|s| (token, *s)).collect();
    AssignmentResult::load_many_valid(store, &ids).await
}

/// [`read_slots`] with our newer assignment answers laid over the live records.
async fn read_slots_effective<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, DeviceRecord)>, KvError> {
    let slots = read_slots(store, token, from, to).await?;
    let live: Vec<&str> = slots
        .iter()
        .filter(|(_, r)| !r.tombstone)
        .map(|(_, r)| r.serial_number.as_str())
        .collect();
    let mut ours = assignments(store, token, &live).await?.into_iter();
    Ok(slots
        .into_iter()
        .map(|(slot, r)| {
            if r.tombstone {
                (slot, r)
            } else {
                let a = ours.next().flatten();
                (slot, r.with_assignment(a.as_ref()))
            }
        })
        .collect())
}

/// One page of a token's devices in index order.
pub async fn list<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    q: &ListQuery,
) -> Result<ListPage, KvError> {
    let last = store.counter(&index_counter(token)).await?.max(0) as u64;
    let limit = q.limit.max(1);
    let mut devices = Vec::new();
    let mut slot = q.after;
    let scan_end = q.after.saturating_add(MAX_SCAN).min(last);
    while slot < scan_end && devices.len() < limit {
        let to = (slot + SCAN_BATCH).min(scan_end);
        for (s, r) in read_slots_effective(store, token, slot + 1, to).await? {
            if devices.len() == limit {
                return Ok(ListPage {
                    devices,
                    next: Some(s - 1),
                });
            }
            if !r.tombstone && matches(&r, q) {
                devices.push(r);
            }
        }
        slot = to;
    }
    Ok(ListPage {
        devices,
        next: (slot < last).then_some(slot),
    })
}

/// Every device of the token matching a filter (the whole inventory, page by page),
/// of those Apple has not reported removed.
pub async fn select<B: Backend>(
    store: &Store<B>,
    t: TokenId,
    a: Assignment,
) -> Result<Vec<DeviceRecord>, KvError> {
    let mut out = Vec::new();
    let mut q = ListQuery {
        after: 0,
        limit: 1000,
        assignment: Some(a),
        serial_prefix: None,
        removed: Some(false),
    };
    loop {
        let page = list(store, t, &q).await?;
        out.extend(page.devices);
        match page.next {
            Some(n) => q.after = n,
            None => return Ok(out),
        }
    }
}

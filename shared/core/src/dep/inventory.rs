//! The device inventory of each server token: what Apple's Device Assignment API says is
//! assigned to us.
//!
//! Key layout (per token `t`, serial `s` as a key segment):
//! - `dev:<t>:<s>`            the [`DeviceRecord`] (JSON), which names its index slot.
//!                            Never deleted while the token exists: removal leaves a
//!                            tombstone, so a serial keeps its one slot.
//! - `devix:<t>:<slot>`       the serial at index slot `slot` (1-based, append-only). A
//!                            slot whose record names another slot is an orphan left by
//!                            a crashed run and is skipped.
//! - `ctr:devix:<t>`          last index slot allocated (increment-only)
//! - `ctr:devn:<t>`           number of live (non-tombstone) devices
//! - `devtok:<s>`             token (decimal) that last synced the serial as present
//!
//! Applying a page of N devices costs one batched read, one batched write of records,
//! one batched write of the serial→token index and, for new serials only, one increment
//! and one batched index write: O(1) calls per 100 devices whatever the inventory size.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store};

use super::TokenId;
use super::assignment::{AssignmentResult, result_key};
use crate::time::parse_rfc3339;

pub fn device_key(token: TokenId, serial: &str) -> String {
    format!("dev:{token}:{}", segment(serial))
}

/// The serial → token index (see the module documentation).
pub fn serial_index_key(serial: &str) -> String {
    format!("devtok:{}", segment(serial))
}

fn index_key(token: TokenId, slot: u64) -> String {
    format!("devix:{token}:{slot}")
}

pub(crate) fn index_counter(token: TokenId) -> CounterKey {
    CounterKey::new(&format!("devix:{token}")).expect("static counter name")
}

pub(crate) fn live_counter(token: TokenId) -> CounterKey {
    CounterKey::new(&format!("devn:{token}")).expect("static counter name")
}

/// One device as we keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub serial_number: String,
    /// Every field Apple sent in the latest applied record, as sent.
    #[serde(default)]
    pub apple: Map<String, Value>,
    /// Unix time of the latest applied sync event (`op_date`), for latest-wins ordering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_time: Option<i64>,
    /// Set when Apple reported the device deleted (removed from ABM/ASM or reassigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<u64>,
    pub first_seen_at: u64,
    pub updated_at: u64,
    /// This serial's slot in the token's device index.
    pub slot: u64,
    /// Deleted by an admin or purged; kept so the serial keeps its one index slot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tombstone: bool,
    /// When the page that brought `apple` was requested from Apple: what an assignment
    /// answer is compared with (see [`super::assignment`]). Older records: `updated_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_at: Option<u64>,
    /// The full listing (its generation number) that last contained the serial; a
    /// completed listing flags the live devices it did not contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_in: Option<u64>,
    /// Why `removed_at` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_by: Option<Removal>,
}

/// How we learnt that Apple no longer assigns a device to this token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// A sync event with `op_type: deleted`.
    Deleted,
    /// A completed full listing did not contain it.
    Absent,
}

impl DeviceRecord {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.apple.get(name).and_then(Value::as_str)
    }

    pub fn profile_uuid(&self) -> Option<&str> {
        self.field("profile_uuid").filter(|s| !s.is_empty())
    }

    pub fn profile_status(&self) -> &str {
        self.field("profile_status").unwrap_or("empty")
    }

    /// Whether Apple (as far as we know) assigns the device a profile.
    pub fn assigned(&self) -> bool {
        self.profile_uuid().is_some() && !matches!(self.profile_status(), "empty" | "removed")
    }

    /// As of when `apple` reflects Apple.
    pub fn apple_at(&self) -> u64 {
        self.apple_at.unwrap_or(self.updated_at)
    }

    /// The record as an admin or an enrolling device must see it: our accepted
    /// assignment (or removal) laid over Apple's fields when it is newer than them.
    pub fn with_assignment(mut self, ours: Option<&AssignmentResult>) -> Self {
        if let Some(r) = ours {
            let at = self.apple_at();
            r.overlay(&mut self.apple, at);
        }
        self
    }

    pub fn decode(raw: &[u8]) -> Option<Self> {
        serde_json::from_slice(raw).ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("record serialises")
    }
}

/// A held [`DeviceRecord`] without Apple's fields.
#[derive(Deserialize)]
struct HeldRecord {
    serial_number: String,
    #[serde(default)]
    op_time: Option<i64>,
    #[serde(default)]
    removed_at: Option<u64>,
    first_seen_at: u64,
    updated_at: u64,
    slot: u64,
    #[serde(default)]
    tombstone: bool,
    #[serde(default)]
    apple_at: Option<u64>,
    #[serde(default)]
    listed_in: Option<u64>,
    #[serde(default)]
    removed_by: Option<Removal>,
}

/// How a page is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Every record updates what we hold (delta sync, regular full sync).
    Upsert,
    /// Only serials we do not hold yet are stored (a full sync requested sooner than the
    /// policy allows).
    AddOnly,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PageStats {
    pub records: u64,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    /// Older than what we already hold, or known serials in add-only mode.
    pub skipped: u64,
    /// Records without a usable serial number.
    pub invalid: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Upsert,
    Deleted,
}

fn op_of(rec: &Map<String, Value>) -> Op {
    match rec.get("op_type").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("deleted") => Op::Deleted,
        _ => Op::Upsert,
    }
}

fn serial_of(rec: &Map<String, Value>) -> Option<String> {
    let s = rec.get("serial_number")?.as_str()?.trim();
    // Apple serials are short alphanumerics; refuse anything that is not plausible.
    (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_owned())
}

/// How one page of Apple device records is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageContext {
    pub mode: ApplyMode,
    /// When the page was requested from Apple.
    pub asked_at: u64,
    pub now: u64,
    /// The full listing this page belongs to: its devices are stamped with it.
    pub listing: Option<u64>,
}

impl PageContext {
    /// A page requested and applied at `now`, outside any full listing.
    pub fn at(mode: ApplyMode, now: u64) -> Self {
        PageContext {
            mode,
            asked_at: now,
            now,
            listing: None,
        }
    }
}

/// Applies one page of Apple device records (fetch or sync) to the inventory.
///
/// Within the page records are ordered by `op_date` and the latest per serial wins;
/// across pages a record older than the one held is skipped (but still stamped with the
/// listing that contained it). Applying the same page twice (a run resumed after a
/// crash) changes nothing the second time.
pub async fn apply_page<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    records: Vec<Map<String, Value>>,
    cx: PageContext,
) -> Result<PageStats, KvError> {
    let now = cx.now;
    let mut stats = PageStats {
        records: records.len() as u64,
        ..Default::default()
    };

    // Latest record per serial within the page; stable for records without op_date.
    let mut latest: HashMap<String, (Option<i64>, usize, Map<String, Value>)> = HashMap::new();
    for (pos, rec) in records.into_iter().enumerate() {
        let Some(serial) = serial_of(&rec) else {
            stats.invalid += 1;
            continue;
        };
        let t = rec
            .get("op_date")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339);
        match latest.get(&serial) {
            Some((held_t, held_pos, _)) if (*held_t, *held_pos) > (t, pos) => stats.skipped += 1,
            Some(_) => {
                stats.skipped += 1;
                latest.insert(serial, (t, pos, rec));
            }
            None => {
                latest.insert(serial, (t, pos, rec));
            }
        }
    }
    let mut page: Vec<(String, Option<i64>, Map<String, Value>)> =
        latest.into_iter().map(|(s, (t, _, r))| (s, t, r)).collect();
    page.sort_by(|a, b| a.0.cmp(&b.0));

    let keys: Vec<String> = page.iter().map(|(s, _, _)| device_key(token, s)).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let held = store.get_many(&key_refs).await?;

    let mut updates: Vec<(String, DeviceRecord)> = Vec::new();
    let mut live_delta: i64 = 0;
    for ((serial, t, rec), (key, raw)) in page.into_iter().zip(keys.into_iter().zip(held)) {
        // Apple's fields of the held record (most of its bytes) are decoded only on the
        // rare paths that keep them.
        let held: Option<HeldRecord> = raw.as_deref().and_then(|r| serde_json::from_slice(r).ok());
        let full = || raw.as_deref().and_then(DeviceRecord::decode);
        let op = op_of(&rec);
        let was_live = held.as_ref().is_some_and(|h| !h.tombstone);
        if held.is_none() && op == Op::Deleted {
            // Deleted before we ever knew it: nothing to flag.
            stats.skipped += 1;
            continue;
        }
        if let Some(h) = &held {
            let stale = matches!((h.op_time, t), (Some(old), Some(new)) if new < old);
            if stale || (cx.mode == ApplyMode::AddOnly && !h.tombstone) {
                stats.skipped += 1;
                // Listed by Apple all the same: a completed listing must not flag it.
                if op == Op::Upsert
                    && !h.tombstone
                    && cx.listing.is_some()
                    && h.listed_in != cx.listing
                    && let Some(mut h) = full()
                {
                    h.listed_in = cx.listing;
                    updates.push((key, h));
                }
                continue;
            }
        }
        let mut record = match held {
            Some(h) if !h.tombstone => DeviceRecord {
                serial_number: h.serial_number,
                // Kept only by a deletion; an upsert replaces them below.
                apple: match op {
                    Op::Deleted => full().map(|f| f.apple).unwrap_or_default(),
                    Op::Upsert => Map::new(),
                },
                op_time: h.op_time,
                removed_at: h.removed_at,
                first_seen_at: h.first_seen_at,
                updated_at: h.updated_at,
                slot: h.slot,
                tombstone: false,
                apple_at: h.apple_at,
                listed_in: h.listed_in,
                removed_by: h.removed_by,
            },
            other => DeviceRecord {
                serial_number: serial.clone(),
                apple: Map::new(),
                op_time: None,
                removed_at: None,
                first_seen_at: now,
                updated_at: now,
                // 0 = not indexed yet; a tombstone keeps its slot.
                slot: other.map_or(0, |h| h.slot),
                tombstone: false,
                apple_at: None,
                listed_in: None,
                removed_by: None,
            },
        };
        if t.is_some() {
            record.op_time = t;
        }
        record.updated_at = now;
        match op {
            Op::Deleted => {
                // Keep the last known fields; the purge removes the record later.
                if record.removed_at.is_none() {
                    record.removed_at = Some(now);
                    record.removed_by = Some(Removal::Deleted);
                }
                for (k, v) in [
                    ("op_type", rec.get("op_type")),
                    ("op_date", rec.get("op_date")),
                ] {
                    if let Some(v) = v {
                        record.apple.insert(k.to_owned(), v.clone());
                    }
                }
                stats.removed += 1;
            }
            Op::Upsert => {
                record.apple = rec;
                record.apple_at = Some(cx.asked_at);
                record.removed_at = None;
                record.removed_by = None;
                if cx.listing.is_some() {
                    record.listed_in = cx.listing;
                }
                if was_live {
                    stats.updated += 1;
                } else {
                    stats.added += 1;
                }
            }
        }
        if !was_live {
            live_delta += 1;
        }
        updates.push((key, record));
    }

    // Index slots before records: a crash in between leaves orphan slots (skipped when
    // listing), never a record missing from the index.
    let unindexed: Vec<usize> = updates
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| r.slot == 0)
        .map(|(i, _)| i)
        .collect();
    if !unindexed.is_empty() {
        let n = unindexed.len() as u64;
        let last = store.increment(&index_counter(token), n as i64).await? as u64;
        let mut index: Vec<(String, Vec<u8>)> = Vec::with_capacity(unindexed.len());
        for (offset, &i) in unindexed.iter().enumerate() {
            let slot = last + 1 - n + offset as u64;
            let record = &mut updates[i].1;
            record.slot = slot;
            index.push((
                index_key(token, slot),
                record.serial_number.as_bytes().to_vec(),
            ));
        }
        set_all(store, &index).await?;
    }
    let writes: Vec<(String, Vec<u8>)> = updates
        .iter()
        .map(|(k, r)| (k.clone(), r.encode()))
        .collect();
    set_all(store, &writes).await?;
    // After the records: a crash in between leaves a serial unindexed, which the lookup
    // ([`token_of`]) covers by scanning the tokens.
    let present: Vec<(String, Vec<u8>)> = updates
        .iter()
        .filter(|(_, r)| r.removed_at.is_none())
        .map(|(_, r)| {
            (
                serial_index_key(&r.serial_number),
                token.to_string().into_bytes(),
            )
        })
        .collect();
    set_all(store, &present).await?;
    if live_delta != 0 {
        store.increment(&live_counter(token), live_delta).await?;
    }
    Ok(stats)
}

async fn set_all<B: Backend>(store: &Store<B>, items: &[(String, Vec<u8>)]) -> Result<(), KvError> {
    if items.is_empty() {
        return Ok(());
    }
    let refs: Vec<(&str, &[u8])> = items
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    store.set_many(&refs).await
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
    let keys: Vec<String> = serials.iter().map(|s| result_key(token, s)).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    Ok(store
        .get_many(&refs)
        .await?
        .into_iter()
        .map(|raw| raw.as_deref().and_then(AssignmentResult::decode))
        .collect())
}

/// The live record of a serial as stored (`None` if unknown or deleted): Apple's fields
/// as last synced, without our newer assignment answers (see [`get`]).
pub async fn get_synced<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    serial: &str,
) -> Result<Option<DeviceRecord>, KvError> {
    let raw = store.get(&device_key(token, serial)).await?;
    Ok(raw
        .as_deref()
        .and_then(DeviceRecord::decode)
        .filter(|r| !r.tombstone))
}

/// The live record of a serial (`None` if unknown or deleted), with our assignment
/// answer laid over Apple's fields when it is newer.
pub async fn get<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    serial: &str,
) -> Result<Option<DeviceRecord>, KvError> {
    let Some(rec) = get_synced(store, token, serial).await? else {
        return Ok(None);
    };
    let ours = store
        .get(&result_key(token, serial))
        .await?
        .as_deref()
        .and_then(AssignmentResult::decode);
    Ok(Some(rec.with_assignment(ours.as_ref())))
}

/// The token holding `serial` and its record: the one the serial index names when it
/// holds the device present, else (an index not written yet, or naming a token where
/// Apple since removed the device) a scan of every token slot, at most
/// [`super::tokens::MAX_TOKENS`] keys read in batches of 100. A device present under some
/// token wins over one Apple reported removed; `None` if no token knows the serial.
pub async fn token_of<B: Backend>(
    store: &Store<B>,
    serial: &str,
) -> Result<Option<(TokenId, DeviceRecord)>, KvError> {
    let indexed = store
        .get(&serial_index_key(serial))
        .await?
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .map(TokenId);
    if let Some(t) = indexed
        && let Some(rec) = get(store, t, serial).await?
        && rec.removed_at.is_none()
    {
        return Ok(Some((t, rec)));
    }
    let Some((t, rec)) = scan_tokens(store, serial).await? else {
        return Ok(None);
    };
    let ours = store
        .get(&result_key(t, serial))
        .await?
        .as_deref()
        .and_then(AssignmentResult::decode);
    Ok(Some((t, rec.with_assignment(ours.as_ref()))))
}

/// [`token_of`]'s fallback: every token slot's record of `serial`, present ones first.
async fn scan_tokens<B: Backend>(
    store: &Store<B>,
    serial: &str,
) -> Result<Option<(TokenId, DeviceRecord)>, KvError> {
    let last = store.counter(&super::tokens::seq_counter()).await?.max(0) as u64;
    let mut best: Option<(TokenId, DeviceRecord)> = None;
    let ids: Vec<TokenId> = (1..=last).map(TokenId).collect();
    for chunk in ids.chunks(100) {
        let keys: Vec<String> = chunk.iter().map(|t| device_key(*t, serial)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        for (t, raw) in chunk.iter().zip(store.get_many(&refs).await?) {
            let Some(rec) = raw
                .as_deref()
                .and_then(DeviceRecord::decode)
                .filter(|r| !r.tombstone)
            else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((_, b)) => {
                    (rec.removed_at.is_none(), rec.updated_at)
                        > (b.removed_at.is_none(), b.updated_at)
                }
            };
            if better {
                best = Some((*t, rec));
            }
        }
    }
    Ok(best)
}

/// Number of live devices of a token.
pub async fn live_count<B: Backend>(store: &Store<B>, token: TokenId) -> Result<i64, KvError> {
    Ok(store.counter(&live_counter(token)).await?.max(0))
}

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
pub(crate) const SCAN_BATCH: u64 = 100;

fn matches(r: &DeviceRecord, q: &ListQuery) -> bool {
    if let Some(p) = &q.serial_prefix {
        if !r
            .serial_number
            .to_ascii_uppercase()
            .starts_with(&p.to_ascii_uppercase())
        {
            return false;
        }
    }
    if let Some(removed) = q.removed {
        if r.removed_at.is_some() != removed {
            return false;
        }
    }
    let assigned = r.assigned();
    match &q.assignment {
        None => true,
        Some(Assignment::Unassigned) => !assigned,
        Some(Assignment::Any) => assigned,
        Some(Assignment::Profile(uuid)) => assigned && r.profile_uuid() == Some(uuid.as_str()),
    }
}

/// The fields of a [`DeviceRecord`] a pass over the index looks at, decoded without
/// Apple's fields (most of a record's bytes).
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceHead {
    pub serial_number: String,
    pub slot: u64,
    #[serde(default)]
    pub tombstone: bool,
    #[serde(default)]
    pub removed_at: Option<u64>,
    #[serde(default)]
    pub listed_in: Option<u64>,
}

/// Reads index slots `from..=to` and the records they point at (as stored), skipping
/// orphan slots.
pub(crate) async fn read_slots<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, DeviceRecord)>, KvError> {
    read_slots_as(store, token, from, to, DeviceRecord::decode, |r| r.slot).await
}

/// [`read_slots`], decoding only each record's [`DeviceHead`].
pub(crate) async fn read_slot_heads<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, DeviceHead)>, KvError> {
    read_slots_as(
        store,
        token,
        from,
        to,
        |raw| serde_json::from_slice::<DeviceHead>(raw).ok(),
        |h| h.slot,
    )
    .await
}

async fn read_slots_as<B: Backend, T>(
    store: &Store<B>,
    token: TokenId,
    from: u64,
    to: u64,
    decode: impl Fn(&[u8]) -> Option<T>,
    slot_of: impl Fn(&T) -> u64,
) -> Result<Vec<(u64, T)>, KvError> {
    let slot_keys: Vec<String> = (from..=to).map(|s| index_key(token, s)).collect();
    let refs: Vec<&str> = slot_keys.iter().map(String::as_str).collect();
    let serials = store.get_many(&refs).await?;
    let present: Vec<(u64, String)> = (from..=to)
        .zip(serials)
        .filter_map(|(slot, s)| Some((slot, String::from_utf8(s?).ok()?)))
        .collect();
    let dev_keys: Vec<String> = present.iter().map(|(_, s)| device_key(token, s)).collect();
    let refs: Vec<&str> = dev_keys.iter().map(String::as_str).collect();
    let records = store.get_many(&refs).await?;
    Ok(present
        .into_iter()
        .zip(records)
        .filter_map(|((slot, _), raw)| {
            let r = decode(&raw?)?;
            (slot_of(&r) == slot).then_some((slot, r))
        })
        .collect())
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

/// An admin deletes a device record. If Apple still assigns the device to us it comes
/// back with the next full sync. Returns false if there was no such live device.
pub async fn delete_by_admin<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    serial: &str,
    now: u64,
) -> Result<bool, KvError> {
    let key = device_key(token, serial);
    let mut deleted = false;
    let r = store
        .update::<KvError>(&key, 20, |raw| {
            let mut rec: DeviceRecord = serde_json::from_slice(raw)
                .map_err(|e| KvError::Backend(format!("device record: {e}")))?;
            if rec.tombstone {
                deleted = false;
                return Ok(None);
            }
            deleted = true;
            rec.tombstone = true;
            rec.updated_at = now;
            rec.apple.clear();
            Ok(Some(serde_json::to_vec(&rec).expect("record serialises")))
        })
        .await;
    match r {
        Ok(_) => {}
        Err(mdm_kv::UpdateError::Kv(e) | mdm_kv::UpdateError::Rejected(e)) => return Err(e),
    }
    if deleted {
        store.increment(&live_counter(token), -1).await?;
    }
    Ok(deleted)
}

//! Applying a page of Apple's device records (a fetch or sync page) to a token's
//! inventory: latest-wins ordering by `op_date`, add-only mode, tombstones and removals,
//! index slots for new serials, the serial → token index and the live count.
//!
//! Applying a page of N devices costs one batched read, one batched write of records,
//! one batched write of the serial→token index and, for new serials only, one increment
//! and one batched index write: O(1) calls per 100 devices whatever the inventory size.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use mdm_kv::{Backend, KvError, Store};

use super::TokenId;
use super::inventory::{
    DeviceRecord, IndexedSerial, Removal, SerialToken, index_counter, live_counter,
};
use crate::record::{self, Record, Stored};
use crate::time::parse_rfc3339;

/// A held [`DeviceRecord`] without Apple's fields (decoded with [`record::part`]).
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

/// A page's latest record of a serial: its op_date, its position in the page, the record.
type Latest = (Option<i64>, usize, Map<String, Value>);

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
    let mut latest: HashMap<String, Latest> = HashMap::new();
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

    // Read raw: the held records are decoded in part ([`HeldRecord`]).
    let keys: Vec<String> = page
        .iter()
        .map(|(s, _, _)| DeviceRecord::key((token, s)))
        .collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let held = store.get_many(&key_refs).await?;

    // (serial, as the page names it, and its new record)
    let mut updates: Vec<(String, DeviceRecord)> = Vec::new();
    let mut live_delta: i64 = 0;
    for ((serial, t, rec), raw) in page.into_iter().zip(held) {
        // Apple's fields of the held record (most of its bytes) are decoded only on the
        // rare paths that keep them.
        let held: Option<HeldRecord> = raw.as_deref().and_then(|r| record::part(r).ok());
        let full = || raw.as_deref().and_then(|r| DeviceRecord::decode(r).ok());
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
                    updates.push((serial, h));
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
        updates.push((serial, record));
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
        let mut index: Vec<(u64, IndexedSerial)> = Vec::with_capacity(unindexed.len());
        for (offset, &i) in unindexed.iter().enumerate() {
            let slot = last + 1 - n + offset as u64;
            let record = &mut updates[i].1;
            record.slot = slot;
            index.push((slot, IndexedSerial(record.serial_number.clone())));
        }
        let items: Vec<((TokenId, u64), &IndexedSerial)> =
            index.iter().map(|(slot, s)| ((token, *slot), s)).collect();
        IndexedSerial::save_many(store, &items).await?;
    }
    let writes: Vec<((TokenId, &str), &DeviceRecord)> = updates
        .iter()
        .map(|(serial, r)| ((token, serial.as_str()), r))
        .collect();
    DeviceRecord::save_many(store, &writes).await?;
    // After the records: a crash in between leaves a serial unindexed, which the lookup
    // ([`super::inventory::token_of`]) covers by scanning the tokens.
    let here = SerialToken(token);
    let present: Vec<(&str, &SerialToken)> = updates
        .iter()
        .filter(|(_, r)| r.removed_at.is_none())
        .map(|(_, r)| (r.serial_number.as_str(), &here))
        .collect();
    SerialToken::save_many(store, &present).await?;
    if live_delta != 0 {
        store.increment(&live_counter(token), live_delta).await?;
    }
    Ok(stats)
}

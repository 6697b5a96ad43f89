//! The device inventory of each server token: what Apple's Device Assignment API says is
//! assigned to us.
//!
//! Key layout (per token `t`, serial `s` as a key segment):
//! - `dev:<t>:<s>`            the [`DeviceRecord`] (JSON), which names its index slot.
//!   Never deleted while the token exists: removal leaves a
//!   tombstone, so a serial keeps its one slot.
//! - `devix:<t>:<slot>`       the serial at index slot `slot` (1-based, append-only). A
//!   slot whose record names another slot is an orphan left by
//!   a crashed run and is skipped.
//! - `ctr:devix:<t>`          last index slot allocated (increment-only)
//! - `ctr:devn:<t>`           number of live (non-tombstone) devices
//! - `devtok:<s>`             token (decimal) that last synced the serial as present
//!
//! This module owns the record, its keys and the reads of it; pages from Apple are applied
//! by [`super::inventory_apply`], administrators list devices through
//! [`super::inventory_list`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store};

use super::TokenId;
use super::assignment::AssignmentResult;
use crate::record::{self, Record, Stored};

impl Record for DeviceRecord {
    /// (token, serial)
    type Id<'a> = (TokenId, &'a str);
    const NAME: &'static str = "device record";
    const ATTEMPTS: usize = 20;
    fn key((token, serial): (TokenId, &str)) -> String {
        format!("dev:{token}:{}", segment(serial))
    }
}

/// The serial at a slot of a token's device index (`devix:<t>:<slot>`, the serial as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IndexedSerial(pub String);

impl Record for IndexedSerial {
    /// (token, slot)
    type Id<'a> = (TokenId, u64);
    const NAME: &'static str = "device index slot";
    fn key((token, slot): (TokenId, u64)) -> String {
        format!("devix:{token}:{slot}")
    }
    record::stored_as_text!();
}

/// The token that last synced a serial as present (`devtok:<s>`, the token id in
/// decimal): the serial → token index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SerialToken(pub TokenId);

impl Record for SerialToken {
    /// The serial.
    type Id<'a> = &'a str;
    const NAME: &'static str = "serial index";
    fn key(serial: &str) -> String {
        format!("devtok:{}", segment(serial))
    }
    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(self.0.to_string().into_bytes())
    }
    fn decode(raw: &[u8]) -> Result<Self, String> {
        record::decimal(raw).map(|t| SerialToken(TokenId(t)))
    }
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
}

/// The live record of a serial as stored (`None` if unknown or deleted): Apple's fields
/// as last synced, without our newer assignment answers (see [`get`]).
pub async fn get_synced<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    serial: &str,
) -> Result<Option<DeviceRecord>, KvError> {
    Ok(DeviceRecord::load_valid(store, (token, serial))
        .await?
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
    let ours = AssignmentResult::load_valid(store, (token, serial)).await?;
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
    let indexed = SerialToken::load_valid(store, serial).await?.map(|t| t.0);
    if let Some(t) = indexed
        && let Some(rec) = get(store, t, serial).await?
        && rec.removed_at.is_none()
    {
        return Ok(Some((t, rec)));
    }
    let Some((t, rec)) = scan_tokens(store, serial).await? else {
        return Ok(None);
    };
    let ours = AssignmentResult::load_valid(store, (t, serial)).await?;
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
        let ids: Vec<(TokenId, &str)> = chunk.iter().map(|t| (*t, serial)).collect();
        for (t, rec) in chunk
            .iter()
            .zip(DeviceRecord::load_many_valid(store, &ids).await?)
        {
            let Some(rec) = rec.filter(|r| !r.tombstone) else {
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

/// Slots read per batch by a pass over the index.
pub(crate) const SCAN_BATCH: u64 = 100;

/// Reads index slots `from..=to` and the records they point at (as stored), skipping
/// orphan slots.
pub(crate) async fn read_slots<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, DeviceRecord)>, KvError> {
    read_slots_as(
        store,
        token,
        from,
        to,
        |raw| DeviceRecord::decode(raw).ok(),
        |r| r.slot,
    )
    .await
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
        |raw| record::part::<DeviceHead>(raw).ok(),
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
    let slots: Vec<(TokenId, u64)> = (from..=to).map(|s| (token, s)).collect();
    let serials = IndexedSerial::load_many_valid(store, &slots).await?;
    let present: Vec<(u64, String)> = (from..=to)
        .zip(serials)
        .filter_map(|(slot, s)| Some((slot, s?.0)))
        .collect();
    // Read raw: a pass may decode only part of each record ([`DeviceHead`]).
    let dev_keys: Vec<String> = present
        .iter()
        .map(|(_, s)| DeviceRecord::key((token, s)))
        .collect();
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

/// An admin deletes a device record. If Apple still assigns the device to us it comes
/// back with the next full sync. Returns false if there was no such live device.
pub async fn delete_by_admin<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    serial: &str,
    now: u64,
) -> Result<bool, KvError> {
    let mut deleted = false;
    DeviceRecord::modify(store, (token, serial), |rec| {
        deleted = !rec.tombstone;
        if rec.tombstone {
            return Ok::<_, KvError>(false);
        }
        rec.tombstone = true;
        rec.updated_at = now;
        rec.apple.clear();
        Ok(true)
    })
    .await?;
    if deleted {
        store.increment(&live_counter(token), -1).await?;
    }
    Ok(deleted)
}

//! Stored enrollment profiles, the default profile and auto-assign rules of a token.
//!
//! Key layout (token `t`, our profile id `p`):
//! - `ctr:prof:<t>:seq`     last profile id allocated (ids are never reused)
//! - `ctr:prof:<t>:live`    number of profiles (at most [`MAX_PROFILES`])
//! - `prof:<t>:<p>`         the [`ProfileRecord`] (JSON)
//! - `profu:<t>:<uuid>`     our profile id for one of Apple's profile UUIDs (current or
//!   earlier definitions: Apple profiles are immutable, an edit defines a new one)
//! - `rules:<t>`            the ordered [`Rule`] list

use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store};

use super::TokenId;
use super::inventory::DeviceRecord;
use super::profiles::ProfileSpec;
use crate::record::{self, Record, Stored};

pub const MAX_PROFILES: i64 = 1_000;
pub const MAX_RULES: usize = 100;

fn seq(token: TokenId) -> CounterKey {
    CounterKey::new(&format!("prof:{token}:seq")).expect("static counter name")
}

fn live(token: TokenId) -> CounterKey {
    CounterKey::new(&format!("prof:{token}:live")).expect("static counter name")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileRecord {
    pub id: u64,
    pub token: TokenId,
    pub spec: ProfileSpec,
    /// Apple's UUID of the current definition.
    pub apple_uuid: String,
    /// Earlier definitions (before edits), newest last.
    #[serde(default)]
    pub previous_uuids: Vec<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl Record for ProfileRecord {
    /// (token, our profile id)
    type Id<'a> = (TokenId, u64);
    const NAME: &'static str = "profile";
    fn key((token, id): (TokenId, u64)) -> String {
        format!("prof:{token}:{id}")
    }
}

/// Our profile id for one of Apple's profile UUIDs (`profu:<t>:<uuid>`, decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProfileOfUuid(pub u64);

impl Record for ProfileOfUuid {
    /// (token, Apple's profile UUID)
    type Id<'a> = (TokenId, &'a str);
    const NAME: &'static str = "profile UUID mapping";
    fn key((token, uuid): (TokenId, &str)) -> String {
        format!("profu:{token}:{}", segment(uuid))
    }
    record::stored_as_decimal!();
}

pub async fn allocate<B: Backend>(
    store: &Store<B>,
    token: TokenId,
) -> Result<Option<u64>, KvError> {
    if store.increment(&live(token), 1).await? > MAX_PROFILES {
        store.increment(&live(token), -1).await?;
        return Ok(None);
    }
    Ok(Some(store.increment(&seq(token), 1).await? as u64))
}

/// Gives back a slot reserved by [`allocate`] that was not used.
pub async fn release<B: Backend>(store: &Store<B>, token: TokenId) -> Result<(), KvError> {
    store.increment(&live(token), -1).await.map(drop)
}

pub async fn count<B: Backend>(store: &Store<B>, token: TokenId) -> Result<i64, KvError> {
    Ok(store.counter(&live(token)).await?.max(0))
}

pub async fn save<B: Backend>(store: &Store<B>, r: &ProfileRecord) -> Result<(), KvError> {
    // The mapping first, in the same batch as the record (as before).
    let mapping_key = ProfileOfUuid::key((r.token, &r.apple_uuid));
    let mapping = ProfileOfUuid(r.id).encode_at(&mapping_key)?;
    let record_key = ProfileRecord::key((r.token, r.id));
    let record = r.encode_at(&record_key)?;
    store
        .set_many(&[(&mapping_key, &mapping), (&record_key, &record)])
        .await
}

pub async fn load<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    id: u64,
) -> Result<Option<ProfileRecord>, KvError> {
    ProfileRecord::load(store, (token, id)).await
}

/// Our profile for an Apple profile UUID (any of its definitions).
pub async fn by_uuid<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    uuid: &str,
) -> Result<Option<ProfileRecord>, KvError> {
    match ProfileOfUuid::load_valid(store, (token, uuid)).await? {
        Some(id) => load(store, token, id.0).await,
        None => Ok(None),
    }
}

pub async fn list<B: Backend>(
    store: &Store<B>,
    token: TokenId,
) -> Result<Vec<ProfileRecord>, KvError> {
    let last = store.counter(&seq(token)).await?.max(0) as u64;
    let ids: Vec<(TokenId, u64)> = (1..=last).map(|i| (token, i)).collect();
    let mut out = Vec::new();
    for chunk in ids.chunks(100) {
        out.extend(
            ProfileRecord::load_many_valid(store, chunk)
                .await?
                .into_iter()
                .flatten(),
        );
    }
    Ok(out)
}

/// Removes a profile (the caller checked nothing uses it). Its UUID mappings stay, so
/// devices still carrying an old definition are recognised as "deleted profile".
pub async fn remove<B: Backend>(store: &Store<B>, token: TokenId, id: u64) -> Result<(), KvError> {
    ProfileRecord::delete(store, (token, id)).await?;
    release(store, token).await
}

/// What a rule looks at; every field given must match (case-insensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    /// Substring of Apple's `model` (e.g. "iPad Air").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Apple's `os` (iOS, OSX, tvOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serials: Vec<String>,
    /// Substring of Apple's `description` (the purchase order line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_contains: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matches: Match,
    /// Our profile id.
    pub profile: u64,
}

impl Match {
    pub fn is_empty(&self) -> bool {
        *self == Match::default()
    }

    pub fn accepts(
        &self,
        apple: &serde_json::Map<String, serde_json::Value>,
        serial: &str,
    ) -> bool {
        let field = |k: &str| {
            apple
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_lowercase()
        };
        let eq = |want: &Option<String>, k: &str| {
            want.as_ref().is_none_or(|w| field(k) == w.to_lowercase())
        };
        let contains = |want: &Option<String>, k: &str| {
            want.as_ref()
                .is_none_or(|w| field(k).contains(&w.to_lowercase()))
        };
        eq(&self.device_family, "device_family")
            && contains(&self.model, "model")
            && eq(&self.os, "os")
            && contains(&self.description_contains, "description")
            && (self.serials.is_empty()
                || self.serials.iter().any(|s| s.eq_ignore_ascii_case(serial)))
    }
}

/// A token's auto-assign rules, in order (`rules:<t>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rules(pub Vec<Rule>);

impl Record for Rules {
    type Id<'a> = TokenId;
    const NAME: &'static str = "auto-assign rules";
    fn key(token: TokenId) -> String {
        format!("rules:{token}")
    }
}

pub async fn load_rules<B: Backend>(
    store: &Store<B>,
    token: TokenId,
) -> Result<Vec<Rule>, KvError> {
    Ok(Rules::load(store, token).await?.unwrap_or_default().0)
}

pub async fn save_rules<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    rules: &[Rule],
) -> Result<(), KvError> {
    Rules(rules.to_vec()).save(store, token).await
}

/// The profile a device should get: the first matching rule, else the default.
pub fn choose(
    rules: &[Rule],
    default: Option<u64>,
    device: &serde_json::Map<String, serde_json::Value>,
    serial: &str,
) -> Option<(u64, Option<usize>)> {
    rules
        .iter()
        .enumerate()
        .find(|(_, r)| r.matches.accepts(device, serial))
        .map(|(i, r)| (r.profile, Some(i)))
        .or(default.map(|d| (d, None)))
}

/// The same for a stored device.
pub fn choose_for(
    rules: &[Rule],
    default: Option<u64>,
    d: &DeviceRecord,
) -> Option<(u64, Option<usize>)> {
    choose(rules, default, &d.apple, &d.serial_number)
}

//! Stored records, typed: each record type declares once where it lives (its key, from its
//! id) and how it is stored ([`Record`]); services load, save and change records through
//! [`Stored`], never through hand-made keys or JSON.
//!
//! Encoding is JSON through serde unless a record says otherwise (a raw string, a decimal,
//! ...). A stored value that does not decode is an error naming the record and its key,
//! never a panic; readers that tolerate damage say so ([`Stored::load_valid`]), and soft
//! state that may start over when damaged says so once ([`Record::fresh_if_damaged`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use mdm_kv::{Backend, CounterKey, KvError, Modified, Store, UpdateError};

/// What a stored record type declares: its key and its encoding.
pub trait Record: Serialize + DeserializeOwned {
    /// What names one record: a device id, a token id, a (token, serial) pair, `()` for a
    /// record the app has once.
    type Id<'a>: Copy;
    /// The record in errors and logs ("enrollment record").
    const NAME: &'static str;
    /// Compare-and-swap attempts of a change ([`Stored::modify`]) before it gives up.
    const ATTEMPTS: usize = 32;

    fn key(id: Self::Id<'_>) -> String;

    fn encode(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| e.to_string())
    }

    fn decode(raw: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(raw).map_err(|e| e.to_string())
    }

    /// What a change starts from when the stored value does not decode. `None` (the
    /// default): the change fails with an error naming the key. Soft state that use
    /// rebuilds (push bookkeeping, hint indexes) starts over instead.
    fn fresh_if_damaged() -> Option<Self> {
        None
    }
}

/// A record created by whoever claims its creation counter first
/// ([`Stored::modify_or_create`]): compare-and-swap cannot create a key safely on every
/// backend (see `Store::update_or_create`).
pub trait Created: Record + Default {
    fn claim(id: Self::Id<'_>) -> CounterKey;
}

/// The error for a value at `key` that is not a valid `R`.
fn damaged<R: Record>(key: &str, problem: &str) -> KvError {
    KvError::Backend(format!("{} at {key} does not decode: {problem}", R::NAME))
}

/// Typed operations over the store, for every [`Record`].
#[allow(async_fn_in_trait)] // Spin components are single-threaded: no Send bound wanted.
pub trait Stored: Record {
    /// Decodes a value read from `key` (by a caller that batched it with other reads).
    fn decode_at(key: &str, raw: &[u8]) -> Result<Self, KvError> {
        Self::decode(raw).map_err(|e| damaged::<Self>(key, &e))
    }

    fn encode_at(&self, key: &str) -> Result<Vec<u8>, KvError> {
        self.encode()
            .map_err(|e| KvError::Backend(format!("{} at {key} does not encode: {e}", Self::NAME)))
    }

    /// The record, `None` when absent; a value that does not decode is an error.
    async fn load<B: Backend>(store: &Store<B>, id: Self::Id<'_>) -> Result<Option<Self>, KvError> {
        let key = Self::key(id);
        match store.get(&key).await? {
            None => Ok(None),
            Some(raw) => Self::decode_at(&key, &raw).map(Some),
        }
    }

    /// The record if present and valid: for readers to whom a damaged value is as good as
    /// none (hints, soft state, lists that skip what they cannot show).
    async fn load_valid<B: Backend>(
        store: &Store<B>,
        id: Self::Id<'_>,
    ) -> Result<Option<Self>, KvError> {
        Ok(store
            .get(&Self::key(id))
            .await?
            .and_then(|raw| Self::decode(&raw).ok()))
    }

    /// Records for `ids`, in order, in batched reads; a value that does not decode is an
    /// error.
    async fn load_many<B: Backend>(
        store: &Store<B>,
        ids: &[Self::Id<'_>],
    ) -> Result<Vec<Option<Self>>, KvError> {
        let keys: Vec<String> = ids.iter().map(|id| Self::key(*id)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let raw = store.get_many(&refs).await?;
        keys.iter()
            .zip(raw)
            .map(|(k, v)| v.map(|v| Self::decode_at(k, &v)).transpose())
            .collect()
    }

    /// [`Stored::load_many`], a damaged value read as absent.
    async fn load_many_valid<B: Backend>(
        store: &Store<B>,
        ids: &[Self::Id<'_>],
    ) -> Result<Vec<Option<Self>>, KvError> {
        let keys: Vec<String> = ids.iter().map(|id| Self::key(*id)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(store
            .get_many(&refs)
            .await?
            .into_iter()
            .map(|v| v.and_then(|v| Self::decode(&v).ok()))
            .collect())
    }

    /// Writes the record unconditionally: for a key nobody else writes at the same time
    /// (a fresh id, a claim won), or where the last writer may win.
    async fn save<B: Backend>(&self, store: &Store<B>, id: Self::Id<'_>) -> Result<(), KvError> {
        let key = Self::key(id);
        store.set(&key, &self.encode_at(&key)?).await
    }

    /// [`Stored::save`] of several records, in batched writes.
    async fn save_many<B: Backend>(
        store: &Store<B>,
        items: &[(Self::Id<'_>, &Self)],
    ) -> Result<(), KvError> {
        let mut writes = Writes::default();
        for (id, r) in items {
            writes.put(*r, *id)?;
        }
        writes.save(store).await
    }

    async fn delete<B: Backend>(store: &Store<B>, id: Self::Id<'_>) -> Result<(), KvError> {
        store.delete(&Self::key(id)).await
    }

    async fn exists<B: Backend>(store: &Store<B>, id: Self::Id<'_>) -> Result<bool, KvError> {
        store.exists(&Self::key(id)).await
    }

    /// Read-modify-write of an existing record by compare-and-swap, retried on conflict
    /// ([`Record::ATTEMPTS`]). `change` returns whether it changed the record (false leaves
    /// the stored value as it is) or an error that leaves it untouched. Returns the record
    /// as now stored, `None` when there is none.
    async fn modify<B: Backend, E: From<KvError>>(
        store: &Store<B>,
        id: Self::Id<'_>,
        mut change: impl FnMut(&mut Self) -> Result<bool, E>,
    ) -> Result<Option<Self>, E> {
        modify::<Self, B, E>(store, id, Damage::Fail, &mut change).await
    }

    /// [`Stored::modify`] for a change that passes over a damaged record: one that does
    /// not decode is left as it is, and `None` returned as for an absent one.
    async fn modify_valid<B: Backend, E: From<KvError>>(
        store: &Store<B>,
        id: Self::Id<'_>,
        mut change: impl FnMut(&mut Self) -> Result<bool, E>,
    ) -> Result<Option<Self>, E> {
        modify::<Self, B, E>(store, id, Damage::Skip, &mut change).await
    }

    /// [`Stored::modify`] of a record that may not exist yet: created as
    /// `Default::default()` by whoever claims [`Created::claim`] first, then changed. A
    /// caller that finds it absent while another creates it waits for it (`wait`) or gets
    /// `None`. Returns the record as now stored.
    async fn modify_or_create<B: Backend, E: From<KvError>>(
        store: &Store<B>,
        id: Self::Id<'_>,
        wait: bool,
        mut change: impl FnMut(&mut Self) -> Result<bool, E>,
    ) -> Result<Option<Self>, E>
    where
        Self: Created,
    {
        let key = Self::key(id);
        let init = Self::default().encode_at(&key)?;
        let mut last: Option<Result<Self, E>> = None;
        let mut apply = |raw: &[u8]| -> Option<Vec<u8>> {
            let mut rec = match decode_for_change::<Self>(&key, raw) {
                Ok(r) => r,
                Err(e) => {
                    last = Some(Err(E::from(e)));
                    return None;
                }
            };
            let changed = match change(&mut rec) {
                Ok(c) => c,
                Err(e) => {
                    last = Some(Err(e));
                    return None;
                }
            };
            let value = if changed {
                match rec.encode_at(&key) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        last = Some(Err(E::from(e)));
                        return None;
                    }
                }
            } else {
                // Left as stored: the record read (before `change` touched it).
                rec = match decode_for_change::<Self>(&key, raw) {
                    Ok(r) => r,
                    Err(e) => {
                        last = Some(Err(E::from(e)));
                        return None;
                    }
                };
                None
            };
            last = Some(Ok(rec));
            value
        };
        let done = store
            .update_or_create(&key, &Self::claim(id), &init, wait, &mut apply)
            .await?;
        match (done, last) {
            (Modified::Done, Some(r)) => r.map(Some),
            (Modified::Done, None) => Err(E::from(KvError::Contended(key))),
            (Modified::BeingCreated, _) => Ok(None),
        }
    }
}

impl<R: Record> Stored for R {}

/// What [`modify`] does with a stored value that does not decode (and that the record
/// does not start over, [`Record::fresh_if_damaged`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Damage {
    Fail,
    Skip,
}

/// Records of any kinds written unconditionally in one batched store call, as
/// [`Stored::save`] would one by one: where several records start together and nobody
/// else writes their keys yet (a command's record and its history entry; a queue entry
/// and its UUID index), one round trip instead of one each. Written in the order put.
#[derive(Debug, Default)]
pub struct Writes {
    items: Vec<(String, Vec<u8>)>,
}

impl Writes {
    pub fn put<R: Stored>(&mut self, record: &R, id: R::Id<'_>) -> Result<&mut Self, KvError> {
        let key = R::key(id);
        let value = record.encode_at(&key)?;
        self.items.push((key, value));
        Ok(self)
    }

    pub async fn save<B: Backend>(&self, store: &Store<B>) -> Result<(), KvError> {
        let refs: Vec<(&str, &[u8])> = self
            .items
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        store.set_many(&refs).await
    }
}

async fn modify<R: Record, B: Backend, E: From<KvError>>(
    store: &Store<B>,
    id: R::Id<'_>,
    damage: Damage,
    change: &mut impl FnMut(&mut R) -> Result<bool, E>,
) -> Result<Option<R>, E> {
    let key = R::key(id);
    let mut last: Option<R> = None;
    let r = store
        .update::<E>(&key, R::ATTEMPTS, |raw| {
            last = None;
            let mut rec = match decode_for_change::<R>(&key, raw) {
                Ok(r) => r,
                Err(_) if damage == Damage::Skip => return Ok(None),
                Err(e) => return Err(E::from(e)),
            };
            if !change(&mut rec)? {
                // Left as stored: the record read, before `change` touched it.
                last = Some(decode_for_change::<R>(&key, raw)?);
                return Ok(None);
            }
            let value = rec.encode_at(&key)?;
            last = Some(rec);
            Ok(Some(value))
        })
        .await;
    match r {
        Ok(None) => Ok(None),
        Ok(Some(_)) => Ok(last),
        Err(UpdateError::Kv(e)) => Err(E::from(e)),
        Err(UpdateError::Rejected(e)) => Err(e),
    }
}

/// Decodes only some fields of a JSON record: what a scan over many records looks at,
/// without the bulk of each.
pub fn part<P: DeserializeOwned>(raw: &[u8]) -> Result<P, String> {
    serde_json::from_slice(raw).map_err(|e| e.to_string())
}

/// Decodes a record stored as UTF-8 text (an id, a name) rather than JSON.
pub fn text(raw: &[u8]) -> Result<String, String> {
    String::from_utf8(raw.to_vec()).map_err(|_| "not UTF-8 text".to_owned())
}

/// The encoding of a record that is one text field (`struct X(String)`) stored as is, not
/// as JSON: `stored_as_text!();` in its `impl Record`.
macro_rules! stored_as_text {
    () => {
        fn encode(&self) -> Result<Vec<u8>, String> {
            Ok(self.0.as_bytes().to_vec())
        }
        fn decode(raw: &[u8]) -> Result<Self, String> {
            $crate::record::text(raw).map(Self)
        }
    };
}
pub(crate) use stored_as_text;

/// The encoding of a record that is one number (`struct X(u64)`) stored in decimal.
macro_rules! stored_as_decimal {
    () => {
        fn encode(&self) -> Result<Vec<u8>, String> {
            Ok(self.0.to_string().into_bytes())
        }
        fn decode(raw: &[u8]) -> Result<Self, String> {
            $crate::record::decimal(raw).map(Self)
        }
    };
}
pub(crate) use stored_as_decimal;

/// The encoding of a record that is opaque bytes (`struct X(Vec<u8>)`, sealed data)
/// stored as they are.
macro_rules! stored_as_bytes {
    () => {
        fn encode(&self) -> Result<Vec<u8>, String> {
            Ok(self.0.clone())
        }
        fn decode(raw: &[u8]) -> Result<Self, String> {
            Ok(Self(raw.to_vec()))
        }
    };
}
pub(crate) use stored_as_bytes;

/// Decodes a record stored as a decimal number rather than JSON.
pub fn decimal<T: std::str::FromStr>(raw: &[u8]) -> Result<T, String> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "not a decimal number".to_owned())
}

/// The stored value a change starts from (see [`Record::fresh_if_damaged`]).
fn decode_for_change<R: Record>(key: &str, raw: &[u8]) -> Result<R, KvError> {
    match R::decode(raw) {
        Ok(r) => Ok(r),
        Err(e) => R::fresh_if_damaged().ok_or_else(|| damaged::<R>(key, &e)),
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;

//! `Store`, what the core uses over a backend: key checks, batching, counters, claims
//! and compare-and-swap with retries.

use std::collections::HashMap;

use crate::key::{self, CounterKey};
use crate::{Backend, CasHandle, KvError};

/// wasi:keyvalue leaves batch sizes to the backend; stay well inside every known limit
/// (DynamoDB BatchGetItem takes 100 keys).
const BATCH_CHUNK: usize = 100;

/// Result of [`Store::compare_and_swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    Swapped,
    /// Not written; `current` is the value found (None: the key does not exist).
    Conflict {
        current: Option<Vec<u8>>,
    },
}

/// The store domain code uses: only operations that are correct on every backend.
#[derive(Debug, Clone)]
pub struct Store<B> {
    backend: B,
}

fn data_key(key: &str) -> Result<(), KvError> {
    key::validate(key)?;
    if key::is_counter(key) {
        return Err(KvError::CounterMisuse(format!(
            "{key:?} is a counter; read it with increment(_, 0)"
        )));
    }
    Ok(())
}

/// A key too long for any backend: nothing can be stored under it, so reading it finds
/// nothing (keys built from outside input, e.g. an id in a request path, may be that long).
fn unstorable(key: &str) -> bool {
    key.len() > key::MAX_KEY_LEN && !key::is_counter(key)
}

impl<B: Backend> Store<B> {
    pub fn new(backend: B) -> Self {
        Store { backend }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        if unstorable(key) {
            return Ok(None);
        }
        data_key(key)?;
        self.backend.get(key).await
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        data_key(key)?;
        self.backend.set(key, value).await
    }

    /// Deletes a data key. Counters are never deleted: a recreated counter would hand out
    /// numbers already used.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        data_key(key)?;
        self.backend.delete(key).await
    }

    /// Deletes a counter. Only for a counter nobody increments again, such as the
    /// counter of a time bucket that has passed: a recreated counter starts again at 0
    /// and would hand out numbers already used.
    pub async fn delete_counter(&self, counter: &CounterKey) -> Result<(), KvError> {
        self.backend.delete(counter.as_str()).await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        if unstorable(key) {
            return Ok(false);
        }
        data_key(key)?;
        self.backend.exists(key).await
    }

    /// Values for `keys`, in order, `None` where absent. Uses the batch call where it
    /// works; a backend that omits absent keys is read correctly, and one whose batch
    /// read fails (Redis) is read key by key.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if keys.iter().any(|k| unstorable(k)) {
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                out.push(self.get(k).await?);
            }
            return Ok(out);
        }
        for k in keys {
            data_key(k)?;
        }
        let mut found: HashMap<String, Vec<u8>> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_CHUNK) {
            let owned: Vec<String> = chunk.iter().map(|k| (*k).to_owned()).collect();
            match self.backend.get_many(&owned).await {
                Ok(pairs) => {
                    for (k, v) in pairs {
                        if let Some(v) = v {
                            found.insert(k, v);
                        }
                    }
                }
                Err(_) => {
                    for k in chunk {
                        if let Some(v) = self.backend.get(k).await? {
                            found.insert((*k).to_owned(), v);
                        }
                    }
                }
            }
        }
        Ok(keys.iter().map(|k| found.get(*k).cloned()).collect())
    }

    pub async fn set_many(&self, items: &[(&str, &[u8])]) -> Result<(), KvError> {
        for (k, _) in items {
            data_key(k)?;
        }
        for chunk in items.chunks(BATCH_CHUNK) {
            let owned: Vec<(String, Vec<u8>)> = chunk
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect();
            self.backend.set_many(&owned).await?;
        }
        Ok(())
    }

    pub async fn delete_many(&self, keys: &[&str]) -> Result<(), KvError> {
        for k in keys {
            data_key(k)?;
        }
        for chunk in keys.chunks(BATCH_CHUNK) {
            let owned: Vec<String> = chunk.iter().map(|k| (*k).to_owned()).collect();
            self.backend.delete_many(&owned).await?;
        }
        Ok(())
    }

    /// Atomically adds `delta` and returns the new value (a fresh counter starts at 0).
    pub async fn increment(&self, counter: &CounterKey, delta: i64) -> Result<i64, KvError> {
        self.backend.increment(counter.as_str(), delta).await
    }

    /// Reads a counter without changing it. Counters are never read with `get`: the
    /// stored encoding differs by backend.
    pub async fn counter(&self, counter: &CounterKey) -> Result<i64, KvError> {
        self.increment(counter, 0).await
    }

    /// True for exactly one caller, ever: the portable way to create something
    /// exclusively, since compare-and-swap on an absent key is not safe on SQLite.
    pub async fn claim(&self, counter: &CounterKey) -> Result<bool, KvError> {
        Ok(self.increment(counter, 1).await? == 1)
    }

    /// Replaces the value of an existing key if it still equals `expected`. Never swaps
    /// on an absent key (Spin's SQLite backend would report success and lose the update):
    /// create keys with `set` where no race is possible, or after a [`Store::claim`].
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: &[u8],
    ) -> Result<CasOutcome, KvError> {
        data_key(key)?;
        let cas = self.backend.cas_begin(key).await?;
        match cas.current() {
            Some(cur) if cur == expected => {}
            other => {
                return Ok(CasOutcome::Conflict {
                    current: other.map(<[u8]>::to_vec),
                });
            }
        }
        if self.backend.cas_swap(cas, new).await? {
            Ok(CasOutcome::Swapped)
        } else {
            Ok(CasOutcome::Conflict {
                current: self.backend.get(key).await?,
            })
        }
    }

    /// Read-modify-write of an existing key, retried on conflict up to `attempts` times.
    /// `change` returns the new value, or `None` to leave the value as it is. Returns the
    /// value now stored, or `None` when the key does not exist.
    pub async fn update<E>(
        &self,
        key: &str,
        attempts: usize,
        mut change: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<Option<Vec<u8>>, UpdateError<E>> {
        data_key(key)?;
        for _ in 0..attempts.max(1) {
            let cas = self.backend.cas_begin(key).await?;
            let Some(current) = cas.current().map(<[u8]>::to_vec) else {
                return Ok(None);
            };
            let Some(next) = change(&current).map_err(UpdateError::Rejected)? else {
                return Ok(Some(current));
            };
            if self.backend.cas_swap(cas, &next).await? {
                return Ok(Some(next));
            }
        }
        Err(UpdateError::Kv(KvError::Contended(key.to_owned())))
    }
}

/// Every this many claims on a creation counter while the key is still absent, the
/// claimer of [`Store::update_or_create`] creates the key anyway: the first claimer died
/// between claim and write.
pub const FORCE_CREATE_EVERY: i64 = 50;
/// Compare-and-swap attempts per round of [`Store::update_or_create`].
const UPDATE_OR_CREATE_ATTEMPTS: usize = 32;

/// What [`Store::update_or_create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modified {
    Done,
    /// The key is absent and another caller is creating it right now (only when not
    /// waiting for it).
    BeingCreated,
}

impl<B: Backend> Store<B> {
    /// Read-modify-write of a key that may not exist yet. The key is created (as `init`)
    /// by whoever claims `claim` first: compare-and-swap cannot create a key safely on
    /// every backend. A caller that finds the key absent and loses the claim either
    /// returns [`Modified::BeingCreated`] (`wait` false) or retries until the winner has
    /// written it. Should the winner die between claim and write, every
    /// [`FORCE_CREATE_EVERY`]-th later claimer creates the key. `change` returns the new
    /// value, or None to leave the stored one.
    pub async fn update_or_create(
        &self,
        key: &str,
        claim: &CounterKey,
        init: &[u8],
        wait: bool,
        change: &mut impl FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<Modified, KvError> {
        for _ in 0..2 * FORCE_CREATE_EVERY {
            match self
                .update::<std::convert::Infallible>(key, UPDATE_OR_CREATE_ATTEMPTS, |raw| {
                    Ok(change(raw))
                })
                .await
            {
                Ok(Some(_)) => return Ok(Modified::Done),
                Ok(None) => {
                    let n = self.increment(claim, 1).await?;
                    if n == 1 {
                        self.set(key, init).await?;
                    } else if n % FORCE_CREATE_EVERY == 0 {
                        if !self.exists(key).await? {
                            self.set(key, init).await?;
                        }
                    } else if !wait {
                        return Ok(Modified::BeingCreated);
                    }
                }
                Err(UpdateError::Kv(e)) => return Err(e),
                Err(UpdateError::Rejected(never)) => match never {},
            }
        }
        Err(KvError::Contended(key.to_owned()))
    }
}

/// Failure of [`Store::update`]: the store's, or the caller's own.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateError<E> {
    Kv(KvError),
    Rejected(E),
}

impl<E> From<KvError> for UpdateError<E> {
    fn from(e: KvError) -> Self {
        UpdateError::Kv(e)
    }
}

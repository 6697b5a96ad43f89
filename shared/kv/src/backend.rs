//! What a key-value backend must offer (`Backend`, `CasHandle`) and its errors, in the
//! vocabulary of spin:key-value and wasi:keyvalue.

use std::fmt;
use std::future::Future;

/// Errors from a store, in the vocabulary of spin:key-value / wasi:keyvalue plus the
/// misuse errors [`crate::Store`] raises before anything reaches the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    NoSuchStore,
    AccessDenied,
    /// The backend failed (I/O, a host-side panic surfaced as an error, a bad reply).
    Backend(String),
    /// A key outside the portable character set or too long (see [`crate::key`]).
    InvalidKey(String),
    /// A counter key used with get/set/delete, or a data key with increment.
    CounterMisuse(String),
    /// A read-modify-write lost the compare-and-swap race too many times in a row.
    Contended(String),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::NoSuchStore => f.write_str("no such key-value store"),
            KvError::AccessDenied => f.write_str("access to the key-value store denied"),
            KvError::Backend(m) => write!(f, "key-value backend error: {m}"),
            KvError::InvalidKey(m) => write!(f, "invalid key: {m}"),
            KvError::CounterMisuse(m) => write!(f, "counter misuse: {m}"),
            KvError::Contended(m) => write!(f, "too much contention on {m}"),
        }
    }
}

impl std::error::Error for KvError {}

/// A compare-and-swap ticket: the value seen when it was taken.
pub trait CasHandle {
    fn current(&self) -> Option<&[u8]>;
}

/// Exactly the operations a Spin 4 component can perform on a key-value store.
///
/// Futures are not `Send`: a Spin component is single-threaded. Implementations may
/// carry the defects of real backends; never call this trait from domain code, use
/// [`crate::Store`].
/// What a batch read found: each key asked for with its value, absent keys as `None`
/// (or left out, on backends that omit them).
pub type Found = Vec<(String, Option<Vec<u8>>)>;

pub trait Backend {
    type Cas: CasHandle;

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, KvError>>;
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<(), KvError>>;
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), KvError>>;
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool, KvError>>;

    /// wasi:keyvalue/batch.get-many. Real backends may omit absent keys or fail outright.
    fn get_many(&self, keys: &[String]) -> impl Future<Output = Result<Found, KvError>>;
    fn set_many(&self, items: &[(String, Vec<u8>)]) -> impl Future<Output = Result<(), KvError>>;
    fn delete_many(&self, keys: &[String]) -> impl Future<Output = Result<(), KvError>>;

    /// wasi:keyvalue/atomics.increment: creates the key at 0 first; returns the new value.
    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = Result<i64, KvError>>;
    /// wasi:keyvalue/atomics cas.new: a ticket holding the current value.
    fn cas_begin(&self, key: &str) -> impl Future<Output = Result<Self::Cas, KvError>>;
    /// wasi:keyvalue/atomics.swap: `Ok(true)` if stored, `Ok(false)` if the value changed
    /// since the ticket was taken.
    fn cas_swap(&self, cas: Self::Cas, value: &[u8])
    -> impl Future<Output = Result<bool, KvError>>;
}

impl<B: Backend> Backend for &B {
    type Cas = B::Cas;
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, KvError>> {
        (**self).get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<(), KvError>> {
        (**self).set(key, value)
    }
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), KvError>> {
        (**self).delete(key)
    }
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool, KvError>> {
        (**self).exists(key)
    }
    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<(String, Option<Vec<u8>>)>, KvError>> {
        (**self).get_many(keys)
    }
    fn set_many(&self, items: &[(String, Vec<u8>)]) -> impl Future<Output = Result<(), KvError>> {
        (**self).set_many(items)
    }
    fn delete_many(&self, keys: &[String]) -> impl Future<Output = Result<(), KvError>> {
        (**self).delete_many(keys)
    }
    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = Result<i64, KvError>> {
        (**self).increment(key, delta)
    }
    fn cas_begin(&self, key: &str) -> impl Future<Output = Result<Self::Cas, KvError>> {
        (**self).cas_begin(key)
    }
    fn cas_swap(
        &self,
        cas: Self::Cas,
        value: &[u8],
    ) -> impl Future<Output = Result<bool, KvError>> {
        (**self).cas_swap(cas, value)
    }
}

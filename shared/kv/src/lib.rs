//! The key-value store abstraction every component uses.
//!
//! Two layers, because the platform's backends do not all behave as documented
//! (see `docs/platform.md`):
//!
//! * [`Backend`] mirrors exactly what a Spin 4 component can call: spin:key-value
//!   get/set/delete/exists and wasi:keyvalue batch + atomics. Implementations may be
//!   defective the way real backends are.
//! * [`Store`] wraps any backend and is what domain code uses. It only offers
//!   operations that are correct on every backend we know of: counters are touched only
//!   through `increment`, compare-and-swap never runs on an absent key, batch reads fall
//!   back to single reads, and keys are restricted to characters every backend accepts.
//!
//! [`MemoryBackend`] is strict by default; with [`Defects`] it reproduces the defects
//! observed on Spin's SQLite and Redis backends, so the [`battery`] can prove that the
//! `Store` survives them.

mod backend;
pub mod battery;
pub mod key;
mod memory;
pub mod redis;
mod store;

pub use backend::{Backend, CasHandle, KvError};
pub use key::CounterKey;
pub use memory::{Defects, GetManyDefect, IncrementEncoding, MemoryBackend};
pub use store::{CasOutcome, FORCE_CREATE_EVERY, Modified, Store, UpdateError};

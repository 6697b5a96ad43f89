//! The in-memory backend of the tests, able to behave like each real backend's defects
//! (`Defects`: Spin's SQLite and Redis stores).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::{Backend, CasHandle, KvError};

/// How `increment` stores its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrementEncoding {
    /// 8-byte little-endian i64 (Spin's SQLite backend).
    LeI64,
    /// ASCII decimal (Spin's Redis backend, INCRBY).
    AsciiDecimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetManyDefect {
    None,
    /// Absent keys are left out of the answer instead of returned as none (SQLite).
    OmitAbsent,
    /// The call fails outright (Redis: the backend issues a malformed command).
    Fail,
}

/// Which observed backend defects to reproduce. See `docs/platform.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defects {
    pub increment_encoding: IncrementEncoding,
    /// Increment on a value that is not in the counter encoding errors (SQLite panics).
    pub increment_rejects_foreign_values: bool,
    pub get_many: GetManyDefect,
    /// A CAS ticket taken on an absent key swaps unconditionally (SQLite lost update).
    pub cas_absent_overwrites: bool,
}

impl Defects {
    /// Correct semantics: what the wasi:keyvalue interfaces promise.
    pub const fn strict() -> Self {
        Defects {
            increment_encoding: IncrementEncoding::LeI64,
            increment_rejects_foreign_values: true,
            get_many: GetManyDefect::None,
            cas_absent_overwrites: false,
        }
    }

    /// Spin 4's default SQLite key-value backend.
    pub const fn spin_sqlite() -> Self {
        Defects {
            increment_encoding: IncrementEncoding::LeI64,
            increment_rejects_foreign_values: true,
            get_many: GetManyDefect::OmitAbsent,
            cas_absent_overwrites: true,
        }
    }

    /// Spin 4's Redis key-value backend.
    pub const fn redis() -> Self {
        Defects {
            increment_encoding: IncrementEncoding::AsciiDecimal,
            increment_rejects_foreign_values: true,
            get_many: GetManyDefect::Fail,
            cas_absent_overwrites: false,
        }
    }
}

/// In-memory backend for native tests; thread-safe so concurrency can be exercised.
#[derive(Debug)]
pub struct MemoryBackend {
    data: Mutex<HashMap<String, Vec<u8>>>,
    defects: Defects,
    /// Operations left before a simulated crash (negative: no crash planned).
    crash_in: std::sync::atomic::AtomicI64,
    /// An operation was refused since the planned crash (the run really was cut short).
    crash_hit: std::sync::atomic::AtomicBool,
    /// One-shot actions run right after a key is next read (see [`MemoryBackend::after_read`]).
    hooks: ReadHooks,
}

/// What [`MemoryBackend::after_read`] runs: another writer, between a read and what the
/// reader does next.
type ReadHook = Box<dyn FnMut(&MemoryBackend) + Send>;

#[derive(Default)]
struct ReadHooks(Mutex<Vec<(String, ReadHook)>>);

impl std::fmt::Debug for ReadHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadHooks")
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::with_defects(Defects::strict())
    }

    pub fn with_defects(defects: Defects) -> Self {
        MemoryBackend {
            data: Mutex::new(HashMap::new()),
            defects,
            crash_in: std::sync::atomic::AtomicI64::new(-1),
            crash_hit: std::sync::atomic::AtomicBool::new(false),
            hooks: ReadHooks::default(),
        }
    }

    /// Runs `f` right after every read of `key` (`get`, or the read of a
    /// compare-and-swap) until [`MemoryBackend::clear_hooks`]: a concurrent writer
    /// slipping in between a read and the reader's write, deterministically. `f` changes
    /// the data with [`MemoryBackend::put`].
    pub fn after_read(&self, key: &str, f: impl FnMut(&MemoryBackend) + Send + 'static) {
        self.hooks
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key.to_owned(), Box::new(f)));
    }

    pub fn clear_hooks(&self) {
        self.hooks
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn fire(&self, key: &str) {
        // Taken out while it runs, so that it may read and write through `self`.
        let taken: Vec<(String, ReadHook)> = {
            let mut hooks = self.hooks.0.lock().unwrap_or_else(|e| e.into_inner());
            let (mine, rest): (Vec<_>, Vec<_>) = hooks.drain(..).partition(|(k, _)| k == key);
            *hooks = rest;
            mine
        };
        if taken.is_empty() {
            return;
        }
        let mut taken = taken;
        for (_, f) in taken.iter_mut() {
            f(self);
        }
        self.hooks
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(taken);
    }

    /// Sets a value without going through the async interface (for [`after_read`] hooks).
    ///
    /// [`after_read`]: MemoryBackend::after_read
    pub fn put(&self, key: &str, value: Vec<u8>) {
        self.lock().insert(key.to_owned(), value);
    }

    /// Reads a value without going through the async interface.
    pub fn peek(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().get(key).cloned()
    }

    /// Simulates a process killed after `ops` more operations: from then on every
    /// operation fails (nothing more is written) until [`MemoryBackend::recover`]. What
    /// was written before stays, as on disk. Tests use it to kill a run at any point.
    pub fn crash_after(&self, ops: u64) {
        self.crash_hit
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.crash_in.store(
            ops.min(i64::MAX as u64) as i64,
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// The store works again (the process was restarted).
    pub fn recover(&self) {
        self.crash_in.store(-1, std::sync::atomic::Ordering::SeqCst);
        self.crash_hit
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a planned crash has cut an operation off (a run that needed no more than
    /// the operations it was allowed was not killed).
    pub fn crashed(&self) -> bool {
        self.crash_hit.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn alive(&self) -> Result<(), KvError> {
        use std::sync::atomic::Ordering;
        let left = self
            .crash_in
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 0).then(|| n - 1)
            });
        match left {
            Ok(_) => Ok(()),
            Err(n) if n < 0 => Ok(()),
            Err(_) => {
                self.crash_hit.store(true, Ordering::SeqCst);
                Err(KvError::Backend("simulated crash".into()))
            }
        }
    }

    /// Every key and value, for tests that inspect what is at rest (e.g. "no plaintext
    /// secret in a dump of the store").
    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort();
        all
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panicking test thread must not wedge the others.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn decode_counter(&self, raw: &[u8]) -> Option<i64> {
        match self.defects.increment_encoding {
            IncrementEncoding::LeI64 => raw.try_into().ok().map(i64::from_le_bytes),
            IncrementEncoding::AsciiDecimal => std::str::from_utf8(raw).ok()?.parse().ok(),
        }
    }

    fn encode_counter(&self, v: i64) -> Vec<u8> {
        match self.defects.increment_encoding {
            IncrementEncoding::LeI64 => v.to_le_bytes().to_vec(),
            IncrementEncoding::AsciiDecimal => v.to_string().into_bytes(),
        }
    }
}

#[derive(Debug)]
pub struct MemoryCas {
    key: String,
    seen: Option<Vec<u8>>,
}

impl CasHandle for MemoryCas {
    fn current(&self) -> Option<&[u8]> {
        self.seen.as_deref()
    }
}

impl Backend for MemoryBackend {
    type Cas = MemoryCas;

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.alive()?;
        let v = self.lock().get(key).cloned();
        self.fire(key);
        Ok(v)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.alive()?;
        self.lock().insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.alive()?;
        self.lock().remove(key);
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.alive()?;
        Ok(self.lock().contains_key(key))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        self.alive()?;
        let data = self.lock();
        match self.defects.get_many {
            GetManyDefect::Fail => Err(KvError::Backend(
                "ERR wrong number of arguments for 'mget' command".into(),
            )),
            GetManyDefect::OmitAbsent => Ok(keys
                .iter()
                .filter_map(|k| data.get(k).map(|v| (k.clone(), Some(v.clone()))))
                .collect()),
            GetManyDefect::None => Ok(keys
                .iter()
                .map(|k| (k.clone(), data.get(k).cloned()))
                .collect()),
        }
    }

    async fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        self.alive()?;
        let mut data = self.lock();
        for (k, v) in items {
            data.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        self.alive()?;
        let mut data = self.lock();
        for k in keys {
            data.remove(k);
        }
        Ok(())
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.alive()?;
        let mut data = self.lock();
        let current = match data.get(key) {
            None => 0,
            Some(raw) => match self.decode_counter(raw) {
                Some(v) => v,
                None if self.defects.increment_rejects_foreign_values => {
                    return Err(KvError::Backend(format!(
                        "increment on {key:?}: stored value is not a counter"
                    )));
                }
                None => 0,
            },
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| KvError::Backend(format!("increment on {key:?} overflows")))?;
        data.insert(key.to_owned(), self.encode_counter(next));
        Ok(next)
    }

    async fn cas_begin(&self, key: &str) -> Result<MemoryCas, KvError> {
        self.alive()?;
        let cas = MemoryCas {
            key: key.to_owned(),
            seen: self.lock().get(key).cloned(),
        };
        self.fire(key);
        Ok(cas)
    }

    async fn cas_swap(&self, cas: MemoryCas, value: &[u8]) -> Result<bool, KvError> {
        self.alive()?;
        let mut data = self.lock();
        let unchanged = data.get(&cas.key).map(Vec::as_slice) == cas.seen.as_deref();
        let blind = cas.seen.is_none() && self.defects.cas_absent_overwrites;
        if unchanged || blind {
            data.insert(cas.key, value.to_vec());
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

//! Key-value data in SQLite, laid out like Spin's own SQLite store (one table, rows keyed
//! by store label and key), so the file survives restarts.
//!
//! By default the host reproduces the defects observed on Spin 4's SQLite backend (see
//! docs/platform.md) so that the app is tested against what production does:
//! `get-many` omits absent keys, compare-and-swap on an absent key overwrites whatever a
//! concurrent writer stored, and `increment` on a value that is not an 8-byte counter
//! fails the request (Spin's host panics). `strict` gives correct semantics instead.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvFailure {
    /// An ordinary error the component sees (`error::other`).
    Other(String),
    /// What makes Spin's SQLite host panic: the request fails as a trap.
    Trap(String),
}

pub type KvResult<T> = Result<T, KvFailure>;

fn other(e: rusqlite::Error) -> KvFailure {
    KvFailure::Other(format!("sqlite: {e}"))
}

pub struct Db {
    conn: Mutex<Connection>,
    strict: bool,
    ops: Ops,
    /// Set by [`Db::kill`]: the host died, nothing reaches the file any more.
    killed: std::sync::atomic::AtomicBool,
}

/// Store operations the components asked for, counted per interface call (what a
/// remote backend would bill as a round trip) and per key in batches. Benchmarks read
/// them to report store operations per device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvStats {
    pub get: u64,
    pub set: u64,
    pub delete: u64,
    pub exists: u64,
    pub get_many: u64,
    pub get_many_keys: u64,
    pub set_many: u64,
    pub set_many_keys: u64,
    pub delete_many: u64,
    pub delete_many_keys: u64,
    pub increment: u64,
    pub compare_and_swap: u64,
    pub list_keys: u64,
}

impl KvStats {
    /// Interface calls of every kind.
    pub fn calls(&self) -> u64 {
        self.get
            + self.set
            + self.delete
            + self.exists
            + self.get_many
            + self.set_many
            + self.delete_many
            + self.increment
            + self.compare_and_swap
            + self.list_keys
    }

    /// Keys read or written: a batch counts once per key.
    pub fn keys_touched(&self) -> u64 {
        self.get
            + self.set
            + self.delete
            + self.exists
            + self.get_many_keys
            + self.set_many_keys
            + self.delete_many_keys
            + self.increment
            + self.compare_and_swap
    }

    pub fn add(&mut self, o: &KvStats) {
        self.get += o.get;
        self.set += o.set;
        self.delete += o.delete;
        self.exists += o.exists;
        self.get_many += o.get_many;
        self.get_many_keys += o.get_many_keys;
        self.set_many += o.set_many;
        self.set_many_keys += o.set_many_keys;
        self.delete_many += o.delete_many;
        self.delete_many_keys += o.delete_many_keys;
        self.increment += o.increment;
        self.compare_and_swap += o.compare_and_swap;
        self.list_keys += o.list_keys;
    }
}

#[derive(Default)]
struct Ops([AtomicU64; 13]);

#[derive(Clone, Copy)]
enum Op {
    Get,
    Set,
    Delete,
    Exists,
    GetMany,
    GetManyKeys,
    SetMany,
    SetManyKeys,
    DeleteMany,
    DeleteManyKeys,
    Increment,
    Cas,
    ListKeys,
}

impl Ops {
    fn count(&self, op: Op, n: usize) {
        self.0[op as usize].fetch_add(n as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> KvStats {
        let v = |op: Op| self.0[op as usize].load(Ordering::Relaxed);
        KvStats {
            get: v(Op::Get),
            set: v(Op::Set),
            delete: v(Op::Delete),
            exists: v(Op::Exists),
            get_many: v(Op::GetMany),
            get_many_keys: v(Op::GetManyKeys),
            set_many: v(Op::SetMany),
            set_many_keys: v(Op::SetManyKeys),
            delete_many: v(Op::DeleteMany),
            delete_many_keys: v(Op::DeleteManyKeys),
            increment: v(Op::Increment),
            compare_and_swap: v(Op::Cas),
            list_keys: v(Op::ListKeys),
        }
    }
}

impl Db {
    pub fn open(path: &Path, strict: bool) -> anyhow::Result<Db> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening key-value database {}", path.display()))?;
        // New files get 16 KiB pages (an existing file keeps its own). With the default
        // 4 KiB, a B-tree cell holds about 1 KB and the rest of a larger value goes to
        // overflow pages, which SQLite reads with a system call each time, bypassing
        // its cache: an enrollment record (1.2 KB with no inventory) cost every device
        // request that. Spin's SQLite store honours the page size of a file made
        // beforehand (see infra/README.md).
        conn.pragma_update(None, "page_size", 16_384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // SQLite's default 2 MiB page cache makes every write to a large inventory
        // (random serial keys) reread B-tree pages from the OS: keep 64 MiB in process.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                 store TEXT NOT NULL,
                 key   TEXT NOT NULL,
                 value BLOB NOT NULL,
                 PRIMARY KEY (store, key)
             ) WITHOUT ROWID;",
        )?;
        Ok(Db {
            conn: Mutex::new(conn),
            strict,
            ops: Ops::default(),
            killed: Default::default(),
        })
    }

    /// Operations served since the database was opened.
    pub fn stats(&self) -> KvStats {
        self.ops.snapshot()
    }

    fn conn(&self) -> KvResult<std::sync::MutexGuard<'_, Connection>> {
        // A panic while holding the lock leaves SQLite consistent (every write is one
        // statement or one transaction), so a poisoned lock is still usable.
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if self.killed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(KvFailure::Trap("the host was killed".into()));
        }
        Ok(conn)
    }

    /// The process dies: requests still running in it fail from their next store call
    /// on, and the file is closed (its locks released) once the call in progress, if any,
    /// has finished. What was written stays, as on disk.
    pub fn kill(&self) {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        self.killed.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(memory) = Connection::open_in_memory() {
            *conn = memory;
        }
    }

    pub fn get(&self, store: &str, key: &str) -> KvResult<Option<Vec<u8>>> {
        self.ops.count(Op::Get, 1);
        get_in(&*self.conn()?, store, key)
    }

    pub fn set(&self, store: &str, key: &str, value: &[u8]) -> KvResult<()> {
        self.ops.count(Op::Set, 1);
        set_in(&*self.conn()?, store, key, value)
    }

    pub fn delete(&self, store: &str, key: &str) -> KvResult<()> {
        self.ops.count(Op::Delete, 1);
        self.conn()?
            .execute(
                "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![store, key],
            )
            .map(drop)
            .map_err(other)
    }

    pub fn exists(&self, store: &str, key: &str) -> KvResult<bool> {
        self.ops.count(Op::Exists, 1);
        self.conn()?
            .query_row(
                "SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![store, key],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(other)
    }

    pub fn keys(&self, store: &str) -> KvResult<Vec<String>> {
        self.ops.count(Op::ListKeys, 1);
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")
            .map_err(other)?;
        let rows = stmt
            .query_map(params![store], |r| r.get::<_, String>(0))
            .map_err(other)?;
        rows.collect::<Result<_, _>>().map_err(other)
    }

    pub fn get_many(
        &self,
        store: &str,
        keys: &[String],
    ) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        self.ops.count(Op::GetMany, 1);
        self.ops.count(Op::GetManyKeys, keys.len());
        let conn = self.conn()?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match get_in(&conn, store, key)? {
                Some(v) => out.push((key.clone(), Some(v))),
                None if self.strict => out.push((key.clone(), None)),
                None => {} // Spin's SQLite backend leaves absent keys out.
            }
        }
        Ok(out)
    }

    pub fn set_many(&self, store: &str, items: &[(String, Vec<u8>)]) -> KvResult<()> {
        self.ops.count(Op::SetMany, 1);
        self.ops.count(Op::SetManyKeys, items.len());
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(other)?;
        for (k, v) in items {
            set_in(&tx, store, k, v)?;
        }
        tx.commit().map_err(other)
    }

    pub fn delete_many(&self, store: &str, keys: &[String]) -> KvResult<()> {
        self.ops.count(Op::DeleteMany, 1);
        self.ops.count(Op::DeleteManyKeys, keys.len());
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(other)?;
        for k in keys {
            tx.execute(
                "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![store, k],
            )
            .map_err(other)?;
        }
        tx.commit().map_err(other)
    }

    /// Counters are 8-byte little-endian i64 values, as Spin's SQLite backend keeps them.
    pub fn increment(&self, store: &str, key: &str, delta: i64) -> KvResult<i64> {
        self.ops.count(Op::Increment, 1);
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(other)?;
        let stored = get_in(&tx, store, key)?;
        let current = match &stored {
            None => 0,
            Some(v) => match <[u8; 8]>::try_from(v.as_slice()) {
                Ok(b) => i64::from_le_bytes(b),
                Err(_) if self.strict => {
                    return Err(KvFailure::Other(format!(
                        "key {key:?} does not hold a counter ({} bytes)",
                        v.len()
                    )));
                }
                Err(_) => {
                    return Err(KvFailure::Trap(format!(
                        "increment on key {key:?} whose value is not an 8-byte counter \
                         (Spin's SQLite host panics here)"
                    )));
                }
            },
        };
        // Reading a counter (delta 0) changes nothing once it exists: no write
        // transaction, which is what made two of a signed Idle's five store calls costly.
        if delta == 0 && stored.is_some() {
            return Ok(current);
        }
        let next = current
            .checked_add(delta)
            .ok_or_else(|| KvFailure::Other(format!("counter {key:?} would overflow")))?;
        set_in(&tx, store, key, &next.to_le_bytes())?;
        tx.commit().map_err(other)?;
        Ok(next)
    }

    /// Completes a compare-and-swap begun when `seen` was read. Returns false when the
    /// value changed meanwhile.
    pub fn swap(
        &self,
        store: &str,
        key: &str,
        seen: Option<&[u8]>,
        value: &[u8],
    ) -> KvResult<bool> {
        self.ops.count(Op::Cas, 1);
        let conn = self.conn()?;
        let changed = match seen {
            Some(old) => conn.execute(
                "UPDATE spin_key_value SET value = ?3 WHERE store = ?1 AND key = ?2 AND value = ?4",
                params![store, key, value, old],
            ),
            None if self.strict => conn.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO NOTHING",
                params![store, key, value],
            ),
            // Spin's SQLite backend: an absent key is simply written, whatever a
            // concurrent writer put there meanwhile.
            None => conn.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                params![store, key, value],
            ),
        }
        .map_err(other)?;
        Ok(changed == 1)
    }
}

fn get_in(conn: &Connection, store: &str, key: &str) -> KvResult<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")
        .and_then(|mut s| s.query_row(params![store, key], |r| r.get(0)).optional())
        .map_err(other)
}

fn set_in(conn: &Connection, store: &str, key: &str, value: &[u8]) -> KvResult<()> {
    conn.prepare_cached(
        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut s| s.execute(params![store, key, value]))
    .map(drop)
    .map_err(other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(strict: bool) -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "mdm-host-kv-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let path = dir.join("kv.db");
        (Db::open(&path, strict).unwrap(), dir)
    }

    #[test]
    fn defects_are_reproduced_unless_strict() {
        for strict in [false, true] {
            let (db, dir) = db(strict);
            db.set("default", "a", b"1").unwrap();
            let many = db.get_many("default", &["a".into(), "b".into()]).unwrap();
            assert_eq!(many.len(), if strict { 2 } else { 1 });

            // CAS on an absent key while another writer created it.
            db.set("default", "c", b"theirs").unwrap();
            assert_eq!(db.swap("default", "c", None, b"mine").unwrap(), !strict);
            // CAS on an existing key that changed is refused in both modes.
            assert!(!db.swap("default", "c", Some(b"stale"), b"x").unwrap());

            let inc = db.increment("default", "a", 1).unwrap_err();
            assert!(matches!(inc, KvFailure::Trap(_)) != strict, "{inc:?}");
            assert_eq!(db.increment("default", "n", 5).unwrap(), 5);
            assert_eq!(db.get("default", "n").unwrap().unwrap(), 5i64.to_le_bytes());
            // Reading by adding 0: the value as it is, a new counter at 0 for an absent
            // key (as Spin creates it), and the same failure on a non-counter value.
            assert_eq!(db.increment("default", "n", 0).unwrap(), 5);
            assert_eq!(db.increment("default", "fresh", 0).unwrap(), 0);
            assert_eq!(
                db.get("default", "fresh").unwrap().unwrap(),
                0i64.to_le_bytes()
            );
            let inc0 = db.increment("default", "a", 0).unwrap_err();
            assert!(matches!(inc0, KvFailure::Trap(_)) != strict, "{inc0:?}");
            assert_eq!(db.get("default", "a").unwrap().unwrap(), b"1");
            // Labels do not see each other's keys.
            assert_eq!(db.get("other", "a").unwrap(), None);
            drop(db);
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn new_files_get_16_kib_pages_and_old_ones_keep_theirs() {
        let page_size = |db: &Db| -> i64 {
            db.conn()
                .unwrap()
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap()
        };
        let (db, dir) = db(false);
        assert_eq!(page_size(&db), 16_384);
        drop(db);
        let old = dir.join("old.db");
        Connection::open(&old)
            .unwrap()
            .execute_batch("PRAGMA page_size = 4096; CREATE TABLE t (a); INSERT INTO t VALUES (1);")
            .unwrap();
        let db = Db::open(&old, false).unwrap();
        assert_eq!(page_size(&db), 4_096);
        db.set("default", "k", &[7; 3000]).unwrap();
        assert_eq!(db.get("default", "k").unwrap().unwrap(), vec![7; 3000]);
        drop(db);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn data_survives_reopening() {
        let (db, dir) = db(false);
        db.set_many(
            "default",
            &[("x".into(), b"1".to_vec()), ("y".into(), b"2".to_vec())],
        )
        .unwrap();
        db.delete_many("default", &["y".into()]).unwrap();
        drop(db);
        let db = Db::open(&dir.join("kv.db"), false).unwrap();
        assert_eq!(db.keys("default").unwrap(), vec!["x".to_owned()]);
        assert!(db.exists("default", "x").unwrap());
        drop(db);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

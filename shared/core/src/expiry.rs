//! Keys that must go at a known time but cannot be found again by listing, since their
//! names are random or hashed: SCEP challenge records, account-driven access tokens and
//! enrollment references. Whoever writes one registers it in the bucket of the hour it
//! is due; the scheduled tick deletes the buckets whose hour has passed
//! ([`purge_due`]), a bounded number of keys per tick.
//!
//! Registration happens while the due hour is still ahead (a key is never registered as
//! already due), and a bucket is purged only [`MARGIN_SECS`] after its hour ended, so a
//! bucket is never written and purged at once, even with clocks a little apart.
//!
//! Key layout (`h` = Unix time / 3600):
//! - `ctr:expix:<h>`   how many keys were registered for hour `h`
//! - `expix:<h>:<n>`   the `n`-th of them (the key to delete)
//! - `expix:cursor`    [`Cursor`]: the hour being purged and how far it got

use serde::{Deserialize, Serialize};

use mdm_kv::{Backend, CounterKey, KvError, Store};

use crate::record::{self, Record, Stored};

const HOUR: u64 = 3600;
/// Seconds after its hour ends before a bucket is purged.
pub const MARGIN_SECS: u64 = 300;
/// How far back a store that never purged starts (longer-lived keys are not registered).
const FIRST_LOOKBACK_HOURS: u64 = 24 * 30;
/// Hours (empty or not) one call may step over.
const HOURS_PER_CALL: u64 = 24 * 31;
const BATCH: u64 = 100;

fn counter(hour: u64) -> CounterKey {
    CounterKey::new(&format!("expix:{hour}")).expect("key-safe")
}

/// The `n`-th key registered for hour `h` (`expix:<h>:<n>`, the key as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct Registered(String);

impl Record for Registered {
    /// (hour, n)
    type Id<'a> = (u64, u64);
    const NAME: &'static str = "expiry entry";
    fn key((hour, n): (u64, u64)) -> String {
        format!("expix:{hour}:{n}")
    }
    record::stored_as_text!();
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The hour being purged.
    pub hour: u64,
    /// Entries of that hour already deleted.
    pub done: u64,
}

impl Record for Cursor {
    type Id<'a> = ();
    const NAME: &'static str = "expiry cursor";
    fn key((): ()) -> String {
        "expix:cursor".into()
    }
}

/// Registers `key` for deletion at `due_at` (Unix seconds), which must lie ahead.
pub async fn register<B: Backend>(store: &Store<B>, key: &str, due_at: u64) -> Result<(), KvError> {
    let hour = due_at / HOUR;
    let n = store.increment(&counter(hour), 1).await?.max(1) as u64;
    Registered(key.to_owned()).save(store, (hour, n)).await
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub deleted: u64,
    /// Work was left for the next call.
    pub behind: bool,
}

/// Deletes the registered keys of every hour that ended (plus [`MARGIN_SECS`]) before
/// `now`, at most `budget` keys per call; resumes where the last call stopped.
pub async fn purge_due<B: Backend>(
    store: &Store<B>,
    now: u64,
    budget: u64,
) -> Result<PurgeReport, KvError> {
    // Hours strictly below `end` are due.
    let end = now.saturating_sub(MARGIN_SECS) / HOUR;
    let mut cur = match Cursor::load(store, ()).await? {
        Some(c) => c,
        None => Cursor {
            hour: end.saturating_sub(FIRST_LOOKBACK_HOURS),
            done: 0,
        },
    };
    let start = cur;
    let mut report = PurgeReport::default();
    let mut hours = 0;
    while cur.hour < end && hours < HOURS_PER_CALL {
        let total = store.counter(&counter(cur.hour)).await?.max(0) as u64;
        while cur.done < total {
            if report.deleted >= budget {
                report.behind = true;
                save(store, &start, &cur).await?;
                return Ok(report);
            }
            let to = (cur.done + BATCH)
                .min(total)
                .min(cur.done + budget - report.deleted);
            let ids: Vec<(u64, u64)> = (cur.done + 1..=to).map(|n| (cur.hour, n)).collect();
            let entries: Vec<String> = ids.iter().map(|id| Registered::key(*id)).collect();
            let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
            let keys: Vec<String> = Registered::load_many_valid(store, &ids)
                .await?
                .into_iter()
                .flatten()
                .map(|r| r.0)
                .collect();
            // Counters (registered by name, `ctr:...`) are deleted one by one: a batch
            // delete takes data keys only.
            let (counters, data): (Vec<&String>, Vec<&String>) = keys
                .iter()
                .partition(|k| k.starts_with(mdm_kv::key::COUNTER_PREFIX));
            for c in counters {
                if let Ok(ck) = CounterKey::new(&c[mdm_kv::key::COUNTER_PREFIX.len()..]) {
                    store.delete_counter(&ck).await?;
                }
            }
            let mut gone: Vec<&str> = data.iter().map(|s| s.as_str()).collect();
            gone.extend(refs.iter());
            store.delete_many(&gone).await?;
            report.deleted += to - cur.done;
            cur.done = to;
        }
        // Nothing registers into an hour that is due (see the module notes), so its
        // counter can go too; reading it above created it if it was absent.
        store.delete_counter(&counter(cur.hour)).await?;
        cur = Cursor {
            hour: cur.hour + 1,
            done: 0,
        };
        hours += 1;
    }
    report.behind = cur.hour < end;
    save(store, &start, &cur).await?;
    Ok(report)
}

async fn save<B: Backend>(store: &Store<B>, before: &Cursor, now: &Cursor) -> Result<(), KvError> {
    if before != now {
        now.save(store, ()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use mdm_kv::{Defects, MemoryBackend};

    fn keys(store: &Store<MemoryBackend>) -> Vec<String> {
        let mut k: Vec<String> = store
            .backend()
            .dump()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("tok:"))
            .collect();
        k.sort();
        k
    }

    #[test]
    fn keys_go_once_their_hour_has_passed_within_the_budget() {
        let store = Store::new(MemoryBackend::with_defects(Defects::spin_sqlite()));
        let t0 = 1_800_000_000 / HOUR * HOUR;
        for i in 0..250u64 {
            let key = format!("tok:{i:03}");
            block_on(store.set(&key, b"x")).unwrap();
            // 0-99 due in the first hour, 100-249 two hours later.
            let due = if i < 100 { t0 + 10 } else { t0 + 2 * HOUR + 10 };
            block_on(register(&store, &key, due)).unwrap();
        }
        // Still within the hour (and its margin): nothing goes.
        let r = block_on(purge_due(&store, t0 + HOUR + MARGIN_SECS - 1, 1000)).unwrap();
        assert_eq!(r.deleted, 0);
        assert_eq!(keys(&store).len(), 250);
        let r = block_on(purge_due(&store, t0 + HOUR + MARGIN_SECS, 1000)).unwrap();
        assert_eq!((r.deleted, r.behind), (100, false));
        assert_eq!(keys(&store)[0], "tok:100");
        // Later, with a small budget: resumes where it stopped.
        let later = t0 + 3 * HOUR + MARGIN_SECS;
        let r = block_on(purge_due(&store, later, 60)).unwrap();
        assert_eq!((r.deleted, r.behind), (60, true));
        assert_eq!(keys(&store).len(), 90);
        let r = block_on(purge_due(&store, later, 1000)).unwrap();
        assert_eq!((r.deleted, r.behind), (90, false));
        assert!(keys(&store).is_empty());
        // The index entries and counters of the purged hours went too; only the
        // cursor stays.
        let left: Vec<String> = store
            .backend()
            .dump()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.contains("expix:") && *k != Cursor::key(()))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // A store that purges every hour for a year keeps no trace of the empty hours.
        for h in 1..=24 * 365 {
            block_on(purge_due(&store, later + h * HOUR, 1000)).unwrap();
        }
        let dump = store.backend().dump();
        assert_eq!(
            dump.iter().filter(|(k, _)| k.contains("expix")).count(),
            1,
            "only the cursor"
        );
        assert_eq!(block_on(purge_due(&store, later, 1000)).unwrap().deleted, 0);
    }
}

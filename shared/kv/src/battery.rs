//! The store test battery: one set of checks run against every backend, natively in
//! tests and inside the deployed components (admin diagnostics), so a new backend
//! (Redis, Cosmos DB, DynamoDB) can be verified where it is actually configured.
//!
//! Every check works under a caller-chosen key prefix and the battery removes what it
//! wrote, so it can run against a live store.

use crate::key::CounterKey;
use crate::{Backend, CasOutcome, KvError, Modified, Store, UpdateError};

/// Outcome of one named check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.failure.is_none())
    }

    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter_map(|c| c.failure.as_ref().map(|f| format!("{}: {f}", c.name)))
            .collect()
    }

    fn record(&mut self, name: &'static str, result: Result<(), String>) {
        self.checks.push(Check {
            name,
            failure: result.err(),
        });
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn kv(e: KvError) -> String {
    e.to_string()
}

/// Keys the battery may have written, for clean-up.
struct Keys<'a> {
    prefix: &'a str,
    used: Vec<String>,
}

impl Keys<'_> {
    fn data(&mut self, name: &str) -> String {
        let k = format!("{}{name}", self.prefix);
        self.used.push(k.clone());
        k
    }

    fn counter(&mut self, name: &str) -> Result<CounterKey, String> {
        let c = CounterKey::new(&format!("{}{name}", self.prefix)).map_err(kv)?;
        self.used.push(c.as_str().to_owned());
        Ok(c)
    }
}

/// Runs every check under `prefix` (e.g. `"diag:1234:"`) and cleans up.
pub async fn run<B: Backend>(store: &Store<B>, prefix: &str) -> Report {
    let mut keys = Keys {
        prefix,
        used: Vec::new(),
    };
    let mut report = Report::default();
    report.record(
        "set_get_roundtrip",
        set_get_roundtrip(store, &mut keys).await,
    );
    report.record(
        "absent_and_delete",
        absent_and_delete(store, &mut keys).await,
    );
    report.record("batch_get_many", batch_get_many(store, &mut keys).await);
    report.record(
        "batch_set_delete_many",
        batch_set_delete_many(store, &mut keys).await,
    );
    report.record("increment", increment(store, &mut keys).await);
    report.record("claim_is_exclusive", claim(store, &mut keys).await);
    report.record(
        "counter_misuse_rejected",
        counter_misuse(store, &mut keys).await,
    );
    report.record("invalid_keys_rejected", invalid_keys(store).await);
    report.record("compare_and_swap", compare_and_swap(store, &mut keys).await);
    report.record(
        "cas_never_creates",
        cas_never_creates(store, &mut keys).await,
    );
    report.record("update", update(store, &mut keys).await);
    report.record("update_or_create", update_or_create(store, &mut keys).await);
    // Clean-up goes to the backend directly: the Store refuses to delete counters.
    for k in &keys.used {
        let _ = store.backend().delete(k).await;
    }
    report
}

async fn set_get_roundtrip<B: Backend>(s: &Store<B>, keys: &mut Keys<'_>) -> Result<(), String> {
    let k = keys.data("bytes");
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    s.set(&k, &all_bytes).await.map_err(kv)?;
    ensure!(
        s.get(&k).await.map_err(kv)? == Some(all_bytes),
        "binary value changed in transit"
    );
    s.set(&k, b"").await.map_err(kv)?;
    ensure!(
        s.get(&k).await.map_err(kv)? == Some(vec![]),
        "empty value not kept as empty"
    );
    // Large enough to catch truncation, below DynamoDB's 400 KB item limit.
    let big: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    s.set(&k, &big).await.map_err(kv)?;
    ensure!(
        s.get(&k).await.map_err(kv)? == Some(big),
        "64 KiB value not returned intact"
    );
    s.set(&k, b"second").await.map_err(kv)?;
    ensure!(
        s.get(&k).await.map_err(kv)?.as_deref() == Some(&b"second"[..]),
        "overwrite lost"
    );
    Ok(())
}

async fn absent_and_delete<B: Backend>(s: &Store<B>, keys: &mut Keys<'_>) -> Result<(), String> {
    let k = keys.data("gone");
    ensure!(
        s.get(&k).await.map_err(kv)?.is_none(),
        "absent key returned a value"
    );
    ensure!(!s.exists(&k).await.map_err(kv)?, "absent key exists");
    s.delete(&k)
        .await
        .map_err(|e| format!("deleting an absent key failed: {e}"))?;
    s.set(&k, b"v").await.map_err(kv)?;
    ensure!(s.exists(&k).await.map_err(kv)?, "stored key does not exist");
    s.delete(&k).await.map_err(kv)?;
    ensure!(
        s.get(&k).await.map_err(kv)?.is_none(),
        "deleted key still readable"
    );
    ensure!(!s.exists(&k).await.map_err(kv)?, "deleted key still exists");
    Ok(())
}

async fn batch_get_many<B: Backend>(s: &Store<B>, keys: &mut Keys<'_>) -> Result<(), String> {
    let a = keys.data("many-a");
    let b = keys.data("many-b");
    let missing = keys.data("many-missing");
    s.set(&a, b"A").await.map_err(kv)?;
    s.set(&b, b"B").await.map_err(kv)?;
    let got = s.get_many(&[&b, &missing, &a, &b]).await.map_err(kv)?;
    let want = vec![
        Some(b"B".to_vec()),
        None,
        Some(b"A".to_vec()),
        Some(b"B".to_vec()),
    ];
    ensure!(got == want, "get_many returned {got:?}, expected {want:?}");
    // More keys than one batch holds.
    let names: Vec<String> = (0..150).map(|i| keys.data(&format!("chunk-{i}"))).collect();
    let items: Vec<(&str, Vec<u8>)> = names
        .iter()
        .step_by(2)
        .map(|k| (k.as_str(), k.as_bytes().to_vec()))
        .collect();
    let refs: Vec<(&str, &[u8])> = items.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    s.set_many(&refs).await.map_err(kv)?;
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let got = s.get_many(&name_refs).await.map_err(kv)?;
    for (i, (name, value)) in names.iter().zip(&got).enumerate() {
        let expect = (i % 2 == 0).then(|| name.as_bytes().to_vec());
        ensure!(*value == expect, "get_many over 150 keys wrong at {name}");
    }
    Ok(())
}

async fn batch_set_delete_many<B: Backend>(
    s: &Store<B>,
    keys: &mut Keys<'_>,
) -> Result<(), String> {
    let a = keys.data("setmany-a");
    let b = keys.data("setmany-b");
    s.set_many(&[(&a, b"1"), (&b, b"2")]).await.map_err(kv)?;
    ensure!(
        s.get(&a).await.map_err(kv)?.as_deref() == Some(&b"1"[..]),
        "set_many lost a"
    );
    ensure!(
        s.get(&b).await.map_err(kv)?.as_deref() == Some(&b"2"[..]),
        "set_many lost b"
    );
    s.delete_many(&[&a, &b]).await.map_err(kv)?;
    ensure!(
        !s.exists(&a).await.map_err(kv)? && !s.exists(&b).await.map_err(kv)?,
        "delete_many left keys"
    );
    Ok(())
}

async fn increment<B: Backend>(s: &Store<B>, keys: &mut Keys<'_>) -> Result<(), String> {
    let c = keys.counter("seq")?;
    ensure!(
        s.counter(&c).await.map_err(kv)? == 0,
        "a fresh counter is not 0"
    );
    for want in 1..=3 {
        let got = s.increment(&c, 1).await.map_err(kv)?;
        ensure!(got == want, "increment returned {got}, expected {want}");
    }
    ensure!(
        s.increment(&c, 10).await.map_err(kv)? == 13,
        "increment by 10 wrong"
    );
    ensure!(
        s.increment(&c, -5).await.map_err(kv)? == 8,
        "negative delta wrong"
    );
    ensure!(
        s.counter(&c).await.map_err(kv)? == 8,
        "reading a counter changed it"
    );
    let big = keys.counter("big")?;
    s.increment(&big, 1 << 40).await.map_err(kv)?;
    ensure!(
        s.counter(&big).await.map_err(kv)? == 1 << 40,
        "64-bit counter value truncated"
    );
    s.delete_counter(&big).await.map_err(kv)?;
    ensure!(
        s.counter(&big).await.map_err(kv)? == 0,
        "a deleted counter does not start again at 0"
    );
    ensure!(
        s.counter(&c).await.map_err(kv)? == 8,
        "deleting one counter changed another"
    );
    Ok(())
}

async fn claim<B: Backend>(s: &Store<B>, keys: &mut Keys<'_>) -> Result<(), String> {
    let c = keys.counter("claim")?;
    ensure!(s.claim(&c).await.map_err(kv)?, "first claim refused");
    ensure!(!s.claim(&c).await.map_err(kv)?, "second claim granted");
    Ok(())
}

async fn counter_misuse<B: Backend>(s: &Store<B>, keys: &mut Keys<'_>) -> Result<(), String> {
    let c = keys.counter("misuse")?;
    s.increment(&c, 1).await.map_err(kv)?;
    let is_misuse = |r: Result<(), KvError>| matches!(r, Err(KvError::CounterMisuse(_)));
    ensure!(
        is_misuse(s.get(c.as_str()).await.map(|_| ())),
        "get on a counter allowed"
    );
    ensure!(
        is_misuse(s.set(c.as_str(), b"x").await),
        "set on a counter allowed"
    );
    ensure!(
        is_misuse(s.delete(c.as_str()).await),
        "delete of a counter allowed"
    );
    ensure!(
        s.counter(&c).await.map_err(kv)? == 1,
        "counter damaged by refused calls"
    );
    Ok(())
}

async fn invalid_keys<B: Backend>(s: &Store<B>) -> Result<(), String> {
    for bad in ["", "has/slash", "has space", "q?", "h#", "back\\slash"] {
        let r = s.set(bad, b"v").await;
        ensure!(
            matches!(r, Err(KvError::InvalidKey(_))),
            "key {bad:?} accepted: {r:?}"
        );
    }
    Ok(())
}

async fn compare_and_swap<B: Backend>(s: &Store<B>, keys: &mut Keys<'_>) -> Result<(), String> {
    let k = keys.data("cas");
    s.set(&k, b"one").await.map_err(kv)?;
    let r = s.compare_and_swap(&k, b"one", b"two").await.map_err(kv)?;
    ensure!(r == CasOutcome::Swapped, "matching CAS did not swap: {r:?}");
    let r = s.compare_and_swap(&k, b"one", b"three").await.map_err(kv)?;
    ensure!(
        r == CasOutcome::Conflict {
            current: Some(b"two".to_vec())
        },
        "stale CAS not refused: {r:?}"
    );
    ensure!(
        s.get(&k).await.map_err(kv)?.as_deref() == Some(&b"two"[..]),
        "stale CAS wrote"
    );
    Ok(())
}

async fn cas_never_creates<B: Backend>(s: &Store<B>, keys: &mut Keys<'_>) -> Result<(), String> {
    let k = keys.data("cas-absent");
    let r = s.compare_and_swap(&k, b"", b"created").await.map_err(kv)?;
    ensure!(
        r == CasOutcome::Conflict { current: None },
        "CAS on absent key: {r:?}"
    );
    ensure!(
        s.get(&k).await.map_err(kv)?.is_none(),
        "CAS created an absent key"
    );
    Ok(())
}

async fn update<B: Backend>(s: &Store<B>, keys: &mut Keys<'_>) -> Result<(), String> {
    let k = keys.data("update");
    let absent = s.update::<()>(&k, 3, |_| Ok(Some(b"x".to_vec()))).await;
    ensure!(absent == Ok(None), "update of an absent key: {absent:?}");
    ensure!(
        !s.exists(&k).await.map_err(kv)?,
        "update created an absent key"
    );
    s.set(&k, b"1").await.map_err(kv)?;
    let r = s
        .update::<()>(&k, 3, |v| Ok(Some([v, b"2"].concat())))
        .await;
    ensure!(r == Ok(Some(b"12".to_vec())), "update returned {r:?}");
    let r = s.update::<&str>(&k, 3, |_| Err("no")).await;
    ensure!(
        r == Err(UpdateError::Rejected("no")),
        "rejection not passed through: {r:?}"
    );
    ensure!(
        s.get(&k).await.map_err(kv)?.as_deref() == Some(&b"12"[..]),
        "rejected update wrote"
    );
    Ok(())
}

async fn update_or_create<B: Backend>(s: &Store<B>, keys: &mut Keys<'_>) -> Result<(), String> {
    let k = keys.data("uoc");
    let c = keys.counter("uoc")?;
    let mut append = |v: &[u8]| Some([v, b"+"].concat());
    let r = s.update_or_create(&k, &c, b"0", false, &mut append).await;
    ensure!(
        r == Ok(Modified::Done),
        "first call on an absent key: {r:?}"
    );
    ensure!(
        s.get(&k).await.map_err(kv)?.as_deref() == Some(&b"0+"[..]),
        "absent key not created as init and then changed"
    );
    let r = s.update_or_create(&k, &c, b"0", false, &mut append).await;
    ensure!(r == Ok(Modified::Done), "second call: {r:?}");
    ensure!(
        s.get(&k).await.map_err(kv)?.as_deref() == Some(&b"0++"[..]),
        "existing key not changed in place"
    );
    // Someone else holds the creation claim of an absent key: no wait, no write.
    let k2 = keys.data("uoc2");
    let c2 = keys.counter("uoc2")?;
    s.increment(&c2, 1).await.map_err(kv)?;
    let r = s.update_or_create(&k2, &c2, b"0", false, &mut append).await;
    ensure!(
        r == Ok(Modified::BeingCreated),
        "claimed by another, not waiting: {r:?}"
    );
    ensure!(
        !s.exists(&k2).await.map_err(kv)?,
        "created without the claim"
    );
    Ok(())
}

// --- contention: many writers at once ------------------------------------------------
//
// Run `contention_setup` once, then `contention_work` from many concurrent callers
// (threads natively, concurrent HTTP requests against a deployed component), then
// `contention_totals`: increments and CAS updates must all be counted.

fn contention_keys(prefix: &str) -> Result<(CounterKey, String), KvError> {
    Ok((
        CounterKey::new(&format!("{prefix}hits"))?,
        format!("{prefix}swaps"),
    ))
}

pub async fn contention_setup<B: Backend>(s: &Store<B>, prefix: &str) -> Result<(), KvError> {
    let (_, swaps) = contention_keys(prefix)?;
    s.set(&swaps, b"0").await
}

/// One writer's share: `increments` increments of the counter and `swaps` CAS-guarded
/// read-modify-write increments of a decimal value.
pub async fn contention_work<B: Backend>(
    s: &Store<B>,
    prefix: &str,
    increments: u32,
    swaps: u32,
) -> Result<(), KvError> {
    let (hits, swaps_key) = contention_keys(prefix)?;
    for _ in 0..increments {
        s.increment(&hits, 1).await?;
    }
    for _ in 0..swaps {
        let r = s
            .update::<KvError>(&swaps_key, 10_000, |v| {
                let n: u64 = std::str::from_utf8(v)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| KvError::Backend("swap value is not a number".into()))?;
                Ok(Some((n + 1).to_string().into_bytes()))
            })
            .await;
        match r {
            Ok(Some(_)) => {}
            Ok(None) => return Err(KvError::Backend("contention key missing".into())),
            Err(UpdateError::Kv(e) | UpdateError::Rejected(e)) => return Err(e),
        }
    }
    Ok(())
}

/// (counter value, CAS-updated value).
pub async fn contention_totals<B: Backend>(
    s: &Store<B>,
    prefix: &str,
) -> Result<(i64, u64), KvError> {
    let (hits, swaps) = contention_keys(prefix)?;
    let n = s.counter(&hits).await?;
    let raw = s
        .get(&swaps)
        .await?
        .ok_or_else(|| KvError::Backend("contention key missing".into()))?;
    let m = std::str::from_utf8(&raw)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| KvError::Backend("swap value is not a number".into()))?;
    Ok((n, m))
}

pub async fn contention_cleanup<B: Backend>(s: &Store<B>, prefix: &str) -> Result<(), KvError> {
    let (hits, swaps) = contention_keys(prefix)?;
    s.backend().delete(hits.as_str()).await?;
    s.backend().delete(&swaps).await
}

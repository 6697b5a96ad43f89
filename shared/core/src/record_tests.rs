//! Tests of the typed record operations ([`super::Stored`]) on the memory backend, with
//! the defects of the real backends where they matter.

use futures::executor::block_on;
use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, Defects, KvError, MemoryBackend, Store};

use super::{Created, Record, Stored};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Tally {
    name: String,
    count: u64,
}

impl Record for Tally {
    type Id<'a> = &'a str;
    const NAME: &'static str = "tally";
    fn key(id: &str) -> String {
        format!("tally:{}", segment(id))
    }
}

impl Created for Tally {
    fn claim(id: &str) -> CounterKey {
        CounterKey::new(&format!("tally:{}", segment(id))).expect("segments are key-safe")
    }
}

/// Soft state: a damaged value starts over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Hint(Vec<String>);

impl Record for Hint {
    type Id<'a> = ();
    const NAME: &'static str = "hint";
    fn key((): ()) -> String {
        "hint".into()
    }
    fn fresh_if_damaged() -> Option<Self> {
        Some(Hint::default())
    }
}

/// Stored as a decimal, not JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Minute(u64);

impl Record for Minute {
    type Id<'a> = ();
    const NAME: &'static str = "minute";
    fn key((): ()) -> String {
        "minute".into()
    }
    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(self.0.to_string().into_bytes())
    }
    fn decode(raw: &[u8]) -> Result<Self, String> {
        std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Minute)
            .ok_or_else(|| "not a decimal".to_owned())
    }
}

fn tally(name: &str, count: u64) -> Tally {
    Tally {
        name: name.into(),
        count,
    }
}

#[test]
fn a_record_round_trips_as_the_json_serde_writes() {
    let store = Store::new(MemoryBackend::new());
    block_on(async {
        assert_eq!(Tally::load(&store, "a/b").await.unwrap(), None);
        tally("x", 3).save(&store, "a/b").await.unwrap();
        assert_eq!(
            store.backend().peek("tally:a%2Fb").unwrap(),
            serde_json::to_vec(&tally("x", 3)).unwrap()
        );
        assert_eq!(
            Tally::load(&store, "a/b").await.unwrap(),
            Some(tally("x", 3))
        );
        Minute(42).save(&store, ()).await.unwrap();
        assert_eq!(store.backend().peek("minute").unwrap(), b"42");
        assert_eq!(Minute::load(&store, ()).await.unwrap(), Some(Minute(42)));
        Tally::delete(&store, "a/b").await.unwrap();
        assert!(!Tally::exists(&store, "a/b").await.unwrap());
    });
}

#[test]
fn a_damaged_value_is_an_error_naming_the_record_and_its_key() {
    let store = Store::new(MemoryBackend::new());
    store.backend().put("tally:d", b"{\"name\":".to_vec());
    store.backend().put("minute", b"soon".to_vec());
    block_on(async {
        let named = |e: KvError| {
            let m = e.to_string();
            assert!(m.contains("tally at tally:d does not decode"), "{m}");
        };
        named(Tally::load(&store, "d").await.unwrap_err());
        named(Tally::load_many(&store, &["c", "d"]).await.unwrap_err());
        named(
            Tally::modify(&store, "d", |t| {
                t.count += 1;
                Ok::<_, KvError>(true)
            })
            .await
            .unwrap_err(),
        );
        named(
            Tally::modify_or_create(&store, "d", true, |t| {
                t.count += 1;
                Ok::<_, KvError>(true)
            })
            .await
            .unwrap_err(),
        );
        let m = Minute::load(&store, ()).await.unwrap_err().to_string();
        assert!(
            m.contains("minute at minute does not decode: not a decimal"),
            "{m}"
        );
        // Readers and changes that tolerate damage see nothing; the value stays as it was.
        let skipped = Tally::modify_valid(&store, "d", |t| {
            t.count += 1;
            Ok::<_, KvError>(true)
        });
        assert_eq!(skipped.await.unwrap(), None);
        assert_eq!(Tally::load_valid(&store, "d").await.unwrap(), None);
        assert_eq!(
            Tally::load_many_valid(&store, &["c", "d"]).await.unwrap(),
            vec![None, None]
        );
    });
    assert_eq!(store.backend().peek("tally:d").unwrap(), b"{\"name\":");
}

#[test]
fn soft_state_starts_over_when_damaged() {
    let store = Store::new(MemoryBackend::new());
    store.backend().put("hint", b"[1,".to_vec());
    let got = block_on(Hint::modify(&store, (), |h| {
        h.0.push("a".into());
        Ok::<_, KvError>(true)
    }))
    .unwrap();
    assert_eq!(got, Some(Hint(vec!["a".into()])));
    assert_eq!(store.backend().peek("hint").unwrap(), b"[\"a\"]");
}

#[test]
fn modify_retries_when_another_writer_slips_in() {
    let store = Store::new(MemoryBackend::new());
    store
        .backend()
        .put("tally:r", serde_json::to_vec(&tally("r", 1)).unwrap());
    // Right after the first read, another writer adds 10.
    let mut once = true;
    store.backend().after_read("tally:r", move |b| {
        if std::mem::take(&mut once) {
            b.put("tally:r", serde_json::to_vec(&tally("r", 11)).unwrap());
        }
    });
    let mut calls = 0;
    let got = block_on(Tally::modify(&store, "r", |t| {
        calls += 1;
        t.count += 1;
        Ok::<_, KvError>(true)
    }))
    .unwrap();
    assert_eq!(calls, 2, "the first attempt lost the compare-and-swap");
    assert_eq!(got, Some(tally("r", 12)));
    assert_eq!(
        block_on(Tally::load(&store, "r")).unwrap(),
        Some(tally("r", 12))
    );
}

#[test]
fn modify_leaves_the_record_when_unchanged_refused_or_absent() {
    let store = Store::new(MemoryBackend::new());
    block_on(async {
        let none = Tally::modify(&store, "x", |_| Ok::<_, KvError>(true)).await;
        assert_eq!(none.unwrap(), None);
        assert!(!Tally::exists(&store, "x").await.unwrap());
        tally("x", 5).save(&store, "x").await.unwrap();
        // Changed in memory but reported unchanged: what is stored is what is answered.
        let same = Tally::modify(&store, "x", |t| {
            t.count = 99;
            Ok::<_, KvError>(false)
        })
        .await;
        assert_eq!(same.unwrap(), Some(tally("x", 5)));
        let refused = Tally::modify(&store, "x", |t| {
            t.count = 99;
            Err(KvError::AccessDenied)
        })
        .await;
        assert_eq!(refused.unwrap_err(), KvError::AccessDenied);
        assert_eq!(Tally::load(&store, "x").await.unwrap(), Some(tally("x", 5)));
    });
}

/// A backend that lets every other task run before each of its operations: futures
/// joined on one thread interleave between a read and the write that follows it, as
/// requests do on a shared store (and deterministically, in WebAssembly too).
struct Interleaved<'a>(&'a MemoryBackend);

/// Pending once (waking itself), then ready.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl Backend for Interleaved<'_> {
    type Cas = <MemoryBackend as Backend>::Cas;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        YieldNow(false).await;
        self.0.get(key).await
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        YieldNow(false).await;
        self.0.set(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        YieldNow(false).await;
        self.0.delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        YieldNow(false).await;
        self.0.exists(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        YieldNow(false).await;
        self.0.get_many(keys).await
    }
    async fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        YieldNow(false).await;
        self.0.set_many(items).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        YieldNow(false).await;
        self.0.delete_many(keys).await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        YieldNow(false).await;
        self.0.increment(key, delta).await
    }
    async fn cas_begin(&self, key: &str) -> Result<Self::Cas, KvError> {
        YieldNow(false).await;
        self.0.cas_begin(key).await
    }
    async fn cas_swap(&self, cas: Self::Cas, value: &[u8]) -> Result<bool, KvError> {
        YieldNow(false).await;
        self.0.cas_swap(cas, value).await
    }
}

#[test]
fn modify_or_create_creates_once_under_concurrency() {
    // Spin's SQLite backend swaps blindly on an absent key: creation must not rely on it.
    for defects in [Defects::strict(), Defects::spin_sqlite(), Defects::redis()] {
        let backend = MemoryBackend::with_defects(defects);
        let store = Store::new(Interleaved(&backend));
        let callers = 8;
        let changes = (0..callers).map(|_| {
            Tally::modify_or_create(&store, "c", true, |t| {
                t.count += 1;
                Ok::<_, KvError>(true)
            })
        });
        for r in block_on(futures::future::join_all(changes)) {
            assert!(r.unwrap().is_some());
        }
        let got = block_on(Tally::load(&store, "c")).unwrap().unwrap();
        assert_eq!(got.count, callers, "{defects:?}: an update was lost");
        // More than one caller found it absent; the claim let exactly one create it.
        assert!(block_on(store.counter(&Tally::claim("c"))).unwrap() > 1);
    }
}

#[test]
fn modify_or_create_without_waiting_leaves_creation_to_the_claimer() {
    let store = Store::new(MemoryBackend::new());
    // Someone else claimed the creation and has not written yet.
    block_on(store.claim(&Tally::claim("w"))).unwrap();
    let r = block_on(Tally::modify_or_create(&store, "w", false, |t| {
        t.count += 1;
        Ok::<_, KvError>(true)
    }));
    assert_eq!(r.unwrap(), None);
    assert!(!block_on(Tally::exists(&store, "w")).unwrap());
    // Once it exists, the change applies to what is there.
    block_on(tally("w", 7).save(&store, "w")).unwrap();
    let r = block_on(Tally::modify_or_create(&store, "w", false, |t| {
        t.count += 1;
        Ok::<_, KvError>(true)
    }));
    assert_eq!(r.unwrap(), Some(tally("w", 8)));
}

#[test]
fn save_many_and_load_many_keep_order() {
    let store = Store::new(MemoryBackend::with_defects(Defects::spin_sqlite()));
    block_on(async {
        let (a, b) = (tally("a", 1), tally("b", 2));
        Tally::save_many(&store, &[("a", &a), ("b", &b)])
            .await
            .unwrap();
        assert_eq!(
            Tally::load_many(&store, &["b", "none", "a"]).await.unwrap(),
            vec![Some(b), None, Some(a)]
        );
    });
}

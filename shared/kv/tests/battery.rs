//! The store battery against the in-memory backend: strict, and with the defects of
//! Spin's SQLite and Redis backends emulated.

use futures::executor::block_on;
use mdm_kv::battery::{self, contention_setup, contention_totals, contention_work};
use mdm_kv::{Backend, CasHandle, Defects, MemoryBackend, Store};

fn profiles() -> [(&'static str, Defects); 3] {
    [
        ("strict", Defects::strict()),
        ("spin-sqlite", Defects::spin_sqlite()),
        ("redis", Defects::redis()),
    ]
}

#[test]
fn battery_passes_on_every_backend_profile() {
    for (name, defects) in profiles() {
        let store = Store::new(MemoryBackend::with_defects(defects));
        let report = block_on(battery::run(&store, "t:1:"));
        assert!(report.passed(), "{name}: {:#?}", report.failures());
        assert!(report.checks.len() >= 10);
        assert!(
            store.backend().is_empty(),
            "{name}: battery left keys behind: {:?}",
            store.backend().dump()
        );
    }
}

#[test]
fn concurrent_increments_and_swaps_lose_nothing() {
    const THREADS: u32 = 8;
    const INCREMENTS: u32 = 200;
    const SWAPS: u32 = 50;
    for (name, defects) in profiles() {
        let store = Store::new(MemoryBackend::with_defects(defects));
        block_on(contention_setup(&store, "c:")).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| block_on(contention_work(&store, "c:", INCREMENTS, SWAPS)).unwrap());
            }
        });
        let (hits, swaps) = block_on(contention_totals(&store, "c:")).unwrap();
        assert_eq!(
            hits,
            i64::from(THREADS * INCREMENTS),
            "{name}: lost increments"
        );
        assert_eq!(
            swaps,
            u64::from(THREADS * SWAPS),
            "{name}: lost CAS updates"
        );
    }
}

// The emulation must really reproduce the defects, or the battery above proves nothing.

#[test]
fn emulated_sqlite_loses_cas_updates_on_absent_keys() {
    let raw = MemoryBackend::with_defects(Defects::spin_sqlite());
    block_on(async {
        let ticket = raw.cas_begin("k").await.unwrap();
        assert!(ticket.current().is_none());
        raw.set("k", b"concurrent writer").await.unwrap();
        assert!(
            raw.cas_swap(ticket, b"mine").await.unwrap(),
            "defect not emulated"
        );
        assert_eq!(raw.get("k").await.unwrap().unwrap(), b"mine");
    });
    let strict = MemoryBackend::new();
    block_on(async {
        let ticket = strict.cas_begin("k").await.unwrap();
        strict.set("k", b"concurrent writer").await.unwrap();
        assert!(!strict.cas_swap(ticket, b"mine").await.unwrap());
    });
}

#[test]
fn emulated_batch_and_counter_defects() {
    block_on(async {
        let sqlite = MemoryBackend::with_defects(Defects::spin_sqlite());
        sqlite.set("a", b"1").await.unwrap();
        let got = sqlite.get_many(&["a".into(), "b".into()]).await.unwrap();
        assert_eq!(
            got,
            vec![("a".to_string(), Some(b"1".to_vec()))],
            "absent key not omitted"
        );
        assert_eq!(sqlite.increment("n", 5).await.unwrap(), 5);
        assert_eq!(sqlite.get("n").await.unwrap().unwrap(), 5i64.to_le_bytes());
        assert!(
            sqlite.increment("a", 1).await.is_err(),
            "increment on a 1-byte value accepted"
        );

        let redis = MemoryBackend::with_defects(Defects::redis());
        assert!(redis.get_many(&["a".into()]).await.is_err());
        assert_eq!(redis.increment("n", 5).await.unwrap(), 5);
        assert_eq!(redis.get("n").await.unwrap().unwrap(), b"5");
    });
}

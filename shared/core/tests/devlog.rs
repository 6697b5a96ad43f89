//! Device logs: append, filtered and paged listing, retention purge; on every store.

use futures::executor::block_on;
use mdm_core::mdm::devlog::{self, LogQuery, NewEntry};
use mdm_kv::{Defects, MemoryBackend, Store};

fn stores() -> Vec<(&'static str, Store<MemoryBackend>)> {
    vec![
        (
            "strict",
            Store::new(MemoryBackend::with_defects(Defects::strict())),
        ),
        (
            "spin-sqlite",
            Store::new(MemoryBackend::with_defects(Defects::spin_sqlite())),
        ),
        (
            "redis",
            Store::new(MemoryBackend::with_defects(Defects::redis())),
        ),
    ]
}

const ACTIONS: [&str; 4] = ["Authenticate", "TokenUpdate", "DeviceLock", "DeviceName"];
const STATUSES: [&str; 3] = ["ok", "Acknowledged", "Error"];

/// 300 entries on device A (time 1000 + i), then five on B (time 1300 + i).
fn fill(store: &Store<MemoryBackend>) {
    for i in 0..300u64 {
        let e = NewEntry {
            action: ACTIONS[(i % 4) as usize],
            status: STATUSES[(i % 3) as usize],
            details: "x",
            user: None,
        };
        assert_eq!(
            block_on(devlog::append(store, "A", &e, 1000 + i)).unwrap(),
            i + 1
        );
    }
    for i in 0..5 {
        let e = NewEntry {
            action: "Authenticate",
            status: "ok",
            ..Default::default()
        };
        block_on(devlog::append(store, "B", &e, 1300 + i)).unwrap();
    }
}

/// Every entry a query selects, following `next` to the end; the numbers of what came.
fn all_pages(store: &Store<MemoryBackend>, device: &str, mut q: LogQuery) -> Vec<u64> {
    let mut out = Vec::new();
    loop {
        let page = block_on(devlog::list(store, device, &q)).unwrap();
        assert!(page.entries.len() <= q.limit);
        out.extend(page.entries.iter().map(|e| e.n));
        match page.next {
            Some(n) => q.before = Some(n),
            None => return out,
        }
    }
}

#[test]
fn filters_return_exactly_the_matching_entries_newest_first() {
    for (name, store) in stores() {
        fill(&store);
        for action in [None, Some("DeviceLock"), Some("devicename")] {
            for status in [None, Some("Error"), Some("ok")] {
                for (from, to) in [(None, None), (Some(1100), None), (Some(1050), Some(1060))] {
                    let q = LogQuery {
                        action: action.map(str::to_owned),
                        status: status.map(str::to_owned),
                        from,
                        to,
                        before: None,
                        limit: 7,
                    };
                    let got = all_pages(&store, "A", q);
                    let want: Vec<u64> = (0..300u64)
                        .rev()
                        .filter(|i| {
                            action.is_none_or(|a| ACTIONS[(i % 4) as usize].eq_ignore_ascii_case(a))
                                && status.is_none_or(|s| STATUSES[(i % 3) as usize] == s)
                                && from.is_none_or(|f| 1000 + i >= f)
                                && to.is_none_or(|t| 1000 + i <= t)
                        })
                        .map(|i| i + 1)
                        .collect();
                    assert_eq!(got, want, "{name} {action:?} {status:?} {from:?} {to:?}");
                }
            }
        }
        // Another device's log is its own.
        let b = all_pages(
            &store,
            "B",
            LogQuery {
                limit: 100,
                ..Default::default()
            },
        );
        assert_eq!(b, vec![5, 4, 3, 2, 1], "{name}");
        let none = all_pages(
            &store,
            "C",
            LogQuery {
                limit: 100,
                ..Default::default()
            },
        );
        assert!(none.is_empty());
    }
}

#[test]
fn details_are_clipped_and_users_kept() {
    let store = Store::new(MemoryBackend::new());
    let long = "é".repeat(500);
    let e = NewEntry {
        action: "UserAuthenticate",
        status: "ok",
        details: &long,
        user: Some("user-1"),
    };
    block_on(devlog::append(&store, "D", &e, 5)).unwrap();
    let page = block_on(devlog::list(
        &store,
        "D",
        &LogQuery {
            limit: 10,
            ..Default::default()
        },
    ))
    .unwrap();
    let got = &page.entries[0];
    assert!(
        got.details.len() <= devlog::MAX_DETAILS + 3,
        "{}",
        got.details.len()
    );
    assert!(got.details.ends_with('…'));
    assert_eq!(got.user.as_deref(), Some("user-1"));
}

#[test]
fn purge_removes_only_expired_entries_within_its_budget() {
    for (name, store) in stores() {
        fill(&store);
        // Retention 100 s at time 1200: A's entries before 1100 go, B's stay.
        let r = block_on(devlog::purge(&store, 1200, 100, 60)).unwrap();
        assert_eq!(r.deleted, 60, "{name}");
        assert!(r.more);
        let r = block_on(devlog::purge(&store, 1200, 100, 1000)).unwrap();
        assert_eq!(r.deleted, 40, "{name}");
        assert!(!r.more);
        let r = block_on(devlog::purge(&store, 1200, 100, 1000)).unwrap();
        assert_eq!(r.deleted, 0, "{name}: nothing left to purge");
        let left = all_pages(
            &store,
            "A",
            LogQuery {
                limit: 1000,
                ..Default::default()
            },
        );
        assert_eq!(left, (101..=300).rev().collect::<Vec<_>>(), "{name}");
        let b = all_pages(
            &store,
            "B",
            LogQuery {
                limit: 100,
                ..Default::default()
            },
        );
        assert_eq!(b.len(), 5, "{name}");
        // Later, the rest expires too and new entries stay.
        block_on(devlog::append(
            &store,
            "A",
            &NewEntry {
                action: "Idle",
                status: "ok",
                ..Default::default()
            },
            5000,
        ))
        .unwrap();
        let r = block_on(devlog::purge(&store, 5050, 100, 10_000)).unwrap();
        assert_eq!(r.deleted, 205, "{name}");
        let left = all_pages(
            &store,
            "A",
            LogQuery {
                limit: 1000,
                ..Default::default()
            },
        );
        assert_eq!(left, vec![301], "{name}");
        let b = all_pages(
            &store,
            "B",
            LogQuery {
                limit: 100,
                ..Default::default()
            },
        );
        assert!(b.is_empty(), "{name}");
    }
}

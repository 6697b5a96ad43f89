//! Device inventory: applying Apple's pages, latest-wins, tombstones, listing, purge.

use futures::executor::block_on;
use mdm_core::dep::TokenId;
use mdm_core::dep::inventory;
use mdm_core::dep::inventory_apply::{self, ApplyMode, PageContext};
use mdm_core::dep::inventory_list::{self, Assignment, ListQuery};
use mdm_core::dep::reconcile;
use mdm_core::dep::sync_state::ScanState;
use mdm_kv::{Defects, MemoryBackend, Store};
use serde_json::{Map, Value, json};

const T: TokenId = TokenId(7);

fn dev(serial: &str, extra: Value) -> Map<String, Value> {
    let mut m = json!({ "serial_number": serial, "model": "iPad", "profile_status": "empty" });
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m.as_object().unwrap().clone()
}

fn store() -> Store<MemoryBackend> {
    Store::new(MemoryBackend::with_defects(Defects::spin_sqlite()))
}

fn all(s: &Store<MemoryBackend>, q: ListQuery) -> Vec<String> {
    let mut out = Vec::new();
    let mut q = q;
    loop {
        let page = block_on(inventory_list::list(s, T, &q)).unwrap();
        out.extend(page.devices.into_iter().map(|d| d.serial_number));
        match page.next {
            Some(n) => q.after = n,
            None => return out,
        }
    }
}

#[test]
fn fetch_pages_upsert_and_index_each_serial_once() {
    let s = store();
    let page: Vec<_> = (0..250)
        .map(|i| dev(&format!("S{i:04}"), json!({})))
        .collect();
    let st = block_on(inventory_apply::apply_page(
        &s,
        T,
        page.clone(),
        PageContext::at(ApplyMode::Upsert, 100),
    ))
    .unwrap();
    assert_eq!((st.added, st.updated), (250, 0));
    // Re-applying the same page (a resumed run) adds nothing.
    let st = block_on(inventory_apply::apply_page(
        &s,
        T,
        page,
        PageContext::at(ApplyMode::Upsert, 101),
    ))
    .unwrap();
    assert_eq!((st.added, st.updated), (0, 250));
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 250);
    let listed = all(
        &s,
        ListQuery {
            limit: 40,
            ..Default::default()
        },
    );
    assert_eq!(listed.len(), 250);
    let mut dedup = listed.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), 250);
}

#[test]
fn latest_op_date_wins_within_and_across_pages() {
    let s = store();
    let page = vec![
        dev(
            "A",
            json!({"op_type": "modified", "op_date": "2026-01-02T00:00:00Z", "color": "new"}),
        ),
        dev(
            "A",
            json!({"op_type": "added", "op_date": "2026-01-01T00:00:00Z", "color": "old"}),
        ),
    ];
    block_on(inventory_apply::apply_page(
        &s,
        T,
        page,
        PageContext::at(ApplyMode::Upsert, 1),
    ))
    .unwrap();
    assert_eq!(
        block_on(inventory::get(&s, T, "A"))
            .unwrap()
            .unwrap()
            .field("color"),
        Some("new")
    );
    let older = vec![dev(
        "A",
        json!({"op_type": "modified", "op_date": "2025-12-31T00:00:00Z", "color": "stale"}),
    )];
    let st = block_on(inventory_apply::apply_page(
        &s,
        T,
        older,
        PageContext::at(ApplyMode::Upsert, 2),
    ))
    .unwrap();
    assert_eq!(st.skipped, 1);
    assert_eq!(
        block_on(inventory::get(&s, T, "A"))
            .unwrap()
            .unwrap()
            .field("color"),
        Some("new")
    );
}

#[test]
fn deleted_flags_then_purge_tombstones_and_readd_keeps_one_slot() {
    let s = store();
    block_on(inventory_apply::apply_page(
        &s,
        T,
        vec![dev("A", json!({})), dev("B", json!({}))],
        PageContext::at(ApplyMode::Upsert, 10),
    ))
    .unwrap();
    let del = vec![dev(
        "A",
        json!({"op_type": "DELETED", "op_date": "2026-02-01T00:00:00Z"}),
    )];
    let st = block_on(inventory_apply::apply_page(
        &s,
        T,
        del,
        PageContext::at(ApplyMode::Upsert, 20),
    ))
    .unwrap();
    assert_eq!(st.removed, 1);
    let a = block_on(inventory::get(&s, T, "A")).unwrap().unwrap();
    assert_eq!(a.removed_at, Some(20));
    assert_eq!(
        all(
            &s,
            ListQuery {
                limit: 10,
                removed: Some(true),
                ..Default::default()
            }
        ),
        vec!["A"]
    );
    assert_eq!(
        all(
            &s,
            ListQuery {
                limit: 10,
                removed: Some(false),
                ..Default::default()
            }
        ),
        vec!["B"]
    );

    // Not yet old enough: nothing purged.
    let mut scan = ScanState::default();
    assert_eq!(
        block_on(reconcile::maintenance_scan(&s, T, &mut scan, 1000, 20, 30)).unwrap(),
        (0, true)
    );
    let mut scan = ScanState::default();
    assert_eq!(
        block_on(reconcile::maintenance_scan(&s, T, &mut scan, 1000, 21, 30)).unwrap(),
        (1, true)
    );
    assert!(block_on(inventory::get(&s, T, "A")).unwrap().is_none());
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 1);

    // Apple assigns it again: back, in its old slot, listed once.
    let again = vec![dev(
        "A",
        json!({"op_type": "added", "op_date": "2026-03-01T00:00:00Z"}),
    )];
    block_on(inventory_apply::apply_page(
        &s,
        T,
        again,
        PageContext::at(ApplyMode::Upsert, 40),
    ))
    .unwrap();
    assert_eq!(
        all(
            &s,
            ListQuery {
                limit: 10,
                ..Default::default()
            }
        ),
        vec!["A", "B"]
    );
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 2);
}

#[test]
fn add_only_mode_ignores_known_serials() {
    let s = store();
    block_on(inventory_apply::apply_page(
        &s,
        T,
        vec![dev("A", json!({"color": "red"}))],
        PageContext::at(ApplyMode::Upsert, 1),
    ))
    .unwrap();
    let page = vec![dev("A", json!({"color": "blue"})), dev("B", json!({}))];
    let st = block_on(inventory_apply::apply_page(
        &s,
        T,
        page,
        PageContext::at(ApplyMode::AddOnly, 2),
    ))
    .unwrap();
    assert_eq!((st.added, st.skipped), (1, 1));
    assert_eq!(
        block_on(inventory::get(&s, T, "A"))
            .unwrap()
            .unwrap()
            .field("color"),
        Some("red")
    );
}

#[test]
fn admin_delete_then_full_sync_brings_it_back() {
    let s = store();
    block_on(inventory_apply::apply_page(
        &s,
        T,
        vec![dev("A", json!({}))],
        PageContext::at(ApplyMode::Upsert, 1),
    ))
    .unwrap();
    assert!(block_on(inventory::delete_by_admin(&s, T, "A", 2)).unwrap());
    assert!(!block_on(inventory::delete_by_admin(&s, T, "A", 3)).unwrap());
    assert!(!block_on(inventory::delete_by_admin(&s, T, "nope", 3)).unwrap());
    assert!(
        all(
            &s,
            ListQuery {
                limit: 5,
                ..Default::default()
            }
        )
        .is_empty()
    );
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 0);
    block_on(inventory_apply::apply_page(
        &s,
        T,
        vec![dev("A", json!({}))],
        PageContext::at(ApplyMode::AddOnly, 4),
    ))
    .unwrap();
    assert_eq!(
        all(
            &s,
            ListQuery {
                limit: 5,
                ..Default::default()
            }
        ),
        vec!["A"]
    );
}

#[test]
fn filters_by_assignment_and_serial_prefix() {
    let s = store();
    let page = vec![
        dev(
            "C1",
            json!({"profile_uuid": "P1", "profile_status": "assigned"}),
        ),
        dev(
            "C2",
            json!({"profile_uuid": "P2", "profile_status": "pushed"}),
        ),
        dev(
            "D1",
            json!({"profile_uuid": "P1", "profile_status": "removed"}),
        ),
        dev("D2", json!({})),
    ];
    block_on(inventory_apply::apply_page(
        &s,
        T,
        page,
        PageContext::at(ApplyMode::Upsert, 1),
    ))
    .unwrap();
    let q = |a: Option<Assignment>, p: Option<&str>| ListQuery {
        limit: 10,
        assignment: a,
        serial_prefix: p.map(str::to_owned),
        ..Default::default()
    };
    assert_eq!(
        all(&s, q(Some(Assignment::Unassigned), None)),
        vec!["D1", "D2"]
    );
    assert_eq!(all(&s, q(Some(Assignment::Any), None)), vec!["C1", "C2"]);
    assert_eq!(
        all(&s, q(Some(Assignment::Profile("P1".into())), None)),
        vec!["C1"]
    );
    assert_eq!(all(&s, q(None, Some("c"))), vec!["C1", "C2"]);
}

#[test]
fn garbage_records_are_counted_not_stored() {
    let s = store();
    let page = vec![
        json!({"model": "no serial"}).as_object().unwrap().clone(),
        dev("bad/serial with space", json!({})),
        dev("OK1", json!({})),
    ];
    let st = block_on(inventory_apply::apply_page(
        &s,
        T,
        page,
        PageContext::at(ApplyMode::Upsert, 1),
    ))
    .unwrap();
    assert_eq!((st.invalid, st.added), (2, 1));
}

#[test]
fn orphan_index_slots_from_a_crash_are_skipped_and_counts_repaired() {
    let s = store();
    block_on(inventory_apply::apply_page(
        &s,
        T,
        vec![dev("A", json!({}))],
        PageContext::at(ApplyMode::Upsert, 1),
    ))
    .unwrap();
    // Simulate a run that died after writing an index slot but before the record.
    let ctr = mdm_kv::CounterKey::new("devix:7").unwrap();
    block_on(s.increment(&ctr, 1)).unwrap();
    block_on(s.set("devix:7:2", b"GHOST")).unwrap();
    // ... and one that died before counting a device it wrote.
    block_on(s.increment(&mdm_kv::CounterKey::new("devn:7").unwrap(), 5)).unwrap();
    assert_eq!(
        all(
            &s,
            ListQuery {
                limit: 10,
                ..Default::default()
            }
        ),
        vec!["A"]
    );
    let mut scan = ScanState::default();
    block_on(reconcile::maintenance_scan(&s, T, &mut scan, 10_000, 0, 2)).unwrap();
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 1);
}

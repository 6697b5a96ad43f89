//! The scheduler's tick: authentication and the daily maintenance scan.

use std::time::Duration;

mod common;

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::dep::inventory;
use mdm_core::dep::inventory_apply::{self, ApplyMode, PageContext};
use mdm_core::platform::testing::{ManualClock, MapVariables, NoHttp};
use mdm_core::{Env, routes::sync as tick};
use mdm_kv::{Defects, MemoryBackend, Store};
use serde_json::{Value, json};

const KEY: &str = "sync-key-for-tick-tests";
type E = Env<MemoryBackend, NoHttp, ManualClock, MapVariables>;

fn env() -> E {
    Env {
        store: Store::new(MemoryBackend::with_defects(Defects::redis())),
        http: NoHttp,
        clock: ManualClock::at_unix(1_800_000_000),
        vars: MapVariables::new([("sync_api_key", KEY)]),
    }
}

fn post(e: &E, key: &str) -> (StatusCode, Value) {
    let req = common::request(Method::POST, "/internal/tick", key);
    let resp = block_on(tick::handle(e, req));
    (
        resp.status(),
        serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
    )
}

#[test]
fn tick_requires_the_sync_key() {
    let e = env();
    assert_eq!(post(&e, "wrong").0, StatusCode::UNAUTHORIZED);
    assert_eq!(post(&e, KEY).0, StatusCode::OK);
}

#[test]
fn removed_devices_are_purged_after_the_configured_days() {
    let e = env();
    let t = common::add_token(&e.store);
    let now = 1_800_000_000;
    let page = vec![
        json!({"serial_number": "GONE"})
            .as_object()
            .unwrap()
            .clone(),
        json!({"serial_number": "STAYS"})
            .as_object()
            .unwrap()
            .clone(),
    ];
    block_on(inventory_apply::apply_page(
        &e.store,
        t,
        page,
        PageContext::at(ApplyMode::Upsert, now),
    ))
    .unwrap();
    let del = vec![
        json!({"serial_number": "GONE", "op_type": "deleted", "op_date": "2027-01-15T08:00:00Z"})
            .as_object()
            .unwrap()
            .clone(),
    ];
    block_on(inventory_apply::apply_page(
        &e.store,
        t,
        del,
        PageContext::at(ApplyMode::Upsert, now),
    ))
    .unwrap();

    let (_, b) = post(&e, KEY);
    assert_eq!(b["tokens"][0]["maintenance"], "scanned");
    assert_eq!(b["tokens"][0]["purged"], 0);
    // Same day: not due again.
    assert_eq!(post(&e, KEY).1["tokens"][0]["maintenance"], "not_due");
    e.clock.advance(Duration::from_secs(31 * 86400));
    let (_, b) = post(&e, KEY);
    assert_eq!(b["tokens"][0]["purged"], 1, "{b}");
    assert!(
        block_on(inventory::get(&e.store, t, "GONE"))
            .unwrap()
            .is_none()
    );
    assert!(
        block_on(inventory::get(&e.store, t, "STAYS"))
            .unwrap()
            .is_some()
    );
    assert_eq!(block_on(inventory::live_count(&e.store, t)).unwrap(), 1);
}

#[test]
fn purge_days_outside_30_to_45_is_a_configuration_error() {
    let e = env();
    for bad in ["29", "46", "soon"] {
        e.vars.set("dep_purge_days", bad);
        let (s, b) = post(&e, KEY);
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{bad}");
        assert!(b["message"].as_str().unwrap().contains("dep_purge_days"));
    }
    e.vars.set("dep_purge_days", "45");
    assert_eq!(post(&e, KEY).0, StatusCode::OK);
}

#[test]
fn expired_scep_challenges_are_deleted_by_the_tick() {
    use mdm_core::scep::challenge::{self, CHALLENGE_TTL, ChallengeGrant, KEEP_AFTER_EXPIRY};
    let e = env();
    let grant = ChallengeGrant {
        device_id: "UDID-1".into(),
        serial: None,
        purpose: "manual".into(),
        user: None,
    };
    let c = block_on(challenge::issue(&e.store, 1_800_000_000, &grant)).unwrap();
    let held = |e: &E| {
        e.store
            .backend()
            .dump()
            .iter()
            .filter(|(k, _)| k.starts_with("scepchal:"))
            .count()
    };
    assert_eq!(held(&e), 1);
    // Expired, but kept a day to tell replays apart.
    e.clock.advance(Duration::from_secs(CHALLENGE_TTL + 3600));
    let (_, v) = post(&e, KEY);
    assert_eq!(v["expired"]["deleted"], 0, "{v}");
    assert_eq!(
        block_on(challenge::redeem(
            &e.store,
            1_800_000_000 + CHALLENGE_TTL,
            &c
        )),
        Err(challenge::ChallengeError::Expired)
    );
    e.clock
        .advance(Duration::from_secs(KEEP_AFTER_EXPIRY + 3600));
    let (_, v) = post(&e, KEY);
    assert_eq!(v["expired"]["deleted"], 1, "{v}");
    assert_eq!(held(&e), 0);
}

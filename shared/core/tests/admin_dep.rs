//! Admin endpoints of the device inventory and sync status, natively.

mod common;

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::dep::TokenId;
use mdm_core::dep::inventory_apply::{self, ApplyMode, PageContext};
use mdm_core::platform::testing::{ManualClock, MapVariables, NoHttp};
use mdm_core::{Env, routes::admin};
use mdm_kv::{Defects, MemoryBackend, Store};
use serde_json::{Value, json};

const KEY: &str = "admin-key-for-dep-tests";
type E = Env<MemoryBackend, NoHttp, ManualClock, MapVariables>;

fn env_with_token() -> (E, TokenId) {
    let e = Env {
        store: Store::new(MemoryBackend::with_defects(Defects::spin_sqlite())),
        http: NoHttp,
        clock: ManualClock::at_unix(1_800_000_000),
        vars: MapVariables::new([("admin_api_key", KEY)]),
    };
    let id = common::add_token(&e.store);
    let page: Vec<_> = ["C02A", "C02B", "DMP1"]
        .iter()
        .map(|s| {
            json!({"serial_number": s, "model": "Mac", "profile_status": "empty"})
                .as_object()
                .unwrap()
                .clone()
        })
        .collect();
    block_on(inventory_apply::apply_page(
        &e.store,
        id,
        page,
        PageContext::at(ApplyMode::Upsert, 1_800_000_000),
    ))
    .unwrap();
    (e, id)
}

fn get(e: &E, method: Method, path: &str) -> (StatusCode, Value) {
    let req = common::request(method, path, KEY);
    let resp = block_on(admin::handle(e, req));
    (
        resp.status(),
        serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
    )
}

#[test]
fn list_filter_paginate_get_and_delete_devices() {
    let (e, t) = env_with_token();
    let (s, b) = get(
        &e,
        Method::GET,
        &format!("/api/v1/tokens/{t}/devices?limit=2"),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["items"].as_array().unwrap().len(), 2);
    assert_eq!(b["total"], 3);
    let next = b["next"].as_str().unwrap().to_owned();
    let (_, b) = get(
        &e,
        Method::GET,
        &format!("/api/v1/tokens/{t}/devices?limit=2&cursor={next}"),
    );
    assert_eq!(b["items"][0]["serial_number"], "DMP1");
    assert!(b["next"].is_null());
    let (_, b) = get(
        &e,
        Method::GET,
        &format!(
            "/api/v1/tokens/{t}/devices?serial_prefix=c02&assignment=unassigned&removed=false"
        ),
    );
    assert_eq!(b["items"].as_array().unwrap().len(), 2);

    let (s, b) = get(&e, Method::GET, &format!("/api/v1/tokens/{t}/devices/C02A"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["apple"]["model"], "Mac");
    assert_eq!(b["removed_from_abm"], false);
    assert_eq!(
        get(
            &e,
            Method::DELETE,
            &format!("/api/v1/tokens/{t}/devices/C02A")
        )
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&e, Method::GET, &format!("/api/v1/tokens/{t}/devices/C02A")).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(
            &e,
            Method::DELETE,
            &format!("/api/v1/tokens/{t}/devices/C02A")
        )
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&e, Method::GET, &format!("/api/v1/tokens/{t}/devices")).1["total"],
        2
    );
}

#[test]
fn bad_queries_and_unknown_tokens_are_refused_by_name() {
    let (e, t) = env_with_token();
    let (s, b) = get(
        &e,
        Method::GET,
        &format!("/api/v1/tokens/{t}/devices?limit=0&removed=maybe&colour=red"),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> = b["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["limit", "removed", "colour"]);
    assert_eq!(
        get(
            &e,
            Method::GET,
            &format!("/api/v1/tokens/{t}/devices?cursor=%zz")
        )
        .0,
        StatusCode::BAD_REQUEST
    );
    for bad in ["0", "99", "x", "-1"] {
        assert_eq!(
            get(&e, Method::GET, &format!("/api/v1/tokens/{bad}/devices")).0,
            StatusCode::NOT_FOUND,
            "{bad}"
        );
        assert_eq!(
            get(&e, Method::GET, &format!("/api/v1/tokens/{bad}/sync")).0,
            StatusCode::NOT_FOUND,
            "{bad}"
        );
    }
}

#[test]
fn sync_status_of_a_fresh_token() {
    let (e, t) = env_with_token();
    let (s, b) = get(&e, Method::GET, &format!("/api/v1/tokens/{t}/sync"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["state"], "idle");
    assert_eq!(b["next_sync_is_full"], true);
    assert!(b["last_full_at"].is_null());
}

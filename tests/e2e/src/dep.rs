//! The ADE side of the test kit: a Device Assignment API simulator wired to the app, a
//! server token connected the way an admin does it, and the scheduler driven until a
//! sync is done.

use std::collections::BTreeSet;

use mdm_depsim::{DepCredentials, RunningSim, SimConfig, Simulator};
use serde_json::{Value, json};

use crate::{ADMIN_KEY, App, Method, SYNC_KEY, StatusCode};

const EXPIRY: &str = "2099-01-01T00:00:00Z";

pub fn start_sim(devices: u64, seed: u64) -> RunningSim {
    Simulator::start(SimConfig::new(devices, seed)).expect("simulator starts")
}

pub async fn start_app(dir: &std::path::Path, sim: &RunningSim) -> App {
    App::start_with(dir, vec![("dep_base_url".into(), sim.base_url())])
        .await
        .expect("app starts")
}

/// Creates a token slot, downloads its public key, has "Apple" (the simulator's
/// credentials, encrypted the way ABM does) make a `.p7m` for it, and uploads it.
pub async fn connect_token(app: &App, sim: &RunningSim, name: &str) -> u64 {
    connect_token_with(app, &sim.credentials(), name).await
}

/// [`connect_token`] for any organisation of a simulator, e.g. one added with
/// `RunningSim::add_server` (its `SimControl::credentials()`).
pub async fn connect_token_with(app: &App, c: &DepCredentials, name: &str) -> u64 {
    let (s, b) = app
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_u64().expect("token id");
    let b = upload_token(app, id, c).await;
    assert_eq!(b["status"], "ok", "{b}");
    id
}

/// Makes a `.p7m` of `c` for slot `id`'s public key, as Apple does, and uploads it (a
/// renewal when the slot holds one already); returns the slot's view.
pub async fn upload_token(app: &App, id: u64, c: &DepCredentials) -> Value {
    let (s, headers, pem) = app
        .raw(
            Method::GET,
            &format!("/api/v1/tokens/{id}/public-key"),
            &[("authorization".into(), format!("Bearer {ADMIN_KEY}"))],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-pem-file");
    let p7m = mdm_depsim::server_token(c, EXPIRY, std::str::from_utf8(&pem).unwrap()).unwrap();
    let (s, _, body) = app
        .raw(
            Method::PUT,
            &format!("/api/v1/tokens/{id}/server-token?apple_id=admin%40acme.example"),
            &[
                ("authorization".into(), format!("Bearer {ADMIN_KEY}")),
                ("content-type".into(), "application/pkcs7-mime".into()),
            ],
            p7m,
        )
        .await
        .unwrap();
    let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

/// Calls the scheduler until the token's sync is idle again; returns the ticks made.
pub async fn tick_until_idle(app: &App, token: u64, limit: usize) -> usize {
    for n in 1..=limit {
        let (s, b) = app
            .call(Method::POST, "/internal/tick", Some(SYNC_KEY), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (_, st) = app
            .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
            .await;
        if st["state"] == "idle" {
            return n;
        }
        assert_ne!(st["state"], "failed", "{st:#}");
    }
    panic!("sync of token {token} still not idle after {limit} ticks");
}

/// Calls the scheduler until the token's sync is idle after a completed run (failed
/// runs on the way are allowed, e.g. a rejected cursor); returns the last sync status.
pub async fn tick_until_completed(app: &App, token: u64, limit: usize) -> Value {
    for _ in 1..=limit {
        let (s, b) = app
            .call(Method::POST, "/internal/tick", Some(SYNC_KEY), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (_, st) = app
            .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
            .await;
        if st["state"] == "idle" && st["last_run"]["outcome"] == "completed" {
            return st;
        }
    }
    let (_, st) = app
        .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
        .await;
    panic!("sync of token {token} not completed after {limit} ticks: {st:#}");
}

/// The token's inventory record of `serial` (404 → `None`).
pub async fn inventory_device(app: &App, token: u64, serial: &str) -> Option<Value> {
    let (s, d) = app
        .admin(
            Method::GET,
            &format!("/api/v1/tokens/{token}/devices/{serial}"),
            None,
        )
        .await;
    match s {
        StatusCode::OK => Some(d),
        StatusCode::NOT_FOUND => None,
        other => panic!("{other}: {d}"),
    }
}

/// The token's `device_count`.
pub async fn device_count(app: &App, token: u64) -> u64 {
    let (_, t) = app
        .admin(Method::GET, &format!("/api/v1/tokens/{token}"), None)
        .await;
    t["device_count"].as_u64().unwrap_or_else(|| panic!("{t}"))
}

/// Every serial the admin API lists for a token (all pages), checking none repeats.
pub async fn listed_serials(app: &App, token: u64) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let (s, b) = app
            .admin(
                Method::GET,
                &format!("/api/v1/tokens/{token}/devices?limit=1000{cursor}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        for d in b["items"].as_array().unwrap() {
            let serial = d["serial_number"].as_str().unwrap().to_owned();
            assert!(out.insert(serial.clone()), "{serial} listed twice");
        }
        match b["next"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => return out,
        }
    }
}

//! ADE server tokens and device sync end to end: the real `admin` and `sync` components
//! on the local host, talking to the Device Assignment API simulator (`tests/depsim`)
//! through the host's outbound HTTP.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mdm_e2e::dep::{connect_token, listed_serials, start_app, start_sim, tick_until_idle};
use mdm_e2e::{ADMIN_KEY, Method, SYNC_KEY, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_upload_then_full_sync_through_the_components() {
    let sim = start_sim(2_500, 7);
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), &sim).await;
    let token = connect_token(&app, &sim, "District").await;

    let (s, b) = app
        .admin(Method::GET, &format!("/api/v1/tokens/{token}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["org_name"], "Acme, Inc");
    assert_eq!(b["apple_id"], "admin@acme.example");
    // The secrets went into the slot, not into answers.
    let c = sim.credentials();
    for secret in [&c.consumer_secret, &c.access_token, &c.access_secret] {
        assert!(!b.to_string().contains(secret.as_str()));
    }

    // The first manual sync is a full one.
    let (s, b) = app
        .admin(Method::POST, &format!("/api/v1/tokens/{token}/sync"), None)
        .await;
    assert!(s == StatusCode::OK || s == StatusCode::ACCEPTED, "{s} {b}");
    assert_eq!(b["kind"], "full", "{b}");
    tick_until_idle(&app, token, 10).await;

    let expected: BTreeSet<String> = sim.control().serials().into_iter().collect();
    assert_eq!(expected.len(), 2_500);
    assert_eq!(listed_serials(&app, token).await, expected);
    let (_, t) = app
        .admin(Method::GET, &format!("/api/v1/tokens/{token}"), None)
        .await;
    assert_eq!(t["device_count"], 2_500, "{t}");

    // One device with every field Apple gave.
    let serial = expected.iter().next().unwrap();
    let (s, d) = app
        .admin(
            Method::GET,
            &format!("/api/v1/tokens/{token}/devices/{serial}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let apple = sim.control().device(serial).unwrap();
    assert_eq!(d["apple"]["model"], apple.model.as_str(), "{d}");
    assert_eq!(d["apple"]["color"], apple.color.as_str(), "{d}");

    // A second manual sync so soon is refused with the time it is allowed again.
    let (s, b) = app
        .admin(Method::POST, &format!("/api/v1/tokens/{token}/sync"), None)
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert!(b["detail"]["next_allowed_at"].is_string(), "{b}");
    app.shutdown().await;
}

/// The host is killed in the middle of a full sync; the scheduler on the restarted host
/// resumes from the stored cursor and ends with exactly Apple's devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sync_resumes_without_loss_or_duplicates() {
    const DEVICES: u64 = 12_000;
    let sim = start_sim(DEVICES, 11);
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), &sim).await;
    let token = connect_token(&app, &sim, "Kill test").await;

    // Slow pages down so the run is surely in the middle when the host dies.
    sim.control()
        .delay_next(Some("/server/devices"), 1_000, Duration::from_millis(150));
    let addr = app.addr;
    let sync = tokio::spawn(async move {
        mdm_e2e::request(
            addr,
            Method::POST,
            &format!("/api/v1/tokens/{token}/sync"),
            &[("authorization".into(), format!("Bearer {ADMIN_KEY}"))],
            Vec::new(),
        )
        .await
    });
    let started = Instant::now();
    loop {
        let (_, st) = app
            .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
            .await;
        if st["pages"].as_u64().unwrap_or(0) >= 3 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{st}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let app = app.kill_and_restart().await.unwrap();
    assert!(
        sync.await.unwrap().is_err(),
        "the killed host still answered the sync request"
    );
    let (_, st) = app
        .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
        .await;
    let seen_before = st["devices_seen"].as_u64().unwrap();
    assert!(seen_before > 0 && seen_before < DEVICES, "{st}");
    sim.control().clear_faults();

    // The lease of the dead run expires, then the scheduler resumes it.
    let resumed_at = Instant::now();
    loop {
        let (s, _) = app
            .call(Method::POST, "/internal/tick", Some(SYNC_KEY), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let (_, st) = app
            .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
            .await;
        if st["state"] == "idle" {
            let last = &st["last_run"];
            assert_eq!(last["outcome"], "completed", "{st:#}");
            assert_eq!(last["kind"], "full", "{st:#}");
            break;
        }
        assert!(
            resumed_at.elapsed() < Duration::from_secs(300),
            "not resumed: {st:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Resumed, not restarted: at most the page in flight at the kill is fetched again.
    let pages = DEVICES.div_ceil(1000);
    let fetches = sim.control().requests_to("/server/devices");
    assert!(fetches <= pages + 2, "{fetches} fetches for {pages} pages");
    let expected: BTreeSet<String> = sim.control().serials().into_iter().collect();
    assert_eq!(listed_serials(&app, token).await, expected);
    let (_, t) = app
        .admin(Method::GET, &format!("/api/v1/tokens/{token}"), None)
        .await;
    assert_eq!(t["device_count"], DEVICES, "{t}");
    app.shutdown().await;
}

/// The size the benchmark measures, as a test: 200,000 devices from Apple end as exactly
/// that set in the inventory (no loss, no duplicate), through the real components.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_000_device_sync_ends_with_exactly_apples_devices() {
    const DEVICES: u64 = 200_000;
    let sim = start_sim(DEVICES, 3);
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), &sim).await;
    let token = connect_token(&app, &sim, "Large").await;
    let (s, b) = app
        .admin(Method::POST, &format!("/api/v1/tokens/{token}/sync"), None)
        .await;
    assert!(s == StatusCode::OK || s == StatusCode::ACCEPTED, "{s} {b}");
    tick_until_idle(&app, token, 50).await;

    let expected: BTreeSet<String> = sim.control().serials().into_iter().collect();
    assert_eq!(expected.len() as u64, DEVICES);
    assert_eq!(listed_serials(&app, token).await, expected);
    let (_, t) = app
        .admin(Method::GET, &format!("/api/v1/tokens/{token}"), None)
        .await;
    assert_eq!(t["device_count"], DEVICES, "{t}");
    app.shutdown().await;
}

//! ADE server tokens and device sync end to end: the real `admin` and `sync` components
//! on the local host, talking to the Device Assignment API simulator (`tests/depsim`)
//! through the host's outbound HTTP.

use std::collections::BTreeSet;
use std::time::Duration;

use mdm_e2e::dep::{
    connect_token, connect_token_with, device_count, inventory_device, listed_serials, start_app,
    start_sim, tick_until_completed, tick_until_idle, upload_token,
};
use mdm_e2e::{ADMIN_KEY, Method, SYNC_KEY, StatusCode};
use serde_json::Value;

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
    assert!(b["next_allowed_at"].is_string(), "{b}");
    app.shutdown().await;
}

/// The host is killed at random points in the middle of a full sync, several times;
/// each time the scheduler on the restarted host resumes from the stored cursor once the
/// dead run's lease has expired. The sync ends with exactly Apple's devices, and the
/// token's device count is exact (a kill between a page's records and its counter update
/// used to leave it short).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_at_random_points_resumes_without_loss_or_duplicates() {
    const DEVICES: u64 = 20_000;
    let sim = start_sim(DEVICES, 11);
    let dir = tempfile::tempdir().unwrap();
    let mut app = start_app(dir.path(), &sim).await;
    let token = connect_token(&app, &sim, "Kill test").await;

    // Slow pages down so that kills land in the middle of the run.
    sim.control()
        .delay_next(Some("/server/devices"), 1_000, Duration::from_millis(60));
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
    // Kill points: after a pseudo-random number of milliseconds into each attempt.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut kills = 0;
    let mut seen_at_kills = Vec::new();
    for attempt in 0..4 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = 150 + rng % 700;
        if attempt > 0 {
            // The dead run's lease runs out; the scheduler's tick resumes it.
            app.advance_clock(Duration::from_secs(121));
            let bg = app.addr;
            tokio::spawn(async move {
                let _ = mdm_e2e::request(
                    bg,
                    Method::POST,
                    "/internal/tick",
                    &[("authorization".into(), format!("Bearer {SYNC_KEY}"))],
                    Vec::new(),
                )
                .await;
            });
        }
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let (_, st) = app
            .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
            .await;
        if st["state"] == "idle" {
            break;
        }
        seen_at_kills.push(st["progress"]["devices_fetched"].as_u64().unwrap_or(0));
        app = app.kill_and_restart().await.unwrap();
        kills += 1;
    }
    assert!(kills >= 2, "only {kills} kills: {seen_at_kills:?}");
    assert!(
        sync.await.unwrap().is_err(),
        "the killed host still answered the sync request"
    );
    sim.control().clear_faults();

    app.advance_clock(Duration::from_secs(121));
    let st = tick_until_completed(&app, token, 20).await;
    assert_eq!(st["last_run"]["kind"], "full", "{st:#}");
    // Resumed, not restarted: at most the pages in flight at the kills are fetched again.
    let pages = DEVICES.div_ceil(1000);
    let fetches = sim.control().requests_to("/server/devices");
    assert!(
        fetches <= pages + 1 + kills,
        "{fetches} fetches for {pages} pages and {kills} kills"
    );
    let expected: BTreeSet<String> = sim.control().serials().into_iter().collect();
    assert_eq!(listed_serials(&app, token).await, expected);
    assert_eq!(
        device_count(&app, token).await,
        DEVICES,
        "kills at {seen_at_kills:?}"
    );
    app.shutdown().await;
}

/// A full sync reconciles: devices Apple no longer lists are flagged removed (as after
/// an expired cursor, when Apple's deletions show only as absences), purged after
/// `dep_purge_days`, and unflagged if they come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_flags_what_apple_no_longer_lists_and_purges_it_later() {
    const DEVICES: u64 = 1_500;
    let sim = start_sim(DEVICES, 5);
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), &sim).await;
    let token = connect_token(&app, &sim, "Reconcile").await;
    let (s, b) = app
        .admin(Method::POST, &format!("/api/v1/tokens/{token}/sync"), None)
        .await;
    assert!(s.is_success(), "{b}");
    tick_until_idle(&app, token, 10).await;
    assert_eq!(device_count(&app, token).await, DEVICES);

    // Released in Apple Business Manager while our delta cursor grew stale: Apple's
    // sync refuses the cursor, and the recovery full sync only sees them missing.
    let serials = sim.control().serials();
    let gone: Vec<String> = serials[10..13].to_vec();
    for s in &gone {
        assert!(sim.control().delete_device(s));
    }
    sim.control().advance_time(Duration::from_secs(8 * 86_400));
    app.advance_clock(Duration::from_secs(13 * 3600));
    let st = tick_until_completed(&app, token, 10).await;
    assert_eq!(st["last_run"]["kind"], "full", "{st:#}");
    assert_eq!(st["last_run"]["flagged_absent"], 3, "{st:#}");
    assert!(
        sim.control().requests_to("/devices/sync") >= 1,
        "a delta was tried first"
    );
    for s in &gone {
        let d = inventory_device(&app, token, s)
            .await
            .expect("still listed");
        assert_eq!(d["removed_from_abm"], true, "{d:#}");
        assert_eq!(d["removed_by"], "absent", "{d:#}");
        assert!(d["removed_at"].is_string(), "{d:#}");
    }
    let kept = inventory_device(&app, token, &serials[14]).await.unwrap();
    assert_eq!(kept["removed_from_abm"], false, "{kept:#}");
    let (_, removed) = app
        .admin(
            Method::GET,
            &format!("/api/v1/tokens/{token}/devices?removed=true"),
            None,
        )
        .await;
    assert_eq!(removed["items"].as_array().unwrap().len(), 3, "{removed:#}");

    // One comes back before the purge: the next full sync unflags it.
    assert!(sim.control().restore_device(&gone[0]));
    sim.control().advance_time(Duration::from_secs(8 * 86_400));
    app.advance_clock(Duration::from_secs(8 * 86_400));
    tick_until_completed(&app, token, 10).await;
    let back = inventory_device(&app, token, &gone[0]).await.unwrap();
    assert_eq!(back["removed_from_abm"], false, "{back:#}");
    assert!(back["removed_by"].is_null(), "{back:#}");

    // The others are purged once `dep_purge_days` (30) have passed.
    app.advance_clock(Duration::from_secs(31 * 86_400));
    sim.control().advance_time(Duration::from_secs(31 * 86_400));
    tick_until_completed(&app, token, 10).await;
    for s in &gone[1..] {
        assert!(
            inventory_device(&app, token, s).await.is_none(),
            "{s} not purged"
        );
    }
    assert!(inventory_device(&app, token, &gone[0]).await.is_some());
    assert_eq!(device_count(&app, token).await, DEVICES - 2);
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

/// The scheduler serves server tokens fairly: a large token in the middle of its sync
/// gets one slice per round while 50 small tokens each complete theirs in the first
/// round of the same tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_token_mid_sync_does_not_starve_fifty_small_ones() {
    const SMALL: usize = 50;
    let sim = start_sim(20_000, 17);
    // Apple is slow for the large organisation: its sync needs more than one slice.
    sim.control()
        .delay_next(Some("/server/devices"), 1_000, Duration::from_millis(900));
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), &sim).await;
    let large = connect_token(&app, &sim, "Large district").await;
    // Slots are connected two at a time (each makes an RSA key pair).
    let orgs: Vec<_> = (0..SMALL)
        .map(|i| sim.add_server(mdm_depsim::ServerConfig::new(20, 100 + i as u64)))
        .collect();
    let mut small = Vec::new();
    for (n, pair) in orgs.chunks(2).enumerate() {
        let connected = futures::future::join_all(pair.iter().enumerate().map(|(k, org)| {
            let app = &app;
            async move {
                connect_token_with(app, &org.credentials(), &format!("School {}", 2 * n + k)).await
            }
        }))
        .await;
        small.extend(connected);
    }
    let (s, tick) = app
        .call(Method::POST, "/internal/tick", Some(SYNC_KEY), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{tick}");
    let entries = tick["tokens"].as_array().unwrap();
    let runs = |token: u64| -> Vec<Value> {
        let e = entries
            .iter()
            .find(|e| e["token"] == token)
            .unwrap_or_else(|| panic!("{token} not in {tick:#}"));
        match &e["sync"] {
            Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        }
    };
    let big = runs(large);
    assert!(big.len() >= 2, "the large sync fit one slice: {big:#?}");
    assert_eq!(big[0]["outcome"], "Paused", "{big:#?}");
    for t in &small {
        let r = runs(*t);
        assert_eq!(r.len(), 1, "{r:#?}");
        assert_eq!(
            (r[0]["outcome"].as_str(), r[0]["round"].as_u64()),
            (Some("Completed"), Some(1)),
            "{r:#?}"
        );
        assert_eq!(device_count(&app, *t).await, 20);
    }
    // The large one goes on in later rounds (and ticks) until done.
    tick_until_idle(&app, large, 10).await;
    assert_eq!(device_count(&app, large).await, 20_000);
    app.shutdown().await;
}

/// A token Apple refuses (terms not accepted) is retried with exponential backoff, not on
/// every tick; its status says why and when; a new server token resets the backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_backs_off_and_a_new_server_token_resets_it() {
    let sim = start_sim(300, 23);
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), &sim).await;
    let token = connect_token(&app, &sim, "Backoff").await;
    let (s, b) = app
        .admin(Method::POST, &format!("/api/v1/tokens/{token}/sync"), None)
        .await;
    assert!(s.is_success(), "{b}");
    tick_until_idle(&app, token, 10).await;

    // New terms in Apple Business Manager; the 12-hourly delta is due.
    sim.control().set_terms_not_signed(true);
    app.advance_clock(Duration::from_secs(13 * 3600));
    let status = || async {
        let (_, st) = app
            .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
            .await;
        st
    };
    let calls = || {
        let c = sim.control();
        c.requests_to("/devices/sync")
            + c.requests_to("/server/devices")
            + c.requests_to("/session")
    };
    for failures in 1..=3u64 {
        let before = calls();
        let (s, _) = app
            .call(Method::POST, "/internal/tick", Some(SYNC_KEY), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(calls() > before, "not tried at attempt {failures}");
        let st = status().await;
        assert_eq!(st["state"], "backing_off", "{st:#}");
        assert_eq!(st["backoff"]["failures"], failures, "{st:#}");
        assert!(
            st["backoff"]["reason"]
                .as_str()
                .unwrap()
                .contains("T_C_NOT_SIGNED"),
            "{st:#}"
        );
        assert!(st["backoff"]["next_try_at"].is_string(), "{st:#}");
        // Ticks in the meantime leave Apple alone.
        let before = calls();
        for _ in 0..3 {
            app.call(Method::POST, "/internal/tick", Some(SYNC_KEY), None)
                .await;
        }
        assert_eq!(calls(), before, "retried during the backoff");
        // 5 minutes, doubling.
        app.advance_clock(Duration::from_secs(300 << (failures - 1)));
    }
    let (_, t) = app
        .admin(Method::GET, &format!("/api/v1/tokens/{token}"), None)
        .await;
    assert_eq!(t["status"], "terms_not_signed", "{t:#}");

    // The admin accepts the terms and uploads a fresh token: tried at once, backoff gone.
    sim.control().set_terms_not_signed(false);
    upload_token(&app, token, &sim.credentials()).await;
    assert!(status().await["backoff"].is_null());
    let st = tick_until_completed(&app, token, 5).await;
    assert!(st["backoff"].is_null(), "{st:#}");
    app.shutdown().await;
}

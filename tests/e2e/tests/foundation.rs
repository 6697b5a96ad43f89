//! The foundation end to end: real wasm components on the local host.

use mdm_e2e::{ADMIN_KEY, App, Method, SYNC_KEY, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_requires_the_admin_key_and_the_probes_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path()).await.unwrap();
    let (status, body) = app.admin(Method::GET, "/api/v1/health", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"]["ok"], true);

    for key in [None, Some("wrong"), Some(SYNC_KEY)] {
        let (status, body) = app.call(Method::GET, "/api/v1/health", key, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "key {key:?}");
        assert_eq!(body["error"], "unauthorized");
    }
    // The probes spin.toml routes to the admin component answer without a key.
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("ok")));
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    assert!(!body.to_string().contains(ADMIN_KEY));
    let (status, body) = app.call(Method::GET, "/version", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        body["commit"].as_str().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_components_answer_with_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path()).await.unwrap();
    // The scheduler routes have their own key; the admin key does not open them.
    for key in [None, Some(ADMIN_KEY)] {
        let (status, _) = app.call(Method::POST, "/internal/tick", key, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app
        .call(Method::GET, "/api/v1/does-not-exist", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    app.shutdown().await;
}

/// The store battery inside the real admin component, on the host's SQLite store with
/// Spin's SQLite defects reproduced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_battery_passes_in_the_wasm_build() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path()).await.unwrap();
    let (status, body) = app
        .admin(Method::POST, "/api/v1/diagnostics/kv", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["passed"], true, "{body:#}");
    assert!(body["checks"].as_array().unwrap().len() >= 10);
    app.shutdown().await;
}

/// Many concurrent requests incrementing one counter and CAS-updating one value: nothing
/// is lost. Then the data survives a restart of the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_lose_nothing_and_survive_restart() {
    const WRITERS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path()).await.unwrap();
    let (status, body) = app
        .admin(Method::POST, "/api/v1/diagnostics/kv/contention", None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let run = body["run"].as_str().unwrap().to_owned();
    let work = format!("/api/v1/diagnostics/kv/contention/{run}/work");
    let results = futures::future::join_all((0..WRITERS).map(|_| {
        app.admin(
            Method::POST,
            &work,
            Some(json!({ "increments": 40, "swaps": 10 })),
        )
    }))
    .await;
    for (status, body) in results {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let totals = format!("/api/v1/diagnostics/kv/contention/{run}");
    let (_, body) = app.admin(Method::GET, &totals, None).await;
    assert_eq!(body["increments"], json!(WRITERS * 40), "lost increments");
    assert_eq!(body["swaps"], json!(WRITERS * 10), "lost CAS updates");

    let app = app.restart().await.unwrap();
    let (status, after) = app.admin(Method::GET, &totals, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after, body, "data changed across a restart");
    app.shutdown().await;
}

/// Each route reads no more body than it needs: an oversized one gets 413 from the real
/// components (before any authentication or store work), whoever sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_per_route() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path()).await.unwrap();
    for (method, path, limit) in [
        (Method::PUT, "/mdm/checkin", 64 * 1024),
        (Method::POST, "/scep?operation=PKIOperation", 64 * 1024),
        (Method::POST, "/mdm/enroll/ade", 64 * 1024),
        (Method::POST, "/internal/tick", 4 * 1024),
        (Method::POST, "/api/v1/users", 256 * 1024),
    ] {
        let (s, _, body) = app
            .raw(method.clone(), path, &[], vec![b' '; limit + 1])
            .await
            .unwrap();
        assert_eq!(
            s,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    // Within its limit a route answers as usual (here: no key).
    let (s, _, _) = app
        .raw(Method::POST, "/internal/tick", &[], vec![b' '; 16])
        .await
        .unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    app.shutdown().await;
}

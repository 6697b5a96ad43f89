//! The store on Redis (`redis_url`), end to end: the real components on the local host
//! reach a private `redis-server` through spin:redis. The store battery and the
//! contention test inside the admin component, credentials and database index, a
//! zero-touch enrollment with a command round trip and push, and a DEP sync killed in the
//! middle and resumed; nothing of it may touch the SQLite key-value store.

mod lab;

use std::collections::BTreeSet;
use std::time::Duration;

use lab::{Lab, PushCert};
use mdm_devicesim::Status;
use mdm_e2e::dep::{connect_token, device_count, listed_serials, start_sim, tick_until_completed};
use mdm_e2e::redis::RedisServer;
use mdm_e2e::{ADMIN_KEY, App, Method, StatusCode};
use mdm_host::resp::Reply;
use serde_json::json;

fn redis_vars(redis: &RedisServer) -> Vec<(String, String)> {
    vec![("redis_url".to_owned(), redis.url())]
}

/// Nothing reached the host's SQLite key-value store.
fn assert_sqlite_untouched(app: &App) {
    let stats = app.kv_stats();
    assert_eq!(stats.calls(), 0, "SQLite used in Redis mode: {stats:?}");
}

async fn battery(app: &App) {
    let (status, body) = app
        .admin(Method::POST, "/api/v1/diagnostics/kv", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["passed"], true, "{body:#}");
    assert!(body["checks"].as_array().unwrap().len() >= 10);
}

/// Starts a contention run and has `writers` concurrent requests work on it; returns
/// the totals path.
async fn contention(app: &App, writers: usize) -> String {
    let (status, body) = app
        .admin(Method::POST, "/api/v1/diagnostics/kv/contention", None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let run = body["run"].as_str().unwrap().to_owned();
    let work = format!("/api/v1/diagnostics/kv/contention/{run}/work");
    let results = futures::future::join_all((0..writers).map(|_| {
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
    format!("/api/v1/diagnostics/kv/contention/{run}")
}

async fn cas(redis: &RedisServer, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Reply {
    let mut c = mdm_host::resp::RespConnection::connect("127.0.0.1", redis.port)
        .await
        .unwrap();
    let (flag, expected): (&[u8], &[u8]) = match seen {
        Some(v) => (b"1", v),
        None => (b"0", b""),
    };
    let script = mdm_kv::redis::CAS_SCRIPT.as_bytes();
    c.call(&[b"EVAL", script, b"1", key.as_bytes(), flag, expected, new])
        .await
        .unwrap()
}

/// The compare-and-set script itself, on the server: it writes only over what the
/// ticket saw, byte for byte, and a ticket of an absent key only while it stays absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compare_and_set_script_writes_only_over_what_was_seen() {
    let redis = RedisServer::start().await;
    let get = |k: &'static str| {
        let redis = &redis;
        async move { redis.command(&["GET", k]).await }
    };
    // Absent when read: created only if still absent.
    assert_eq!(cas(&redis, "k", None, b"first").await, Reply::Int(1));
    assert_eq!(cas(&redis, "k", None, b"second").await, Reply::Int(0));
    assert_eq!(get("k").await, Reply::Bulk(b"first".to_vec()));
    // Present when read: replaced only if unchanged, binary and empty values included.
    assert_eq!(cas(&redis, "k", Some(b"firs"), b"x").await, Reply::Int(0));
    assert_eq!(cas(&redis, "k", Some(b""), b"x").await, Reply::Int(0));
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    assert_eq!(
        cas(&redis, "k", Some(b"first"), &binary).await,
        Reply::Int(1)
    );
    assert_eq!(cas(&redis, "k", Some(&binary), b"").await, Reply::Int(1));
    assert_eq!(get("k").await, Reply::Bulk(Vec::new()));
    // An empty value is a value, not an absence.
    assert_eq!(cas(&redis, "k", None, b"y").await, Reply::Int(0));
    assert_eq!(cas(&redis, "k", Some(b""), b"z").await, Reply::Int(1));
    // Deleted since read: the ticket of a present value does not recreate it.
    redis.command(&["DEL", "k"]).await;
    assert_eq!(cas(&redis, "k", Some(b"z"), b"again").await, Reply::Int(0));
    assert_eq!(get("k").await, Reply::Nil);
}

/// The battery and the contention test of `foundation.rs`, on Redis: compare-and-swap
/// is the server-side script, so concurrent writers lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_battery_and_contention_pass_on_redis() {
    const WRITERS: usize = 16;
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::start_with(dir.path(), redis_vars(&redis))
        .await
        .unwrap();
    battery(&app).await;
    let totals = contention(&app, WRITERS).await;
    let (_, body) = app.admin(Method::GET, &totals, None).await;
    assert_eq!(body["increments"], json!(WRITERS * 40), "lost increments");
    assert_eq!(body["swaps"], json!(WRITERS * 10), "lost CAS updates");
    // The counter is Redis's own (ASCII decimal), the data where Redis shows it.
    assert!(redis.dbsize().await >= 2);
    let (status, ready) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_sqlite_untouched(&app);

    // Another host on the same Redis sees the same data; the first one's SQLite file
    // was never written.
    let other = tempfile::tempdir().unwrap();
    mdm_e2e::copy_compiled(dir.path(), other.path());
    let app2 = App::start_with(other.path(), redis_vars(&redis))
        .await
        .unwrap();
    let (status, after) = app2.admin(Method::GET, &totals, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after, body);
    assert_sqlite_untouched(&app2);
    app2.shutdown().await;
    app.shutdown().await;
}

/// `redis_password` and `redis_database` reach the server (AUTH, SELECT), the password
/// percent-encoded into the address; a wrong password fails readiness, not the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_database_index_reach_redis() {
    const PASSWORD: &str = "s3cr%t@:/ #x";
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut vars = redis_vars(&redis);
    vars.push(("redis_password".into(), PASSWORD.into()));
    vars.push(("redis_database".into(), "5".into()));
    let app = App::start_with(dir.path(), vars).await.unwrap();
    battery(&app).await;
    contention(&app, 2).await;
    let sizes = redis
        .commands(&[
            &["AUTH", PASSWORD],
            &["DBSIZE"],
            &["SELECT", "5"],
            &["DBSIZE"],
        ])
        .await;
    assert_eq!(sizes[1], Reply::Int(0), "database 0 used: {sizes:?}");
    assert!(
        matches!(sizes[3], Reply::Int(n) if n > 0),
        "database 5 unused: {sizes:?}"
    );
    app.shutdown().await;

    let first = dir;
    let dir = tempfile::tempdir().unwrap();
    mdm_e2e::copy_compiled(first.path(), dir.path());
    let mut vars = redis_vars(&redis);
    vars.push(("redis_password".into(), "wrong".into()));
    let app = App::start_with(dir.path(), vars).await.unwrap();
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(!body.to_string().contains(PASSWORD));
    let (status, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "liveness does not need the store");
    assert_sqlite_untouched(&app);
    app.shutdown().await;
}

/// A device enrolls zero-touch (DEP profile, SCEP, check-ins awaiting configuration,
/// DeviceConfigured), an admin queues a command, APNs wakes the device, it fetches and
/// answers: all on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_touch_enrollment_and_a_pushed_command_on_redis() {
    let redis = RedisServer::start().await;
    let lab = Lab::start_on_redis(20, PushCert::Trusted, &redis.url()).await;
    let http = lab.http();
    let serials = lab.serials("iPhone", 1);
    lab.assign(&serials).await;
    let mut d = lab.device(&serials[0]);
    lab.enroll(&mut d).await;
    lab.check_profile(&d);
    let pushes = lab.apns.pushes().len();

    let (s, b) = lab
        .app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/commands", d.udid),
            Some(json!({
                "RequestType": "DeviceInformation",
                "Queries": ["SerialNumber", "OSVersion"],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let uuid = b["command_uuid"].as_str().unwrap().to_owned();
    let pushed = lab
        .apns
        .wait_for_pushes(pushes + 1, Duration::from_secs(10))
        .expect("push");
    assert_eq!(
        pushed.last().unwrap().path,
        format!("/3/device/{}", d.push_token_hex())
    );
    let cmd = d.idle(&http).await.unwrap().expect("the queued command");
    assert_eq!(cmd.uuid, uuid);
    let (status, keys) = d.respond(&cmd);
    assert_eq!(status, Status::Acknowledged);
    assert_eq!(d.answer(&http, &cmd, status, keys).await.unwrap(), None);
    let (_, v) = lab
        .app
        .admin(Method::GET, &format!("/api/v1/devices/{}", d.udid), None)
        .await;
    assert_eq!(v["enrolled"], true, "{v}");
    assert_eq!(
        v["inventory"]["DeviceInformation"]["data"]["SerialNumber"],
        d.serial.as_str(),
        "{v:#}"
    );
    assert_sqlite_untouched(&lab.app);
    lab.shutdown().await;
}

/// A full sync killed in the middle (the host dies with requests in flight) resumes
/// from its cursor on the restarted host and ends with exactly Apple's devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sync_resumes_on_redis() {
    const DEVICES: u64 = 6_000;
    let redis = RedisServer::start().await;
    let sim = start_sim(DEVICES, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut vars = redis_vars(&redis);
    vars.push(("dep_base_url".into(), sim.base_url()));
    let app = App::start_with(dir.path(), vars).await.unwrap();
    let token = connect_token(&app, &sim, "Redis").await;
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
    // Until some pages are in: then the host dies in the middle of the run.
    let mut fetched = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, st) = app
            .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
            .await;
        fetched = st["progress"]["devices_fetched"].as_u64().unwrap_or(0);
        if fetched >= 2_000 {
            break;
        }
    }
    assert!(
        (1..DEVICES).contains(&fetched),
        "{fetched} fetched at the kill"
    );
    assert_sqlite_untouched(&app);
    let app = app.kill_and_restart().await.unwrap();
    assert!(
        sync.await.unwrap().is_err(),
        "the killed host still answered"
    );
    sim.control().clear_faults();
    // Past the dead run's lease: the scheduler resumes it.
    app.advance_clock(Duration::from_secs(121));
    let st = tick_until_completed(&app, token, 20).await;
    assert_eq!(st["last_run"]["kind"], "full", "{st:#}");
    let pages = DEVICES.div_ceil(1000);
    let fetches = sim.control().requests_to("/server/devices");
    assert!(fetches <= pages + 2, "{fetches} fetches for {pages} pages");
    let expected: BTreeSet<String> = sim.control().serials().into_iter().collect();
    assert_eq!(listed_serials(&app, token).await, expected);
    assert_eq!(device_count(&app, token).await, DEVICES);
    assert_sqlite_untouched(&app);
    app.shutdown().await;
}

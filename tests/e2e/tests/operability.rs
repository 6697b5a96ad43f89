//! What operators watch, through the real components: one JSON log line per request in
//! each component's log file (as Spin keeps them), with the request id the client sent
//! or one made up, the device or credential it acted for, and never a secret; the level
//! set by `log_level`.

use std::path::Path;

use mdm_e2e::lab::{Lab, PushCert};
use mdm_e2e::{ADMIN_KEY, App, Method, STORAGE_KEY, SYNC_KEY, StatusCode};
use serde_json::Value;

/// Every line of every component's stderr log, parsed; panics on a line that is not a
/// JSON object with time, level and msg.
fn log_lines(state_dir: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(state_dir.join("logs")).expect("log directory") {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for secret in [ADMIN_KEY, SYNC_KEY, STORAGE_KEY] {
            assert!(!text.contains(secret), "a secret in {}", path.display());
        }
        if !path.to_string_lossy().ends_with("_stderr.txt") {
            continue;
        }
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", path.display()));
            for field in ["time", "level", "msg", "component"] {
                assert!(v[field].is_string(), "{field} missing: {line}");
            }
            lines.push(v);
        }
    }
    lines
}

fn requests<'a>(lines: &'a [Value], component: &str, route: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["msg"] == "request" && l["component"] == component && l["route"] == route)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_one_json_line_naming_who_it_was_for() {
    let lab = Lab::start(4, PushCert::Trusted).await;
    let serial = lab.serials("iPhone", 1).pop().unwrap();
    lab.assign(std::slice::from_ref(&serial)).await;
    let mut d = lab.device(&serial);
    lab.enroll(&mut d).await;

    // The client's request id comes back and names the log line; a malformed one is
    // replaced.
    let (s, h, _) = lab
        .app
        .raw(
            Method::GET,
            "/api/v1/devices",
            &[
                ("authorization".into(), format!("Bearer {ADMIN_KEY}")),
                ("x-request-id".into(), "ops-check-7".into()),
            ],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-request-id"], "ops-check-7");
    let (_, h, _) = lab
        .app
        .raw(
            Method::GET,
            "/healthz",
            &[("x-request-id".into(), "two words".into())],
            Vec::new(),
        )
        .await
        .unwrap();
    let made = h["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        made.len() == 16 && made.bytes().all(|b| b.is_ascii_hexdigit()),
        "{made}"
    );
    // A refused admin call is logged too, without the key it tried.
    let (s, _) = lab
        .app
        .call(
            Method::GET,
            "/api/v1/devices",
            Some("guess-0123456789"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let lines = log_lines(&lab.dir.path().join("state"));
    let admin = requests(&lines, "admin", "/api/v1/devices");
    let mine: Vec<_> = admin
        .iter()
        .filter(|l| l["request_id"] == "ops-check-7")
        .collect();
    assert_eq!(mine.len(), 1, "{admin:?}");
    let l = mine[0];
    assert_eq!(
        (&l["method"], &l["status"]),
        (&"GET".into(), &200.into()),
        "{l}"
    );
    assert_eq!(l["credential"], "admin_api_key", "{l}");
    assert_eq!(l["level"], "info");
    assert!(l["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{l}");
    assert!(
        admin
            .iter()
            .any(|l| l["status"] == 401 && l.get("credential").is_none()),
        "the refused call: {admin:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["msg"] == "request" && l["request_id"] == made.as_str()),
        "the made-up request id is in the log"
    );
    // Device requests name the device once its signature held.
    for (component, route) in [("checkin", "/mdm/checkin"), ("commands", "/mdm/connect")] {
        let seen = requests(&lines, component, route);
        assert!(!seen.is_empty(), "no {route} line");
        assert!(
            seen.iter().all(|l| l["device"] == d.udid.as_str()),
            "{route}: {seen:?}"
        );
    }
    // The scheduler's calls and the SCEP issuance are there as well.
    assert!(
        requests(&lines, "sync", "/internal/tick")
            .iter()
            .all(|l| l["credential"] == "sync_api_key")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["msg"] == "SCEP certificate issued" && l["device"] == d.udid.as_str()),
        "the SCEP event"
    );
    lab.shutdown().await;
}

/// `GET /metrics` through the real admin component, as a Prometheus scraper sees it.
async fn scrape(app: &App) -> std::collections::BTreeMap<String, i64> {
    let (s, h, body) = app
        .raw(
            Method::GET,
            "/metrics",
            &[("authorization".into(), format!("Bearer {ADMIN_KEY}"))],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_zero_touch_enrollment_and_its_commands() {
    let lab = Lab::start(4, PushCert::Trusted).await;
    let token = lab.token.to_string();
    let m = scrape(&lab.app).await;
    assert_eq!(m["mdm_devices{state=\"enrolled\"}"], 0);
    assert_eq!(m["mdm_dep_tokens{status=\"ok\"}"], 1);
    assert_eq!(m[&format!("mdm_dep_devices{{token=\"{token}\"}}")], 4);
    assert!(m[&format!("mdm_dep_sync_runs_total{{token=\"{token}\",outcome=\"completed\"}}")] >= 1);
    assert!(m[&format!("mdm_dep_devices_synced_total{{token=\"{token}\"}}")] >= 4);
    assert!(m[&format!("mdm_dep_token_expiry_days{{token=\"{token}\"}}")] > 0);

    // Enrollment holds the device in Setup Assistant until its setup commands are
    // answered; DeviceConfigured releases it.
    let serial = lab.serials("iPhone", 1).pop().unwrap();
    lab.assign(std::slice::from_ref(&serial)).await;
    let mut d = lab.device(&serial);
    lab.enroll(&mut d).await;
    let m = scrape(&lab.app).await;
    assert_eq!(m["mdm_devices{state=\"enrolled\"}"], 1, "{m:?}");
    assert_eq!(
        m["mdm_devices{state=\"awaiting_configuration\"}"], 0,
        "{m:?}"
    );
    assert_eq!(m["mdm_devices_authenticated_total"], 1);
    let queued = m["mdm_commands_enqueued_total"];
    assert!(queued >= 1, "{m:?}");
    assert_eq!(
        m["mdm_command_results_total{status=\"Acknowledged\"}"],
        queued
    );
    assert_eq!(m["mdm_command_queue_depth"], 0);
    assert!(m["mdm_pushes_total{outcome=\"delivered\"}"] >= 1, "{m:?}");

    // A command waits in the queue until the device answers it.
    let (s, v) = lab
        .app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/commands", d.udid),
            Some(serde_json::json!({ "RequestType": "ProfileList" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let m = scrape(&lab.app).await;
    assert_eq!(m["mdm_command_queue_depth"], 1, "{m:?}");
    assert_eq!(m["mdm_commands_enqueued_total"], queued + 1);
    d.run_until_idle(&lab.http()).await.unwrap();
    let m = scrape(&lab.app).await;
    assert_eq!(m["mdm_command_queue_depth"], 0, "{m:?}");

    // The device removes its profile: no longer enrolled.
    d.checkout(&lab.http()).await.unwrap();
    let m = scrape(&lab.app).await;
    assert_eq!(m["mdm_devices{state=\"enrolled\"}"], 0, "{m:?}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_filters_and_a_bad_one_says_so() {
    for (level, expect_requests) in [("warn", false), ("debug", true), ("loud", true)] {
        let dir = tempfile::tempdir().unwrap();
        let app = App::start_with(dir.path(), vec![("log_level".into(), level.into())])
            .await
            .unwrap();
        let (s, _) = app.admin(Method::GET, "/api/v1/groups", None).await;
        assert_eq!(s, StatusCode::OK);
        app.shutdown().await;
        let lines = log_lines(dir.path());
        assert_eq!(
            !requests(&lines, "admin", "/api/v1/groups").is_empty(),
            expect_requests,
            "log_level {level}"
        );
        assert_eq!(
            lines
                .iter()
                .any(|l| l["level"] == "warn" && l["msg"].as_str().unwrap().contains("log_level")),
            level == "loud",
            "log_level {level}: {lines:?}"
        );
    }
}

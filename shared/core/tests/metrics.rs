//! `GET /metrics` natively: Prometheus text format, the admin key required, counters the
//! services bump and gauges read from the records.

use std::collections::BTreeMap;

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::metrics::{self, Counter};
use mdm_core::platform::testing::{ManualClock, MapVariables, NoHttp};
use mdm_core::{Env, routes::admin};
use mdm_kv::{MemoryBackend, Store};

const KEY: &str = "metrics-admin-key-0123456789";

type E = Env<MemoryBackend, NoHttp, ManualClock, MapVariables>;

fn env() -> E {
    Env {
        store: Store::new(MemoryBackend::new()),
        http: NoHttp,
        clock: ManualClock::at_unix(1_790_000_000),
        vars: MapVariables::new([
            ("admin_api_key", KEY),
            ("storage_key", "metrics-storage-key-0123456789abcdef"),
            ("server_url", "https://mdm.example.com"),
        ]),
    }
}

fn call(
    e: &E,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> http::Response<Vec<u8>> {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    block_on(admin::handle(e, b.body(body.as_bytes().to_vec()).unwrap()))
}

/// Samples by `name{labels}`, checking the exposition's shape on the way: every sample
/// belongs to a family announced by `# HELP` and `# TYPE` just before.
fn scrape(e: &E) -> BTreeMap<String, i64> {
    let r = call(e, Method::GET, "/metrics", Some(KEY), "");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(r.body().clone()).unwrap();
    let mut family = String::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            family = rest.split(' ').next().unwrap().to_owned();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(name, family);
            assert!(["counter", "gauge"].contains(&kind), "{line}");
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert_eq!(name, family, "{line}");
            samples.insert(series.to_owned(), value.parse().unwrap());
        }
    }
    samples
}

#[test]
fn metrics_need_the_admin_key() {
    let e = env();
    for key in [None, Some("wrong")] {
        let r = call(&e, Method::GET, "/metrics", key, "");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

#[test]
fn counters_and_gauges_are_exposed() {
    let e = env();
    let s = &e.store;
    for (counter, n) in [
        (Counter::Enrolled, 3),
        (Counter::Unenrolled, 1),
        (Counter::AwaitingStarted, 2),
        (Counter::AwaitingReleased, 1),
        (Counter::CommandsEnqueued, 5),
        (Counter::CommandResults("Acknowledged"), 2),
        (Counter::Pushes("delivered"), 4),
    ] {
        block_on(metrics::add(s, counter, n)).unwrap();
    }
    let r = call(
        &e,
        Method::POST,
        "/api/v1/tokens",
        Some(KEY),
        r#"{"name":"Main"}"#,
    );
    assert_eq!(r.status(), StatusCode::CREATED);

    let m = scrape(&e);
    assert_eq!(m["mdm_devices{state=\"enrolled\"}"], 2);
    assert_eq!(m["mdm_devices{state=\"awaiting_configuration\"}"], 1);
    assert_eq!(m["mdm_commands_enqueued_total"], 5);
    assert_eq!(m["mdm_commands_finished_total"], 0);
    assert_eq!(m["mdm_command_queue_depth"], 5);
    assert_eq!(m["mdm_command_results_total{status=\"Acknowledged\"}"], 2);
    assert_eq!(m["mdm_command_results_total{status=\"NotNow\"}"], 0);
    assert_eq!(m["mdm_pushes_total{outcome=\"delivered\"}"], 4);
    assert_eq!(m["mdm_dep_tokens{status=\"awaiting_token\"}"], 1);
    assert_eq!(m["mdm_dep_tokens{status=\"ok\"}"], 0);
    assert_eq!(m["mdm_dep_devices{token=\"1\"}"], 0);
    assert_eq!(
        m["mdm_dep_sync_runs_total{token=\"1\",outcome=\"completed\"}"],
        0
    );
    assert!(
        m.keys()
            .any(|k| k.starts_with("mdm_build_info{version=\"") && m[k] == 1)
    );
    // No token uploaded yet, no push certificate: no expiry to report.
    assert!(!m.keys().any(|k| k.starts_with("mdm_dep_token_expiry_days")));
    assert!(!m.contains_key("mdm_push_certificate_expiry_days"));
    // Scraping reads; it changes no count.
    assert_eq!(scrape(&e), m);
}

//! Fault injection and protocol errors, as our client sees them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::Method;
use mdm_core::dep::error::{ApiError, DepError};
use mdm_core::platform::Clock;
use mdm_core::platform::testing::{ManualClock, SystemClock};
use mdm_depsim::client::HyperHttp;
use mdm_depsim::{ErrorStyle, Fault, FaultAction, SimConfig};

fn status_of(code: ApiError) -> u16 {
    match code {
        ApiError::TermsNotSigned | ApiError::AccessDenied | ApiError::Forbidden => 403,
        ApiError::NotFound => 404,
        _ => 400,
    }
}

#[tokio::test]
async fn every_documented_code_surfaces_as_the_typed_error() {
    for style in [ErrorStyle::JsonQuoted, ErrorStyle::Plain] {
        let sim = start(SimConfig {
            error_style: style,
            ..SimConfig::new(5, 1)
        });
        let ctl = sim.control();
        let http = HyperHttp::new();
        let mut c = client(&http, &SystemClock, &sim);
        c.session().await.unwrap();
        for code in ApiError::ALL {
            let status = status_of(code);
            // 403 FORBIDDEN makes the client renew its session and retry once.
            let times = if code == ApiError::Forbidden { 2 } else { 1 };
            ctl.fail_next_on("/account", times, status, code.as_str());
            let err = c.account().await.unwrap_err();
            assert_eq!(err, DepError::Api { status, code }, "{style:?} {code}");
            assert_eq!(ctl.pending_faults(), 0);
        }
        // A bare 404 is NOT_FOUND too; an unknown 400 body is unexpected.
        ctl.inject(
            Fault::new(
                FaultAction::Raw {
                    status: 404,
                    body: String::new(),
                },
                1,
            )
            .on("/account"),
        );
        assert_eq!(
            c.account().await.unwrap_err().code(),
            Some(ApiError::NotFound)
        );
        ctl.fail_next_on("/account", 1, 400, "SOMETHING_NEW");
        assert!(matches!(
            c.account().await,
            Err(DepError::Unexpected { status: 400, .. })
        ));
        assert_eq!(ctl.stats().faults_fired, ApiError::ALL.len() as u64 + 1 + 2);
    }
}

#[tokio::test]
async fn faults_can_target_a_path_and_a_count() {
    let sim = start(SimConfig::new(5, 1));
    let ctl = sim.control();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    ctl.fail_next_on("/devices/sync", 2, 400, "EXPIRED_CURSOR");
    // Other paths are untouched.
    let page = c.fetch_devices(None, None).await.unwrap();
    let cursor = page.cursor.unwrap();
    for _ in 0..2 {
        assert_eq!(
            c.sync_devices(&cursor, None).await.unwrap_err().code(),
            Some(ApiError::ExpiredCursor)
        );
    }
    c.sync_devices(&cursor, None).await.unwrap();

    // Any path, including /session.
    let mut fresh = client(&http, &SystemClock, &sim);
    ctl.fail_next(1, 403, "ACCESS_DENIED");
    assert_eq!(
        fresh.account().await.unwrap_err().code(),
        Some(ApiError::AccessDenied)
    );
    assert_eq!(ctl.requests_to("/session"), 2);
    fresh.account().await.unwrap();

    // A 401 on a call: the client gets a new session and retries once.
    let issued = ctl.stats().sessions_issued;
    ctl.fail_next_on("/account", 1, 401, "UNAUTHORIZED");
    c.account().await.unwrap();
    assert_eq!(ctl.stats().sessions_issued, issued + 1);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = start(SimConfig::new(5, 1));
    let ctl = sim.control();
    let http = HyperHttp::new();
    let start_at = SystemClock.unix_seconds();
    let clock = ManualClock::at_unix(start_at);
    let mut c = client(&http, &clock, &sim);
    c.session().await.unwrap();

    ctl.throttle_next_on("/account", 2, 429, 5);
    c.account().await.unwrap();
    assert_eq!(clock.unix_seconds() - start_at, 10, "waited 5 s twice");
    assert_eq!(ctl.requests_to("/account"), 3);
    assert_eq!(ctl.stats().responses_by_status[&429], 2);

    // Longer than the client's policy allows: handed back to the caller.
    ctl.throttle_next_on("/server/devices", 1, 503, 120);
    let err = c.fetch_devices(None, None).await.unwrap_err();
    assert_eq!(
        err,
        DepError::RetryLater {
            status: 503,
            after: Duration::from_secs(120)
        }
    );
    // Retries used up.
    ctl.throttle_next_on("/account", 4, 429, 1);
    assert!(matches!(
        c.account().await,
        Err(DepError::RetryLater { status: 429, .. })
    ));
}

#[tokio::test]
async fn held_and_dropped_requests() {
    let sim = start(SimConfig::new(5, 1));
    let ctl = sim.control();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    c.session().await.unwrap();

    ctl.delay_next(Some("/account"), 1, Duration::from_millis(300));
    let t = Instant::now();
    c.account().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));

    let impatient = HyperHttp::new().with_timeout(Duration::from_millis(100));
    let mut c2 = client(&impatient, &SystemClock, &sim);
    c2.session().await.unwrap();
    ctl.delay_next(Some("/account"), 1, Duration::from_millis(500));
    assert!(matches!(c2.account().await, Err(DepError::Transport(_))));

    ctl.disconnect_next(Some("/account"), 1);
    match c.account().await {
        Err(DepError::Transport(m)) => assert!(!m.contains("CS_depsim")),
        other => panic!("{other:?}"),
    }
    c.account().await.unwrap();
}

#[tokio::test]
async fn protocol_errors() {
    let sim = start(SimConfig::new(5, 1));
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    c.session().await.unwrap();
    let session = c.session_token().unwrap().to_owned();

    // Wrong method.
    let r = send(
        &http,
        request(&sim, Method::GET, "/server/devices", Some(&session), b""),
    )
    .await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    // Unknown path.
    let r = send(
        &http,
        request(&sim, Method::GET, "/nope", Some(&session), b""),
    )
    .await;
    assert_eq!(r.status(), 404);
    // Bad JSON.
    for (path, body) in [
        ("/server/devices", &b"{not json"[..]),
        ("/devices/sync", b"[]"),
        ("/profile", b""),
        ("/server/devices", b"{\"limit\": \"many\"}"),
    ] {
        let r = send(
            &http,
            request(&sim, Method::POST, path, Some(&session), body),
        )
        .await;
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(text(&r), "\"MALFORMED_REQUEST_BODY\"", "{path}");
    }
    // An empty fetch body is a fetch from the start.
    let r = send(
        &http,
        request(&sim, Method::POST, "/server/devices", Some(&session), b""),
    )
    .await;
    assert_eq!(r.status(), 200);
    // No User-Agent.
    let mut req = request(&sim, Method::GET, "/account", Some(&session), b"");
    req.headers_mut().remove("User-Agent");
    let r = send(&http, req).await;
    assert_eq!(
        (r.status().as_u16(), text(&r)),
        (400, "\"USER_AGENT_MISSING\"".into())
    );
    // Through the client: the code is typed.
    let mut c = client(&http, &SystemClock, &sim).with_user_agent(" ");
    assert_eq!(
        c.account().await.unwrap_err().code(),
        Some(ApiError::UserAgentMissing)
    );
}

#[tokio::test]
async fn protocol_version_gates_fields() {
    let sim = start(SimConfig::new(200, 2));
    let http = HyperHttp::new();
    let mut v1 = client(&http, &SystemClock, &sim).with_protocol_version("1");
    let page = v1.fetch_devices(None, Some(200)).await.unwrap();
    assert!(
        page.devices
            .iter()
            .all(|d| d.get("os").is_none() && d.get("device_family").is_none())
    );
    let mut v3 = client(&http, &SystemClock, &sim).with_protocol_version("3");
    let page = v3.fetch_devices(None, Some(200)).await.unwrap();
    let ipads: Vec<_> = page
        .devices
        .iter()
        .filter(|d| d["device_family"] == "iPad")
        .collect();
    assert!(!ipads.is_empty());
    assert!(ipads.iter().all(|d| d["os"] == "iOS"));
    // 7 and later, our default (10) among them.
    let mut v7 = client(&http, &SystemClock, &sim);
    let page = v7.fetch_devices(None, Some(200)).await.unwrap();
    assert!(
        page.devices
            .iter()
            .filter(|d| d["device_family"] == "iPad")
            .all(|d| d["os"] == "iPadOS")
    );
}

#[tokio::test]
async fn control_routes_over_http() {
    let sim = start(SimConfig::new(5, 1));
    let http = HyperHttp::new();
    let post = |path: &str, body: &str| {
        let mut r = request(&sim, Method::POST, path, None, body.as_bytes());
        r.headers_mut().remove("User-Agent");
        r
    };
    let r = send(&http, post("/_depsim/devices/add", r#"{"count": 2}"#)).await;
    let added: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(added["serials"].as_array().unwrap().len(), 2);
    assert_eq!(sim.control().device_count(), 7);
    let r = send(
        &http,
        post(
            "/_depsim/faults",
            r#"{"path": "/account", "count": 1, "status": 429, "retry_after": 1}"#,
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(sim.control().pending_faults(), 1);
    let r = send(
        &http,
        request(&sim, Method::GET, "/_depsim/stats", None, b""),
    )
    .await;
    let stats: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(stats["requests"], 0, "control routes are not counted");
}

//! `GET /session` (OAuth 1.0a) and sessions: signatures, nonces, credentials, terms,
//! expiry, rotation.

mod common;

use std::time::Duration;

use common::*;
use http::Method;
use mdm_core::dep::client::DepClient;
use mdm_core::dep::error::{ApiError, DepError};
use mdm_core::dep::oauth;
use mdm_core::dep::oauth::DepCredentials;
use mdm_core::platform::Clock;
use mdm_core::platform::testing::SystemClock;
use mdm_depsim::client::HyperHttp;
use mdm_depsim::{ErrorStyle, SimConfig, UnknownSession};

fn with(creds: &DepCredentials, f: impl FnOnce(&mut DepCredentials)) -> DepCredentials {
    let mut c = creds.clone();
    f(&mut c);
    c
}

#[tokio::test]
async fn wrong_secrets_and_unknown_consumer_are_refused() {
    let sim = start(SimConfig::new(5, 1));
    let http = HyperHttp::new();
    let good = sim.credentials();
    let cases = [
        (
            with(&good, |c| c.consumer_secret = "wrong".into()),
            "signature",
        ),
        (
            with(&good, |c| c.access_secret = "wrong".into()),
            "signature",
        ),
        (
            with(&good, |c| c.consumer_key = "CK_other".into()),
            "consumer key",
        ),
        (with(&good, |c| c.access_token = "AT_other".into()), "token"),
    ];
    for (creds, why) in cases {
        let mut c = DepClient::new(&http, &SystemClock, &sim.base_url(), creds);
        match c.session().await {
            Err(DepError::Unauthorized { excerpt }) => {
                assert!(excerpt.contains(why), "{excerpt} / {why}")
            }
            other => panic!("{why}: {other:?}"),
        }
        // A call without a session tries /session once and reports the 401.
        assert!(matches!(
            c.account().await,
            Err(DepError::Unauthorized { .. })
        ));
    }
    let stats = sim.control().stats();
    assert_eq!(stats.sessions_issued, 0);
    assert_eq!(stats.sessions_refused, 8);

    let mut c = client(&http, &SystemClock, &sim);
    c.session().await.unwrap();
    assert!(c.session_token().unwrap().len() > 20);
}

fn signed(sim: &mdm_depsim::RunningSim, nonce: &str, timestamp: u64) -> http::Request<Vec<u8>> {
    let url = format!("{}/session", sim.base_url());
    let auth =
        oauth::authorization_header(&sim.credentials(), "GET", &url, timestamp, nonce).unwrap();
    let mut r = request(sim, Method::GET, "/session", None, b"");
    r.headers_mut()
        .insert("Authorization", auth.parse().unwrap());
    r
}

#[tokio::test]
async fn replayed_nonce_is_refused() {
    let sim = start(SimConfig {
        error_style: ErrorStyle::Plain,
        ..SimConfig::new(5, 1)
    });
    let http = HyperHttp::new();
    let ts = SystemClock.unix_seconds();
    let first = send(&http, signed(&sim, "nonce-1", ts)).await;
    assert_eq!(first.status(), 200, "{}", text(&first));
    let token: serde_json::Value = serde_json::from_slice(first.body()).unwrap();
    assert!(token["auth_session_token"].as_str().is_some());
    let again = send(&http, signed(&sim, "nonce-1", ts)).await;
    assert_eq!(again.status(), 401);
    assert_eq!(text(&again), "Nonce used");
    let fresh = send(&http, signed(&sim, "nonce-2", ts)).await;
    assert_eq!(fresh.status(), 200);
}

#[tokio::test]
async fn malformed_oauth_headers() {
    let sim = start(SimConfig {
        max_clock_skew: Some(Duration::from_secs(300)),
        ..SimConfig::new(5, 1)
    });
    let http = HyperHttp::new();
    let ts = SystemClock.unix_seconds();

    let mut r = signed(&sim, "n1", ts);
    let auth = r.headers()["Authorization"].to_str().unwrap().to_owned();
    // Tampered signature.
    let tampered = auth.replace("oauth_signature=\"", "oauth_signature=\"x");
    r.headers_mut()
        .insert("Authorization", tampered.parse().unwrap());
    let resp = send(&http, r).await;
    assert_eq!(
        (resp.status().as_u16(), text(&resp)),
        (401, "\"Invalid signature\"".into())
    );

    let cases = [
        (
            auth.replace("HMAC-SHA1", "HMAC-SHA256"),
            400,
            "Unsupported signature method",
        ),
        (
            format!("{auth}, oauth_nonce=\"again\""),
            400,
            "Duplicated OAuth protocol parameter",
        ),
        (
            auth.replace("oauth_nonce", "oauth_once"),
            400,
            "Unsupported oauth parameters",
        ),
        (
            "Bearer abc".to_owned(),
            400,
            "Missing required authorization parameter",
        ),
    ];
    for (header, status, body) in cases {
        let mut r = request(&sim, Method::GET, "/session", None, b"");
        r.headers_mut()
            .insert("Authorization", header.parse().unwrap());
        let resp = send(&http, r).await;
        assert_eq!(resp.status().as_u16(), status, "{header}");
        assert!(text(&resp).contains(body), "{header}: {}", text(&resp));
    }
    // No header at all.
    let resp = send(&http, request(&sim, Method::GET, "/session", None, b"")).await;
    assert_eq!(resp.status(), 400);
    // A timestamp an hour off.
    let resp = send(&http, signed(&sim, "n2", ts - 3600)).await;
    assert_eq!(resp.status(), 401);
    let resp = send(&http, signed(&sim, "n3", ts)).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn terms_not_signed_access_denied_and_revocation() {
    let sim = start(SimConfig::new(5, 1));
    let ctl = sim.control();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    c.account().await.unwrap();

    ctl.set_terms_not_signed(true);
    let err = c.account().await.unwrap_err();
    assert_eq!(
        err,
        DepError::Api {
            status: 403,
            code: ApiError::TermsNotSigned
        }
    );
    let err = c.session().await.unwrap_err();
    assert_eq!(err.code(), Some(ApiError::TermsNotSigned));
    ctl.set_terms_not_signed(false);

    ctl.set_access_denied(true);
    assert_eq!(
        c.account().await.unwrap_err().code(),
        Some(ApiError::AccessDenied)
    );
    ctl.set_access_denied(false);
    c.account().await.unwrap();

    ctl.set_token_revoked(true);
    assert!(matches!(
        c.account().await,
        Err(DepError::Unauthorized { .. })
    ));
    ctl.set_token_revoked(false);
    c.account().await.unwrap();

    ctl.reject_next_sessions(1);
    ctl.expire_sessions();
    assert!(matches!(
        c.account().await,
        Err(DepError::Unauthorized { .. })
    ));
    c.account().await.unwrap();
}

#[tokio::test]
async fn expired_sessions_are_renewed_by_the_client() {
    let sim = start(SimConfig {
        session_lifetime: Duration::from_secs(180),
        ..SimConfig::new(5, 1)
    });
    let ctl = sim.control();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    c.account().await.unwrap();
    let first = c.session_token().unwrap().to_owned();
    ctl.advance_time(Duration::from_secs(181));
    assert!(!ctl.session_valid(&first));

    // Unknown token: 401 UNAUTHORIZED (raw).
    let resp = send(
        &http,
        request(&sim, Method::GET, "/account", Some(&first), b""),
    )
    .await;
    assert_eq!(
        (resp.status().as_u16(), text(&resp)),
        (401, "\"UNAUTHORIZED\"".into())
    );

    c.account().await.unwrap();
    assert_ne!(c.session_token().unwrap(), first);
    let stats = ctl.stats();
    assert_eq!(stats.sessions_issued, 2);
    assert_eq!(stats.requests_by_path["/account"], 4);
    assert_eq!(stats.responses_by_status[&401], 2);
}

#[tokio::test]
async fn forgotten_sessions_answer_forbidden_like_depsim() {
    let sim = start(SimConfig {
        unknown_session: UnknownSession::Forbidden,
        ..SimConfig::new(5, 1)
    });
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim).with_session(Some("from-before-restart".into()));
    c.account().await.unwrap();
    let stats = sim.control().stats();
    assert_eq!(stats.responses_by_status[&403], 1);
    assert_eq!(stats.sessions_issued, 1);
}

#[tokio::test]
async fn rotated_session_tokens_are_followed() {
    let sim = start(SimConfig {
        rotate_every: Some(2),
        ..SimConfig::new(20, 1)
    });
    let ctl = sim.control();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    c.session().await.unwrap();
    let mut seen = vec![c.session_token().unwrap().to_owned()];
    for _ in 0..7 {
        c.fetch_devices(None, Some(5)).await.unwrap();
        let now = c.session_token().unwrap().to_owned();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
    }
    assert_eq!(seen.len(), 4, "rotated after requests 2, 4 and 6");
    let stats = ctl.stats();
    assert_eq!(stats.sessions_issued, 1, "never needed a new /session");
    assert_eq!(stats.sessions_rotated, 3);
    assert_eq!(stats.responses_by_status.get(&401), None);
    // Rotated-away tokens are dead.
    assert!(!ctl.session_valid(&seen[0]));
    assert!(ctl.session_valid(seen.last().unwrap()));
    assert_eq!(ctl.session_count(), 1);
}

//! What Apple does outside the Device Assignment API, over the control routes: the
//! server token Apple Business Manager makes for an uploaded public key, the
//! organisation's devices, and the cloud configuration a device gets when it is turned on.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use http::Method;
use mdm_core::platform::testing::SystemClock;
use mdm_depsim::client::HyperHttp;
use mdm_depsim::{ServerConfig, SimConfig};
use serde_json::{Value, json};

fn body_json(r: &http::Response<Vec<u8>>) -> Value {
    serde_json::from_slice(r.body()).unwrap_or_else(|e| panic!("{e}: {}", text(r)))
}

#[tokio::test]
async fn a_server_token_opens_only_with_the_uploaded_key() {
    let sim = start(SimConfig::new(3, 1));
    let other = sim.add_server(ServerConfig::new(2, 9));
    let http = HyperHttp::new();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let key = mdm_crypto::KeyPair::generate().unwrap();
    let cert = mdm_crypto::self_signed_certificate(&key, "MDM server", now, now + 86_400).unwrap();

    let (http, at) = (&http, &sim);
    let issue = move |path: &'static str, body: Vec<u8>| async move {
        send(http, request(at, Method::POST, path, None, &body)).await
    };
    let mut p7m = Vec::new();
    for (path, org) in [
        ("/_depsim/server-token", sim.control().clone()),
        ("/_depsim/servers/1/server-token", other),
    ] {
        let r = issue(path, cert.to_pem().into_bytes()).await;
        assert_eq!(r.status(), 200, "{}", text(&r));
        assert_eq!(r.headers()["content-type"], "application/pkcs7-mime");
        let token = mdm_crypto::read_server_token(r.body(), &key, Some(&cert)).unwrap();
        let c = org.credentials();
        assert_eq!(
            (token.consumer_key, token.access_secret),
            (c.consumer_key, c.access_secret)
        );
        // Valid for a year, like Apple's.
        let left = token_expiry(&token.access_token_expiry) - now;
        assert!((364 * 86_400..=366 * 86_400).contains(&left), "{left}");
        p7m = r.body().clone();
    }

    // Another key cannot open it.
    let stranger = mdm_crypto::KeyPair::generate().unwrap();
    assert!(mdm_crypto::read_server_token(&p7m, &stranger, None).is_err());

    let r = issue("/_depsim/server-token", b"not a certificate".to_vec()).await;
    assert_eq!(r.status(), 400);
    assert!(body_json(&r)["error"].as_str().unwrap().contains("PEM"));
}

fn token_expiry(iso: &str) -> i64 {
    mdm_core::time::parse_rfc3339(iso).expect("RFC 3339 expiry")
}

#[tokio::test]
async fn devices_are_listed_and_get_their_profile_when_turned_on() {
    let sim = start(SimConfig {
        initial_assigned_percent: 0,
        initial_pushed_percent: 0,
        ..SimConfig::new(6, 3)
    });
    let ctl = sim.control();
    let http = HyperHttp::new();
    let get = |path: &str| request(&sim, Method::GET, path, None, b"");
    let post = |path: &str| request(&sim, Method::POST, path, None, b"");

    let r = send(&http, get("/_depsim/devices?limit=4")).await;
    assert_eq!(r.status(), 200);
    let listed: Vec<String> = body_json(&r)["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial_number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ctl.serials()[..4]);
    let r = send(&http, get("/_depsim/devices")).await;
    assert_eq!(body_json(&r)["devices"].as_array().unwrap().len(), 6);
    let r = send(&http, get("/_depsim/devices?limit=many")).await;
    assert_eq!(r.status(), 400);

    // A device whose MDM server assigned it a profile gets that profile, now `pushed`.
    let s = ctl.serials();
    let mut c = client(&http, &SystemClock, &sim).with_protocol_version("10");
    let defined = c
        .define_profile(&json!({
            "profile_name": "Zero-touch",
            "url": "https://mdm.example.com/mdm/enroll/ade",
            "await_device_configured": true,
            "devices": [s[0]],
        }))
        .await
        .unwrap();
    let r = send(
        &http,
        post(&format!("/_depsim/devices/{}/cloud-configuration", s[0])),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", text(&r));
    let config = body_json(&r);
    assert_eq!(config["url"], "https://mdm.example.com/mdm/enroll/ade");
    assert_eq!(config["await_device_configured"], true);
    assert_eq!(config["profile_uuid"], defined.profile_uuid.as_str());
    let d = ctl.device(&s[0]).unwrap();
    assert_eq!(d.profile_status, "pushed");
    assert!(d.profile_push_time.is_some());

    // Nothing for a device without a profile, or one not in the organisation.
    for serial in [s[1].as_str(), "UNKNOWN00001"] {
        let r = send(
            &http,
            post(&format!("/_depsim/devices/{serial}/cloud-configuration")),
        )
        .await;
        assert_eq!(r.status(), 404, "{serial}");
    }
    assert_eq!(ctl.device(&s[1]).unwrap().profile_status, "empty");
}

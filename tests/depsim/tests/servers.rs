//! Several organisations (MDM servers) on one simulator, driven by our `DepClient`:
//! each server token sees only its own devices, events, cursors, profiles, sessions
//! and faults.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use http::Method;
use mdm_core::dep::client::DepClient;
use mdm_core::dep::error::{ApiError, DepError};
use mdm_core::dep::oauth::DepCredentials;
use mdm_core::platform::Clock;
use mdm_core::platform::testing::SystemClock;
use mdm_depsim::client::HyperHttp;
use mdm_depsim::{
    AccountConfig, RunningSim, ServerConfig, SimConfig, SimControl, server_credentials,
};
use serde_json::{Value, json};

fn org_client<'a, C: Clock>(
    http: &'a HyperHttp,
    clock: &'a C,
    sim: &RunningSim,
    org: &SimControl,
) -> DepClient<'a, HyperHttp, C> {
    DepClient::new(http, clock, &sim.base_url(), org.credentials())
}

fn serials_of(devices: &[serde_json::Map<String, Value>]) -> Vec<String> {
    devices.iter().map(|d| serial(d).to_owned()).collect()
}

#[tokio::test]
async fn each_organisation_sees_only_its_own_devices() {
    let sim = start(SimConfig::new(30, 1));
    let a = sim.add_server(ServerConfig::new(20, 101));
    let b = sim.add_server(ServerConfig::new(5, 102));
    assert_eq!((sim.control().index(), a.index(), b.index()), (0, 1, 2));
    assert_eq!(sim.server_count(), 3);
    assert_eq!(sim.server(1).unwrap().credentials(), a.credentials());
    assert!(sim.server(3).is_none());
    assert_eq!(sim.control().credentials(), sim.credentials());
    let creds: Vec<DepCredentials> = sim.servers().iter().map(|s| s.credentials()).collect();
    for (i, x) in creds.iter().enumerate() {
        for y in &creds[i + 1..] {
            assert_ne!(x.consumer_key, y.consumer_key);
            assert_ne!(x.access_token, y.access_token);
            assert_ne!(x.access_secret, y.access_secret);
        }
    }

    let http = HyperHttp::new();
    let mut uuids = HashSet::new();
    let mut all = Vec::new();
    for (org, want) in sim.servers().iter().zip([30, 20, 5]) {
        let mut c = org_client(&http, &SystemClock, &sim, org);
        uuids.insert(c.account().await.unwrap().server_uuid);
        let (devices, _, _) = fetch_all(&mut c, None).await;
        let serials = serials_of(&devices);
        assert_eq!(serials.len(), want);
        assert_eq!(serials, org.serials());
        all.extend(serials);
        assert_eq!(org.requests_to("/server/devices"), 1);
        assert_eq!(org.stats().sessions_issued, 1);
    }
    assert_eq!(uuids.len(), 3, "each organisation has its own account");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 55);

    // A session of `a` reaches nothing of `b`'s: devices, assignments, profiles.
    let (a0, b0) = (a.serials()[0].clone(), b.serials()[0].clone());
    let mut ca = org_client(&http, &SystemClock, &sim, &a);
    let mut cb = org_client(&http, &SystemClock, &sim, &b);
    let details = ca.device_details(&[&a0, &b0]).await.unwrap();
    assert_eq!(details[&a0]["response_status"], "SUCCESS");
    assert_eq!(details[&b0]["response_status"], "NOT_ACCESSIBLE");
    let profile = json!({"profile_name": "A", "url": "https://mdm.example/enroll"});
    let uuid = ca.define_profile(&profile).await.unwrap().profile_uuid;
    let r = ca.assign_profile(&uuid, &[&a0, &b0]).await.unwrap();
    assert_eq!(r.devices[&a0].as_str(), "SUCCESS");
    assert_eq!(r.devices[&b0].as_str(), "NOT_ACCESSIBLE");
    assert_ne!(
        b.device(&b0).unwrap().profile_uuid.as_deref(),
        Some(uuid.as_str())
    );
    assert!(a.profile(&uuid).is_some() && b.profile(&uuid).is_none());
    assert_eq!(
        cb.get_profile(&uuid).await.unwrap_err().code(),
        Some(ApiError::NotFound)
    );
    assert_eq!(
        cb.assign_profile(&uuid, &[&b0]).await.unwrap_err().code(),
        Some(ApiError::NotFound)
    );
    // The default organisation saw none of it.
    assert_eq!(sim.control().requests_to("/devices"), 0);
    assert_eq!(sim.control().requests_to("/profile"), 0);
    assert_eq!(sim.control().stats().requests, 3);
}

#[tokio::test]
async fn events_and_cursors_stay_in_their_organisation() {
    let sim = start(SimConfig::new(10, 1));
    let a = sim.add_server(ServerConfig::new(10, 201));
    let b = sim.add_server(ServerConfig::new(10, 202));
    let http = HyperHttp::new();
    let mut clients: Vec<_> = sim
        .servers()
        .iter()
        .map(|o| org_client(&http, &SystemClock, &sim, o))
        .collect();
    let mut cursors = Vec::new();
    for c in &mut clients {
        cursors.push(fetch_all(c, None).await.1);
    }

    let added = a.add_devices(3);
    let gone = b.serials()[4].clone();
    assert!(b.delete_device(&gone));
    assert!(a.push_profile(&a.serials()[0]));
    assert_eq!((a.event_count(), b.event_count()), (4, 1));
    assert_eq!(sim.control().event_count(), 0);
    assert_eq!((a.device_count(), b.device_count()), (13, 9));

    let (d0, _) = sync_all(&mut clients[0], &cursors[0], None).await;
    let (da, _) = sync_all(&mut clients[1], &cursors[1], None).await;
    let (db, _) = sync_all(&mut clients[2], &cursors[2], None).await;
    assert!(d0.is_empty());
    let mut want = added.clone();
    want.push(a.serials()[0].clone());
    assert_eq!(serials_of(&da), want);
    assert_eq!(serials_of(&db), vec![gone.clone()]);
    assert_eq!(db[0]["op_type"], "deleted");
    // A cursor of one organisation means nothing to another.
    for (i, j) in [(1, 2), (2, 1), (0, 1), (1, 0)] {
        let err = clients[i]
            .sync_devices(&cursors[j], None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ApiError::InvalidCursor), "{i} with {j}'s");
    }
    // A fresh fetch of `b` lists neither `a`'s new devices nor its deleted one.
    let (devices, _, _) = fetch_all(&mut clients[2], None).await;
    let now: HashSet<String> = serials_of(&devices).into_iter().collect();
    assert_eq!(now.len(), 9);
    assert!(!now.contains(&gone) && added.iter().all(|s| !now.contains(s)));
}

#[tokio::test]
async fn wrong_and_mixed_credentials_are_refused() {
    let sim = start(SimConfig::new(5, 1));
    let a = sim.add_server(ServerConfig::new(5, 301));
    let b = sim.add_server(ServerConfig::new(5, 302).with_credentials(DepCredentials {
        consumer_key: "CK_custom".into(),
        consumer_secret: "CS_custom".into(),
        access_token: "AT_custom".into(),
        access_secret: "AS_custom".into(),
    }));
    assert_eq!(b.credentials().consumer_key, "CK_custom");
    let (ka, kb) = (a.credentials(), b.credentials());
    let mix = |f: &dyn Fn(&mut DepCredentials)| {
        let mut c = ka.clone();
        f(&mut c);
        c
    };
    let cases = [
        // a's key with b's token: a knows no such token.
        (mix(&|c| c.access_token = kb.access_token.clone()), "token"),
        (
            mix(&|c| c.access_token = sim.credentials().access_token),
            "token",
        ),
        // a's key and token signed with b's secrets.
        (
            mix(&|c| c.consumer_secret = kb.consumer_secret.clone()),
            "signature",
        ),
        (
            mix(&|c| c.access_secret = kb.access_secret.clone()),
            "signature",
        ),
        (
            mix(&|c| c.consumer_key = "CK_nobody".into()),
            "consumer key",
        ),
    ];
    let http = HyperHttp::new();
    for (creds, why) in cases {
        let mut c = DepClient::new(&http, &SystemClock, &sim.base_url(), creds);
        match c.session().await {
            Err(DepError::Unauthorized { excerpt }) => {
                assert!(excerpt.contains(why), "{excerpt} / {why}")
            }
            other => panic!("{why}: {other:?}"),
        }
    }
    // Refusals count where the consumer key points; unknown keys are the default's.
    assert_eq!(a.stats().sessions_refused, 4);
    assert_eq!(sim.control().stats().sessions_refused, 1);
    assert_eq!(b.stats().sessions_refused, 0);
    for org in sim.servers() {
        assert_eq!(org.stats().sessions_issued, 0);
    }

    // A session token of `a` relabelled as `b`'s is unknown to `b`.
    let mut ca = org_client(&http, &SystemClock, &sim, &a);
    ca.session().await.unwrap();
    let token = ca.session_token().unwrap().to_owned();
    assert!(a.session_valid(&token) && !b.session_valid(&token));
    let forged = token.replacen("sim1_", "sim2_", 1);
    let forged_default = token.replacen("sim1_", "sim_", 1);
    for t in [&forged, &forged_default, &"sim99_x".to_owned()] {
        let r = send(&http, request(&sim, Method::GET, "/account", Some(t), b"")).await;
        assert_eq!(r.status(), 401, "{t}");
    }
    let r = send(
        &http,
        request(&sim, Method::GET, "/account", Some(&token), b""),
    )
    .await;
    assert_eq!(r.status(), 200);
    let account: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        account["server_uuid"],
        AccountConfig::for_seed(301).server_uuid
    );

    // An organisation's consumer key is its own.
    let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sim.add_server(ServerConfig::new(1, 9).with_credentials(kb.clone()))
    }));
    assert!(taken.is_err());
    assert_eq!(sim.server_count(), 3);
}

#[tokio::test]
async fn faults_and_modes_stay_in_their_organisation() {
    let sim = start(SimConfig::new(5, 1));
    let a = sim.add_server(ServerConfig::new(5, 401));
    let b = sim.add_server(ServerConfig::new(5, 402));
    let http = HyperHttp::new();
    let mut c0 = client(&http, &SystemClock, &sim);
    let mut ca = org_client(&http, &SystemClock, &sim, &a);
    let mut cb = org_client(&http, &SystemClock, &sim, &b);
    for c in [&mut c0, &mut ca, &mut cb] {
        c.session().await.unwrap();
    }

    a.fail_next(5, 400, "INVALID_CURSOR");
    sim.control()
        .fail_next_on("/account", 5, 403, "ACCESS_DENIED");
    cb.account().await.unwrap();
    cb.fetch_devices(None, None).await.unwrap();
    assert_eq!(
        ca.account().await.unwrap_err().code(),
        Some(ApiError::InvalidCursor)
    );
    assert_eq!(
        c0.account().await.unwrap_err().code(),
        Some(ApiError::AccessDenied)
    );
    assert_eq!((a.pending_faults(), sim.control().pending_faults()), (4, 4));
    assert_eq!(b.stats().faults_fired, 0);
    a.clear_faults();
    sim.control().clear_faults();

    // Delays hold only the organisation they are scripted for.
    a.delay_next(Some("/account"), 1, Duration::from_millis(1500));
    let t = Instant::now();
    cb.account().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(1000));
    let t = Instant::now();
    ca.account().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(1500));

    // Terms, revocation and expired sessions are per server token.
    a.set_terms_not_signed(true);
    assert_eq!(
        ca.account().await.unwrap_err().code(),
        Some(ApiError::TermsNotSigned)
    );
    cb.account().await.unwrap();
    a.set_terms_not_signed(false);
    b.set_token_revoked(true);
    assert!(matches!(
        cb.account().await,
        Err(DepError::Unauthorized { .. })
    ));
    ca.account().await.unwrap();
    c0.account().await.unwrap();
    let before = a.stats().sessions_issued;
    sim.control().expire_sessions();
    assert_eq!(sim.control().session_count(), 0);
    assert_eq!(a.session_count(), 1);
    ca.account().await.unwrap();
    assert_eq!(a.stats().sessions_issued, before);

    // The clock is the simulator's: moving it ages every organisation's sessions.
    a.advance_time(Duration::from_secs(3600));
    assert_eq!(a.session_count(), 0);
    let skew = sim
        .control()
        .now()
        .duration_since(a.now())
        .unwrap_or_default();
    assert!(skew < Duration::from_secs(1), "{skew:?}");
}

#[tokio::test]
async fn fifty_small_organisations_next_to_a_large_one() {
    let started = Instant::now();
    let sim = start(SimConfig::new(200_000, 1));
    let orgs: Vec<SimControl> = (1..=50)
        .map(|i| sim.add_server(ServerConfig::new(20, 1000 + i)))
        .collect();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(sim.server_count(), 51);
    assert_eq!(orgs[49].credentials().consumer_key, "CK_depsim_50");
    let http = HyperHttp::new();
    let mut seen = HashSet::new();
    for org in &orgs {
        let mut c = org_client(&http, &SystemClock, &sim, org);
        let page = c.fetch_devices(None, Some(1000)).await.unwrap();
        assert_eq!(page.devices.len(), 20);
        assert!(!page.more_to_follow);
        seen.extend(serials_of(&page.devices));
    }
    assert_eq!(seen.len(), 50 * 20);
    let mut c = client(&http, &SystemClock, &sim);
    let page = c.fetch_devices(None, Some(1000)).await.unwrap();
    assert!(page.more_to_follow);
    assert!(serials_of(&page.devices).iter().all(|s| !seen.contains(s)));
    assert_eq!(sim.control().stats().sessions_issued, 1);
    assert!(orgs.iter().all(|o| o.stats().sessions_issued == 1));
}

#[tokio::test]
async fn token_json_and_control_routes_per_organisation() {
    let sim = start(SimConfig::new(3, 1));
    let a = sim.add_server(ServerConfig::new(4, 7));
    let t: Value = serde_json::from_str(&a.token_json("2099-01-01T00:00:00Z")).unwrap();
    assert_eq!(t["consumer_key"], a.credentials().consumer_key);
    assert_eq!(t["access_secret"], a.credentials().access_secret);
    assert_eq!(t["access_token_expiry"], "2099-01-01T00:00:00Z");

    let http = HyperHttp::new();
    let call = |method: Method, path: &str, body: Value| {
        let r = request(&sim, method, path, None, body.to_string().as_bytes());
        let http = &http;
        async move {
            let r = send(http, r).await;
            (
                r.status().as_u16(),
                serde_json::from_slice::<Value>(r.body()).unwrap(),
            )
        }
    };
    let (s, added) = call(Method::POST, "/_depsim/servers", json!({"devices": 6})).await;
    assert_eq!(s, 200);
    assert_eq!(added["index"], 2);
    let b = sim.server(2).unwrap();
    assert_eq!(added["consumer_key"], b.credentials().consumer_key);
    assert_eq!(b.device_count(), 6);
    let (_, list) = call(Method::GET, "/_depsim/servers", json!({})).await;
    let counts: Vec<u64> = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["devices"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![3, 4, 6]);

    let (s, _) = call(
        Method::POST,
        "/_depsim/servers/1/devices/add",
        json!({"count": 2}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!((sim.control().device_count(), a.device_count()), (3, 6));
    let (s, _) = call(Method::POST, "/_depsim/devices/add", json!({"count": 1})).await;
    assert_eq!(s, 200);
    assert_eq!((sim.control().device_count(), a.device_count()), (4, 6));
    let (s, _) = call(Method::GET, "/_depsim/servers/9/stats", json!({})).await;
    assert_eq!(s, 404);

    // Out of process, an added organisation works with the credentials it reported.
    let creds = DepCredentials {
        consumer_key: added["consumer_key"].as_str().unwrap().into(),
        consumer_secret: added["consumer_secret"].as_str().unwrap().into(),
        access_token: added["access_token"].as_str().unwrap().into(),
        access_secret: added["access_secret"].as_str().unwrap().into(),
    };
    let mut c = DepClient::new(&http, &SystemClock, &sim.base_url(), creds);
    let (devices, _, _) = fetch_all(&mut c, None).await;
    assert_eq!(serials_of(&devices), b.serials());
    let (_, stats) = call(Method::GET, "/_depsim/servers/2/stats", json!({})).await;
    assert_eq!(stats["sessions_issued"], 1);
    let (_, stats) = call(Method::GET, "/_depsim/stats", json!({})).await;
    assert_eq!(stats["sessions_issued"], 0);

    // A derived consumer key someone already chose is refused, not shared.
    sim.add_server(ServerConfig::new(1, 8).with_credentials(server_credentials(4)));
    let (s, _) = call(Method::POST, "/_depsim/servers", json!({"devices": 1})).await;
    assert_eq!(s, 409);
    assert_eq!(sim.server_count(), 4);
}

//! Several host processes, one store: the lab's in-process host and `mdm-host` binaries
//! (separate OS processes) on one `redis-server`, as replicas behind a load balancer.
//! Devices poll and answer and admins enqueue through all of them at once; check-ins and
//! command results for one device race on different processes; a DEP sync run by one
//! process is resumed by another after the first is killed with SIGKILL.

mod lab;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lab::{Lab, PushCert};
use mdm_devicesim::{Device, HyperHttp};
use mdm_e2e::host_process::HostProcess;
use mdm_e2e::redis::RedisServer;
use mdm_e2e::{ADMIN_KEY, Client, Method, SYNC_KEY, StatusCode};
use mdm_host::resp::Reply;
use serde_json::{Value, json};

/// Commands each device is sent while it polls.
const COMMANDS: usize = 12;
/// Rounds of a check-in racing a command result, per device.
const ROUNDS: usize = 3;

async fn enqueue(server: SocketAddr, udid: &str, body: Value) -> String {
    let (s, b) = Client { addr: server }
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{udid}/commands"),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["command_uuid"].as_str().expect("uuid").to_owned()
}

/// Polls (Idle) and answers through the servers in turn until `expected` commands came;
/// returns their UUIDs in the order the device got them.
async fn poll_until(d: &mut Device, servers: &[SocketAddr], expected: usize) -> Vec<String> {
    let mut got = Vec::new();
    let started = Instant::now();
    let mut turn = 0;
    while got.len() < expected {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} got {} of {expected} commands",
            d.udid,
            got.len()
        );
        turn += 1;
        let http = HyperHttp::to(servers[turn % servers.len()]);
        let mut next = d.idle(&http).await.expect("Idle");
        if next.is_none() {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        while let Some(cmd) = next {
            got.push(cmd.uuid.clone());
            let (status, keys) = d.respond(&cmd);
            turn += 1;
            let http = HyperHttp::to(servers[turn % servers.len()]);
            next = d.answer(&http, &cmd, status, keys).await.expect("answer");
        }
    }
    got
}

/// The enrollment record as the store holds it (plain JSON under `enr:<udid>`).
async fn stored_record(redis: &RedisServer, udid: &str) -> Value {
    match redis.command(&["GET", &format!("enr:{udid}")]).await {
        Reply::Bulk(b) => serde_json::from_slice(&b).expect("record JSON"),
        other => panic!("no enrollment record for {udid}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_host_processes_on_one_redis_lose_nothing() {
    let redis = RedisServer::start().await;
    let lab = Lab::start_on_redis(40, PushCert::Trusted, &redis.url()).await;
    let compiled = lab.dir.path().join("state");
    let spawn = |name: &str, ahead: u64| {
        HostProcess::spawn(
            &lab.dir.path().join(name),
            &lab.vars,
            Some(&lab.runtime_config),
            Duration::from_secs(ahead),
            Some(&compiled),
        )
    };
    let b = spawn("b", 0);
    let c = spawn("c", 0);
    let servers = [lab.app.addr, b.addr, c.addr];

    // Enrollment and setup, each device through other processes.
    let serials = lab.ios_serials(4);
    lab.assign(&serials).await;
    let mut devices = Vec::new();
    for (i, serial) in serials.iter().enumerate() {
        let mut d = lab.device(serial);
        d.enroll_ade(&HyperHttp::to(servers[i % 3]), &lab.enroll_url(), true)
            .await
            .unwrap_or_else(|e| panic!("enrolling {serial}: {e}"));
        let setup = d
            .run_until_idle(&HyperHttp::to(servers[(i + 1) % 3]))
            .await
            .unwrap();
        assert_eq!(
            setup.last().map(|a| a.command.request_type.as_str()),
            Some("DeviceConfigured")
        );
        devices.push(d);
    }

    // Admins enqueue through every process while each device polls and answers through
    // every process: each device gets exactly its commands, once, in order.
    let mut tasks = Vec::new();
    for (i, mut d) in devices.into_iter().enumerate() {
        let udid = d.udid.clone();
        let enqueuer = tokio::spawn(async move {
            let mut sent = Vec::new();
            for k in 0..COMMANDS {
                let body = if k % 2 == 0 {
                    json!({"RequestType": "ProfileList"})
                } else {
                    json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion"]})
                };
                sent.push(enqueue(servers[(i + k) % 3], &udid, body).await);
            }
            sent
        });
        let poller = tokio::spawn(async move {
            let got = poll_until(&mut d, &servers, COMMANDS).await;
            (d, got)
        });
        tasks.push((enqueuer, poller));
    }
    let mut devices = Vec::new();
    for (enqueuer, poller) in tasks {
        let sent = enqueuer.await.expect("enqueuer");
        let (d, got) = poller.await.expect("poller");
        assert_eq!(
            got, sent,
            "{}: commands lost, repeated or reordered",
            d.udid
        );
        for server in servers {
            assert_eq!(d.idle(&HyperHttp::to(server)).await.unwrap(), None);
        }
        devices.push(d);
    }

    // A TokenUpdate (new push token) through one process and a DeviceInformation result
    // (new OS version) through another, at the same moment: both land in the record.
    for d in devices.iter_mut() {
        for round in 0..ROUNDS {
            let query = json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion"]});
            let uuid = enqueue(servers[round % 3], &d.udid.clone(), query).await;
            let cmd = d
                .idle(&HyperHttp::to(servers[(round + 1) % 3]))
                .await
                .unwrap()
                .expect("the query");
            assert_eq!(cmd.uuid, uuid);
            d.os_version = format!("18.{round}");
            let answer = d.signed_answer(&cmd).unwrap();
            d.push_token = (0..32u8).map(|b| b ^ (round as u8 * 17 + 1)).collect();
            let update = d.token_update_message(false).unwrap();
            let (b_http, c_http) = (HyperHttp::to(b.addr), HyperHttp::to(c.addr));
            let (checkin, result) = tokio::join!(
                d.checkin_raw(&b_http, update),
                d.send_signed(&c_http, &answer)
            );
            assert_eq!(checkin.unwrap().status, 200);
            assert_eq!(result.unwrap(), None);
            let rec = stored_record(&redis, &d.udid).await;
            assert_eq!(
                rec["push"]["token_hex"].as_str(),
                Some(d.push_token_hex().as_str()),
                "TokenUpdate lost: {rec:#}"
            );
            let (_, view) = Client { addr: servers[2] }
                .admin(Method::GET, &format!("/api/v1/devices/{}", d.udid), None)
                .await;
            assert_eq!(
                view["inventory"]["DeviceInformation"]["data"]["OSVersion"],
                d.os_version.as_str(),
                "command result lost: {view:#}"
            );
        }
    }

    // A large organisation's sync started on process B; B dies (SIGKILL) in the middle.
    let org = lab.dep.add_server(mdm_depsim::ServerConfig::new(5_000, 77));
    let token = mdm_e2e::dep::connect_token_with(&lab.app, &org.credentials(), "Big").await;
    org.delay_next(Some("/server/devices"), 1_000, Duration::from_millis(80));
    let b_addr = b.addr;
    let sync = tokio::spawn(async move {
        mdm_e2e::request(
            b_addr,
            Method::POST,
            &format!("/api/v1/tokens/{token}/sync"),
            &[("authorization".into(), format!("Bearer {ADMIN_KEY}"))],
            Vec::new(),
        )
        .await
    });
    let mut fetched = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let (_, st) = lab
            .app
            .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
            .await;
        fetched = st["progress"]["devices_fetched"].as_u64().unwrap_or(0);
        if fetched >= 2_000 {
            break;
        }
    }
    assert!(
        (1..5_000).contains(&fetched),
        "{fetched} fetched at the kill"
    );
    b.kill();
    assert!(sync.await.unwrap().is_err(), "the killed process answered");
    org.clear_faults();
    // Another process, its clock past the dead run's lease, resumes it on the tick.
    let d_host = spawn("d", 121);
    let ticker = Client { addr: d_host.addr };
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sync not resumed"
        );
        let (s, body) = ticker
            .call(Method::POST, "/internal/tick", Some(SYNC_KEY), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let (_, st) = ticker
            .admin(Method::GET, &format!("/api/v1/tokens/{token}/sync"), None)
            .await;
        if st["state"] == "idle" && st["last_run"]["outcome"] == "completed" {
            assert_eq!(st["last_run"]["kind"], "full", "{st:#}");
            break;
        }
    }
    let fetches = org.requests_to("/server/devices");
    assert!(
        fetches <= 5 + 2,
        "{fetches} page fetches for 5 pages: not resumed"
    );
    let expected: BTreeSet<String> = org.serials().into_iter().collect();
    assert_eq!(
        mdm_e2e::dep::listed_serials(&lab.app, token).await,
        expected
    );
    assert_eq!(mdm_e2e::dep::device_count(&lab.app, token).await, 5_000);
    assert_eq!(lab.app.kv_stats().calls(), 0, "SQLite used in Redis mode");
    drop((c, d_host));
    lab.shutdown().await;
}

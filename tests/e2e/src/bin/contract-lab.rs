//! `contract-lab DICTIONARIES.toml`: the server the admin API's contract tests fuzz
//! (scripts/contract-tests.sh). It builds the zero-touch lab (Apple's Device Assignment
//! API and APNs simulated, a synced server token and an enrollment profile, a fake Apple
//! device CA), enrolls two iPhones through ADE, queues each a command and adds a user and
//! a group; then serves that state with the built `mdm-host` binary on a free loopback
//! port. It writes the ids it made as Schemathesis dictionaries bound to the path
//! parameters, prints `MDM_URL=...` and `MDM_ADMIN_KEY=...`, then `READY`, and serves
//! until its standard input closes.

use std::io::Read;
use std::time::Duration;

use mdm_e2e::host_process::HostProcess;
use mdm_e2e::lab::{Lab, PushCert};
use mdm_e2e::{ADMIN_KEY, Client, Method, StatusCode};
use serde_json::{Value, json};

/// Devices in the simulated organisation: enough for several DEP pages of 25.
const DEP_DEVICES: u64 = 60;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: contract-lab DICTIONARIES.toml");
    let lab = Lab::start(DEP_DEVICES, PushCert::Trusted).await;
    let mut ids = Ids::default();
    ids.token.push(lab.token.to_string());
    ids.profile.push(lab.profile.to_string());
    let serials = lab.serials("iPhone", 3);
    lab.assign(&serials[..2]).await;
    for serial in &serials[..2] {
        let mut d = lab.device(serial);
        lab.enroll(&mut d).await;
        ids.device.push(d.udid.clone());
    }
    ids.serial.extend(serials);
    let api = lab.app.client();
    for device in &ids.device {
        let b = ok(
            &api,
            Method::POST,
            &format!("/api/v1/devices/{device}/commands"),
            json!({ "RequestType": "ProfileList" }),
        )
        .await;
        ids.uuid
            .push(b["command_uuid"].as_str().expect("uuid").to_owned());
    }
    ok(
        &api,
        Method::POST,
        "/api/v1/groups",
        json!({ "id": "staff", "name": "Staff", "enrollment_type": "device", "priority": 10 }),
    )
    .await;
    ids.group.push("staff".into());
    ok(
        &api,
        Method::POST,
        "/api/v1/users",
        json!({ "username": "alice", "password": "correct horse", "groups": ["staff"] }),
    )
    .await;
    ids.user.push("alice".into());
    std::fs::write(&out, ids.toml()).expect("writing the dictionaries");

    // The same state served by the mdm-host binary (the in-process host stops first).
    let Lab {
        dir,
        dep,
        apns,
        app,
        vars,
        runtime_config,
        ..
    } = lab;
    app.shutdown().await;
    let state = dir.path().join("state");
    let host = HostProcess::spawn(&state, &vars, Some(&runtime_config), Duration::ZERO, None);
    println!("MDM_URL=http://{}", host.addr);
    println!("MDM_ADMIN_KEY={ADMIN_KEY}");
    println!("READY");
    // Serve until the caller closes our standard input.
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
    host.kill();
    apns.shutdown();
    drop(dep);
    drop(dir);
}

/// A request that must succeed (2xx); its JSON answer.
async fn ok(api: &Client, method: Method, path: &str, body: Value) -> Value {
    let (s, b) = api.admin(method.clone(), path, Some(body)).await;
    assert!(s.is_success(), "{method} {path}: {s} {b}");
    assert_ne!(s, StatusCode::ACCEPTED, "{method} {path}: {b}");
    b
}

/// What the lab made, by the path parameter it fills.
#[derive(Default)]
struct Ids {
    token: Vec<String>,
    profile: Vec<String>,
    serial: Vec<String>,
    device: Vec<String>,
    uuid: Vec<String>,
    user: Vec<String>,
    group: Vec<String>,
}

impl Ids {
    /// Schemathesis dictionaries, each bound to its path parameter: most generated
    /// requests name something that exists, the rest whatever the schema allows.
    fn toml(&self) -> String {
        let mut s = String::new();
        for (name, values) in [
            ("token", &self.token),
            ("profile", &self.profile),
            ("serial", &self.serial),
            ("device", &self.device),
            ("uuid", &self.uuid),
            ("user", &self.user),
            ("group", &self.group),
        ] {
            // Integer path parameters (token, profile) take integers.
            let quoted: Vec<String> = values
                .iter()
                .map(|v| match v.parse::<u64>() {
                    Ok(n) => n.to_string(),
                    Err(_) => format!("{v:?}"),
                })
                .collect();
            s.push_str(&format!(
                "[dictionaries.{name}]\nvalues = [{}]\n\n[parameters.\"path.{name}\"]\ndictionary = \"{name}\"\nprobability = 0.8\n\n",
                quoted.join(", ")
            ));
        }
        s
    }
}

//! One simulated device enrolled with a server that runs elsewhere (`spin up`,
//! `scripts/run.sh`), using only its admin API and its device-facing routes: a local user
//! in a group set to device enrollment enrolls a personal iPhone account-driven (Apple:
//! "Account-driven Device Enrollment"), so neither Apple's services nor Apple's device CA
//! are involved. Benchmarks use it to measure a server they did not start.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use mdm_devicesim::{Device, DeviceKind, FakeAppleCa, HyperHttp};
use serde_json::{Value, json};

use crate::{Method, StatusCode, request};

/// An admin API call with `key`; status and JSON body (Null if not JSON).
async fn admin(
    addr: SocketAddr,
    key: &str,
    method: Method,
    path: &str,
    body: Value,
) -> anyhow::Result<(StatusCode, Value)> {
    let headers = [
        ("authorization".to_owned(), format!("Bearer {key}")),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    let (status, _, bytes) =
        request(addr, method, path, &headers, serde_json::to_vec(&body)?).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// What [`enroll_device`] created, for the caller to report.
pub struct Enrolled {
    pub device: Device,
    pub group: String,
    pub username: String,
}

/// Creates a group `bench-<random>` with enrollment type "device" and a user in it, then
/// enrolls a new simulated iPhone as that user (discovery, sign-in, profile, SCEP,
/// Authenticate, TokenUpdate). The server needs its push topic (`apns_topic` or an
/// uploaded push certificate); its own error says so when it is missing.
pub async fn enroll_device(addr: SocketAddr, admin_key: &str) -> anyhow::Result<Enrolled> {
    let tag = mdm_devicesim::random_uuid()[..8].to_lowercase();
    let group = format!("bench-{tag}");
    let username = format!("bench-{tag}");
    let managed_apple_id = format!("{username}@bench.example.com");
    let password = mdm_devicesim::random_uuid();

    // Priorities of groups with an enrollment type are unique: try a few free-looking ones.
    let mut created = false;
    for attempt in 0..8u32 {
        let priority = 5_000 + (u32::from_str_radix(&tag[..4], 16)? + attempt * 613) % 5_000;
        let (s, g) = admin(
            addr,
            admin_key,
            Method::POST,
            "/api/v1/groups",
            json!({
                "id": group,
                "name": "Benchmark devices",
                "enrollment_type": "device",
                "priority": priority,
            }),
        )
        .await?;
        if s == StatusCode::CREATED {
            created = true;
            break;
        }
        // 422 naming the field "priority": another group holds it.
        if s != StatusCode::UNPROCESSABLE_ENTITY || !g.to_string().contains("\"priority\"") {
            bail!("creating group {group}: {s} {g}");
        }
    }
    anyhow::ensure!(created, "no free group priority found for {group}");
    let (s, u) = admin(
        addr,
        admin_key,
        Method::POST,
        "/api/v1/users",
        json!({
            "username": username,
            "password": password,
            "managed_apple_id": managed_apple_id,
            "groups": [group],
        }),
    )
    .await?;
    anyhow::ensure!(
        s == StatusCode::CREATED,
        "creating user {username}: {s} {u}"
    );

    let apple = FakeAppleCa::generate().context("a device CA for the simulated iPhone")?;
    let mut device = Device::random(&apple, DeviceKind::Iphone, "17.4")?;
    device.supervised = false;
    // Every URL the server hands out (whatever its `server_url`) is reached at `addr`.
    let http = HyperHttp::to(addr);
    let flow = device
        .user_enroll(
            &http,
            &format!("http://{addr}"),
            &managed_apple_id,
            &username,
            &password,
        )
        .await
        .with_context(|| format!("enrolling a simulated iPhone as {username}"))?;
    anyhow::ensure!(
        flow.discovery.version == "mdm-adde",
        "the group asks for device enrollment, the server offered {:?}",
        flow.discovery.version
    );
    Ok(Enrolled {
        device,
        group,
        username,
    })
}

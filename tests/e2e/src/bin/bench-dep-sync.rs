//! Benchmark: a full Device Assignment sync of many devices from the simulator through
//! the real `admin` and `sync` components on the local host.
//!
//! `./scripts/bench-dep-sync.sh [--devices N]` (builds the components and this binary in
//! release). Prints devices per minute, store operations per device and the peak memory of
//! this process, which holds the host, the simulator (it generates devices on the fly, so
//! it adds little) and the client.

use std::time::Instant;

use mdm_e2e::dep::{connect_token, start_app, start_sim, tick_until_idle};
use mdm_e2e::{Method, StatusCode};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Lets the peak above measure the sync alone (Linux: `5` resets VmHWM).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut devices: u64 = 200_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--devices" => {
                devices = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("--devices wants a number"))?
            }
            other => anyhow::bail!("unknown argument {other}; usage: bench-dep-sync [--devices N]"),
        }
    }
    let sim = start_sim(devices, 42);
    let dir = tempfile::tempdir()?;
    let app = start_app(dir.path(), &sim).await;
    let token = connect_token(&app, &sim, "Benchmark").await;

    reset_peak_rss();
    let before = app.kv_stats();
    let started = Instant::now();
    let (s, b) = app
        .admin(Method::POST, &format!("/api/v1/tokens/{token}/sync"), None)
        .await;
    anyhow::ensure!(
        s == StatusCode::OK || s == StatusCode::ACCEPTED,
        "manual sync refused: {s} {b}"
    );
    let ticks = tick_until_idle(&app, token, 1_000).await;
    let elapsed = started.elapsed();
    let after = app.kv_stats();
    let peak = peak_rss_kib();

    let (_, t) = app
        .admin(Method::GET, &format!("/api/v1/tokens/{token}"), None)
        .await;
    anyhow::ensure!(
        t["device_count"] == devices,
        "synced {} devices, expected {devices}",
        t["device_count"]
    );
    let secs = elapsed.as_secs_f64();
    let calls = after.calls() - before.calls();
    let keys = after.keys_touched() - before.keys_touched();
    println!("devices                 {devices}");
    println!(
        "pages fetched           {}",
        sim.control().requests_to("/server/devices")
    );
    println!("scheduler ticks         {ticks}");
    println!("elapsed                 {secs:.1} s");
    println!(
        "devices/min             {:.0}",
        devices as f64 * 60.0 / secs
    );
    println!(
        "store calls/device      {:.3}",
        calls as f64 / devices as f64
    );
    println!(
        "store keys/device       {:.3}",
        keys as f64 / devices as f64
    );
    match peak {
        Some(kib) => println!("peak RSS (host+sim)     {:.0} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS (host+sim)     unavailable (no /proc/self/status)"),
    }

    // Assign one profile to every device (issue: profiles & assignment benchmark).
    let (s, prof) = app
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{token}/profiles"),
            Some(serde_json::json!({
                "name": "Benchmark", "platform": "ios", "user_affinity": "without_user",
            })),
        )
        .await;
    anyhow::ensure!(s == StatusCode::CREATED, "profile refused: {s} {prof}");
    let calls_before = sim.control().requests_to("/profile/devices");
    let kv_before = app.kv_stats();
    let started = Instant::now();
    // Devices Apple reports with another profile first, then those with none: all of them.
    let mut assigned = 0;
    for filter in ["any", "unassigned"] {
        let (s, b) = app
            .admin(
                Method::POST,
                &format!("/api/v1/tokens/{token}/profiles/{}/devices", prof["id"]),
                Some(serde_json::json!({ "filter": filter })),
            )
            .await;
        anyhow::ensure!(s == StatusCode::OK, "assignment: {s} {b}");
        assigned += b["devices"].as_u64().unwrap_or(0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let kv = app.kv_stats();
    println!("--- assign one profile to every device");
    println!("devices assigned        {assigned}");
    println!("elapsed                 {elapsed:.1} s");
    println!("devices/s               {:.0}", assigned as f64 / elapsed);
    println!(
        "Apple calls             {}",
        sim.control().requests_to("/profile/devices") - calls_before
    );
    println!(
        "store calls/device      {:.3}",
        (kv.calls() - kv_before.calls()) as f64 / assigned.max(1) as f64
    );
    app.shutdown().await;
    sim.shutdown();
    Ok(())
}

//! Phases 2 and 3, the command exchange: enqueue → APNs push → `Idle` → command →
//! `Acknowledged` cycles, and delivery of many commands queued by several admins.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mdm_devicesim::{Command, Device, Http, KeepAliveHttp, Status};
use mdm_e2e::StatusCode;
use mdm_e2e::lab::Lab;
use serde_json::json;
use tokio::sync::Notify;

use crate::latency::{Latencies, latencies};

/// The enqueue → push → poll → acknowledge cycles, `workers` at a time, each worker with
/// its own devices in turn. Each cycle leaves the device's queue empty, so the next
/// enqueue for it has nothing ahead and is pushed at once, however soon it comes.
pub async fn cycles(
    lab: &Lab,
    devices: Vec<Device>,
    cycles: usize,
    workers: usize,
) -> anyhow::Result<(f64, Latencies, Latencies)> {
    let by_token: std::collections::HashMap<String, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.push_token_hex(), i))
        .collect();
    let wake: Arc<Vec<Notify>> = Arc::new(devices.iter().map(|_| Notify::new()).collect());
    {
        let wake = wake.clone();
        lab.apns.on_push(move |p| {
            if let Some(i) = by_token.get(&p.token) {
                wake[*i].notify_one();
            }
        });
    }
    let mut groups: Vec<Vec<(usize, Device)>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, d) in devices.into_iter().enumerate() {
        groups[i % workers].push((i, d));
    }
    let admin = lab.app.client();
    let device_http = Arc::new(KeepAliveHttp::to(lab.app.addr));
    let remaining = Arc::new(AtomicUsize::new(cycles));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut group in groups {
        let (wake, remaining, http) = (wake.clone(), remaining.clone(), device_http.clone());
        tasks.push(tokio::spawn(async move {
            let mut total = Vec::new();
            let mut enqueue = Vec::new();
            let mut k = 0;
            while remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let slot = k % group.len();
                k += 1;
                let (i, d) = &mut group[slot];
                let t0 = Instant::now();
                let (s, b) = admin
                    .admin(
                        http::Method::POST,
                        &format!("/api/v1/devices/{}/commands", d.udid),
                        Some(json!({"RequestType": "ProfileList"})),
                    )
                    .await;
                let enqueued = t0.elapsed();
                if s != StatusCode::CREATED || b["push"]["outcome"] != "delivered" {
                    bail!("enqueue for {}: {s} {b}", d.udid);
                }
                let uuid = b["command_uuid"].as_str().unwrap_or_default().to_owned();
                tokio::time::timeout(Duration::from_secs(10), wake[*i].notified())
                    .await
                    .with_context(|| format!("no push for {} within 10 s", d.udid))?;
                let cmd = d
                    .idle(&*http)
                    .await?
                    .with_context(|| format!("{}: pushed, but Idle got nothing", d.udid))?;
                anyhow::ensure!(cmd.uuid == uuid, "{}: got {} not {uuid}", d.udid, cmd.uuid);
                let (status, response) = d.respond(&cmd);
                anyhow::ensure!(status == Status::Acknowledged, "{status:?}");
                let next = d.answer(&*http, &cmd, status, response).await?;
                anyhow::ensure!(next.is_none(), "{}: a command after the ack", d.udid);
                total.push(t0.elapsed());
                enqueue.push(enqueued);
            }
            anyhow::Ok((total, enqueue))
        }));
    }
    let (mut total, mut enqueue) = (Vec::new(), Vec::new());
    for t in tasks {
        let (a, b) = t.await??;
        total.extend(a);
        enqueue.extend(b);
    }
    let rate = total.len() as f64 / start.elapsed().as_secs_f64();
    Ok((rate, latencies(total), latencies(enqueue)))
}

/// The delivery phase (3. in main.rs). Returns the devices, commands acknowledged per second,
/// enqueues per second, and the enqueue latencies.
pub async fn delivery(
    lab: &Lab,
    devices: Vec<Device>,
    total: usize,
    admins: usize,
) -> anyhow::Result<(Vec<Device>, f64, f64, Latencies)> {
    let by_token: std::collections::HashMap<String, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.push_token_hex(), i))
        .collect();
    let wake: Arc<Vec<Notify>> = Arc::new(devices.iter().map(|_| Notify::new()).collect());
    {
        let wake = wake.clone();
        lab.apns.on_push(move |p| {
            if let Some(i) = by_token.get(&p.token) {
                wake[*i].notify_one();
            }
        });
    }
    // Each command's CommandUUID is chosen here, so that every device signs its
    // acknowledgements before the clock starts, as a real device signs on its own CPU:
    // the figure is the server's. Command i goes to device i mod D.
    let uuids: Vec<String> = (0..total).map(|_| mdm_devicesim::random_uuid()).collect();
    let mut devices = devices;
    let n = devices.len();
    for (i, d) in devices.iter_mut().enumerate() {
        let mine: Vec<Command> = uuids
            .iter()
            .skip(i)
            .step_by(n)
            .map(|u| Command {
                uuid: u.clone(),
                request_type: "ProfileList".into(),
                payload: Default::default(),
                raw: Vec::new(),
            })
            .collect();
        d.presign_answers(&mine)?;
    }
    let uuids = Arc::new(uuids);
    let udids: Arc<Vec<String>> = Arc::new(devices.iter().map(|d| d.udid.clone()).collect());
    let acked = Arc::new(AtomicUsize::new(0));
    let all_acked = Arc::new(Notify::new());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let http = Arc::new(KeepAliveHttp::to(lab.app.addr));
    let mut device_tasks = Vec::new();
    for (i, mut d) in devices.into_iter().enumerate() {
        let (wake, acked, all_acked, mut stopped, http) = (
            wake.clone(),
            acked.clone(),
            all_acked.clone(),
            stopped.clone(),
            http.clone(),
        );
        device_tasks.push(tokio::spawn(async move {
            while !*stopped.borrow() {
                tokio::select! {
                    _ = wake[i].notified() => {}
                    _ = stopped.changed() => break,
                }
                let answered = d.run_until_idle(&*http).await?;
                if acked.fetch_add(answered.len(), Ordering::SeqCst) + answered.len() >= total {
                    all_acked.notify_one();
                }
            }
            anyhow::Ok(d)
        }));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut admin_tasks = Vec::new();
    for _ in 0..admins {
        let (next, udids, uuids) = (next.clone(), udids.clone(), uuids.clone());
        // One kept-alive connection per admin, as an API client keeps it.
        let admin = KeepAliveHttp::to(lab.app.addr);
        let base = format!("http://{}", lab.app.addr);
        let auth = format!("Bearer {}", mdm_e2e::ADMIN_KEY);
        admin_tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    break;
                }
                let mut cmd = plist::Dictionary::new();
                cmd.insert("RequestType".into(), "ProfileList".into());
                let mut top = plist::Dictionary::new();
                top.insert("CommandUUID".into(), uuids[i].clone().into());
                top.insert("Command".into(), cmd.into());
                let mut body = Vec::new();
                plist::to_writer_xml(&mut body, &top)?;
                let url = format!("{base}/api/v1/devices/{}/commands", udids[i % udids.len()]);
                let t0 = Instant::now();
                let r = admin
                    .send(
                        "POST",
                        &url,
                        &[
                            ("authorization", auth.as_str()),
                            ("content-type", "application/x-apple-plist"),
                        ],
                        body,
                    )
                    .await?;
                if r.status != 201 {
                    bail!(
                        "enqueue {i}: {} {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    );
                }
                lat.push(t0.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in admin_tasks {
        lat.extend(t.await??);
    }
    let enqueued_in = start.elapsed();
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        while acked.load(Ordering::SeqCst) < total {
            all_acked.notified().await;
        }
    })
    .await;
    let delivered_in = start.elapsed();
    let _ = stop.send(true);
    if done.is_err() {
        bail!(
            "{} of {total} commands acknowledged 60 s after the first enqueue",
            acked.load(Ordering::SeqCst)
        );
    }
    let mut devices = Vec::with_capacity(device_tasks.len());
    for t in device_tasks {
        devices.push(t.await??);
    }
    Ok((
        devices,
        total as f64 / delivered_in.as_secs_f64(),
        total as f64 / enqueued_in.as_secs_f64(),
        latencies(lat),
    ))
}

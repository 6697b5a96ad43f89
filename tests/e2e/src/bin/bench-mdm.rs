//! Benchmark: the device-facing command loop through the real components on the local
//! host (SQLite store), with many simulated devices enrolled zero-touch.
//!
//! 1. Signed `Idle` polls with empty queues (`PUT /mdm/connect`): at full load (C
//!    connections, each sending its next request as soon as the previous one is
//!    answered), requests/s with p50/p99 latency; then at a fixed offered rate (open loop:
//!    request i leaves at t0 + i/R whatever happened to the others, and its latency counts
//!    from then, so a stalled server cannot hide its queueing).
//! 2. Enqueue → push → poll → acknowledge cycles: the admin queues a command for a device
//!    (`POST /api/v1/devices/{device}/commands`), apnssim receives the APNs push, the
//!    woken device sends `Idle`, gets the command and acknowledges it (the empty answer
//!    ends the cycle). Cycles/s and p50/p99 of the whole cycle.
//!
//! 3. Delivery to many devices: `--admins` tasks queue `--deliver` commands round-robin
//!    over `--deliver-devices` devices as fast as the admin API answers; each device, woken
//!    by its push, fetches and acknowledges everything queued for it in one exchange, as a
//!    device does. Commands acknowledged per second from the first enqueue to the last
//!    acknowledgement, and the enqueue latency. Nothing runs the scheduler meanwhile: a
//!    command that waited for a follow-up push would stall the phase (it fails after 60 s).
//!
//! An `Idle` body is the same on every poll of a device, so its `Mdm-Signature` is made
//! once per device; the server still verifies it on every request. Acknowledgements are
//! signed as they are sent, as a device does. Requests reuse kept-alive connections.
//!
//! `./scripts/bench-mdm.sh [--devices N] [--concurrency C] [--duration S] [--rate R]
//! [--cycles N] [--cycle-workers W] [--deliver N] [--deliver-devices D] [--admins A]`
//! (builds the components and this binary in release).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use mdm_devicesim::{Command, Device, Http, KeepAliveHttp, SharedKeys, Status};
use mdm_e2e::StatusCode;
use mdm_e2e::lab::{Lab, PushCert};
use serde_json::json;
use tokio::sync::Notify;

struct Options {
    devices: usize,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    rate: f64,
    cycles: usize,
    cycle_workers: usize,
    deliver: usize,
    deliver_devices: usize,
    admins: usize,
}

const USAGE: &str = "bench-mdm [--devices N (1000)] [--concurrency C (32)] [--duration S (10)] \
     [--warmup S (2)] [--rate R (1000; 0 skips)] [--cycles N (2000; 0 skips)] [--cycle-workers W (16)] \
     [--deliver N (4000; 0 skips)] [--deliver-devices D (200)] [--admins A (4)]";

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        devices: 1000,
        concurrency: 32,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        rate: 1000.0,
        cycles: 2000,
        cycle_workers: 16,
        deliver: 4000,
        deliver_devices: 200,
        admins: 4,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().context("flag needs a value");
        match a.as_str() {
            "--devices" => o.devices = value()?.parse()?,
            "--concurrency" => o.concurrency = value()?.parse()?,
            "--duration" => o.duration = Duration::from_secs_f64(value()?.parse()?),
            "--warmup" => o.warmup = Duration::from_secs_f64(value()?.parse()?),
            "--rate" => o.rate = value()?.parse()?,
            "--cycles" => o.cycles = value()?.parse()?,
            "--cycle-workers" => o.cycle_workers = value()?.parse()?,
            "--deliver" => o.deliver = value()?.parse()?,
            "--deliver-devices" => o.deliver_devices = value()?.parse()?,
            "--admins" => o.admins = value()?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; usage: {USAGE}"),
        }
    }
    anyhow::ensure!(
        o.devices > 0
            && o.concurrency > 0
            && o.rate >= 0.0
            && o.cycle_workers > 0
            && o.admins > 0
            && o.deliver_devices > 0,
        "counts must be positive"
    );
    Ok(o)
}

/// A device's `Idle`, ready to send again and again.
#[derive(Clone)]
struct Poll {
    path: String,
    body: Bytes,
    signature: HeaderValue,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(mdm_host::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one `Idle`; an error unless the answer is the empty 200 of an empty queue.
async fn poll(sender: &mut Sender, p: &Poll) -> anyhow::Result<()> {
    let req = http::Request::builder()
        .method("PUT")
        .uri(p.path.as_str())
        .header("host", "mdm.bench")
        .header("content-type", "application/x-apple-aspen-mdm")
        .header("mdm-signature", p.signature.clone())
        .body(Full::new(p.body.clone()))?;
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK || !body.is_empty() {
        bail!(
            "Idle answered {status} with {} bytes: {}",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Latencies {
    n: usize,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
}

fn latencies(mut v: Vec<Duration>) -> Latencies {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Latencies {
        n: v.len(),
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: *v.last().unwrap(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// C connections, each polling the next device as soon as its previous poll returned.
/// Returns requests/s over `duration` (after `warmup`) and the latencies measured then.
async fn closed_loop(
    addr: SocketAddr,
    polls: Arc<Vec<Poll>>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(f64, Latencies)> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let (measure_from, measure_to) = (start + warmup, start + warmup + duration);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (polls, next) = (polls.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut lat = Vec::new();
            loop {
                let sent = Instant::now();
                if sent >= measure_to {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed) % polls.len();
                poll(&mut sender, &polls[i]).await?;
                if sent >= measure_from {
                    lat.push(sent.elapsed());
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    Ok((all.len() as f64 / duration.as_secs_f64(), latencies(all)))
}

/// Open loop at `rate` requests/s: request i is due at t0 + i/rate and goes out then on a
/// free kept-alive connection (a new one if all are busy); its latency counts from when
/// it was due. Returns the rate achieved, the latencies after `warmup`, and the most
/// connections that were open.
async fn open_loop(
    addr: SocketAddr,
    polls: Arc<Vec<Poll>>,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(f64, Latencies, usize)> {
    let pool: Arc<Mutex<Vec<Sender>>> = Arc::new(Mutex::new(Vec::new()));
    let opened = Arc::new(AtomicUsize::new(0));
    let total = ((warmup + duration).as_secs_f64() * rate) as usize;
    let skip = (warmup.as_secs_f64() * rate) as usize;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let (pool, opened, polls) = (pool.clone(), opened.clone(), polls.clone());
        tasks.push(tokio::spawn(async move {
            let pooled = pool.lock().unwrap().pop();
            let mut sender = match pooled {
                Some(s) => s,
                None => {
                    opened.fetch_add(1, Ordering::Relaxed);
                    connect(addr).await?
                }
            };
            poll(&mut sender, &polls[i % polls.len()]).await?;
            let latency = due.elapsed();
            pool.lock().unwrap().push(sender);
            anyhow::Ok((tokio::time::Instant::now(), latency))
        }));
    }
    let mut lat = Vec::with_capacity(total - skip);
    let mut last = start;
    for (i, t) in tasks.into_iter().enumerate() {
        let (done, latency) = t.await??;
        last = last.max(done);
        if i >= skip {
            lat.push(latency);
        }
    }
    let span = (last - start).as_secs_f64();
    Ok((
        total as f64 / span,
        latencies(lat),
        opened.load(Ordering::Relaxed),
    ))
}

/// The enqueue → push → poll → acknowledge cycles, `workers` at a time, each worker with
/// its own devices in turn. Each cycle leaves the device's queue empty, so the next
/// enqueue for it has nothing ahead and is pushed at once, however soon it comes.
async fn cycles(
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

/// The delivery phase (3. above). Returns the devices, commands acknowledged per second,
/// enqueues per second, and the enqueue latencies.
async fn delivery(
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

fn main() -> anyhow::Result<()> {
    // SAFETY: the first thing the process does; no thread exists yet.
    unsafe { mdm_host::skip_library_backtraces() };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let o = options()?;
    let command: Vec<String> = std::env::args().collect();
    let command = command.join(" ");
    eprintln!(
        "setting up: depsim, apnssim, the app, {} devices...",
        o.devices
    );
    let lab = Lab::start((o.devices + o.devices / 2 + 20) as u64, PushCert::Trusted).await;
    let setup = Instant::now();
    let keys = SharedKeys::generate()?;
    let devices = lab
        .enroll_many(
            o.devices,
            &keys,
            Arc::new(KeepAliveHttp::to(lab.app.addr)),
            8,
        )
        .await;
    eprintln!(
        "{} devices enrolled in {:.1} s",
        devices.len(),
        setup.elapsed().as_secs_f64()
    );
    let polls: Arc<Vec<Poll>> = Arc::new(
        devices
            .iter()
            .map(|d| {
                let r = d.signed_idle()?;
                let (_, path) = mdm_devicesim::http::split_url(&r.url)?;
                Ok(Poll {
                    path: path.to_owned(),
                    body: Bytes::from(r.body),
                    signature: HeaderValue::from_str(&r.signature.context("SignMessage")?)?,
                })
            })
            .collect::<anyhow::Result<_>>()?,
    );
    // One poll each: queues are empty (nothing was queued) and every device answers.
    let mut s = connect(lab.app.addr).await?;
    for p in polls.iter() {
        poll(&mut s, p).await?;
    }

    let addr = lab.app.addr;
    println!("$ {command}");
    println!(
        "{} devices enrolled zero-touch; mdm-host (release components, SQLite store), {} cores",
        o.devices,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let kv0 = lab.app.kv_stats();
    let (rps, full) = closed_loop(addr, polls.clone(), o.concurrency, o.warmup, o.duration).await?;
    let kv1 = lab.app.kv_stats();
    // Every poll of the phase, warm-up included, made these store calls.
    let made = rps * (o.duration + o.warmup).as_secs_f64();
    println!(
        "signed Idle polls, empty queues, full load ({} connections, {:.0} s):",
        o.concurrency,
        o.duration.as_secs_f64()
    );
    println!(
        "  {rps:8.0} req/s   p50 {}   p99 {}   p99.9 {}   max {}   ({} requests; ~{:.1} store calls each)",
        ms(full.p50),
        ms(full.p99),
        ms(full.p999),
        ms(full.max),
        full.n,
        (kv1.calls() - kv0.calls()) as f64 / made,
    );
    if o.rate > 0.0 {
        let (achieved, paced, conns) =
            open_loop(addr, polls.clone(), o.rate, o.warmup, o.duration).await?;
        println!(
            "signed Idle polls at an offered {:.0} req/s (open loop, {:.0} s):",
            o.rate,
            o.duration.as_secs_f64()
        );
        println!(
            "  {achieved:8.0} req/s   p50 {}   p99 {}   p99.9 {}   max {}   ({} requests, {conns} connections opened)",
            ms(paced.p50),
            ms(paced.p99),
            ms(paced.p999),
            ms(paced.max),
            paced.n
        );
    }
    let mut devices = devices;
    if o.deliver > 0 {
        let rest = devices.split_off(o.deliver_devices.min(devices.len()));
        let n = devices.len();
        let (mut used, cps, eps, enqueue) = delivery(&lab, devices, o.deliver, o.admins).await?;
        println!(
            "{} commands to {n} devices, {} admin connections queueing, devices woken by APNs:",
            o.deliver, o.admins
        );
        println!(
            "  {cps:8.0} commands/s acknowledged   ({eps:.0} enqueues/s; enqueue p50 {}   p99 {})",
            ms(enqueue.p50),
            ms(enqueue.p99)
        );
        used.extend(rest);
        devices = used;
    }
    if o.cycles > 0 {
        let (cps, cycle, enqueue) = cycles(&lab, devices, o.cycles, o.cycle_workers).await?;
        println!(
            "enqueue -> APNs push -> Idle -> command -> Acknowledged ({} workers):",
            o.cycle_workers
        );
        println!(
            "  {cps:8.1} cycles/s   p50 {}   p99 {}   max {}   ({} cycles; the enqueue alone, push included: p50 {}   p99 {})",
            ms(cycle.p50),
            ms(cycle.p99),
            ms(cycle.max),
            cycle.n,
            ms(enqueue.p50),
            ms(enqueue.p99)
        );
    }
    lab.shutdown().await;
    Ok(())
}

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
//! (builds the components and this binary in release).//!
//! `polls` runs phase 1, `commands` phases 2 and 3, `latency` sums up their latencies.

mod commands;
mod latency;
mod polls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::HeaderValue;
use mdm_devicesim::{KeepAliveHttp, SharedKeys};
use mdm_e2e::lab::{Lab, PushCert};

use commands::{cycles, delivery};
use latency::ms;
use polls::{Poll, closed_loop, connect, open_loop, poll};

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
        let kv0 = lab.app.kv_stats();
        let (mut used, cps, eps, enqueue) = delivery(&lab, devices, o.deliver, o.admins).await?;
        let kv1 = lab.app.kv_stats();
        println!(
            "{} commands to {n} devices, {} admin connections queueing, devices woken by APNs:",
            o.deliver, o.admins
        );
        println!(
            "  {cps:8.0} commands/s acknowledged   ({eps:.0} enqueues/s; enqueue p50 {}   p99 {}; ~{:.1} store calls per command, enqueue to answer)",
            ms(enqueue.p50),
            ms(enqueue.p99),
            (kv1.calls() - kv0.calls()) as f64 / o.deliver as f64,
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

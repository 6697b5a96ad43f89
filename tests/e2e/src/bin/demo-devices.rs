//! `demo-devices`: the Apple side of the quickstart demo (`scripts/demo.sh`) that is not
//! the Device Assignment API. It runs the APNs stand-in (`tests/apnssim`, in this process,
//! so that a push wakes the simulated device it is for) and a fake Apple device CA, and
//! turns on devices of the DEP simulator's organisation: each fetches its cloud
//! configuration, enrolls zero-touch (signed MachineInfo, enrollment profile, SCEP,
//! Authenticate, TokenUpdate), then answers the commands its pushes announce.
//!
//! A script drives it by lines. At start it writes into `--dir` what the server needs
//! (the runtime config with the push certificate, the device CA), prints `name=value`
//! lines and `ready`. Then, on standard input:
//! - `enroll ADDR PROFILE_UUID`: turns on `--devices` iPhones and iPads that Apple
//!   Business Manager has assigned profile PROFILE_UUID, against the server listening on
//!   ADDR; one `device ...` line each, then `enrolled N`. From then on every push is a
//!   `pushed UDID` line and every command answered an `answered UDID TYPE UUID STATUS` line.
//! - `stop`, or the end of input: prints `stopped` and exits.
//!
//! Errors are `error: ...` lines on standard error; a failed enrollment ends the process
//! with status 1.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use mdm_apnssim::ApnsSim;
use mdm_devicesim::{Device, FakeAppleCa, Http, HyperHttp};
use mdm_e2e::lab::{self, PushCert};
use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

const USAGE: &str = "demo-devices --dep URL --dir DIR [--devices N (5)]";

struct Options {
    dep: String,
    dir: PathBuf,
    devices: usize,
}

fn options() -> anyhow::Result<Options> {
    let (mut dep, mut dir, mut devices) = (None, None, 5);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--dep" => dep = Some(value()?.trim_end_matches('/').to_owned()),
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--devices" => devices = value()?.parse().context("--devices")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    Ok(Options {
        dep: dep.context(USAGE)?,
        dir: dir.context(USAGE)?,
        devices,
    })
}

/// Push token (hex) → the UDID and wake-up of the device it belongs to.
type Wakers = Arc<Mutex<HashMap<String, (String, Arc<Notify>)>>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let o = options()?;
    std::fs::create_dir_all(&o.dir).with_context(|| format!("creating {}", o.dir.display()))?;
    let apns = ApnsSim::start().context("starting the APNs stand-in")?;
    let runtime_config = lab::runtime_config(&o.dir, &apns, PushCert::Trusted);
    let apple = FakeAppleCa::generate().context("a device CA")?;
    let ca_file = o.dir.join("apple-device-ca.pem");
    std::fs::write(&ca_file, apple.cert_pem())?;
    let wakers: Wakers = Arc::default();
    {
        let wakers = wakers.clone();
        apns.on_push(move |p| {
            let wakers = wakers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((udid, wake)) = wakers.get(&p.token) {
                println!("pushed {udid} -> {}", p.status);
                wake.notify_one();
            }
        });
    }
    println!("apns_base_url={}", apns.base_url());
    println!("apns_topic={}", apns.topic());
    println!("runtime_config={}", runtime_config.display());
    println!("apple_device_ca={}", ca_file.display());
    println!("ready");

    let mut lines = stdin_lines();
    let mut enrolled = false;
    while let Some(line) = lines.recv().await {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["enroll", addr, profile] if !enrolled => {
                let addr: SocketAddr = addr.parse().context("enroll: ADDR")?;
                let devices = enroll(&o, &apple, &wakers, addr, profile).await?;
                println!("enrolled {}", devices.len());
                for (device, wake) in devices {
                    tokio::spawn(answer_pushes(device, HyperHttp::to(addr), wake));
                }
                enrolled = true;
            }
            ["stop"] => break,
            [] => {}
            _ => eprintln!("error: not understood: {line}"),
        }
    }
    println!("stopped");
    apns.shutdown();
    Ok(())
}

/// Standard input, line by line (a blocking reader on a thread of its own).
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Turns on `o.devices` iPhones and iPads assigned `profile`, all at once; each enrolls
/// and goes through its setup. Returns them with their wake-ups.
async fn enroll(
    o: &Options,
    apple: &FakeAppleCa,
    wakers: &Wakers,
    addr: SocketAddr,
    profile: &str,
) -> anyhow::Result<Vec<(Device, Arc<Notify>)>> {
    let dep = HyperHttp::by_url();
    let listed = dep_call(&dep, "GET", &format!("{}/_depsim/devices", o.dep)).await?;
    let listed: Vec<mdm_depsim::Device> =
        serde_json::from_value(listed["devices"].clone()).context("depsim's device list")?;
    let chosen: Vec<mdm_depsim::Device> = listed
        .into_iter()
        .filter(|d| matches!(d.device_family.as_str(), "iPhone" | "iPad"))
        .filter(|d| d.profile_status == "assigned" && d.profile_uuid.as_deref() == Some(profile))
        .take(o.devices)
        .collect();
    if chosen.len() < o.devices {
        bail!(
            "the organisation has {} iPhones and iPads assigned profile {profile}, not {}",
            chosen.len(),
            o.devices
        );
    }
    let mut turning_on = JoinSet::new();
    for d in chosen {
        let (kind, os) = lab::device_kind(&d.device_family);
        let device = Device::new(
            apple,
            kind,
            &d.serial_number,
            &mdm_devicesim::random_udid(kind),
            os,
        )?;
        let wake = Arc::new(Notify::new());
        wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device.push_token_hex(), (device.udid.clone(), wake.clone()));
        let config_url = format!(
            "{}/_depsim/devices/{}/cloud-configuration",
            o.dep, d.serial_number
        );
        turning_on.spawn(async move {
            let setup = turn_on(device, &config_url, addr, &d.model).await;
            setup.map(|device| (device, wake))
        });
    }
    let mut devices = Vec::new();
    while let Some(done) = turning_on.join_next().await {
        devices.push(done.context("enrollment task")??);
    }
    Ok(devices)
}

/// What Setup Assistant does on a new device: asks Apple for its cloud configuration,
/// enrolls with the server it names, and answers the setup the server sends.
async fn turn_on(
    mut d: Device,
    config_url: &str,
    addr: SocketAddr,
    model: &str,
) -> anyhow::Result<Device> {
    let config = dep_call(&HyperHttp::by_url(), "POST", config_url).await?;
    let url = config["url"]
        .as_str()
        .context("cloud configuration without url")?;
    let awaiting = config["await_device_configured"] == true;
    let server = HyperHttp::to(addr);
    d.enroll_ade(&server, url, awaiting)
        .await
        .with_context(|| format!("{} enrolling at {url}", d.serial))?;
    let setup = d
        .run_until_idle(&server)
        .await
        .with_context(|| format!("{} answering its setup", d.serial))?;
    let identity = d
        .mdm_identity()
        .and_then(|i| i.certificate.common_name())
        .unwrap_or_default();
    let answered: Vec<&str> = setup
        .iter()
        .map(|a| a.command.request_type.as_str())
        .collect();
    println!(
        "device {} {} ({model}): profile {:?} from {url}, SCEP identity CN={identity}, \
         setup answered: {}",
        d.serial,
        d.udid,
        config["profile_name"].as_str().unwrap_or(""),
        if answered.is_empty() {
            "nothing".to_owned()
        } else {
            answered.join(", ")
        }
    );
    Ok(d)
}

/// A device at rest: each push wakes it to fetch and answer what is queued for it.
async fn answer_pushes(mut d: Device, server: HyperHttp, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        match d.run_until_idle(&server).await {
            Ok(answered) => {
                for a in answered {
                    println!(
                        "answered {} {} {} {}",
                        d.udid,
                        a.command.request_type,
                        a.command.uuid,
                        a.status.as_str()
                    );
                }
            }
            Err(e) => eprintln!("error: {} checking in: {e}", d.udid),
        }
    }
}

/// A depsim control call; its JSON answer, or an error naming the status.
async fn dep_call(http: &HyperHttp, method: &str, url: &str) -> anyhow::Result<Value> {
    let r = http
        .send(method, url, &[], Vec::new())
        .await
        .with_context(|| format!("{method} {url}"))?;
    if r.status != 200 {
        bail!("{method} {url}: {} {}", r.status, r.body_text());
    }
    serde_json::from_slice(&r.body).with_context(|| format!("{method} {url}: not JSON"))
}

//! Benchmark: the signed `Idle` poll of one enrolled device with nothing queued, under wrk,
//! on kept-alive connections and with `Connection: close`, through our components on the
//! local host (served as Spin 4 serves them), and beside NanoMDM when one is given.
//!
//! Both servers get the same bytes: the device enrolls zero-touch with us (ADE, our
//! SCEP identity), then with the same identity sends NanoMDM a signed Authenticate and
//! TokenUpdate (NanoMDM trusts our SCEP CA through `-ca`); wrk replays its signed Idle.
//! Each server verifies the Mdm-Signature, the chain and the enrollment on every request.
//! For each load, `--runs` runs of `--duration` seconds alternate between the servers;
//! the table gives medians: requests/s, p50/p99 latency (wrk's), and server CPU per poll
//! (user + system time of the server's process over the run, divided by its requests;
//! our host runs inside this process, whose other tasks are idle meanwhile).
//!
//! `./scripts/bench-polls.sh [--duration S (10)] [--runs N (3)] [--loads 16k,16c,4k,1k,1c]
//! [--nanomdm PATH] [--wrk PATH] [--server URL --admin-key KEY [--server-pid PID]]` — a
//! load is `<connections>k` (kept alive) or `<connections>c` (`Connection: close`). NanoMDM
//! (how to build it: docs/benchmarks.md) is taken from `--nanomdm` or the `NANOMDM`
//! environment variable; without it only our side is measured.
//!
//! With `--server`, "ours" is a server started elsewhere (`spin up`, `scripts/run.sh`) at
//! that plain-HTTP address: the device enrolls through its admin API instead
//! (account-driven Device Enrollment of a benchmark user, [`mdm_e2e::external`]; the key
//! from `--admin-key` or `MDM_ADMIN_KEY`), and CPU per poll is that of `--server-pid`
//! (e.g. `pgrep -f 'spin up'`; left out of the table without it). NanoMDM then trusts
//! our SCEP CA as before.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mdm_devicesim::Device;
use mdm_e2e::lab::{Lab, PushCert};

const USAGE: &str = "bench-polls [--duration S (10)] [--runs N (3)] [--loads 16k,16c,4k,1k,1c] \
     [--nanomdm PATH (or $NANOMDM)] [--wrk PATH (wrk)] \
     [--server URL --admin-key KEY (or $MDM_ADMIN_KEY) [--server-pid PID]]";

const CHECKIN: &str = "application/x-apple-aspen-mdm-checkin";
const REPORT: &str = "application/x-apple-aspen-mdm";

struct Options {
    duration: u64,
    runs: usize,
    loads: Vec<Load>,
    nanomdm: Option<PathBuf>,
    wrk: String,
    /// A server started elsewhere, and what measuring it needs.
    server: Option<std::net::SocketAddr>,
    admin_key: Option<String>,
    server_pid: Option<u32>,
}

#[derive(Clone, Copy)]
struct Load {
    connections: usize,
    keep_alive: bool,
}

impl Load {
    fn parse(s: &str) -> anyhow::Result<Load> {
        let (n, mode) = s.split_at(s.len().saturating_sub(1));
        let connections: usize = n.parse().with_context(|| format!("load {s:?}"))?;
        let keep_alive = match mode {
            "k" => true,
            "c" => false,
            _ => bail!("load {s:?}: <connections>k or <connections>c"),
        };
        anyhow::ensure!(connections > 0, "load {s:?}: no connections");
        Ok(Load {
            connections,
            keep_alive,
        })
    }

    fn label(&self) -> String {
        let mode = if self.keep_alive {
            "keep-alive"
        } else {
            "`Connection: close`"
        };
        let plural = if self.connections == 1 { "" } else { "s" };
        format!("{} connection{plural}, {mode}", self.connections)
    }
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        duration: 10,
        runs: 3,
        loads: ["16k", "16c", "4k", "1k", "1c"]
            .iter()
            .map(|s| Load::parse(s))
            .collect::<anyhow::Result<_>>()?,
        nanomdm: std::env::var_os("NANOMDM").map(PathBuf::from),
        wrk: "wrk".into(),
        server: None,
        admin_key: std::env::var("MDM_ADMIN_KEY").ok(),
        server_pid: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().context("flag needs a value");
        match a.as_str() {
            "--duration" => o.duration = value()?.parse()?,
            "--runs" => o.runs = value()?.parse()?,
            "--loads" => {
                o.loads = value()?
                    .split(',')
                    .map(Load::parse)
                    .collect::<anyhow::Result<_>>()?
            }
            "--nanomdm" => o.nanomdm = Some(value()?.into()),
            "--wrk" => o.wrk = value()?,
            "--server" => o.server = Some(server_addr(&value()?)?),
            "--admin-key" => o.admin_key = Some(value()?),
            "--server-pid" => o.server_pid = Some(value()?.parse()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; usage: {USAGE}"),
        }
    }
    anyhow::ensure!(
        o.duration > 0 && o.runs > 0,
        "duration and runs must be positive"
    );
    anyhow::ensure!(
        o.server.is_none() || o.admin_key.is_some(),
        "--server needs the admin API key (--admin-key or MDM_ADMIN_KEY)"
    );
    Ok(o)
}

/// `http://host:port` (any path ignored) as a socket address.
fn server_addr(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    let uri: http::Uri = url.parse().with_context(|| format!("--server {url:?}"))?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http"),
        "--server {url:?}: the plain-HTTP address the server listens on (http://host:port)"
    );
    let host = uri.host().context("--server: no host")?;
    let port = uri.port_u16().unwrap_or(80);
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("--server {url:?}: no address"))
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms_per_poll: f64,
}

/// A server under test: where wrk sends the poll, and whose CPU time counts.
struct Target {
    name: &'static str,
    url: String,
    /// Whose CPU time counts; unknown for a server started elsewhere without `--server-pid`.
    pid: Option<u32>,
}

/// User + system CPU time of process `pid` so far.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: fields count from the last ')'.
    let rest = &stat[stat.rfind(')').context("/proc stat")? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // USER_HZ: the unit of /proc times, 100 on every Linux ABI.
    Ok(Duration::from_millis(ticks * 10))
}

/// A wrk latency figure (`4.50ms`, `812.00us`, `1.02s`) in milliseconds.
fn wrk_ms(s: &str) -> anyhow::Result<f64> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .context("latency unit")?;
    let v: f64 = num.parse()?;
    Ok(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => bail!("latency unit {unit:?}"),
    })
}

fn run_wrk(
    o: &Options,
    script: &Path,
    target: &Target,
    load: Load,
    threads: usize,
) -> anyhow::Result<Run> {
    let cpu0 = target.pid.map(cpu_time).transpose()?;
    let out = Command::new(&o.wrk)
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", o.duration))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(&target.url)
        .env("POLL_CLOSE", if load.keep_alive { "0" } else { "1" })
        .output()
        .with_context(|| format!("running {} (apt-get install wrk)", o.wrk))?;
    let cpu = match (target.pid, cpu0) {
        (Some(pid), Some(c0)) => Some(cpu_time(pid)? - c0),
        _ => None,
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut requests = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = Some(v.trim().parse::<f64>()?);
        } else if let Some(v) = t.strip_prefix("50%") {
            p50 = Some(wrk_ms(v.trim())?);
        } else if let Some(v) = t.strip_prefix("99%") {
            p99 = Some(wrk_ms(v.trim())?);
        } else if t.contains(" requests in ") {
            requests = Some(t.split(' ').next().unwrap_or("0").parse::<f64>()?);
        } else if t.starts_with("Non-2xx") || t.starts_with("Socket errors") {
            bail!("{}: {t}\n{text}", target.name);
        }
    }
    let requests = requests.context("wrk: no request count")?;
    anyhow::ensure!(requests > 0.0, "{}: no request answered", target.name);
    Ok(Run {
        rps: rps.context("wrk: no Requests/sec")?,
        p50_ms: p50.context("wrk: no 50%")?,
        p99_ms: p99.context("wrk: no 99%")?,
        cpu_ms_per_poll: cpu.map_or(f64::NAN, |c| c.as_secs_f64() * 1000.0 / requests),
    })
}

/// CPU per poll for the table; a dash when the server's process is unknown.
fn cpu_figure(ms: f64) -> String {
    if ms.is_nan() {
        "–".into()
    } else {
        format!("{ms:.2}")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The medians of a load's runs.
fn summary(runs: &[Run]) -> Run {
    Run {
        rps: median(runs.iter().map(|r| r.rps).collect()),
        p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
        cpu_ms_per_poll: median(runs.iter().map(|r| r.cpu_ms_per_poll).collect()),
    }
}

/// wrk's script: the device's signed Idle, sent again and again; `POLL_CLOSE=1` asks for
/// `Connection: close` (wrk then opens a connection per request).
fn write_script(dir: &Path, body: &[u8], signature: &str) -> anyhow::Result<PathBuf> {
    let body_path = dir.join("idle.plist");
    std::fs::write(&body_path, body)?;
    let script = dir.join("idle.lua");
    let mut f = std::fs::File::create(&script)?;
    writeln!(
        f,
        "local f = assert(io.open({:?}, \"rb\"))\nwrk.method = \"PUT\"\nwrk.body = f:read(\"*a\")\nf:close()\n\
         wrk.headers[\"Content-Type\"] = \"application/x-apple-aspen-mdm\"\n\
         wrk.headers[\"Mdm-Signature\"] = {signature:?}\n\
         if os.getenv(\"POLL_CLOSE\") == \"1\" then wrk.headers[\"Connection\"] = \"close\" end",
        body_path.display().to_string()
    )?;
    Ok(script)
}

/// NanoMDM running with file storage and our SCEP CA as its `-ca`; stopped on drop.
struct NanoMdm {
    child: Child,
    base: String,
}

impl Drop for NanoMdm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed PUT as a device sends it: check-in messages as
/// `application/x-apple-aspen-mdm-checkin` (how a combined endpoint tells them from reports).
async fn put(
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    signature: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let uri: http::Uri = url.parse()?;
    let addr = format!(
        "{}:{}",
        uri.host().context("host")?,
        uri.port_u16().context("port")?
    );
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(mdm_host::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method("PUT")
        .uri(uri.path())
        .header("host", uri.authority().context("authority")?.as_str())
        .header("content-type", content_type)
        .header("mdm-signature", signature)
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await?
        .to_bytes();
    Ok((status, body.to_vec()))
}

/// Starts NanoMDM and enrolls `d`'s identity in it (signed Authenticate, TokenUpdate).
async fn start_nanomdm(bin: &Path, dir: &Path, d: &Device) -> anyhow::Result<NanoMdm> {
    let profile = d.profile().context("device has no profile")?;
    let ca_pem: String = profile.ca_certs.iter().map(|c| c.to_pem()).collect();
    std::fs::write(dir.join("ca.pem"), ca_pem)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .arg("-ca")
        .arg(dir.join("ca.pem"))
        .args([
            "-api",
            "bench-api-key",
            "-storage",
            "filekv",
            "-storage-dsn",
        ])
        .arg(dir.join("nanomdm-db"))
        .arg("-listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("nanomdm.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let n = NanoMdm {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "NanoMDM did not listen within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("{}/mdm", n.base);
    for message in [d.authenticate_message()?, d.token_update_message(false)?] {
        let mut body = Vec::new();
        plist::to_writer_xml(&mut body, &plist::Value::Dictionary(message.clone()))?;
        let sig = d
            .sign_body(&body)?
            .context("profile asks for no signature")?;
        let (status, answer) = put(&url, CHECKIN, body, &sig).await?;
        anyhow::ensure!(
            status == 200,
            "NanoMDM refused {:?}: {status} {}; its log: {}",
            message.get("MessageType"),
            String::from_utf8_lossy(&answer),
            std::fs::read_to_string(dir.join("nanomdm.log")).unwrap_or_default()
        );
    }
    Ok(n)
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
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let dir = tempfile::tempdir()?;
    let (lab, addr, pid, d) = match o.server {
        Some(addr) => {
            eprintln!("enrolling one device with the server at {addr} through its admin API...");
            let key = o.admin_key.as_deref().context("admin key")?;
            let e = mdm_e2e::external::enroll_device(addr, key).await?;
            eprintln!(
                "enrolled as user {} (group {}); delete both when done",
                e.username, e.group
            );
            (None, addr, o.server_pid, e.device)
        }
        None => {
            eprintln!("setting up: depsim, apnssim, the app, one device enrolled zero-touch...");
            let lab = Lab::start(4, PushCert::Trusted).await;
            let serial = lab.serials("iPhone", 1).pop().context("a serial")?;
            lab.assign(std::slice::from_ref(&serial)).await;
            let mut d = lab.device(&serial);
            lab.enroll(&mut d).await;
            let addr = lab.app.addr;
            (Some(lab), addr, Some(std::process::id()), d)
        }
    };
    let idle = d.signed_idle()?;
    let signature = idle.signature.clone().context("SignMessage")?;
    let (_, path) = mdm_devicesim::http::split_url(&idle.url)?;
    let (status, answer) = put(
        &format!("http://{addr}{path}"),
        REPORT,
        idle.body.clone(),
        &signature,
    )
    .await?;
    anyhow::ensure!(status == 200 && answer.is_empty(), "our Idle: {status}");
    let script = write_script(dir.path(), &idle.body, &signature)?;

    let mut targets = vec![Target {
        name: "ours",
        url: format!("http://{addr}{path}"),
        pid,
    }];
    let nano = match &o.nanomdm {
        Some(bin) => {
            let n = start_nanomdm(bin, dir.path(), &d).await?;
            let (status, answer) = put(
                &format!("{}/mdm", n.base),
                REPORT,
                idle.body.clone(),
                &signature,
            )
            .await?;
            anyhow::ensure!(
                status == 200 && answer.is_empty(),
                "NanoMDM's Idle: {status} {}",
                String::from_utf8_lossy(&answer)
            );
            targets.push(Target {
                name: "NanoMDM",
                url: format!("{}/mdm", n.base),
                pid: Some(n.child.id()),
            });
            Some(n)
        }
        None => None,
    };

    println!("$ {command}");
    println!(
        "one enrolled device's signed Idle, nothing queued; wrk, {} run(s) of {} s per load, medians; {} cores",
        o.runs,
        o.duration,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    match o.server {
        Some(addr) => println!(
            "ours: the server at {addr}{}",
            if pid.is_some() {
                ""
            } else {
                " (no --server-pid: CPU not measured)"
            }
        ),
        None => println!(
            "ours: the release components on mdm-host (SQLite store, served as Spin 4 serves them)"
        ),
    }
    if nano.is_some() {
        println!("NanoMDM: file storage, verifying Mdm-Signature and the chain on every request");
        println!();
        println!(
            "| load | ours req/s | NanoMDM req/s | ratio | ours p50 / p99 ms | NanoMDM p50 / p99 ms | ours CPU/poll ms | NanoMDM CPU/poll ms |"
        );
        println!("|---|---|---|---|---|---|---|---|");
    } else {
        println!();
        println!("| load | req/s | p50 / p99 ms | CPU/poll ms |");
        println!("|---|---|---|---|");
    }
    for load in &o.loads {
        let threads = load.connections.min(2);
        let mut runs: Vec<Vec<Run>> = targets.iter().map(|_| Vec::new()).collect();
        for _ in 0..o.runs {
            for (i, t) in targets.iter().enumerate() {
                runs[i].push(run_wrk(&o, &script, t, *load, threads)?);
            }
        }
        let s: Vec<Run> = runs.iter().map(|r| summary(r)).collect();
        if s.len() == 2 {
            println!(
                "| {} | {:.0} | {:.0} | {:.2} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {} |",
                load.label(),
                s[0].rps,
                s[1].rps,
                s[0].rps / s[1].rps,
                s[0].p50_ms,
                s[0].p99_ms,
                s[1].p50_ms,
                s[1].p99_ms,
                cpu_figure(s[0].cpu_ms_per_poll),
                cpu_figure(s[1].cpu_ms_per_poll),
            );
        } else {
            println!(
                "| {} | {:.0} | {:.1} / {:.1} | {} |",
                load.label(),
                s[0].rps,
                s[0].p50_ms,
                s[0].p99_ms,
                cpu_figure(s[0].cpu_ms_per_poll)
            );
        }
    }
    drop(nano);
    if let Some(lab) = lab {
        lab.shutdown().await;
    }
    Ok(())
}

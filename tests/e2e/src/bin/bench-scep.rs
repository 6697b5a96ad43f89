//! SCEP PKIOperation throughput: our `checkin` component on the local host (the real
//! .wasm, Spin SQLite defects on) side by side with micromdm's `scepserver` (Debian package
//! `scep`) on the same machine, under the same client load.
//!
//! Both get N prebuilt PKCSReq messages (RSA-2048 client key, AES-128-CBC envelope to the
//! server's RA/CA certificate from GetCACert, SHA-256), each with its own CN; ours with a
//! one-time challenge per request from the admin API, scepserver with its static
//! `-challenge`. They are POSTed by C concurrent workers, one fresh TCP connection per
//! request (TCP_NODELAY), and every reply is checked to be a CertRep SUCCESS (decrypted
//! with the client key) after the clock stops. scepserver's CA is RSA-2048, like ours.
//!
//! ```sh
//! CARGO_TARGET_DIR=... cargo build --release --target wasm32-wasip2 -p mdm-checkin -p mdm-admin ...
//! CARGO_TARGET_DIR=... cargo run --release -p mdm-e2e --bin bench-scep -- --requests 400 --concurrency 4
//! ```

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use mdm_crypto::{
    Certificate, CsrParams, DigestAlgorithm, EnvelopeCipher, KeyPair, MessageType, PkiStatus,
    RequestOptions, build_csr, build_pkcs_req, parse_cert_rep, parse_certs_only,
    self_signed_certificate,
};
use mdm_e2e::{ADMIN_KEY, App, Method, StatusCode, request};
use serde_json::{Value, json};

const STATIC_CHALLENGE: &str = "bench-static-challenge";

struct Options {
    requests: usize,
    concurrency: usize,
    warmup: usize,
    scepserver: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        requests: 400,
        concurrency: 4,
        warmup: 20,
        scepserver: PathBuf::from("scepserver"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().context("flag needs a value");
        match a.as_str() {
            "--requests" => o.requests = value()?.parse()?,
            "--concurrency" => o.concurrency = value()?.parse()?,
            "--warmup" => o.warmup = value()?.parse()?,
            "--scepserver" => o.scepserver = PathBuf::from(value()?),
            "-h" | "--help" => {
                println!(
                    "bench-scep [--requests N (400)] [--concurrency C (4)] [--warmup W (20)] [--scepserver PATH]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    anyhow::ensure!(
        o.requests > 0 && o.concurrency > 0,
        "N and C must be positive"
    );
    Ok(o)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A PKIOperation body and what is needed to read its answer.
struct Prepared {
    der: Vec<u8>,
}

fn prepare(
    key: &KeyPair,
    me: &Certificate,
    recipient: &Certificate,
    cn: &str,
    challenge: &str,
) -> anyhow::Result<Prepared> {
    let csr = build_csr(
        key,
        &CsrParams {
            challenge: Some(challenge),
            ..CsrParams::new(cn)
        },
    )?;
    let built = build_pkcs_req(
        &csr,
        key,
        me,
        recipient,
        &RequestOptions {
            message_type: MessageType::PkcsReq,
            transaction_id: cn,
            cipher: EnvelopeCipher::Aes128Cbc,
            digest: DigestAlgorithm::Sha256,
        },
    )?;
    Ok(Prepared { der: built.der })
}

/// GetCACert: the certificate requests are encrypted to (the RA when there is one).
async fn recipient(addr: SocketAddr) -> anyhow::Result<Certificate> {
    let (s, headers, body) = request(
        addr,
        Method::GET,
        "/scep?operation=GetCACert",
        &[],
        Vec::new(),
    )
    .await?;
    anyhow::ensure!(s == StatusCode::OK, "GetCACert: {s}");
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let certs = if ct.contains("ca-ra-cert") {
        parse_certs_only(&body).map_err(|e| anyhow::anyhow!("GetCACert: {e}"))?
    } else {
        vec![Certificate::from_der(&body)?]
    };
    Ok(certs
        .iter()
        .find(|c| !c.is_ca())
        .or(certs.first())
        .context("GetCACert returned no certificate")?
        .clone())
}

struct Run {
    elapsed: Duration,
    bodies: Vec<(StatusCode, Bytes)>,
}

/// POSTs every message with `concurrency` workers, one connection per request.
async fn fire(addr: SocketAddr, msgs: Vec<Prepared>, concurrency: usize) -> anyhow::Result<Run> {
    let msgs = Arc::new(msgs);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (msgs, next) = (msgs.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(m) = msgs.get(i) else { break };
                let headers = [(
                    "content-type".to_owned(),
                    "application/x-pki-message".to_owned(),
                )];
                let (s, _, body) = request(
                    addr,
                    Method::POST,
                    "/scep?operation=PKIOperation",
                    &headers,
                    m.der.clone(),
                )
                .await?;
                out.push((i, s, body));
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    let elapsed = start.elapsed();
    all.sort_by_key(|(i, _, _)| *i);
    Ok(Run {
        elapsed,
        bodies: all.into_iter().map(|(_, s, b)| (s, b)).collect(),
    })
}

/// Counts the replies that are not a CertRep SUCCESS holding a certificate for our key,
/// naming the first few.
fn failures(name: &str, run: &Run, key: &KeyPair) -> usize {
    let mut bad = 0;
    for (s, body) in &run.bodies {
        let why = if *s != StatusCode::OK {
            Some(format!("HTTP {s}"))
        } else {
            match parse_cert_rep(body, key) {
                Ok(r) if r.status == PkiStatus::Success && r.certificate.is_some() => None,
                Ok(r) => Some(format!("{:?} {:?}", r.status, r.fail_info)),
                Err(e) => Some(format!("unreadable CertRep: {e}")),
            }
        };
        if let Some(why) = why {
            bad += 1;
            if bad <= 3 {
                eprintln!("{name}: reply not SUCCESS: {why}");
            }
        }
    }
    bad
}

async fn ours(o: &Options, key: &KeyPair, me: &Certificate) -> anyhow::Result<Run> {
    let state = tempfile::tempdir()?;
    let app = App::start(&state.path().join("state")).await?;
    let ra = recipient(app.addr).await?; // creates the CA
    let mut msgs = Vec::new();
    let mut warm = Vec::new();
    for (list, tag, n) in [
        (&mut warm, "warm", o.warmup),
        (&mut msgs, "run", o.requests),
    ] {
        for cn in (0..n).map(|i| format!("bench-{tag}-{i}")) {
            let (s, b) = app
                .call(
                    Method::POST,
                    "/api/v1/enrollment/challenges",
                    Some(ADMIN_KEY),
                    Some(json!({ "device_id": cn, "purpose": "bench" })),
                )
                .await;
            anyhow::ensure!(s == StatusCode::CREATED, "challenge: {s} {b}");
            let c = b["challenge"].as_str().context("challenge")?.to_owned();
            list.push(prepare(key, me, &ra, &cn, &c)?);
        }
    }
    let warm_run = fire(app.addr, warm, o.concurrency).await?;
    let run = fire(app.addr, msgs, o.concurrency).await?;
    let bad = failures("ours", &warm_run, key) + failures("ours", &run, key);
    anyhow::ensure!(bad == 0, "ours: {bad} replies were not SUCCESS");
    let stats = app.kv_stats();
    eprintln!("ours: store operations during the whole session: {stats:?}");
    app.shutdown().await;
    Ok(run)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_scepserver(bin: &Path, dir: &Path, port: u16) -> anyhow::Result<KillOnDrop> {
    let depot = dir.join("depot");
    let out = Command::new(bin)
        .args(["ca", "-init", "-keySize", "2048", "-depot"])
        .arg(&depot)
        .output()
        .with_context(|| {
            format!(
                "running {} (Debian package `scep`: apt-get install scep)",
                bin.display()
            )
        })?;
    anyhow::ensure!(
        out.status.success(),
        "scepserver ca -init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = Command::new(bin)
        .arg("-depot")
        .arg(&depot)
        .args([
            "-port",
            &port.to_string(),
            "-challenge",
            STATIC_CHALLENGE,
            "-allowrenew",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(KillOnDrop(child))
}

/// scepserver's run, and how many of its replies were not SUCCESS (its file depot
/// occasionally fails a request under concurrency; those still count as answered).
async fn theirs(o: &Options, key: &KeyPair, me: &Certificate) -> anyhow::Result<(Run, usize)> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let _server = start_scepserver(&o.scepserver, dir.path(), port)?;
    // scepserver listens on every interface; we talk to it on loopback like to ours.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    let ca = loop {
        match recipient(addr).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("scepserver did not start"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let msgs = |n: usize, tag: &str| -> anyhow::Result<Vec<Prepared>> {
        (0..n)
            .map(|i| prepare(key, me, &ca, &format!("bench-{tag}-{i}"), STATIC_CHALLENGE))
            .collect()
    };
    let warm_run = fire(addr, msgs(o.warmup, "warm")?, o.concurrency).await?;
    let run = fire(addr, msgs(o.requests, "run")?, o.concurrency).await?;
    failures("scepserver (warm-up)", &warm_run, key);
    let bad = failures("scepserver", &run, key);
    Ok((run, bad))
}

fn rate(r: &Run) -> f64 {
    r.bodies.len() as f64 / r.elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    eprintln!("client key and self-signed certificate...");
    let key = KeyPair::generate()?;
    let me = self_signed_certificate(&key, "bench client", now() - 600, now() + 86_400)?;
    eprintln!(
        "{} PKCSReq per server (+{} warm-up), {} concurrent connections, fresh connection per request",
        o.requests, o.warmup, o.concurrency
    );
    let ours_run = ours(&o, &key, &me).await?;
    let (theirs_run, theirs_failed) = theirs(&o, &key, &me).await?;
    let (a, b) = (rate(&ours_run), rate(&theirs_run));
    let result: Value = json!({
        "requests": o.requests,
        "concurrency": o.concurrency,
        "ours_req_per_s": (a * 10.0).round() / 10.0,
        "ours_seconds": ours_run.elapsed.as_secs_f64(),
        "scepserver_req_per_s": (b * 10.0).round() / 10.0,
        "scepserver_seconds": theirs_run.elapsed.as_secs_f64(),
        "scepserver_not_success": theirs_failed,
        "ours_over_scepserver": (a / b * 1000.0).round() / 1000.0,
    });
    println!(
        "SCEP PKIOperation (PKCSReq, RSA-2048, AES-128-CBC, SHA-256), {} requests, {} connections:",
        o.requests, o.concurrency
    );
    println!(
        "  ours (checkin.wasm on mdm-host): {a:8.1} req/s  ({:.2} s)",
        ours_run.elapsed.as_secs_f64()
    );
    println!(
        "  micromdm scepserver 2.1.0:       {b:8.1} req/s  ({:.2} s, {theirs_failed} not SUCCESS)",
        theirs_run.elapsed.as_secs_f64()
    );
    println!("  ratio ours / scepserver:         {:8.3}", a / b);
    println!("{result}");
    Ok(())
}

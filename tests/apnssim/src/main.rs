//! `apnssim`: runs the APNs stand-in until killed, printing each push (token and
//! PushMagic shortened).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mdm_apnssim::{ApnsSim, Pki, Scripted, SimConfig};
use mdm_core::push::apns::redact;

const USAGE: &str = "\
apnssim: local APNs (HTTP/2 + TLS client certificate) stand-in for MDM push tests

USAGE: apnssim [OPTIONS]

  --listen ADDR          address to serve on (default 127.0.0.1:2197; port 0 = any)
  --out-dir DIR          write the PEM files there (default ./apnssim):
                         apnssim-ca.pem (trust it), push-cert.pem + push-key.pem (the
                         accepted push identity), untrusted-push-{cert,key}.pem
  --script TOKEN=STATUS:REASON[:RETRY_AFTER]
                         answer pushes to TOKEN so, every time (repeatable; TOKEN `*` =
                         any token), e.g. --script '*=503:ServiceUnavailable:120'
  --help
";

fn fail(msg: &str) -> ! {
    eprintln!("apnssim: {msg}\n\n{USAGE}");
    std::process::exit(2);
}

fn parse_script(v: &str) -> (String, Scripted) {
    let (token, rest) = v
        .split_once('=')
        .unwrap_or_else(|| fail(&format!("--script: want TOKEN=STATUS:REASON, got {v}")));
    let mut parts = rest.splitn(3, ':');
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail(&format!("--script: bad status in {v}")));
    let reason = parts
        .next()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| fail(&format!("--script: no reason in {v}")));
    let mut s = Scripted::new(status, reason).always();
    s.timestamp = status == 410;
    if let Some(ra) = parts.next() {
        s = s.with_retry_after(ra);
    }
    (token.to_owned(), s)
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:2197".parse().expect("address");
    let mut out_dir = PathBuf::from("apnssim");
    let mut scripts = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            print!("{USAGE}");
            return;
        }
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--listen" => {
                listen = value
                    .parse()
                    .unwrap_or_else(|_| fail(&format!("--listen: not an address: {value}")))
            }
            "--out-dir" => out_dir = PathBuf::from(value),
            "--script" => scripts.push(parse_script(&value)),
            other => fail(&format!("unknown option {other}")),
        }
    }
    let pki = Pki::generate().unwrap_or_else(|e| fail(&format!("generating the PKI: {e}")));
    let sim = ApnsSim::start_with(SimConfig {
        listen,
        pki: Some(pki),
        ..SimConfig::default()
    })
    .unwrap_or_else(|e| fail(&format!("cannot serve on {listen}: {e}")));
    for (token, s) in scripts {
        if token == "*" {
            sim.script_any(s);
        } else {
            sim.script(&token, s);
        }
    }
    let files = sim
        .write_files(&out_dir)
        .unwrap_or_else(|e| fail(&format!("writing {}: {e}", out_dir.display())));
    println!("apnssim serving {}", sim.base_url());
    println!("  topic        {}", sim.topic());
    println!("  trust        {}", files.ca.display());
    println!("  client cert  {}", files.cert.display());
    println!("  client key   {}", files.key.display());
    let mut seen = 0;
    let mut tls_seen = 0;
    loop {
        let pushes = sim
            .wait_for_pushes(seen + 1, Duration::from_millis(500))
            .unwrap_or_else(|p| p);
        for p in &pushes[seen..] {
            println!(
                "{} {} token={} topic={} magic={} -> {} {}",
                p.method,
                if p.path.starts_with("/3/device/") {
                    "/3/device/…"
                } else {
                    &p.path
                },
                redact(&p.token),
                p.topic.as_deref().unwrap_or("-"),
                p.push_magic.as_deref().map(redact).unwrap_or_default(),
                p.status,
                p.reason.as_deref().unwrap_or("")
            );
        }
        seen = pushes.len();
        let failures = sim.tls_failures();
        for f in &failures[tls_seen..] {
            println!("TLS refused: {f}");
        }
        tls_seen = failures.len();
    }
}

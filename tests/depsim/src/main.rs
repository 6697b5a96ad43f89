//! `depsim`: runs the Device Assignment API simulator until killed.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mdm_depsim::{
    AccountConfig, ErrorStyle, PageLimit, ServerConfig, SimConfig, Simulator, UnknownSession,
};

const USAGE: &str = "\
depsim: Apple Device Assignment (DEP/ADE) API simulator

USAGE: depsim [OPTIONS]

  --listen ADDR              address to serve on (default 127.0.0.1:9000; port 0 = any)
  --devices N                devices in the organisation (default 1000)
  --seed N                   seed the devices and account are generated from (default 1)
  --servers COUNT:DEVICES    also serve COUNT more organisations (MDM servers) of
                             DEVICES devices each, credentials CK_depsim_<i> ...;
                             repeatable
  --consumer-key S           OAuth consumer key accepted (default CK_depsim)
  --consumer-secret S        (default CS_depsim)
  --access-token S           (default AT_depsim)
  --access-secret S          (default AS_depsim)
  --session-lifetime SECS    session token lifetime (default 1800)
  --rotate-every N           rotate X-ADM-Auth-Session every N requests of a session
  --fetch-limit DEF:MAX      fetch page sizes (default 100:1000)
  --sync-limit DEF:MAX       sync page sizes (default 100:1000)
  --cursor-max-age SECS      sync cursors older than this are EXPIRED_CURSOR (default 604800)
  --error-style json|plain   error bodies \"CODE\" (default) or CODE
  --unknown-session 401|403  answer to unknown session tokens (403 = FORBIDDEN, depsim)
  --public-url URL           base URL clients sign /session against (default http://<Host>)
  --server-name S            /account server_name
  --org-name S               /account org_name
  --no-control-api           do not serve the /_depsim/... control routes
  --help
";

fn fail(msg: &str) -> ! {
    eprintln!("depsim: {msg}\n\n{USAGE}");
    std::process::exit(2);
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> T {
    v.parse()
        .unwrap_or_else(|_| fail(&format!("{flag}: not a number: {v}")))
}

fn limit(flag: &str, v: &str) -> PageLimit {
    let (d, m) = v
        .split_once(':')
        .unwrap_or_else(|| fail(&format!("{flag}: want DEFAULT:MAX, got {v}")));
    PageLimit {
        default: number(flag, d),
        maximum: number(flag, m),
    }
}

fn main() {
    let mut cfg = SimConfig {
        listen: "127.0.0.1:9000".parse().expect("address"),
        devices: 1000,
        ..SimConfig::default()
    };
    let mut server_name = None;
    let mut extra: Vec<(usize, u64)> = Vec::new();
    let mut org_name = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            print!("{USAGE}");
            return;
        }
        if flag == "--no-control-api" {
            cfg.control_api = false;
            continue;
        }
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        let v = value.as_str();
        match flag.as_str() {
            "--listen" => {
                cfg.listen = v
                    .parse()
                    .unwrap_or_else(|_| fail(&format!("--listen: not an address: {v}")))
            }
            "--devices" => cfg.devices = number(&flag, v),
            "--servers" => {
                let (count, devices) = v
                    .split_once(':')
                    .unwrap_or_else(|| fail(&format!("{flag}: want COUNT:DEVICES, got {v}")));
                extra.push((number(&flag, count), number(&flag, devices)));
            }
            "--seed" => cfg.seed = number(&flag, v),
            "--consumer-key" => cfg.credentials.consumer_key = value,
            "--consumer-secret" => cfg.credentials.consumer_secret = value,
            "--access-token" => cfg.credentials.access_token = value,
            "--access-secret" => cfg.credentials.access_secret = value,
            "--session-lifetime" => {
                cfg.session_lifetime = Duration::from_secs(number(&flag, v));
            }
            "--rotate-every" => cfg.rotate_every = Some(number(&flag, v)),
            "--fetch-limit" => cfg.fetch_limit = limit(&flag, v),
            "--sync-limit" => cfg.sync_limit = limit(&flag, v),
            "--cursor-max-age" => cfg.cursor_max_age = Duration::from_secs(number(&flag, v)),
            "--error-style" => {
                cfg.error_style = match v {
                    "json" => ErrorStyle::JsonQuoted,
                    "plain" => ErrorStyle::Plain,
                    _ => fail("--error-style: json or plain"),
                }
            }
            "--unknown-session" => {
                cfg.unknown_session = match v {
                    "401" => UnknownSession::Unauthorized,
                    "403" => UnknownSession::Forbidden,
                    _ => fail("--unknown-session: 401 or 403"),
                }
            }
            "--public-url" => cfg.public_base_url = Some(value),
            "--server-name" => server_name = Some(value),
            "--org-name" => org_name = Some(value),
            _ => fail(&format!("unknown option {flag}")),
        }
    }
    cfg.account = AccountConfig::for_seed(cfg.seed);
    if let Some(n) = server_name {
        cfg.account.server_name = n;
    }
    if let Some(n) = org_name {
        cfg.account.org_name = n;
    }
    if cfg.credentials.consumer_key.is_empty() || !cfg.credentials.is_complete() {
        fail("all four OAuth values must be non-empty");
    }

    let (devices, seed) = (cfg.devices, cfg.seed);
    let sim = Simulator::start(cfg).unwrap_or_else(|e| fail(&format!("cannot start: {e}")));
    for (count, devices) in extra {
        for _ in 0..count {
            // Seeds follow the default organisation's, one per organisation.
            let seed = seed + sim.server_count() as u64;
            sim.add_server(ServerConfig::new(devices, seed));
        }
    }
    let c = sim.credentials();
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 365 * 86_400;
    let expiry = mdm_depsim::devgen::iso(expiry);
    let token_json = mdm_depsim::token_json(&c, &expiry);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "depsim: {devices} devices (seed {seed}) on {}",
        sim.base_url()
    );
    let _ = writeln!(out, "base_url={}", sim.base_url());
    let _ = writeln!(out, "consumer_key={}", c.consumer_key);
    let _ = writeln!(out, "consumer_secret={}", c.consumer_secret);
    let _ = writeln!(out, "access_token={}", c.access_token);
    let _ = writeln!(out, "access_secret={}", c.access_secret);
    let _ = writeln!(out, "token_json={token_json}");
    for server in sim.servers().into_iter().skip(1) {
        let _ = writeln!(
            out,
            "server_{}: {} devices, token_json={}",
            server.index(),
            server.device_count(),
            server.token_json(&expiry)
        );
    }
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}

//! `mdm-host`: serve the app's Spin components locally, with `spin up`'s flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use mdm_host::HostConfig;

const USAGE: &str = "\
mdm-host: a local host for this app's Spin components (development and tests)

USAGE: mdm-host [OPTIONS]

  -f, --from <spin.toml>             manifest (default: spin.toml)
      --listen <addr:port>           where to listen (default: 127.0.0.1:3000)
      --runtime-config-file <file>   Spin runtime config (key-value stores, client_tls)
      --state-dir <dir>              key-value data and compiled components (default: <app>/.spin)
      --variable <name=value>        set an application variable (repeatable);
                                     SPIN_VARIABLE_<NAME> environment variables work too
      --log-dir <dir>                component stdout/stderr files (default: <state dir>/logs;
                                     an empty value: none)
  -q, --quiet                        component output to the log files only, not the terminal
      --kv-strict                    correct key-value semantics instead of reproducing
                                     Spin SQLite's defects (see docs/platform.md)
      --clock-ahead <seconds>        test aid (Spin has none): the components' wall clock
                                     runs this far ahead, e.g. past another host's leases
  -h, --help
";

fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Option<HostConfig>> {
    let mut manifest = PathBuf::from("spin.toml");
    let mut listen: SocketAddr = "127.0.0.1:3000".parse().expect("literal");
    let mut runtime_config = None;
    let mut state_dir = None;
    let mut variables = Vec::new();
    let mut kv_strict = false;
    let mut log_dir: Option<PathBuf> = None;
    let mut quiet = false;
    let guest_clock = mdm_host::GuestClock::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> anyhow::Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().with_context(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "-f" | "--from" | "--file" => manifest = PathBuf::from(value(&flag)?),
            "--listen" => {
                let v = value(&flag)?;
                listen = v
                    .parse()
                    .with_context(|| format!("--listen {v:?}: expected ip:port"))?;
            }
            "--runtime-config-file" => runtime_config = Some(PathBuf::from(value(&flag)?)),
            "--state-dir" => state_dir = Some(PathBuf::from(value(&flag)?)),
            "--variable" => {
                let v = value(&flag)?;
                let (k, val) = v.split_once('=').with_context(|| {
                    format!(
                        "--variable {k:?}: expected name=value",
                        k = v.split('=').next().unwrap_or("")
                    )
                })?;
                variables.push((k.to_owned(), val.to_owned()));
            }
            "--kv-strict" => kv_strict = true,
            "--log-dir" => log_dir = Some(PathBuf::from(value(&flag)?)),
            "-q" | "--quiet" => quiet = true,
            "--clock-ahead" => {
                let v = value(&flag)?;
                let secs: u64 = v
                    .parse()
                    .with_context(|| format!("--clock-ahead {v:?}: expected seconds"))?;
                guest_clock.advance(std::time::Duration::from_secs(secs));
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if manifest.is_dir() {
        manifest = manifest.join("spin.toml");
    }
    let state_dir = state_dir.unwrap_or_else(|| {
        manifest
            .parent()
            .map(|p| p.join(".spin"))
            .unwrap_or_else(|| PathBuf::from(".spin"))
    });
    let log_dir = match log_dir {
        Some(d) if d.as_os_str().is_empty() => None,
        Some(d) => Some(d),
        None => Some(state_dir.join("logs")),
    };
    Ok(Some(HostConfig {
        manifest,
        listen,
        state_dir,
        runtime_config,
        variables,
        kv_strict,
        guest_clock,
        log_dir,
        follow_logs: !quiet,
    }))
}

fn main() -> std::process::ExitCode {
    // SAFETY: the first thing the process does; no thread exists yet.
    unsafe { mdm_host::skip_library_backtraces() };
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(serve()),
        Err(e) => {
            eprintln!("mdm-host: starting the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> std::process::ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            print!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mdm-host: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let manifest = config.manifest.clone();
    let host = match mdm_host::start(config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("mdm-host: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = host.addr();
    println!("Serving http://{addr}");
    if let Ok(m) = mdm_host::manifest::Manifest::load(&manifest) {
        println!("Available Routes:");
        for (route, component) in &m.routes {
            println!("  {component}: http://{addr}{}", route.as_manifest());
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            eprintln!("mdm-host: stopping");
            host.shutdown().await;
        }
    }
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> impl Iterator<Item = String> {
        s.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn flags_like_spin_up() {
        let c = parse(args(
            "--from app/spin.toml --listen 127.0.0.1:8080 --variable a=b=c --variable=x=y --kv-strict",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.manifest, PathBuf::from("app/spin.toml"));
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.state_dir, PathBuf::from("app/.spin"));
        assert_eq!(
            c.variables,
            vec![("a".into(), "b=c".into()), ("x".into(), "y".into())]
        );
        assert!(c.kv_strict);
        assert_eq!(c.log_dir, Some(PathBuf::from("app/.spin/logs")));
        assert!(c.follow_logs);
        let q = parse(args("--quiet --log-dir /tmp/l")).unwrap().unwrap();
        assert_eq!(
            (q.log_dir, q.follow_logs),
            (Some(PathBuf::from("/tmp/l")), false)
        );
        let none = parse(args("--log-dir=")).unwrap().unwrap();
        assert_eq!(none.log_dir, None);
        assert!(parse(args("--listen nope")).is_err());
        assert!(parse(args("--variable novalue")).is_err());
        assert!(parse(args("--bogus")).is_err());
        assert!(parse(args("--help")).unwrap().is_none());
        let ahead = parse(args("--clock-ahead 121")).unwrap().unwrap();
        assert_eq!(ahead.guest_clock.offset().as_secs(), 121);
        assert!(parse(args("--clock-ahead soon")).is_err());
    }
}

//! `mdmctl tokens sync`: ask for a sync of a server token's devices with Apple and, with
//! `--wait`, follow its status with a progress bar until it ends, then summarise it.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::client::Api;
use crate::ctx::Ctx;
use crate::error::CliError;
use crate::output::obj;

pub const STATUS: &str = "/api/v1/tokens/{token}/sync";

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    pub token: u64,
    /// A full sync (every device) instead of the changes since the last one
    #[arg(long)]
    pub full: bool,
    /// Follow the sync until it ends, with live progress, then summarise it
    #[arg(long)]
    pub wait: bool,
    /// Seconds between status checks while waiting
    #[arg(long, value_name = "SECONDS", default_value_t = 2)]
    pub interval: u64,
    /// Stop waiting after this many seconds (the sync goes on)
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub wait_timeout: u64,
}

/// States in which the sync is not over (paused: continues at the scheduler's next tick).
const UNDER_WAY: &[&str] = &["running", "paused", "throttled"];

pub fn run(ctx: &mut Ctx, api: &Api, args: SyncArgs) -> Result<(), CliError> {
    let id = args.token.to_string();
    let body = args.full.then(|| json!({ "kind": "full" }));
    let started = match api.send("POST", STATUS, &[&id], body.as_ref()) {
        Ok(v) => v,
        // Another sync is under way: with --wait, follow that one.
        Err(CliError::Api {
            status: 409, code, ..
        }) if args.wait && code == "sync_running" => {
            ctx.note("a sync of this token is already running; following it");
            json!({ "outcome": "running" })
        }
        Err(e) => return Err(e),
    };
    if !args.wait {
        ctx.object(&started)?;
        return failed(&started);
    }
    let deadline = Instant::now() + Duration::from_secs(args.wait_timeout);
    let bar = ProgressBar::with_draw_target(
        None,
        if ctx.env.terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("template"));
    bar.set_message("sync requested");
    bar.enable_steady_tick(Duration::from_millis(120));
    let status = loop {
        let s = api.get(STATUS, &[&id])?;
        let state = s["state"].as_str().unwrap_or("idle");
        if !UNDER_WAY.contains(&state) {
            break s;
        }
        show_progress(&bar, &s);
        if Instant::now() >= deadline {
            bar.abandon();
            return Err(CliError::Partial(format!(
                "gave up waiting after {} s; the sync goes on: mdmctl tokens sync-status {id}",
                args.wait_timeout
            )));
        }
        std::thread::sleep(Duration::from_secs(args.interval.max(1)));
    };
    bar.finish_and_clear();
    let summary = summary(&status);
    ctx.object(&summary)?;
    failed(&summary)
}

fn show_progress(bar: &ProgressBar, s: &Value) {
    let p = &s["progress"];
    let fetched = p["devices_fetched"]
        .as_u64()
        .or(s["devices_seen"].as_u64())
        .unwrap_or(0);
    let state = s["state"].as_str().unwrap_or("");
    let phase = p["phase"].as_str().unwrap_or("");
    match p["devices_expected"].as_u64().filter(|e| *e > 0) {
        Some(expected) => {
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {pos}/{len} devices ({elapsed})",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            bar.set_length(expected);
            bar.set_position(fetched.min(expected));
        }
        None => {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}: {pos} devices ({elapsed})")
                    .expect("template"),
            );
            bar.set_position(fetched);
        }
    }
    bar.set_message(format!("{state} {phase}").trim_end().to_owned());
}

/// What the run came to: its last run's facts and the state the token is left in.
fn summary(s: &Value) -> Value {
    let r = &s["last_run"];
    let pick = |v: &Value| (!v.is_null()).then(|| v.clone());
    obj(vec![
        ("state", pick(&s["state"])),
        ("kind", pick(&r["kind"])),
        ("outcome", pick(&r["outcome"])),
        ("started_at", pick(&r["started_at"])),
        ("finished_at", pick(&r["finished_at"])),
        ("pages", pick(&r["pages"])),
        ("devices_seen", pick(&r["devices_seen"])),
        ("flagged_absent", pick(&r["flagged_absent"])),
        ("last_error", pick(&s["last_error"])),
        ("backoff", pick(&s["backoff"])),
        ("next_allowed_at", pick(&s["next_allowed_at"])),
    ])
}

/// A sync that ended failed is exit code 5 (after its summary was shown).
fn failed(v: &Value) -> Result<(), CliError> {
    let outcome = v["outcome"].as_str().unwrap_or("");
    let state = v["state"].as_str().unwrap_or("");
    if outcome.starts_with("failed")
        || outcome == "timed_out"
        || state == "failed"
        || state == "backing_off"
    {
        return Err(CliError::Partial(format!(
            "the sync did not complete ({})",
            if outcome.is_empty() { state } else { outcome }
        )));
    }
    Ok(())
}

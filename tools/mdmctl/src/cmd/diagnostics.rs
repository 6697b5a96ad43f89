//! `mdmctl health`, `mdmctl metrics` and `mdmctl diagnostics`: the server's liveness with
//! a store round trip, its Prometheus metrics, the key-value check battery, and a contention run (concurrent writers against
//! one counter and one compare-and-swap key: no update may be lost).

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Api;
use crate::ctx::Ctx;
use crate::error::CliError;
use crate::output::{Column, col};

#[derive(Subcommand, Debug)]
pub enum DiagnosticsCmd {
    /// Run the key-value battery against the server's store
    Kv,
    /// Concurrent writers against one counter and one CAS key; totals must add up
    Contention {
        /// Writers at once
        #[arg(long, default_value_t = 4)]
        writers: u32,
        /// Counter increments per writer (at most 10000)
        #[arg(long, default_value_t = 100)]
        increments: u32,
        /// Compare-and-swap updates per writer (at most 1000)
        #[arg(long, default_value_t = 20)]
        swaps: u32,
    },
}

pub const CHECKS: &[Column] = &[
    col("CHECK", "name"),
    col("PASSED", "passed"),
    col("FAILURE", "failure"),
];

pub fn health(ctx: &mut Ctx) -> Result<(), CliError> {
    let v = ctx.api()?.get("/api/v1/health", &[])?;
    ctx.object(&v)
}

/// `GET /metrics`: Prometheus' text, written as it comes (it is already for scripts).
pub fn metrics(ctx: &mut Ctx) -> Result<(), CliError> {
    let answer = ctx
        .api()?
        .call("GET", "/metrics", &[], &[], crate::client::Body::None)?;
    ctx.out
        .write_all(&answer.bytes)
        .map_err(|e| CliError::local(format!("writing the metrics: {e}")))
}

pub fn run(ctx: &mut Ctx, cmd: DiagnosticsCmd) -> Result<(), CliError> {
    let api = ctx.api()?;
    match cmd {
        DiagnosticsCmd::Kv => {
            let v = api.send("POST", "/api/v1/diagnostics/kv", &[], None)?;
            ctx.answer_list(&v, "checks", CHECKS)?;
            if v["passed"] != json!(true) {
                return Err(CliError::Partial("the store failed checks".into()));
            }
            Ok(())
        }
        DiagnosticsCmd::Contention {
            writers,
            increments,
            swaps,
        } => contention(ctx, &api, writers, increments, swaps),
    }
}

fn contention(
    ctx: &mut Ctx,
    api: &Api,
    writers: u32,
    increments: u32,
    swaps: u32,
) -> Result<(), CliError> {
    const RUN: &str = "/api/v1/diagnostics/kv/contention/{run}";
    let started = api.send("POST", "/api/v1/diagnostics/kv/contention", &[], None)?;
    let run = started["run"]
        .as_str()
        .ok_or_else(|| CliError::BadAnswer("no run id".into()))?
        .to_owned();
    let work = json!({ "increments": increments, "swaps": swaps });
    let results: Vec<Result<Value, CliError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let (api, run, work) = (api.clone(), run.clone(), work.clone());
                s.spawn(move || {
                    api.send(
                        "POST",
                        "/api/v1/diagnostics/kv/contention/{run}/work",
                        &[&run],
                        Some(&work),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(CliError::local("a writer panicked")))
            })
            .collect()
    });
    let totals = api.get(RUN, &[&run]);
    api.send("DELETE", RUN, &[&run], None)?;
    let failed = results.iter().filter(|r| r.is_err()).count() as u64;
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        ctx.note(&format!("a writer failed: {}", e.render().trim_end()));
    }
    let totals = totals?;
    let done = u64::from(writers) - failed;
    let expected = (done * u64::from(increments), done * u64::from(swaps));
    let got = (
        totals["increments"].as_u64().unwrap_or(0),
        totals["swaps"].as_u64().unwrap_or(0),
    );
    let lost = got != expected;
    ctx.object(&json!({
        "run": run,
        "writers": writers,
        "writers_failed": failed,
        "increments_expected": expected.0,
        "increments": got.0,
        "swaps_expected": expected.1,
        "swaps": got.1,
        "updates_lost": lost,
    }))?;
    if lost || failed > 0 {
        return Err(CliError::Partial(
            "updates were lost or writers failed".into(),
        ));
    }
    Ok(())
}

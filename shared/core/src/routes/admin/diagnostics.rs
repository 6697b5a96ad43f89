//! Key-value backend diagnostics. An administrator moving to Redis, Cosmos DB or
//! DynamoDB runs the same battery our tests run, against the store actually configured,
//! and can hammer it from several clients at once with a contention run.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use mdm_kv::battery;

use crate::api::{self, ApiError, FieldError, Request, Response};
use crate::{Platform, random};

/// Upper bounds per work request, so one call stays short.
const MAX_INCREMENTS: u32 = 10_000;
const MAX_SWAPS: u32 = 1_000;

pub async fn battery(p: &impl Platform) -> Result<Response, ApiError> {
    let prefix = format!("diag:battery:{}:", random::hex_id(8));
    let report = battery::run(p.store(), &prefix).await;
    let checks: Vec<_> = report
        .checks
        .iter()
        .map(|c| json!({ "name": c.name, "passed": c.failure.is_none(), "failure": c.failure }))
        .collect();
    Ok(api::ok_json(
        &json!({ "passed": report.passed(), "checks": checks }),
    ))
}

fn prefix(run: &str) -> Result<String, ApiError> {
    if run.len() != 16 || !run.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::not_found(format!("no contention run {run:?}")));
    }
    Ok(format!("diag:contention:{run}:"))
}

async fn ensure_run(p: &impl Platform, run: &str) -> Result<String, ApiError> {
    let prefix = prefix(run)?;
    if !p.store().exists(&format!("{prefix}swaps")).await? {
        return Err(ApiError::not_found(format!("no contention run {run:?}")));
    }
    Ok(prefix)
}

pub async fn contention_start(p: &impl Platform) -> Result<Response, ApiError> {
    let run = random::hex_id(8);
    battery::contention_setup(p.store(), &prefix(&run)?).await?;
    Ok(api::json(StatusCode::CREATED, &json!({ "run": run })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Work {
    increments: u32,
    swaps: u32,
}

pub async fn contention_work(
    p: &impl Platform,
    run: &str,
    req: &Request,
) -> Result<Response, ApiError> {
    let work: Work = api::parse_json(req)?;
    let mut bad = Vec::new();
    if work.increments > MAX_INCREMENTS {
        bad.push(FieldError::new(
            "increments",
            format!("at most {MAX_INCREMENTS} per request"),
        ));
    }
    if work.swaps > MAX_SWAPS {
        bad.push(FieldError::new(
            "swaps",
            format!("at most {MAX_SWAPS} per request"),
        ));
    }
    if !bad.is_empty() {
        return Err(ApiError::invalid(bad));
    }
    let prefix = ensure_run(p, run).await?;
    battery::contention_work(p.store(), &prefix, work.increments, work.swaps).await?;
    Ok(api::ok_json(
        &json!({ "run": run, "increments": work.increments, "swaps": work.swaps }),
    ))
}

pub async fn contention_totals(p: &impl Platform, run: &str) -> Result<Response, ApiError> {
    let prefix = ensure_run(p, run).await?;
    let (increments, swaps) = battery::contention_totals(p.store(), &prefix).await?;
    Ok(api::ok_json(
        &json!({ "run": run, "increments": increments, "swaps": swaps }),
    ))
}

pub async fn contention_delete(p: &impl Platform, run: &str) -> Result<Response, ApiError> {
    let prefix = ensure_run(p, run).await?;
    battery::contention_cleanup(p.store(), &prefix).await?;
    Ok(http::Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Vec::new())
        .expect("static response"))
}

//! Scheduled work (`/internal/...`), called by a scheduler with the `sync_api_key`
//! bearer key (see infra/). `POST /internal/tick` does whatever is due for every server
//! token; it is idempotent and safe when triggers overlap (per-token leases).

use serde_json::{Value, json};

use crate::api::{self, ApiError, Request, Response, Route};
use crate::config::{self, SYNC_API_KEY};
use crate::dep::apple;
use crate::dep::reconcile::{self, Maintenance, PURGE_DAYS_DEFAULT, PURGE_DAYS_RANGE};
use crate::dep::sync;
use crate::dep::sync_state::{self, Policy};
use crate::dep::tokens;
use crate::{Clock, Platform, Variables};

/// Days after which devices Apple removed are purged (30–45).
pub const DEP_PURGE_DAYS: &str = "dep_purge_days";
/// Pushes one tick sends at most (retries and follow-ups); the rest wait for the next.
pub const PUSH_BUDGET: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Tick,
}

pub const ROUTES: &[Route<Op>] = &[("POST", "/internal/tick", Op::Tick)];

/// The most bytes of body a request to this component may have (the tick takes none).
pub fn body_limit(_method: &http::Method, _path: &str) -> usize {
    4 * 1024
}

pub async fn handle(p: &impl Platform, req: Request) -> Response {
    if let Err(e) = config::authorize(p.vars(), SYNC_API_KEY, "mdm-internal", &req).await {
        return e.into_response();
    }
    let resp = match api::route(ROUTES, req.method(), req.uri().path()) {
        Ok((Op::Tick, _)) => tick(p).await.unwrap_or_else(ApiError::into_response),
        Err(e) => e.into_response(),
    };
    crate::log::tag(resp, crate::log::Subject::Key(SYNC_API_KEY))
}

async fn purge_days(vars: &impl Variables) -> Result<u64, ApiError> {
    match vars.get(DEP_PURGE_DAYS).await {
        Ok(None) => Ok(PURGE_DAYS_DEFAULT),
        Ok(Some(v)) if v.trim().is_empty() => Ok(PURGE_DAYS_DEFAULT),
        Ok(Some(v)) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|d| PURGE_DAYS_RANGE.contains(d))
            .ok_or_else(|| {
                ApiError::misconfigured(format!(
                    "variable {DEP_PURGE_DAYS} must be a number of days from 30 to 45"
                ))
            }),
        Err(e) => Err(ApiError::misconfigured(format!(
            "variable {DEP_PURGE_DAYS}: {e}"
        ))),
    }
}

/// Expired keys deleted per tick at most.
const EXPIRY_BUDGET: u64 = 2000;

/// How long one tick works on syncs at most (the scheduler calls every 5 minutes); a
/// run not finished by then continues at the next tick.
pub const TICK_SYNC_BUDGET: u64 = 180;

fn turn_counter() -> mdm_kv::CounterKey {
    mdm_kv::CounterKey::new("tick:turn").expect("static counter name")
}

async fn tick(p: &impl Platform) -> Result<Response, ApiError> {
    let days = purge_days(p.vars()).await?;
    let policy = Policy::default();
    // Only tokens with uploaded secrets need it; maintenance runs without.
    let storage_key = config::storage_key(p.vars()).await.ok();
    let base = apple::base_url(p.vars()).await;
    let all = tokens::list(p.store()).await?;
    // Each tick starts with another token, so no slot always goes last.
    let turn = p.store().increment(&turn_counter(), 1).await?.max(0) as usize;
    let n = all.len().max(1);
    let order: Vec<&tokens::TokenRecord> = (0..all.len()).map(|i| &all[(turn + i) % n]).collect();

    // Syncs in rounds: every token with work gets one slice per round, so a large token
    // mid-sync never holds the others up; paused runs go on in the next round while the
    // tick's budget lasts.
    let started = p.clock().unix_seconds();
    let mut syncs: Vec<Vec<Value>> = vec![Vec::new(); order.len()];
    let mut pending: Vec<usize> = (0..order.len()).collect();
    let mut round = 0u32;
    while !pending.is_empty() {
        round += 1;
        let mut again = Vec::new();
        for i in pending {
            let token = order[i];
            if p.clock().unix_seconds().saturating_sub(started) >= TICK_SYNC_BUDGET {
                syncs[i].push(json!({ "round": round, "deferred": "tick budget used" }));
                continue;
            }
            let (mut v, paused) = match (&storage_key, token.sealed_secrets.is_some()) {
                (_, false) => (json!("no_token"), false),
                (None, true) => (json!({ "error": "variable storage_key is not set" }), false),
                (Some(key), true) => scheduled_sync(p, token, &policy, key, &base).await,
            };
            if v.is_object() {
                v["round"] = json!(round);
            }
            syncs[i].push(v);
            if paused {
                again.push(i);
            }
        }
        pending = again;
    }

    let mut report: Vec<Value> = Vec::new();
    for (i, token) in order.iter().enumerate() {
        let retries = match &storage_key {
            Some(key) if token.sealed_secrets.is_some() => {
                assignment_retries(p, token, key, &base).await
            }
            None if token.sealed_secrets.is_some() => {
                json!({ "error": "variable storage_key is not set" })
            }
            _ => Value::Null,
        };
        let mut entry = match reconcile::maintain(p.store(), p.clock(), token.id, days, &policy)
            .await
        {
            Ok(Maintenance::NotDue) => json!({ "token": token.id, "maintenance": "not_due" }),
            Ok(Maintenance::Busy) => json!({ "token": token.id, "maintenance": "busy" }),
            Ok(Maintenance::Scanned {
                purged,
                pass_complete,
            }) => {
                json!({ "token": token.id, "maintenance": "scanned", "purged": purged, "pass_complete": pass_complete })
            }
            Err(e) => json!({ "token": token.id, "maintenance": "error", "error": e.to_string() }),
        };
        let mut sync = std::mem::take(&mut syncs[i]);
        entry["sync"] = match sync.len() {
            0 => Value::Null,
            1 => sync.pop().expect("one"),
            _ => Value::Array(sync),
        };
        entry["assignment_retries"] = retries;
        report.push(entry);
    }
    report.sort_by_key(|e| e["token"].as_u64());
    // Command records past their retention (bounded work per tick).
    let commands = crate::command::retention::retention_tick(p).await;
    // APNs retries and the follow-up pushes of coalesced or bulk enqueues.
    let push = crate::push::drain::drain_retries(p, PUSH_BUDGET).await;
    // Expired SCEP challenges, access tokens and enrollment references.
    let expired =
        match crate::expiry::purge_due(p.store(), p.clock().unix_seconds(), EXPIRY_BUDGET).await {
            Ok(r) => json!(r),
            Err(e) => json!({ "error": e.to_string() }),
        };
    Ok(api::ok_json(&json!({
        "time": p.clock().unix_seconds(),
        "tokens": report,
        "commands": commands,
        "push": push,
        "expired": expired,
    })))
}

/// One slice of the sync due for one token, if any: a resumed run, a 12-hourly delta, or
/// the full sync the policy requires. Overlapping ticks meet at the run's lease. The flag
/// says the run paused and wants another slice.
async fn scheduled_sync(
    p: &impl Platform,
    token: &tokens::TokenRecord,
    policy: &Policy,
    storage_key: &crate::config::Secret,
    base: &str,
) -> (Value, bool) {
    let now = p.clock().unix_seconds();
    if token.sealed_secrets.is_none() {
        return (json!("no_token"), false);
    }
    if token.access_token_expiry.is_some_and(|e| e <= now) {
        return (json!("token_expired"), false);
    }
    let state = match sync_state::load(p.store(), token.id).await {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => return (json!({ "error": e.to_string() }), false),
    };
    if let Some(until) = state.backed_off_until(now) {
        return (
            json!({ "backing_off_until": crate::time::format_rfc3339(until as i64) }),
            false,
        );
    }
    let Some(plan) = state.scheduled_plan(now, policy) else {
        return (json!("not_due"), false);
    };
    match apple::run_sync(p, token, plan, policy, storage_key, base).await {
        Ok(report) => (
            json!({
                "kind": report.kind,
                "outcome": format!("{:?}", report.outcome),
                "pages": report.pages,
            }),
            report.outcome == sync::Outcome::Paused,
        ),
        Err(e) => (json!({ "error": e.to_string() }), false),
    }
}

/// Profile assignments Apple answered FAILED or THROTTLED, retried when due.
async fn assignment_retries(
    p: &impl Platform,
    token: &tokens::TokenRecord,
    storage_key: &crate::config::Secret,
    base: &str,
) -> Value {
    let now = p.clock().unix_seconds();
    if token.sealed_secrets.is_none() || token.access_token_expiry.is_some_and(|e| e <= now) {
        return Value::Null;
    }
    // A token Apple refuses waits out its backoff for assignments too.
    if let Ok(Some(s)) = sync_state::load(p.store(), token.id).await
        && s.backed_off_until(now).is_some()
    {
        return Value::Null;
    }
    match crate::dep::assign::due_retries(p.store(), token.id, now).await {
        Ok(due) if due.is_empty() => return Value::Null,
        Ok(_) => {}
        Err(e) => return json!({ "error": e.to_string() }),
    }
    let r = apple::with_client(p, token, storage_key, base, async |client| {
        crate::dep::assign::retry_due(p.store(), client, token.id, now).await
    })
    .await;
    match r {
        Ok(Ok(summary)) => serde_json::to_value(summary).unwrap_or(Value::Null),
        Ok(Err(e)) => json!({ "error": e.to_string() }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

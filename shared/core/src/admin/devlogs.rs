//! `GET /api/v1/devices/{device}/logs`: a device's log (check-ins and command
//! exchanges), newest first, filtered by action, status and time range, paged.

use serde_json::{Value, json};

use crate::Platform;
use crate::api::{self, ApiError, Params, Request, Response};
use crate::mdm::devlog::{self, Entry, LogQuery};
use crate::time::{format_rfc3339, parse_rfc3339};

pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

fn time_param(name: &str, v: &str) -> Result<u64, Value> {
    v.parse::<u64>()
        .ok()
        .or_else(|| parse_rfc3339(v).and_then(|t| u64::try_from(t).ok()))
        .ok_or_else(|| json!({ "field": name, "rule": "Unix seconds or an RFC 3339 timestamp" }))
}

fn log_query(req: &Request) -> Result<LogQuery, ApiError> {
    let mut q = LogQuery {
        limit: DEFAULT_PAGE,
        ..Default::default()
    };
    let mut bad = Vec::new();
    for (k, v) in api::query(req)? {
        match k.as_str() {
            "action" if !v.is_empty() && v.len() <= 64 => q.action = Some(v),
            "status" if !v.is_empty() && v.len() <= 32 => q.status = Some(v),
            "action" | "status" => bad.push(json!({ "field": k, "rule": "1 to 64 characters" })),
            "from" => match time_param("from", &v) {
                Ok(t) => q.from = Some(t),
                Err(e) => bad.push(e),
            },
            "to" => match time_param("to", &v) {
                Ok(t) => q.to = Some(t),
                Err(e) => bad.push(e),
            },
            "before" => match v.parse::<u64>() {
                Ok(n) if n > 0 => q.before = Some(n),
                _ => bad.push(
                    json!({ "field": "before", "rule": "the `next` value of the previous page" }),
                ),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => q.limit = n,
                _ => bad.push(
                    json!({ "field": "limit", "rule": format!("an integer from 1 to {MAX_PAGE}") }),
                ),
            },
            other => bad.push(json!({ "field": other, "rule": "unknown query parameter" })),
        }
    }
    if let (Some(f), Some(t)) = (q.from, q.to)
        && f > t
    {
        bad.push(json!({ "field": "from", "rule": "must not be after `to`" }));
    }
    if bad.is_empty() {
        Ok(q)
    } else {
        Err(ApiError::unprocessable(Value::Array(bad)))
    }
}

fn view(e: &Entry) -> Value {
    json!({
        "n": e.n,
        "action": e.action,
        "status": e.status,
        "at": format_rfc3339(e.at as i64),
        "details": e.details,
        "user": e.user,
    })
}

pub async fn list(p: &impl Platform, params: &Params, req: &Request) -> Result<Response, ApiError> {
    let device = params.get("device").unwrap_or_default();
    let q = log_query(req)?;
    let page = devlog::list(p.store(), device, &q).await?;
    Ok(api::ok_json(&json!({
        "device": device,
        "entries": page.entries.iter().map(view).collect::<Vec<_>>(),
        "next": page.next.map(|n| n.to_string()),
    })))
}

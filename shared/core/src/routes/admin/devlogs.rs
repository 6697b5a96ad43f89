//! `GET /api/v1/devices/{device}/logs`: a device's log (check-ins and command
//! exchanges), newest first, filtered by action, status and time range, paged.

use serde_json::{Map, Value, json};

use super::paging;
use crate::Platform;
use crate::api::{self, ApiError, FieldError, Params, Request, Response};
use crate::mdm::devlog::{self, Entry, LogQuery};
use crate::time::format_rfc3339;

fn log_query(req: &Request) -> Result<LogQuery, ApiError> {
    let mut q = LogQuery::default();
    let page = paging::query_in_range(req, &mut q.from, &mut q.to, |k, v, bad| {
        match k {
            "action" if !v.is_empty() && v.len() <= 64 => q.action = Some(v),
            "status" if !v.is_empty() && v.len() <= 64 => q.status = Some(v),
            "action" | "status" => bad.push(FieldError::new(k, "1 to 64 characters")),
            _ => return false,
        }
        true
    })?;
    q.limit = page.limit;
    q.before = page.cursor;
    Ok(q)
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
    Ok(api::ok_json(&paging::answer(
        page.entries.iter().map(view).collect(),
        page.next,
        Map::new(),
    )))
}

//! Admin endpoints of Automated Device Enrollment: a token's sync status and its device
//! inventory.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::paging;
use crate::api::{self, ApiError, FieldError, Params, Request, Response};
use crate::dep::inventory::{self, DeviceRecord};
use crate::dep::inventory_list::{self, Assignment, ListQuery};
use crate::dep::sync_state::{self, Policy, SyncState};
use crate::dep::{TokenId, tokens};
use crate::time::format_rfc3339;
use crate::{Clock, Platform};

fn ts(t: Option<u64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t as i64)))
}

/// The token named in the path, which must exist.
pub async fn token_id(p: &impl Platform, params: &Params) -> Result<TokenId, ApiError> {
    let raw = params.get("token").unwrap_or_default();
    let id = raw.parse::<u64>().ok().filter(|n| *n > 0).map(TokenId);
    match id {
        Some(id) if tokens::load(p.store(), id).await?.is_some() => Ok(id),
        _ => Err(ApiError::not_found(format!("no token {raw:?}"))),
    }
}

pub fn sync_view(s: &SyncState, now: u64, policy: &Policy) -> Value {
    let backed_off = s.backed_off_until(now);
    let state = if s.running(now) {
        "running"
    } else if s.retry_after.is_some_and(|t| t > now) {
        "throttled"
    } else if s.run.is_some() {
        "paused"
    } else if backed_off.is_some() {
        "backing_off"
    } else if s
        .last_run
        .as_ref()
        .is_some_and(|r| r.outcome == "failed" || r.outcome == "timed_out")
    {
        "failed"
    } else {
        "idle"
    };
    let run = s.run.as_ref();
    let next_manual = s
        .next_manual_at(policy)
        .filter(|t| *t > now)
        .or(s.retry_after.filter(|t| *t > now));
    // Progress of a full listing, which may span runs: devices fetched so far out of the
    // last completed listing's count (Apple publishes no total); a delta shows what it
    // fetched so far.
    let listing = s.listing.as_ref();
    let fetched = listing.map_or(run.map_or(0, |r| r.devices_seen), |l| l.fetched);
    let expected = listing.and(s.listed_devices);
    let progress = (run.is_some() || listing.is_some()).then(|| {
        json!({
            "phase": match listing {
                Some(l) if l.reconcile.is_some() => "reconciling",
                Some(_) => "listing",
                None => "changes",
            },
            "devices_fetched": fetched,
            "devices_expected": expected,
            "fraction": expected
                .filter(|e| *e > 0)
                .map(|e| (fetched as f64 / e as f64).min(1.0)),
            "devices_reconciled": listing.and_then(|l| l.reconcile).map(|r| r.position),
        })
    });
    json!({
        "state": state,
        "kind": run.map(|r| r.kind).or(s.last_run.as_ref().map(|r| r.kind)),
        "started_at": ts(run.map(|r| r.started_at)),
        "pages": run.map_or(0, |r| r.pages),
        "devices_seen": run.map_or(0, |r| r.devices_seen),
        "progress": progress,
        "last_full_at": ts(s.last_full_at),
        "last_delta_at": ts(s.last_delta_at),
        "next_allowed_at": ts(Some(next_manual.unwrap_or(now))),
        "next_sync_is_full": s.full_required || s.cursor.is_none() || s.listing.is_some(),
        "retry_after": ts(s.retry_after),
        "backoff": s.backoff.as_ref().map(|b| json!({
            "failures": b.failures,
            "reason": b.reason,
            "next_try_at": ts(Some(b.next_try_at)),
        })),
        "last_error": s.last_error,
        "last_error_at": ts(s.last_error_at),
        "last_run": s.last_run.as_ref().map(|r| json!({
            "kind": r.kind,
            "add_only": r.add_only,
            "started_at": ts(Some(r.started_at)),
            "finished_at": ts(Some(r.finished_at)),
            "pages": r.pages,
            "devices_seen": r.devices_seen,
            "outcome": r.outcome,
            "flagged_absent": r.flagged_absent,
        })),
    })
}

pub async fn get_sync(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let token = token_id(p, params).await?;
    let state = sync_state::load(p.store(), token)
        .await?
        .unwrap_or_default();
    Ok(api::ok_json(&sync_view(
        &state,
        p.clock().unix_seconds(),
        &Policy::default(),
    )))
}

fn device_view(d: &DeviceRecord) -> Value {
    json!({
        "serial_number": d.serial_number,
        "profile_uuid": d.profile_uuid(),
        "profile_status": d.profile_status(),
        "profile_assign_time": d.field("profile_assign_time"),
        "removed_from_abm": d.removed_at.is_some(),
        "removed_at": ts(d.removed_at),
        "removed_by": d.removed_by,
        "first_seen_at": ts(Some(d.first_seen_at)),
        "updated_at": ts(Some(d.updated_at)),
        "apple": d.apple,
    })
}

fn list_query(req: &Request) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery::default();
    let page = paging::query(req, |k, v, bad| {
        match k {
            "assignment" => match v.as_str() {
                "unassigned" => q.assignment = Some(Assignment::Unassigned),
                "any" => q.assignment = Some(Assignment::Any),
                "" => bad.push(FieldError::new(
                    "assignment",
                    "unassigned, any or a profile UUID",
                )),
                uuid => q.assignment = Some(Assignment::Profile(uuid.to_owned())),
            },
            "serial_prefix" if !v.is_empty() && v.len() <= 64 => q.serial_prefix = Some(v),
            "serial_prefix" => bad.push(FieldError::new("serial_prefix", "1 to 64 characters")),
            "removed" => match v.as_str() {
                "true" => q.removed = Some(true),
                "false" => q.removed = Some(false),
                _ => bad.push(FieldError::new("removed", "true or false")),
            },
            _ => return false,
        }
        true
    })?;
    q.limit = page.limit;
    q.after = page.cursor.unwrap_or(0);
    Ok(q)
}

pub async fn list_devices(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let token = token_id(p, params).await?;
    let q = list_query(req)?;
    let page = inventory_list::list(p.store(), token, &q).await?;
    let total = inventory::live_count(p.store(), token).await?;
    let mut extra = Map::new();
    extra.insert("total".into(), json!(total));
    Ok(api::ok_json(&paging::answer(
        page.devices.iter().map(device_view).collect(),
        page.next,
        extra,
    )))
}

pub async fn get_device(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let token = token_id(p, params).await?;
    let serial = params.get("serial").unwrap_or_default();
    match inventory::get(p.store(), token, serial).await? {
        Some(d) => {
            let mut v = device_view(&d);
            // Why a device is (not) assigned: Apple's last answer for it.
            v["assignment"] = match crate::dep::assign::results(p.store(), token, serial).await? {
                Some(r) => json!({
                    "status": r.status,
                    "at": ts(Some(r.at)),
                    "profile": r.profile,
                    "apple_uuid": r.apple_uuid,
                    "retry_at": ts(r.retry_at),
                    "failures": r.failures,
                }),
                None => Value::Null,
            };
            Ok(api::ok_json(&v))
        }
        None => Err(ApiError::not_found(format!(
            "no device {serial:?} in token {token}"
        ))),
    }
}

pub async fn delete_device(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let token = token_id(p, params).await?;
    let serial = params.get("serial").unwrap_or_default();
    if inventory::delete_by_admin(p.store(), token, serial, p.clock().unix_seconds()).await? {
        Ok(http::Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Vec::new())
            .expect("static response"))
    } else {
        Err(ApiError::not_found(format!(
            "no device {serial:?} in token {token}"
        )))
    }
}

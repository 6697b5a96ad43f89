//! The admin API's routes over a device's commands once queued: their history (filtered,
//! a page at a time), one command with the device's answer, and cancelling one the device
//! has not been sent yet. Records and queue entries are [`connect`]'s and [`queue`]'s.

use base64::Engine;
use plist::Value as Plist;
use serde_json::{Map, Value, json};

use super::paging;
use crate::api::{self, ApiError, FieldError, Params, Request, Response};
use crate::command;
use crate::command::history::HistoryQuery;
use crate::command::records::{self, CancelOutcome, CommandResult};
use crate::mdm::connect;
use crate::mdm::enrollment_record;
use crate::mdm::enrollment_record::EnrollmentRecord;
use crate::queue::{self, Channel, Lane, QueueError};
use crate::time::format_rfc3339;
use crate::{Clock, Platform};

/// History filter names and their [`CommandResult::status`].
pub const STATUSES: &[(&str, &str)] = &[
    ("queued", records::STATUS_QUEUED),
    ("not_now", records::STATUS_NOT_NOW),
    ("acknowledged", "Acknowledged"),
    ("error", "Error"),
    ("command_format_error", "CommandFormatError"),
    ("cancelled", records::STATUS_CANCELLED),
];

fn status_name(s: &str) -> &str {
    STATUSES.iter().find(|(_, v)| *v == s).map_or(s, |(k, _)| k)
}

fn ts(t: Option<u64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t as i64)))
}

pub(super) fn lane_name(l: Lane) -> &'static str {
    match l {
        Lane::Priority => "priority",
        Lane::Normal => "normal",
    }
}

fn view(r: &CommandResult) -> Value {
    json!({
        "command_uuid": r.uuid,
        "request_type": r.request_type,
        "status": status_name(&r.status),
        "lane": r.lane.map(lane_name),
        "enqueued_at": ts(Some(r.enqueued_at)),
        "answered_at": ts(r.answered_at),
        "cancelled_at": ts(r.cancelled_at),
        "not_now_count": r.not_now_count,
        "last_not_now_at": ts(r.last_not_now_at),
        "error_chain": r.error_chain,
    })
}

/// Keys of a report that identify it rather than answer the command.
const ENVELOPE: &[&str] = &[
    "Status",
    "CommandUUID",
    "UDID",
    "EnrollmentID",
    "UserID",
    "EnrollmentUserID",
    "UserShortName",
    "UserLongName",
    "ErrorChain",
    "RequestType",
];

fn history_query(req: &Request) -> Result<(HistoryQuery, Option<String>), ApiError> {
    let mut q = HistoryQuery::default();
    let mut user = None;
    let page = paging::query_in_range(req, &mut q.from, &mut q.to, |k, v, bad| {
        match k {
            "status" => match STATUSES.iter().find(|(name, _)| *name == v.as_str()) {
                Some((_, s)) => q.status = Some((*s).to_owned()),
                None => bad.push(FieldError::new(
                    "status",
                    format!(
                        "one of {}",
                        STATUSES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            },
            "request_type" => match request_type(&v) {
                Some(rt) => q.request_type = Some(rt),
                None => bad.push(FieldError::new("request_type", "1 to 64 characters")),
            },
            "user" => match channel_user(v) {
                Ok(u) => user = Some(u),
                Err(e) => bad.push(e),
            },
            _ => return false,
        }
        true
    })?;
    q.limit = page.limit;
    q.before = page.cursor;
    Ok((q, user))
}

fn request_type(v: &str) -> Option<String> {
    (!v.is_empty() && v.len() <= 64).then(|| v.to_owned())
}

/// The `user` parameter: a user channel (UserID or EnrollmentUserID).
fn channel_user(v: String) -> Result<String, FieldError> {
    if v.is_empty() || v.len() > 128 {
        Err(FieldError::new(
            "user",
            "a user channel of the device (UserID or EnrollmentUserID), 1 to 128 characters",
        ))
    } else {
        Ok(v)
    }
}

/// The channel named by the `user` query parameter, on a device that ever enrolled.
fn user_param(req: &Request) -> Result<Option<String>, ApiError> {
    let mut user = None;
    let mut bad = Vec::new();
    for (k, v) in api::query(req)? {
        match k.as_str() {
            "user" => match channel_user(v) {
                Ok(u) => user = Some(u),
                Err(e) => bad.push(e),
            },
            other => bad.push(FieldError::unknown_parameter(other)),
        }
    }
    if bad.is_empty() {
        Ok(user)
    } else {
        Err(ApiError::invalid(bad))
    }
}

fn history_channel(device: &str, user: Option<&str>) -> Channel {
    match user {
        Some(u) => Channel::user(device, u),
        None => Channel::device(device),
    }
}

/// A device that ever enrolled (its history outlives the enrollment).
async fn known_device(p: &impl Platform, device: &str) -> Result<EnrollmentRecord, ApiError> {
    enrollment_record::get(p.store(), device)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {device:?}")))
}

/// `GET /api/v1/devices/{device}/commands`
pub async fn history(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let device = params.get("device").unwrap_or_default();
    let (q, user) = history_query(req)?;
    known_device(p, device).await?;
    let ch = history_channel(device, user.as_deref());
    let page = command::history::history(p.store(), &ch, &q).await?;
    Ok(api::ok_json(&paging::answer(
        page.commands.iter().map(view).collect(),
        page.next,
        Map::new(),
    )))
}

/// `GET /api/v1/devices/{device}/commands/{uuid}`
pub async fn get(p: &impl Platform, params: &Params, req: &Request) -> Result<Response, ApiError> {
    let device = params.get("device").unwrap_or_default();
    let uuid = params.get("uuid").unwrap_or_default();
    let user = user_param(req)?;
    known_device(p, device).await?;
    let ch = history_channel(device, user.as_deref());
    let Some(r) = records::result(p.store(), ch.tag(), uuid).await? else {
        return Err(ApiError::not_found(format!(
            "device {device:?} has no command {uuid:?}"
        )));
    };
    let mut v = view(&r);
    v["raw"] = if r.raw.is_empty() {
        Value::Null
    } else {
        Value::String(r.raw.clone())
    };
    v["raw_omitted_bytes"] = json!(r.raw_omitted_bytes);
    v["response"] = base64::engine::general_purpose::STANDARD
        .decode(&r.raw)
        .ok()
        .filter(|b| !b.is_empty())
        .and_then(|b| plist::from_bytes::<Plist>(&b).ok())
        .and_then(Plist::into_dictionary)
        .map_or(Value::Null, |mut d| {
            for k in ENVELOPE {
                d.remove(k);
            }
            connect::to_json(&Plist::Dictionary(d))
        });
    v["delivery"] = match queue::find(p.store(), &ch, uuid).await? {
        Some(c) if !r.finished() => json!({
            "state": c.state,
            "deliveries": c.deliveries,
            "last_delivered_at": ts(c.delivered_at),
        }),
        _ => Value::Null,
    };
    Ok(api::ok_json(&v))
}

/// `DELETE /api/v1/devices/{device}/commands/{uuid}`
pub async fn cancel(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let device = params.get("device").unwrap_or_default();
    let uuid = params.get("uuid").unwrap_or_default();
    let user = user_param(req)?;
    known_device(p, device).await?;
    let ch = history_channel(device, user.as_deref());
    let now = p.clock().unix_seconds();
    match records::cancel(p.store(), &ch, uuid, now).await {
        Ok(CancelOutcome::Cancelled(r)) => Ok(api::ok_json(&view(&r))),
        Ok(CancelOutcome::InFlight) => Err(ApiError::conflict(format!(
            "command {uuid:?} was delivered to the device and is awaiting its answer"
        ))),
        Ok(CancelOutcome::Finished(r)) => Err(ApiError::conflict(format!(
            "command {uuid:?} is already {}",
            status_name(&r.status)
        ))),
        Ok(CancelOutcome::Unknown) => Err(ApiError::not_found(format!(
            "device {device:?} has no command {uuid:?}"
        ))),
        Err(QueueError::Store(e)) => Err(ApiError::store(e)),
        Err(e) => Err(ApiError::not_found(e.to_string())),
    }
}

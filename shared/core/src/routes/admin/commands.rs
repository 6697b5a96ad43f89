//! The admin API's routes that queue MDM commands: one for one device (JSON or a raw
//! command plist), one for many devices. They read the request and write the answer;
//! binding the command to a device, its checks and the queuing are
//! [`crate::command::enqueue`]'s. A device's commands once queued are
//! [`super::command_history`]'s.

use http::{StatusCode, header};
use plist::{Dictionary, Value as Plist};
use serde_json::{Map, Value, json};

use super::command_history::lane_name;
use crate::Platform;
use crate::api::{self, ApiError, FieldError, Params, Request, Response};
use crate::command;
use crate::command::enqueue::{Input, Options, Queued, payload_errors, queue_limit};
use crate::push;
use crate::time::format_rfc3339;

/// Devices one bulk request may address.
pub const MAX_BULK_DEVICES: usize = 1000;

fn is_plist(req: &Request) -> bool {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let ct = ct.split(';').next().unwrap_or("").trim().to_owned();
    matches!(
        ct.as_str(),
        "application/x-apple-plist" | "application/x-plist" | "application/xml" | "text/xml"
    )
}

fn bool_param(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(ApiError::field(name, "true or false")),
    }
}

/// A JSON command object: `RequestType`, payload keys, and the options `user` and
/// `priority` (lowercase, so they cannot clash with Apple's PascalCase keys).
fn json_input(mut obj: Map<String, Value>, allow_user: bool) -> Result<(Input, Options), ApiError> {
    let mut opts = Options::default();
    match obj.remove("user") {
        None | Some(Value::Null) => {}
        Some(Value::String(u)) if !u.is_empty() && allow_user => opts.user = Some(u),
        Some(Value::String(_)) if !allow_user => {
            return Err(ApiError::field(
                "user",
                "user channels differ per device: queue user-channel commands per device",
            ));
        }
        Some(_) => {
            return Err(ApiError::field(
                "user",
                "expected a non-empty string (UserID or EnrollmentUserID)",
            ));
        }
    }
    match obj.remove("priority") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => opts.priority = b,
        Some(_) => {
            return Err(ApiError::field("priority", "expected a boolean"));
        }
    }
    let request_type = match obj.remove("RequestType") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(_) => {
            return Err(ApiError::field(
                "RequestType",
                "expected a non-empty string",
            ));
        }
        None => {
            return Err(ApiError::field("RequestType", "missing required key"));
        }
    };
    Ok((
        Input::Json {
            request_type,
            payload: obj,
        },
        opts,
    ))
}

fn parse_request(req: &Request) -> Result<(Input, Options), ApiError> {
    if is_plist(req) {
        let mut opts = Options::default();
        for (k, v) in api::query(req)? {
            match k.as_str() {
                "user" if !v.is_empty() => opts.user = Some(v),
                "user" => return Err(ApiError::field("user", "UserID or EnrollmentUserID")),
                "priority" => opts.priority = bool_param("priority", &v)?,
                other => {
                    return Err(ApiError::invalid(vec![FieldError::unknown_parameter(
                        other,
                    )]));
                }
            }
        }
        // Parsed (and the payload checked) here; checked again once bound to a device.
        let (request_type, payload, uuid) = match command::upload::parse_raw_command(req.body()) {
            Ok(parsed) => parsed,
            Err(errs) if errs.iter().any(|e| e.key == "plist") => {
                return Err(ApiError::bad_request(
                    errs.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                ));
            }
            // ClearPasscode without UnlockToken: filled in from the enrollment below.
            Err(errs) if errs.iter().all(|e| e.key == "UnlockToken") => {
                let (rt, payload, uuid) =
                    raw_without_check(req.body()).ok_or_else(|| payload_errors(errs.clone()))?;
                if rt != "ClearPasscode" {
                    return Err(payload_errors(errs));
                }
                (rt, payload, uuid)
            }
            Err(errs) => return Err(payload_errors(errs)),
        };
        Ok((
            Input::Plist {
                request_type,
                payload,
                uuid,
            },
            opts,
        ))
    } else {
        let body: Value = api::parse_json(req)?;
        let Value::Object(obj) = body else {
            return Err(ApiError::field("body", "a JSON object"));
        };
        json_input(obj, true)
    }
}

/// The envelope of a raw command plist, unchecked.
fn raw_without_check(bytes: &[u8]) -> Option<(String, Dictionary, Option<String>)> {
    let top = plist::from_bytes::<Plist>(bytes).ok()?.into_dictionary()?;
    let uuid = top
        .get("CommandUUID")
        .and_then(Plist::as_string)
        .map(str::to_owned);
    let mut cmd = match top.get("Command") {
        Some(Plist::Dictionary(d)) => d.clone(),
        _ => top,
    };
    let rt = cmd.remove("RequestType")?.into_string()?;
    Some((rt, cmd, uuid))
}

/// The 201 body for a command queued on `device`.
fn queued_body(device: &str, user: Option<&str>, q: &Queued) -> Value {
    json!({
        "device": device,
        "user": user,
        "command_uuid": q.command_uuid,
        "request_type": q.request_type,
        "lane": lane_name(q.lane),
        "status": "queued",
        "enqueued_at": format_rfc3339(q.enqueued_at as i64),
    })
}

/// Queues a command given as JSON (`RequestType` and payload keys) on the device
/// channel, with every check [`enqueue`] makes: the device actions use it.
pub(crate) async fn enqueue_json(
    p: &impl Platform,
    device: &str,
    command: Map<String, Value>,
    priority: bool,
) -> Result<(Value, bool), ApiError> {
    let (input, mut opts) = json_input(command, false)?;
    opts.priority |= priority;
    let limit = queue_limit(p.vars()).await?;
    let q = command::enqueue::enqueue(p, device, &input, &opts, limit).await?;
    Ok((
        queued_body(device, opts.user.as_deref(), &q),
        q.behind_others,
    ))
}

/// `POST /api/v1/devices/{device}/commands`
pub async fn enqueue(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let device = params.get("device").unwrap_or_default();
    let (input, opts) = parse_request(req)?;
    let limit = queue_limit(p.vars()).await?;
    let q = command::enqueue::enqueue(p, device, &input, &opts, limit).await?;
    let mut body = queued_body(device, opts.user.as_deref(), &q);
    // The command is queued whatever APNs says: the push outcome is only reported.
    body["push"] = match push::notify_enqueued(p, device, q.behind_others).await {
        Ok(outcome) => serde_json::to_value(outcome).unwrap_or(Value::Null),
        Err(e) => json!({ "outcome": "error", "error": e.to_string() }),
    };
    Ok(api::json(StatusCode::CREATED, &body))
}

/// `POST /api/v1/commands`: `{"devices": [...], "command": {...}}`.
pub async fn enqueue_bulk(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let body: Value = api::parse_json(req)?;
    let Value::Object(mut obj) = body else {
        return Err(ApiError::field("body", "a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| *k != "devices" && *k != "command") {
        return Err(ApiError::field(
            k.as_str(),
            "unknown field (expected devices and command)",
        ));
    }
    let devices: Vec<String> = match obj.remove("devices") {
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) if !s.is_empty() => Ok(s),
                _ => Err(()),
            })
            .collect::<Result<_, _>>()
            .map_err(|_| ApiError::field("devices", "expected an array of device ids"))?,
        _ => {
            return Err(ApiError::field(
                "devices",
                "required: an array of device ids",
            ));
        }
    };
    if devices.is_empty() || devices.len() > MAX_BULK_DEVICES {
        return Err(ApiError::field(
            "devices",
            format!("from 1 to {MAX_BULK_DEVICES} devices"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(d) = devices.iter().find(|d| !seen.insert(d.as_str())) {
        return Err(ApiError::field("devices", format!("{d:?} is listed twice")));
    }
    let Some(Value::Object(command)) = obj.remove("command") else {
        return Err(ApiError::field("command", "required: the command object"));
    };
    let (input, opts) = json_input(command, false)?;
    let each = command::enqueue::enqueue_each(p, &devices, &input, &opts).await?;
    let results: Vec<Value> = devices
        .iter()
        .zip(each)
        .map(|(device, r)| match r {
            Ok((q, pushed)) => {
                let mut v = queued_body(device, opts.user.as_deref(), &q);
                v["push"] = match pushed {
                    Ok(()) => json!("deferred"),
                    Err(e) => json!({ "outcome": "error", "error": e.to_string() }),
                };
                v
            }
            Err(e) => {
                let mut v = e.body();
                v["device"] = json!(device);
                v["status"] = json!(e.status.as_u16());
                v
            }
        })
        .collect();
    let queued = results
        .iter()
        .filter(|r| r.get("command_uuid").is_some())
        .count();
    Ok(api::ok_json(&json!({
        "queued": queued,
        "failed": results.len() - queued,
        "results": results,
    })))
}

//! MDM commands over the admin API: queue one (JSON or a raw command plist), queue one
//! for many devices, the history of a device, one command's result, cancel.
//!
//! Before anything is queued the payload is checked against Apple's schema
//! ([`command_payload`]) and the command against what the device can run
//! ([`crate::mdm::availability`]).
//!
//! Storage is [`connect`]'s and [`queue`]'s (key layouts documented there).

use base64::Engine;
use http::{StatusCode, header};
use plist::{Dictionary, Value as Plist};
use serde_json::{Map, Value, json};

use crate::api::{self, ApiError, Params, Request, Response};
use crate::config::{self};
use crate::mdm::availability::{capability, user_enrollment_limits};
// Platform naming, still reachable by its former path.
pub use crate::mdm::availability::{platform_name, platform_of};
use crate::mdm::command;
use crate::mdm::command_history::{self, HistoryQuery};
use crate::mdm::command_payload::{self, PayloadError};
use crate::mdm::command_secrets;
use crate::mdm::command_upload;
use crate::mdm::connect::{self, CancelOutcome, CommandResult, EnqueueError, NewCommand};
use crate::mdm::enrollments::{self, EnrollmentRecord};
use crate::mdm::push;
use crate::mdm::queue::{self, Channel, Lane, QueueError};
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::{Clock, Platform, Variables};

/// Variable: pending commands a channel may hold (default [`QUEUE_LIMIT_DEFAULT`]).
pub const COMMAND_QUEUE_LIMIT: &str = "command_queue_limit";
pub const QUEUE_LIMIT_DEFAULT: u64 = 1000;
/// Devices one bulk request may address.
pub const MAX_BULK_DEVICES: usize = 1000;
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

/// Commands that always take the priority lane: they must not wait behind deferrable
/// work (and run even where a device defers most commands, e.g. macOS Power Nap).
/// Besides these, everything queued while a channel awaits configuration (Setup
/// Assistant held by ADE) takes the priority lane, so the setup commands keep their
/// order relative to the `DeviceConfigured` that ends setup.
pub const PRIORITY_COMMANDS: &[&str] = &[
    "DeviceLock",
    "EraseDevice",
    "DeviceConfigured",
    "UserConfigured",
    "AccountConfiguration",
];

/// A command as the admin sent it, before it is bound to a device.
#[derive(Debug, Clone)]
enum Input {
    Json {
        request_type: String,
        payload: Map<String, Value>,
    },
    Plist {
        request_type: String,
        payload: Dictionary,
        uuid: Option<String>,
    },
}

impl Input {
    fn request_type(&self) -> &str {
        match self {
            Input::Json { request_type, .. } | Input::Plist { request_type, .. } => request_type,
        }
    }
}

/// Options next to the command.
#[derive(Debug, Clone, Default)]
struct Options {
    user: Option<String>,
    priority: bool,
}

fn payload_errors(errs: Vec<PayloadError>) -> ApiError {
    ApiError::unprocessable(serde_json::to_value(errs).unwrap_or(Value::Null))
}

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
        _ => Err(ApiError::unprocessable(
            json!([{ "field": name, "rule": "true or false" }]),
        )),
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
            return Err(ApiError::unprocessable(json!([{
                "key": "user",
                "problem": "user channels differ per device: queue user-channel commands per device",
            }])));
        }
        Some(_) => {
            return Err(ApiError::unprocessable(
                json!([{ "key": "user", "problem": "expected a non-empty string (UserID or EnrollmentUserID)" }]),
            ));
        }
    }
    match obj.remove("priority") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => opts.priority = b,
        Some(_) => {
            return Err(ApiError::unprocessable(
                json!([{ "key": "priority", "problem": "expected a boolean" }]),
            ));
        }
    }
    let request_type = match obj.remove("RequestType") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(_) => {
            return Err(payload_errors(vec![PayloadError {
                key: "RequestType".into(),
                problem: "expected a non-empty string".into(),
            }]));
        }
        None => {
            return Err(payload_errors(vec![PayloadError {
                key: "RequestType".into(),
                problem: "missing required key".into(),
            }]));
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
                "priority" => opts.priority = bool_param("priority", &v)?,
                other => {
                    return Err(ApiError::unprocessable(
                        json!([{ "field": other, "rule": "unknown query parameter" }]),
                    ));
                }
            }
        }
        // Parsed (and the payload checked) here; checked again once bound to a device.
        let (request_type, payload, uuid) = match command_upload::parse_raw_command(req.body()) {
            Ok(parsed) => parsed,
            Err(errs) if errs.iter().any(|e| e.key == "plist") => {
                return Err(ApiError::bad_request(
                    serde_json::to_value(errs).unwrap_or(Value::Null),
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
            return Err(ApiError::bad_request("expected a JSON object"));
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

pub(crate) fn new_uuid() -> String {
    crate::random::uuid_v4()
}

async fn queue_limit(vars: &impl Variables) -> Result<u64, ApiError> {
    match vars.get(COMMAND_QUEUE_LIMIT).await {
        Ok(None) => Ok(QUEUE_LIMIT_DEFAULT),
        Ok(Some(v)) if v.trim().is_empty() => Ok(QUEUE_LIMIT_DEFAULT),
        Ok(Some(v)) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                ApiError::misconfigured(format!(
                    "variable {COMMAND_QUEUE_LIMIT} must be a number from 1 to 1000000"
                ))
            }),
        Err(e) => Err(ApiError::misconfigured(format!(
            "variable {COMMAND_QUEUE_LIMIT}: {e}"
        ))),
    }
}

/// The enrolled device named in the path.
async fn enrolled_device(p: &impl Platform, device: &str) -> Result<EnrollmentRecord, ApiError> {
    match enrollments::get(p.store(), device).await? {
        Some(rec) if rec.enrolled => Ok(rec),
        Some(_) => Err(ApiError::not_found(format!(
            "device {device:?} is not enrolled"
        ))),
        None => Err(ApiError::not_found(format!("no device {device:?}"))),
    }
}

/// A device that ever enrolled (its history outlives the enrollment).
async fn known_device(p: &impl Platform, device: &str) -> Result<EnrollmentRecord, ApiError> {
    enrollments::get(p.store(), device)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {device:?}")))
}

/// The channel for `user` on the device (which must have checked in on it).
async fn channel(
    p: &impl Platform,
    device: &str,
    user: Option<&str>,
) -> Result<(Channel, bool), ApiError> {
    match user {
        None => Ok((Channel::device(device), false)),
        Some(u) => match enrollments::user_channel(p.store(), device, u).await? {
            Some(uc) => Ok((Channel::user(device, u), uc.awaiting_configuration)),
            None => Err(ApiError::not_found(format!(
                "device {device:?} has no user channel {u:?}"
            ))),
        },
    }
}

/// The device's escrowed UnlockToken, for ClearPasscode.
async fn unlock_token(p: &impl Platform, rec: &EnrollmentRecord) -> Result<Vec<u8>, ApiError> {
    let key = config::storage_key(p.vars()).await?;
    enrollments::unlock_token(rec, &key).ok_or_else(|| {
        ApiError::unprocessable(json!([{
            "key": "UnlockToken",
            "problem": "missing, and the device escrowed none in its TokenUpdate",
        }]))
    })
}

/// Binds a command to one device: fills the UnlockToken of ClearPasscode, checks the
/// payload and the device's capabilities, and builds the command plist.
async fn prepare(
    p: &impl Platform,
    input: &Input,
    rec: &EnrollmentRecord,
    user_channel: bool,
) -> Result<(String, String, Vec<u8>), ApiError> {
    let rt = input.request_type().to_owned();
    let (payload, given_uuid) = match input {
        Input::Json { payload, .. } => {
            let mut payload = payload.clone();
            if rt == "ClearPasscode" && !payload.contains_key("UnlockToken") {
                let token = unlock_token(p, rec).await?;
                payload.insert(
                    "UnlockToken".into(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(token)),
                );
            }
            (
                command_payload::payload_from_json(&rt, &payload).map_err(payload_errors)?,
                None,
            )
        }
        Input::Plist { payload, uuid, .. } => {
            let mut payload = payload.clone();
            if rt == "ClearPasscode" && !payload.contains_key("UnlockToken") {
                payload.insert(
                    "UnlockToken".into(),
                    Plist::Data(unlock_token(p, rec).await?),
                );
            }
            command_payload::validate_plist(&rt, &payload).map_err(payload_errors)?;
            (payload, uuid.clone())
        }
    };
    capability(&rt, rec, user_channel).map_err(ApiError::unprocessable)?;
    if rec.user_enrollment {
        user_enrollment_limits(&rt, &payload, platform_of(rec))
            .map_err(|problems| ApiError::unprocessable(Value::Array(problems)))?;
    }
    let uuid = given_uuid.unwrap_or_else(new_uuid);
    let body = command::build(&uuid, &rt, payload);
    Ok((rt, uuid, body))
}

fn lane_for(request_type: &str, explicit: bool, awaiting_configuration: bool) -> Lane {
    if explicit || awaiting_configuration || PRIORITY_COMMANDS.contains(&request_type) {
        Lane::Priority
    } else {
        Lane::Normal
    }
}

fn enqueue_error(e: EnqueueError, device: &str, uuid: &str) -> ApiError {
    match e {
        EnqueueError::Duplicate => {
            ApiError::conflict(format!("device {device:?} already has a command {uuid:?}"))
        }
        EnqueueError::Queue(QueueError::Full { limit }) => ApiError::new(
            StatusCode::CONFLICT,
            "queue_full",
            format!(
                "device {device:?} already has {limit} pending commands (variable {COMMAND_QUEUE_LIMIT}); wait for the device or cancel some"
            ),
        ),
        EnqueueError::Queue(QueueError::NoChannel) => ApiError::not_found(format!(
            "device {device:?} has no command queue on this channel (no TokenUpdate yet)"
        )),
        EnqueueError::Queue(QueueError::Store(e)) => ApiError::store(e),
        EnqueueError::Unsealed => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("command {uuid:?} carries a secret and was not sealed"),
        ),
    }
}

/// Queues one command for one device; `Ok` is the 201 body and whether the command is
/// behind others the device has still to fetch ([`push::notify_enqueued`]).
async fn enqueue_for(
    p: &impl Platform,
    device: &str,
    input: &Input,
    opts: &Options,
    limit: u64,
) -> Result<(Value, bool), ApiError> {
    let rec = enrolled_device(p, device).await?;
    let (ch, user_awaiting) = channel(p, device, opts.user.as_deref()).await?;
    let user_channel = opts.user.is_some();
    let (rt, uuid, body) = prepare(p, input, &rec, user_channel).await?;
    let awaiting = if user_channel {
        user_awaiting
    } else {
        rec.awaiting_configuration
    };
    let lane = lane_for(&rt, opts.priority, awaiting);
    // A command carrying a secret (a PIN, a password, the UnlockToken) rests sealed.
    let sealed = command_secrets::carries_secret(&rt);
    let body = if sealed {
        let key = config::storage_key(p.vars()).await?;
        command_secrets::seal(&key, ch.tag(), &uuid, &body)
    } else {
        body
    };
    let cmd = NewCommand {
        uuid: uuid.clone(),
        request_type: rt.clone(),
        body,
        lane,
        sealed,
    };
    let now = p.clock().unix_seconds();
    let queued = connect::enqueue(p.store(), &ch, &cmd, now, limit)
        .await
        .map_err(|e| enqueue_error(e, device, &uuid))?;
    let body = json!({
        "device": device,
        "user": opts.user,
        "command_uuid": uuid,
        "request_type": rt,
        "lane": lane_name(lane),
        "status": "queued",
        "enqueued_at": format_rfc3339(now as i64),
    });
    Ok((body, queued.behind_others))
}

fn lane_name(l: Lane) -> &'static str {
    match l {
        Lane::Priority => "priority",
        Lane::Normal => "normal",
    }
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
    enqueue_for(p, device, &input, &opts, limit).await
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
    let (mut body, behind_others) = enqueue_for(p, device, &input, &opts, limit).await?;
    // The command is queued whatever APNs says: the push outcome is only reported.
    body["push"] = match push::notify_enqueued(p, device, behind_others).await {
        Ok(outcome) => serde_json::to_value(outcome).unwrap_or(Value::Null),
        Err(e) => json!({ "outcome": "error", "error": e.to_string() }),
    };
    Ok(api::json(StatusCode::CREATED, &body))
}

/// `POST /api/v1/commands`: `{"devices": [...], "command": {...}}`.
pub async fn enqueue_bulk(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let body: Value = api::parse_json(req)?;
    let Value::Object(mut obj) = body else {
        return Err(ApiError::bad_request("expected a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| *k != "devices" && *k != "command") {
        return Err(ApiError::unprocessable(
            json!([{ "key": k, "problem": "unknown key (expected devices and command)" }]),
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
            .map_err(|_| {
                ApiError::unprocessable(
                    json!([{ "key": "devices", "problem": "expected an array of device ids" }]),
                )
            })?,
        _ => {
            return Err(ApiError::unprocessable(
                json!([{ "key": "devices", "problem": "missing required key: an array of device ids" }]),
            ));
        }
    };
    if devices.is_empty() || devices.len() > MAX_BULK_DEVICES {
        return Err(ApiError::unprocessable(json!([{
            "key": "devices",
            "problem": format!("from 1 to {MAX_BULK_DEVICES} devices"),
        }])));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(d) = devices.iter().find(|d| !seen.insert(d.as_str())) {
        return Err(ApiError::unprocessable(
            json!([{ "key": "devices", "problem": format!("{d:?} is listed twice") }]),
        ));
    }
    let Some(Value::Object(command)) = obj.remove("command") else {
        return Err(ApiError::unprocessable(
            json!([{ "key": "command", "problem": "missing required key: the command object" }]),
        ));
    };
    let (input, opts) = json_input(command, false)?;
    // A payload that is wrong is wrong for every device: refuse it once.
    if let Input::Json {
        request_type,
        payload,
    } = &input
    {
        let fillable = request_type == "ClearPasscode" && !payload.contains_key("UnlockToken");
        if !fillable {
            command_payload::payload_from_json(request_type, payload).map_err(payload_errors)?;
        }
    }
    let limit = queue_limit(p.vars()).await?;
    let mut results = Vec::with_capacity(devices.len());
    for device in &devices {
        results.push(match enqueue_for(p, device, &input, &opts, limit).await {
            // Pushing every device inline would wait on APNs once per device: the
            // scheduler's drain pushes them instead.
            Ok((mut v, _)) => {
                let now = p.clock().unix_seconds();
                v["push"] = match push::defer_push(p.store(), device, now).await {
                    Ok(()) => json!("deferred"),
                    Err(e) => json!({ "outcome": "error", "error": e.to_string() }),
                };
                v
            }
            Err(e) => json!({
                "device": device,
                "status": e.status.as_u16(),
                "error": e.error,
                "detail": e.detail,
            }),
        });
    }
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

/// History filter names and their [`CommandResult::status`].
pub const STATUSES: &[(&str, &str)] = &[
    ("queued", connect::STATUS_QUEUED),
    ("not_now", connect::STATUS_NOT_NOW),
    ("acknowledged", "Acknowledged"),
    ("error", "Error"),
    ("command_format_error", "CommandFormatError"),
    ("cancelled", connect::STATUS_CANCELLED),
];

fn status_name(s: &str) -> &str {
    STATUSES.iter().find(|(_, v)| *v == s).map_or(s, |(k, _)| k)
}

fn ts(t: Option<u64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t as i64)))
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

fn time_param(name: &str, v: &str) -> Result<u64, Value> {
    v.parse::<u64>()
        .ok()
        .or_else(|| parse_rfc3339(v).and_then(|t| u64::try_from(t).ok()))
        .ok_or_else(|| json!({ "field": name, "rule": "Unix seconds or an RFC 3339 timestamp" }))
}

fn history_query(req: &Request) -> Result<(HistoryQuery, Option<String>), ApiError> {
    let mut q = HistoryQuery {
        limit: DEFAULT_PAGE,
        ..Default::default()
    };
    let mut user = None;
    let mut bad = Vec::new();
    for (k, v) in api::query(req)? {
        match k.as_str() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => q.limit = n,
                _ => bad.push(json!({ "field": "limit", "rule": format!("an integer from 1 to {MAX_PAGE}") })),
            },
            "cursor" => match v.parse::<u64>() {
                Ok(n) if n > 0 => q.before = Some(n),
                _ => bad.push(json!({ "field": "cursor", "rule": "the `next` value of the previous page" })),
            },
            "status" => match STATUSES.iter().find(|(name, _)| *name == v) {
                Some((_, s)) => q.status = Some((*s).to_owned()),
                None => bad.push(json!({
                    "field": "status",
                    "rule": format!("one of {}", STATUSES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")),
                })),
            },
            "request_type" if !v.is_empty() => q.request_type = Some(v),
            "from" => match time_param("from", &v) {
                Ok(t) => q.from = Some(t),
                Err(e) => bad.push(e),
            },
            "to" => match time_param("to", &v) {
                Ok(t) => q.to = Some(t),
                Err(e) => bad.push(e),
            },
            "user" if !v.is_empty() => user = Some(v),
            other => bad.push(json!({ "field": other, "rule": "unknown query parameter" })),
        }
    }
    if let (Some(f), Some(t)) = (q.from, q.to)
        && f > t
    {
        bad.push(json!({ "field": "from", "rule": "not after `to`" }));
    }
    if bad.is_empty() {
        Ok((q, user))
    } else {
        Err(ApiError::unprocessable(Value::Array(bad)))
    }
}

/// The channel named by the `user` query parameter, on a device that ever enrolled.
fn user_param(req: &Request) -> Result<Option<String>, ApiError> {
    let mut user = None;
    for (k, v) in api::query(req)? {
        match k.as_str() {
            "user" if !v.is_empty() => user = Some(v),
            other => {
                return Err(ApiError::unprocessable(
                    json!([{ "field": other, "rule": "unknown query parameter" }]),
                ));
            }
        }
    }
    Ok(user)
}

fn history_channel(device: &str, user: Option<&str>) -> Channel {
    match user {
        Some(u) => Channel::user(device, u),
        None => Channel::device(device),
    }
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
    let page = command_history::history(p.store(), &ch, &q).await?;
    Ok(api::ok_json(&json!({
        "device": device,
        "user": user,
        "commands": page.commands.iter().map(view).collect::<Vec<_>>(),
        "next": page.next.map(|n| n.to_string()),
    })))
}

/// `GET /api/v1/devices/{device}/commands/{uuid}`
pub async fn get(p: &impl Platform, params: &Params, req: &Request) -> Result<Response, ApiError> {
    let device = params.get("device").unwrap_or_default();
    let uuid = params.get("uuid").unwrap_or_default();
    let user = user_param(req)?;
    known_device(p, device).await?;
    let ch = history_channel(device, user.as_deref());
    let Some(r) = connect::result(p.store(), ch.tag(), uuid).await? else {
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
    match connect::cancel(p.store(), &ch, uuid, now).await {
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

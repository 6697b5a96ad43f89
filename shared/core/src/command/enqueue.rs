//! Queuing an administrator's command on a device: binding it to the device (the
//! escrowed UnlockToken of ClearPasscode, Apple's schema in [`command_schema`], what the
//! device can run in [`crate::command::availability`]), choosing its lane, sealing what carries a
//! secret, and writing it through [`connect`]; the same command on many devices.
//!
//! Refusals are the admin API's answers ([`ApiError`]), which the handlers pass on.

use base64::Engine;
use http::StatusCode;
use mdm_kv::KvError;
use plist::{Dictionary, Value as Plist};
use serde_json::{Map, Value};

use crate::api::{ApiError, FieldError};
use crate::command;
use crate::command::availability::{capability, platform_of, user_enrollment_limits};
use crate::command::payload::PayloadError;
use crate::command::records::{self, EnqueueError, NewCommand};
use crate::config;
use crate::mdm::enrollment_record;
use crate::mdm::enrollment_record::EnrollmentRecord;
use crate::push;
use crate::queue::{Channel, Lane, QueueError};
use crate::{Clock, Platform, Variables};

/// Variable: pending commands a channel may hold (default [`QUEUE_LIMIT_DEFAULT`]).
pub const COMMAND_QUEUE_LIMIT: &str = "command_queue_limit";
pub const QUEUE_LIMIT_DEFAULT: u64 = 1000;

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
pub enum Input {
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
    pub fn request_type(&self) -> &str {
        match self {
            Input::Json { request_type, .. } | Input::Plist { request_type, .. } => request_type,
        }
    }
}

/// Options next to the command.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub user: Option<String>,
    pub priority: bool,
}

/// Apple's schema refused the payload: the list of offending keys, as a 422.
pub fn payload_errors(errs: Vec<PayloadError>) -> ApiError {
    ApiError::invalid(errs.into_iter().map(FieldError::from).collect())
}

fn new_uuid() -> String {
    crate::random::uuid_v4()
}

/// The [`COMMAND_QUEUE_LIMIT`] variable, checked.
pub async fn queue_limit(vars: &impl Variables) -> Result<u64, ApiError> {
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

/// The device, which must be enrolled.
async fn enrolled_device(p: &impl Platform, device: &str) -> Result<EnrollmentRecord, ApiError> {
    match enrollment_record::get(p.store(), device).await? {
        Some(rec) if rec.enrolled => Ok(rec),
        Some(_) => Err(ApiError::not_found(format!(
            "device {device:?} is not enrolled"
        ))),
        None => Err(ApiError::not_found(format!("no device {device:?}"))),
    }
}

/// The channel for `user` on the device (which must have checked in on it).
async fn channel(
    p: &impl Platform,
    device: &str,
    user: Option<&str>,
) -> Result<(Channel, bool), ApiError> {
    match user {
        None => Ok((Channel::device(device), false)),
        Some(u) => match enrollment_record::user_channel(p.store(), device, u).await? {
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
    enrollment_record::unlock_token(rec, &key).ok_or_else(|| {
        ApiError::field(
            "UnlockToken",
            "missing, and the device escrowed none in its TokenUpdate",
        )
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
                command::payload::payload_from_json(&rt, &payload).map_err(payload_errors)?,
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
            command::payload::validate_plist(&rt, &payload).map_err(payload_errors)?;
            (payload, uuid.clone())
        }
    };
    capability(&rt, rec, user_channel)
        .map_err(|why| ApiError::unprocessable("not_supported_by_device", why))?;
    if rec.user_enrollment {
        user_enrollment_limits(&rt, &payload, platform_of(rec)).map_err(ApiError::invalid)?;
    }
    let uuid = given_uuid.unwrap_or_else(new_uuid);
    let body = command::build::build(&uuid, &rt, payload);
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
        EnqueueError::Unsealed => ApiError::internal(format!(
            "command {uuid:?} carries a secret and was not sealed"
        )),
    }
}

/// A command queued on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub command_uuid: String,
    pub request_type: String,
    pub lane: Lane,
    pub enqueued_at: u64,
    /// Whether it is behind others the device has still to fetch
    /// ([`push::notify_enqueued`]).
    pub behind_others: bool,
}

/// Queues one command for one device: binds it (`prepare`), picks its lane, seals it
/// when it carries a secret, and writes record and queue entry within `limit` pending
/// commands.
pub async fn enqueue(
    p: &impl Platform,
    device: &str,
    input: &Input,
    opts: &Options,
    limit: u64,
) -> Result<Queued, ApiError> {
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
    let sealed = command::secrets::carries_secret(&rt);
    let body = if sealed {
        let key = config::storage_key(p.vars()).await?;
        command::secrets::seal(&key, ch.tag(), &uuid, &body)
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
    let queued = records::enqueue(p.store(), &ch, &cmd, now, limit)
        .await
        .map_err(|e| enqueue_error(e, device, &uuid))?;
    Ok(Queued {
        command_uuid: uuid,
        request_type: rt,
        lane,
        enqueued_at: now,
        behind_others: queued.behind_others,
    })
}

/// Queues the same command on each of `devices`, in order; one device's failure does not
/// stop the others. A payload that is wrong is wrong for every device: it is refused
/// once, before anything is queued. Pushing every device inline would wait on APNs once
/// per device: each push is deferred to the scheduler's drain instead, and its outcome
/// given next to the device's.
pub async fn enqueue_each(
    p: &impl Platform,
    devices: &[String],
    input: &Input,
    opts: &Options,
) -> Result<Vec<Result<(Queued, Result<(), KvError>), ApiError>>, ApiError> {
    if let Input::Json {
        request_type,
        payload,
    } = input
    {
        let fillable = request_type == "ClearPasscode" && !payload.contains_key("UnlockToken");
        if !fillable {
            command::payload::payload_from_json(request_type, payload).map_err(payload_errors)?;
        }
    }
    let limit = queue_limit(p.vars()).await?;
    let mut results = Vec::with_capacity(devices.len());
    for device in devices {
        results.push(match enqueue(p, device, input, opts, limit).await {
            Ok(q) => {
                let now = p.clock().unix_seconds();
                let pushed = push::defer_push(p.store(), device, now).await;
                Ok((q, pushed))
            }
            Err(e) => Err(e),
        });
    }
    Ok(results)
}

//! Device actions, the first-class admin API over the command queue:
//! `POST /api/v1/devices/{device}/actions/{action}` with a small JSON body in the
//! admin's words (`message`, `phone_number`, `pin`, `name`, ...), turned into the MDM
//! command(s) Apple defines and queued like any other command (same schema and
//! capability checks, same queue bound, priority lane for lock and wipe).

use crate::mdm::enrollment_record;
use serde_json::{Map, Value, json};

use crate::Platform;
use crate::api::{self, ApiError, FieldError, Params, Request, Response};
use crate::record::Stored;
use http::StatusCode;

/// The actions, and what each body may hold.
pub const ACTIONS: &[(&str, &[&str])] = &[
    ("lock", &["message", "phone_number", "pin"]),
    (
        "wipe",
        &["pin", "preserve_data_plan", "disallow_proximity_setup"],
    ),
    ("restart", &["notify_user"]),
    ("shutdown", &[]),
    ("rename", &["name"]),
    ("clear-passcode", &[]),
    ("enable-lost-mode", &["message", "phone_number", "footnote"]),
    ("disable-lost-mode", &[]),
    ("refresh-inventory", &[]),
    ("release", &[]),
];

/// What `refresh-inventory` asks for with DeviceInformation: facts every platform
/// answers (the device leaves out what it does not know).
pub const INVENTORY_QUERIES: &[&str] = &[
    "DeviceName",
    "OSVersion",
    "BuildVersion",
    "ModelName",
    "Model",
    "ProductName",
    "SerialNumber",
    "DeviceCapacity",
    "AvailableDeviceCapacity",
    "BatteryLevel",
    "WiFiMAC",
    "BluetoothMAC",
    "IsSupervised",
    "IsActivationLockEnabled",
    "IsCloudBackupEnabled",
];

fn bad(field: &str, rule: &str) -> ApiError {
    ApiError::field(field, rule)
}

fn string(body: &Map<String, Value>, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(bad(field, &format!("at most {max} characters"))),
        Some(_) => Err(bad(field, "a string")),
    }
}

fn boolean(body: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(field, "true or false")),
    }
}

/// macOS Find My / firmware PIN: six digits.
fn pin(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match string(body, "pin", 6)? {
        Some(p) if p.len() == 6 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(p)),
        Some(_) => Err(bad("pin", "six digits")),
        None => Ok(None),
    }
}

fn command(request_type: &str, keys: Vec<(&str, Option<Value>)>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("RequestType".into(), json!(request_type));
    for (k, v) in keys {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    }
    m
}

/// A command as JSON (`RequestType` and payload keys), and whether it skips the queue.
pub type Planned = (Map<String, Value>, bool);

/// The commands an action stands for, in order.
pub fn commands_for(action: &str, body: &Map<String, Value>) -> Result<Vec<Planned>, ApiError> {
    let Some((_, allowed)) = ACTIONS.iter().find(|(a, _)| *a == action) else {
        return Err(ApiError::not_found(format!(
            "no action {action:?}; actions: {}",
            ACTIONS
                .iter()
                .map(|(a, _)| *a)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let unknown: Vec<FieldError> = body
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| FieldError::new(k.as_str(), format!("not a field of {action}")))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::invalid(unknown));
    }
    let s = |v: Option<String>| v.map(Value::String);
    let b = |v: Option<bool>| v.map(Value::Bool);
    Ok(match action {
        "lock" => vec![(
            command(
                "DeviceLock",
                vec![
                    ("Message", s(string(body, "message", 500)?)),
                    ("PhoneNumber", s(string(body, "phone_number", 64)?)),
                    ("PIN", s(pin(body)?)),
                ],
            ),
            true,
        )],
        "wipe" => vec![(
            command(
                "EraseDevice",
                vec![
                    ("PIN", s(pin(body)?)),
                    ("PreserveDataPlan", b(boolean(body, "preserve_data_plan")?)),
                    (
                        "DisallowProximitySetup",
                        b(boolean(body, "disallow_proximity_setup")?),
                    ),
                ],
            ),
            true,
        )],
        "restart" => vec![(
            command(
                "RestartDevice",
                vec![("NotifyUser", b(boolean(body, "notify_user")?))],
            ),
            false,
        )],
        "shutdown" => vec![(command("ShutDownDevice", vec![]), false)],
        "rename" => {
            let Some(name) = string(body, "name", 255)? else {
                return Err(bad("name", "required: the new device name"));
            };
            vec![(
                command(
                    "Settings",
                    vec![(
                        "Settings",
                        Some(json!([{ "Item": "DeviceName", "DeviceName": name }])),
                    )],
                ),
                false,
            )]
        }
        "clear-passcode" => vec![(command("ClearPasscode", vec![]), false)],
        "enable-lost-mode" => {
            let message = string(body, "message", 500)?;
            let phone = string(body, "phone_number", 64)?;
            if message.is_none() && phone.is_none() {
                return Err(bad(
                    "message",
                    "give a message or a phone number (or both) for the lock screen",
                ));
            }
            vec![(
                command(
                    "EnableLostMode",
                    vec![
                        ("Message", s(message)),
                        ("PhoneNumber", s(phone)),
                        ("Footnote", s(string(body, "footnote", 500)?)),
                    ],
                ),
                true,
            )]
        }
        "disable-lost-mode" => vec![(command("DisableLostMode", vec![]), false)],
        "refresh-inventory" => vec![
            (
                command(
                    "DeviceInformation",
                    vec![("Queries", Some(json!(INVENTORY_QUERIES)))],
                ),
                false,
            ),
            (command("SecurityInfo", vec![]), false),
            (command("InstalledApplicationList", vec![]), false),
            (command("CertificateList", vec![]), false),
            (command("ProfileList", vec![]), false),
        ],
        "release" => vec![(command("DeviceConfigured", vec![]), true)],
        _ => unreachable!("listed in ACTIONS"),
    })
}

/// `POST /api/v1/devices/{device}/actions/{action}`
pub async fn run(p: &impl Platform, params: &Params, req: &Request) -> Result<Response, ApiError> {
    let device = params.get("device").unwrap_or_default();
    let action = params.get("action").unwrap_or_default();
    let body: Map<String, Value> = if req.body().iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match api::parse_json::<Value>(req)? {
            Value::Object(m) => m,
            _ => return Err(bad("body", "a JSON object")),
        }
    };
    let commands = commands_for(action, &body)?;
    let mut queued = Vec::with_capacity(commands.len());
    // The action's later commands are behind its first: that one decides.
    let mut behind_others = None;
    for (cmd, priority) in commands {
        let (v, behind) = super::commands::enqueue_json(p, device, cmd, priority).await?;
        behind_others.get_or_insert(behind);
        queued.push(v);
    }
    // Queued whatever APNs says; one push covers all the action's commands.
    let push = match crate::push::notify_enqueued(p, device, behind_others.unwrap_or(false)).await {
        Ok(outcome) => serde_json::to_value(outcome).unwrap_or(Value::Null),
        Err(e) => json!({ "outcome": "error", "error": e.to_string() }),
    };
    Ok(api::json(
        StatusCode::CREATED,
        &json!({ "device": device, "action": action, "commands": queued, "push": push }),
    ))
}

/// `DELETE /api/v1/devices/{device}[?force=true]`: retire the device. An enrolled device
/// is first sent RemoveProfile for our MDM profile (priority lane, pushed); its
/// acknowledgement deletes the record, an error keeps the device managed (202 now, the
/// outcome in the command history). A device no longer enrolled, or `force`, is deleted
/// at once (a forced delete leaves our profile on a device that cannot be reached).
pub async fn retire(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    use crate::mdm::enrollment_record::Retire;
    use crate::mdm::enrollment_reset;

    use crate::{Clock, enroll::enrollment_profile::PROFILE_IDENTIFIER};
    let device = params.get("device").unwrap_or_default();
    let mut force = false;
    for (k, v) in api::query(req)? {
        match (k.as_str(), v.as_str()) {
            ("force", "true" | "1") => force = true,
            ("force", "false" | "0" | "") => {}
            ("force", _) => return Err(bad("force", "true or false")),
            _ => return Err(ApiError::invalid(vec![FieldError::unknown_parameter(&k)])),
        }
    }
    let Some(rec) = enrollment_record::get(p.store(), device).await? else {
        return Err(ApiError::not_found(format!("no enrolled device {device}")));
    };
    let now = p.clock().unix_seconds();
    if rec.enrolled && !force {
        if let Some(r) = &rec.retire {
            return Ok(api::json(
                StatusCode::ACCEPTED,
                &json!({ "device": device, "status": "retiring", "command_uuid": r.command_uuid }),
            ));
        }
        let mut cmd = Map::new();
        cmd.insert("RequestType".into(), json!("RemoveProfile"));
        cmd.insert("Identifier".into(), json!(PROFILE_IDENTIFIER));
        let (queued, behind_others) = super::commands::enqueue_json(p, device, cmd, true).await?;
        let uuid = queued["command_uuid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let retire = Retire {
            command_uuid: uuid.clone(),
            requested_at: now,
        };
        // Deleted meanwhile (a concurrent retire finished): nothing left to retire.
        enrollment_record::EnrollmentRecord::modify(p.store(), device, |rec| {
            rec.retire = Some(retire.clone());
            Ok::<_, ApiError>(true)
        })
        .await?;
        let push = match crate::push::notify_enqueued(p, device, behind_others).await {
            Ok(outcome) => serde_json::to_value(outcome).unwrap_or(Value::Null),
            Err(e) => json!({ "outcome": "error", "error": e.to_string() }),
        };
        return Ok(api::json(
            StatusCode::ACCEPTED,
            &json!({
                "device": device,
                "status": "retiring",
                "command_uuid": uuid,
                "push": push,
                "detail": "RemoveProfile of the MDM profile queued: the record is deleted when the device acknowledges it; DELETE with ?force=true deletes it now",
            }),
        ));
    }
    enrollment_reset::purge(p.store(), device, now).await?;
    Ok(api::ok_json(
        &json!({ "device": device, "status": "deleted" }),
    ))
}

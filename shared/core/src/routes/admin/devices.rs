//! Enrolled devices over the admin API: the list, and one device with its enrollment
//! facts and inventory. Secrets of the enrollment (unlock token, bootstrap token, push
//! token and magic) never appear: only whether they exist.
//!
//! Storage is [`enrollments`]' (device index `enrix:<n>`) and [`connect`]'s (inventory
//! sections); layouts documented there.

use serde_json::{Map, Value, json};

use super::paging;
use crate::Platform;
use crate::api::{self, ApiError, FieldError, Params, Request, Response};
use crate::command::availability::{platform_name, platform_of};
use crate::mdm::connect;
use crate::mdm::enrollment_record;
use crate::mdm::enrollment_record::{EnrollmentKind, EnrollmentRecord};
use crate::push;
use crate::time::format_rfc3339;

fn ts(t: Option<u64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t as i64)))
}

/// The enrollment facts of a device; `inventory` is added by the caller.
fn view(r: &EnrollmentRecord) -> Value {
    json!({
        "device_id": r.device_id,
        "udid": (!r.user_enrollment).then_some(&r.device_id),
        "enrollment_id": r.user_enrollment.then(|| {
            r.device_id
                .strip_prefix(crate::mdm::checkin_message::USER_ENROLLMENT_PREFIX)
                .unwrap_or(&r.device_id)
        }),
        "enrollment_type": if r.user_enrollment { "user" } else { "device" },
        "enrolled": r.enrolled,
        "supervised": r.supervised,
        "platform": platform_of(r).map(platform_name),
        "os_version": r.os_version,
        "build_version": r.build_version,
        "serial_number": r.serial_number,
        "product_name": r.product_name,
        "model": r.model,
        "model_name": r.model_name,
        "device_name": r.device_name,
        "awaiting_configuration": r.awaiting_configuration,
        "enrolled_via": r.enrollment_kind,
        "user": r.user,
        "dep_token": r.dep_token,
        "dep_profile": r.dep_profile,
        "identity_serial": r.identity_serial,
        "identity_expires_at": ts(r.identity_expires_at),
        "push_token": r.push.is_some(),
        "push_reachable": r.enrolled && r.push.is_some(),
        "unlock_token_escrowed": r.unlock_token.is_some(),
        "authenticated_at": ts(Some(r.authenticated_at)),
        "enrolled_at": ts(r.enrolled_at),
        "checked_out_at": ts(r.checked_out_at),
        "last_seen_at": ts(Some(r.last_seen_at)),
        "retire": r.retire.as_ref().map(|x| json!({
            "command_uuid": x.command_uuid,
            "requested_at": ts(Some(x.requested_at)),
        })),
        // Another identity authenticated for this device; it replaces this enrollment at
        // its first TokenUpdate (a wipe and re-enrollment, or a replayed request).
        "reenrollment": r.reenrollment.as_ref().map(|x| json!({
            "started_at": ts(Some(x.authenticated_at)),
            "identity_serial": x.record.identity_serial,
            "enrolled_via": x.record.enrollment_kind,
        })),
    })
}

/// `GET /api/v1/devices`
pub async fn list(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let mut enrolled = None;
    let page = paging::query(req, |k, v, bad| match k {
        "enrolled" => {
            match v.as_str() {
                "true" => enrolled = Some(true),
                "false" => enrolled = Some(false),
                _ => bad.push(FieldError::new("enrolled", "true or false")),
            }
            true
        }
        _ => false,
    })?;
    let found =
        enrollment_record::list(p.store(), page.cursor.unwrap_or(0), page.limit, enrolled).await?;
    let devices: Vec<Value> = found
        .devices
        .iter()
        .map(|r| {
            let mut v = view(r);
            // Only when each section was reported; the data is on the device itself.
            v["inventory"] = Value::Object(
                r.inventory
                    .iter()
                    .map(|(k, s)| (k.clone(), json!({ "reported_at": ts(Some(s.reported_at)) })))
                    .collect(),
            );
            v
        })
        .collect();
    Ok(api::ok_json(&paging::answer(
        devices,
        found.next,
        Map::new(),
    )))
}

/// `GET /api/v1/devices/{device}`
pub async fn get(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let device = params.get("device").unwrap_or_default();
    let Some(r) = enrollment_record::get(p.store(), device).await? else {
        return Err(ApiError::not_found(format!("no device {device:?}")));
    };
    let mut v = view(&r);
    // The Managed Apple ID the device enrolled with (account-driven), from its user.
    v["managed_apple_id"] = match &r.user {
        Some(u)
            if matches!(
                r.enrollment_kind,
                Some(EnrollmentKind::UserEnrollment | EnrollmentKind::AccountDriven)
            ) =>
        {
            json!(
                crate::users::get(p.store(), u)
                    .await?
                    .and_then(|u| u.managed_apple_id)
            )
        }
        _ => Value::Null,
    };
    let mut inv = Map::new();
    for (name, section) in &r.inventory {
        let data = connect::inventory_section(p.store(), &r.device_id, name, section).await?;
        inv.insert(
            name.clone(),
            json!({ "reported_at": ts(Some(section.reported_at)), "data": data }),
        );
    }
    v["inventory"] = Value::Object(inv);
    // Null while the device was never pushed.
    v["push"] = serde_json::to_value(push::status::push_state(p.store(), &r.device_id).await?)
        .unwrap_or(Value::Null);
    Ok(api::ok_json(&v))
}

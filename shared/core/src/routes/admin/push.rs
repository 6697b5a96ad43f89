//! The admin API's push routes: push a device now, and read its push status.

use serde_json::json;

use crate::Platform;
use crate::api::{self, ApiError, Response};
use crate::push::apns::PushError;
use crate::push::outcome::{PushOutcome, SkipReason};
use crate::push::push_device;
use crate::push::state::{PushReason, load_record};
use crate::push::status::push_state;

/// `POST /api/v1/devices/{device}/push`: push now; answers the outcome and the state.
/// 404 for an unknown device, 409 when it cannot be pushed (not enrolled, no token).
pub(super) async fn push_now(p: &impl Platform, device_id: &str) -> Result<Response, ApiError> {
    let outcome = push_device(p, device_id, PushReason::Admin)
        .await
        .map_err(|e| match e {
            PushError::Store(e) => ApiError::store(e),
            PushError::Config(m) => ApiError::misconfigured(m),
        })?;
    match outcome {
        PushOutcome::Skipped {
            why: SkipReason::NoEnrollment,
        } => Err(ApiError::not_found(format!("no enrollment {device_id:?}"))),
        PushOutcome::Skipped { why } => Err(ApiError::conflict(format!(
            "device cannot be pushed: {}",
            serde_json::to_value(why)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ))),
        outcome => {
            let state = push_state(p.store(), device_id)
                .await
                .map_err(ApiError::store)?;
            Ok(api::ok_json(
                &json!({ "device_id": device_id, "result": outcome, "push": state }),
            ))
        }
    }
}

/// `GET /api/v1/devices/{device}/push`: the device's push status (404 if never pushed
/// and not enrolled).
pub(super) async fn get(p: &impl Platform, device_id: &str) -> Result<Response, ApiError> {
    match push_state(p.store(), device_id)
        .await
        .map_err(ApiError::store)?
    {
        Some(s) => Ok(api::ok_json(&s)),
        None => {
            if load_record(p.store(), device_id)
                .await
                .map_err(ApiError::store)?
                .is_none()
            {
                return Err(ApiError::not_found(format!("no enrollment {device_id:?}")));
            }
            Ok(api::ok_json(&json!({
                "device_id": device_id, "reachable": true, "last_push_at": null,
            })))
        }
    }
}

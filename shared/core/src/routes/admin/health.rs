//! The admin API's health answer: liveness plus a real round trip through the store.

use http::StatusCode;
use serde_json::json;

use crate::api::{self, ApiError, Response};
use crate::{Clock, Platform, random};

/// Liveness plus a real store round trip (write, read back, delete a unique key), so a
/// broken or unreachable key-value backend shows up here first.
pub async fn get(p: &impl Platform) -> Result<Response, ApiError> {
    let store = match round_trip(p).await {
        Ok(()) => json!({ "ok": true }),
        Err(e) => {
            let body = json!({
                "status": "degraded",
                "version": env!("CARGO_PKG_VERSION"),
                "store": { "ok": false, "error": e },
            });
            return Ok(api::json(StatusCode::SERVICE_UNAVAILABLE, &body));
        }
    };
    Ok(api::ok_json(&json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "time": p.clock().unix_seconds(),
        "store": store,
    })))
}

async fn round_trip(p: &impl Platform) -> Result<(), String> {
    let key = format!("health:probe:{}", random::hex_id(8));
    let value = random::bytes(16);
    let s = p.store();
    s.set(&key, &value).await.map_err(|e| e.to_string())?;
    let back = s.get(&key).await.map_err(|e| e.to_string());
    s.delete(&key).await.map_err(|e| e.to_string())?;
    match back? {
        Some(v) if v == value => Ok(()),
        Some(_) => Err("store returned a different value than written".into()),
        None => Err("store lost a value it had just written".into()),
    }
}

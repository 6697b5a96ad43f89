//! `POST /api/v1/enrollment/challenges`: a one-time SCEP challenge for a manual
//! enrollment (Apple Configurator, a hand-made profile, a test client). The admin names
//! the device the certificate will be recorded for.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::challenge::{self, CHALLENGE_TTL, ChallengeGrant};
use crate::api::{self, ApiError, FieldError, Request, Response};
use crate::log::loggable;
use crate::{Clock, Platform};

const MAX_DEVICE_ID: usize = 128;
const MAX_SERIAL: usize = 64;
const MAX_USER: usize = 256;
const MAX_PURPOSE: usize = 32;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeRequest {
    device_id: String,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// Issues a challenge; 201 `{"challenge", "expires_at", "expires_in", "device_id",
/// "purpose"}`. The challenge is in this answer only (stored hashed) and never logged.
pub async fn create_challenge(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let body: ChallengeRequest = api::parse_json(req)?;
    let mut problems = Vec::new();
    if !text_ok(&body.device_id, MAX_DEVICE_ID) {
        problems.push(FieldError::new(
            "device_id",
            format!("1 to {MAX_DEVICE_ID} characters, no control characters"),
        ));
    }
    let purpose = body.purpose.unwrap_or_else(|| "manual".into());
    if purpose.is_empty()
        || purpose.len() > MAX_PURPOSE
        || !purpose
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        problems.push(FieldError::new(
            "purpose",
            format!("1 to {MAX_PURPOSE} characters of a-z, 0-9, '-', '_'"),
        ));
    }
    if crate::scep::issued::SERVER_PURPOSES.contains(&purpose.as_str()) {
        problems.push(FieldError::new(
            "purpose",
            format!("{purpose:?} is the server's own; choose another (default manual)"),
        ));
    }
    if let Some(s) = &body.serial
        && !text_ok(s, MAX_SERIAL)
    {
        problems.push(FieldError::new(
            "serial",
            format!("1 to {MAX_SERIAL} characters"),
        ));
    }
    if let Some(u) = &body.user
        && !text_ok(u, MAX_USER)
    {
        problems.push(FieldError::new(
            "user",
            format!("1 to {MAX_USER} characters"),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let grant = ChallengeGrant {
        device_id: body.device_id.trim().to_owned(),
        serial: body.serial.map(|s| s.trim().to_owned()),
        purpose,
        user: body.user,
    };
    let now = p.clock().unix_seconds();
    let challenge = challenge::issue(p.store(), now, &grant).await?;
    crate::log::info(
        "SCEP challenge issued",
        &[
            ("purpose", grant.purpose.to_string().into()),
            ("device", loggable(&grant.device_id).into()),
        ],
    );
    let expires_at = now + CHALLENGE_TTL;
    Ok(api::json(
        StatusCode::CREATED,
        &json!({
            "challenge": challenge,
            "expires_at": crate::time::format_rfc3339(expires_at as i64),
            "expires_in": CHALLENGE_TTL,
            "device_id": grant.device_id,
            "purpose": grant.purpose,
        }),
    ))
}

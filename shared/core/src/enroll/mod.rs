//! Device enrollment: the ADE enrollment request (the DEP profile's `url`), web
//! enrollment with user sign-in (`configuration_web_url`), and the signed enrollment
//! profile both answer with. See Apple: "Device Assignment" and "MDM" payload.
//!
//! Flow: the device sends its CMS-signed MachineInfo ([`machineinfo`]); we check the
//! signature chains to Apple's device CA, that the serial is a synced device assigned to
//! one of our profiles and meets the profile's minimum OS ([`ade`]); we remember the
//! request for the later `Authenticate` ([`pending`]) and answer the signed profile
//! ([`enrollment_profile`]) whose SCEP payload carries a one-time challenge bound to the UDID.
//!
//! Refusals answer a JSON body shaped like Apple's error documents
//! (`{"code", "description", "message"[, "details"]}`), or the same as an XML plist when
//! the request prefers XML (`Accept`), with nothing stored.
//!
//! Variables: `apple_device_ca` (PEM trust anchors for MachineInfo signatures; default
//! Apple iPhone Device CA), `apns_topic` (the push certificate's topic, required),
//! `server_url`, `profile_signing_cert` / `profile_signing_key` (optional PEM identity
//! signing the profile; default an identity our CA issues), `organization_name`
//! (optional `PayloadOrganization` when the token's account names none).

pub mod account;
pub mod ade;
pub mod enrollment_profile;
pub mod machineinfo;
pub mod pending;
pub mod web;

use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::api::{self, ApiError, Request, Response};
use mdm_kv::KvError;

/// Largest enrollment request accepted (a signed MachineInfo is 2-4 KiB).
pub const MAX_ENROLL_BODY: usize = 64 * 1024;
/// Variable: PEM certificate(s) MachineInfo signers must chain to.
pub const APPLE_DEVICE_CA: &str = "apple_device_ca";
/// Variable: the APNs topic of the MDM push certificate (`com.apple.mgmt.External.<uuid>`).
pub const APNS_TOPIC: &str = "apns_topic";
/// Variable: PayloadOrganization when the server token's account names no organisation.
pub const ORGANIZATION_NAME: &str = "organization_name";

/// A refused or failed enrollment request, answered as Apple's error documents are shaped.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollError {
    pub status: StatusCode,
    /// Stable machine-readable code (`com.apple.softwareupdate.required`, or ours, e.g.
    /// `device.not_assigned`).
    pub code: String,
    /// For logs and administrators.
    pub description: String,
    /// Shown to the user where the device can.
    pub message: Option<String>,
    pub details: Option<Value>,
}

impl EnrollError {
    pub fn new(status: StatusCode, code: &str, description: impl Into<String>) -> Self {
        EnrollError {
            status,
            code: code.to_owned(),
            description: description.into(),
            message: None,
            details: None,
        }
    }

    pub fn malformed(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "request.malformed", description)
    }

    pub fn forbidden(code: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, description)
    }

    /// Enrollment cannot work until an operator fixes the configuration.
    pub fn unavailable(code: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, description)
    }

    pub fn with_message(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }

    pub fn with_details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }

    /// The error document (JSON form).
    pub fn document(&self) -> Value {
        let mut v = json!({ "code": self.code, "description": self.description });
        if let Some(m) = &self.message {
            v["message"] = json!(m);
        }
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }

    /// JSON, or an XML plist when `req` prefers XML.
    pub fn into_response_for(self, req: &Request) -> Response {
        let doc = self.document();
        let (body, ct) = if prefers_plist(req) {
            let mut out = Vec::new();
            plist::to_writer_xml(&mut out, &json_to_plist(&doc)).expect("plist to memory");
            (out, "application/xml")
        } else {
            (
                serde_json::to_vec(&doc).expect("JSON to memory"),
                "application/json",
            )
        };
        let mut resp = api::uncached(self.status, ct, body);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        resp
    }
}

impl std::fmt::Display for EnrollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.description)
    }
}

impl From<KvError> for EnrollError {
    /// Devices get a generic reason; the log gets the store's.
    fn from(e: KvError) -> Self {
        crate::log::error("store unavailable", &[("error", e.to_string().into())]);
        EnrollError::unavailable(
            "server.store_unavailable",
            "temporarily unavailable: try again later",
        )
    }
}

impl From<ApiError> for EnrollError {
    /// A missing or broken variable: a fault on our side, named in the log (never its
    /// value); devices get a generic reason.
    fn from(e: ApiError) -> Self {
        crate::log::error(e.code.as_str(), &[("detail", e.message.as_str().into())]);
        EnrollError::new(
            e.status,
            "server.misconfigured",
            "the server cannot enroll devices right now",
        )
    }
}

/// Whether the client asked for XML (plist) rather than JSON.
pub fn prefers_plist(req: &Request) -> bool {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    (accept.contains("xml") || accept.contains("plist")) && !accept.contains("json")
}

/// JSON → plist value (strings, numbers, booleans, arrays, objects; null is dropped).
pub fn json_to_plist(v: &Value) -> plist::Value {
    match v {
        Value::Null => plist::Value::String(String::new()),
        Value::Bool(b) => plist::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => plist::Value::Integer(i.into()),
            None => plist::Value::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => plist::Value::String(s.clone()),
        Value::Array(a) => plist::Value::Array(a.iter().map(json_to_plist).collect()),
        Value::Object(o) => plist::Value::Dictionary(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), json_to_plist(v)))
                .collect(),
        ),
    }
}

/// The body, refused with 413 beyond [`MAX_ENROLL_BODY`].
pub fn bounded_body(req: &Request) -> Result<&[u8], EnrollError> {
    if req.body().len() > MAX_ENROLL_BODY {
        return Err(EnrollError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
            format!("body exceeds {MAX_ENROLL_BODY} bytes"),
        ));
    }
    Ok(req.body())
}

/// 200 with a (signed) enrollment profile.
pub fn profile_response(profile: Vec<u8>) -> Response {
    let mut resp = api::uncached(StatusCode::OK, "application/x-apple-aspen-config", profile);
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"enroll.mobileconfig\""),
    );
    resp
}

/// Our ids for the device, the enrollment and its sign-in user: what a signed
/// enrollment profile is built for ([`enrollment_profile::build_signed_profile`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentTarget {
    /// The device's UDID (the SCEP subject's CN and the challenge's binding).
    pub udid: String,
    pub serial: Option<String>,
    /// What the challenge is for: `ade` (also web enrollment), later `renewal`, ...
    pub purpose: String,
    /// Our local user signed in during web enrollment.
    pub user: Option<String>,
    /// PayloadOrganization; `None`: the `organization_name` variable, else none.
    pub organization: Option<String>,
    /// PayloadRemovalDisallowed (supervised devices whose profile locks enrollment).
    pub removal_disallowed: bool,
    /// `EnrollmentMode` (`BYOD` or `ADDE`) and `AssignedManagedAppleID`: account-driven
    /// enrollment only.
    pub enrollment_mode: Option<String>,
    pub assigned_managed_apple_id: Option<String>,
}

//! Which command a device can take (Apple's per-command availability): platform and OS
//! version, supervision, User Enrollment, device or user channel, from the generated
//! [`crate::command::table`] and the enrollment record. Unknown facts (a device that never
//! answered DeviceInformation has unknown supervision) refuse nothing; ADE-only commands
//! are not refused for want of knowing how the device enrolled.

use crate::api::FieldError;
use plist::Value as Plist;

use crate::command;
use crate::command::table::OsFamily;
use crate::mdm::enrollment_record::EnrollmentRecord;
use crate::mdm::enrollment_type::compare_versions;

/// The platform a device runs, from its product name or model.
pub fn platform_of(rec: &EnrollmentRecord) -> Option<OsFamily> {
    [rec.product_name.as_deref(), rec.model.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|p| {
            let p = p.to_ascii_lowercase();
            if p.starts_with("iphone") || p.starts_with("ipad") || p.starts_with("ipod") {
                Some(OsFamily::Ios)
            } else if p.starts_with("appletv") {
                Some(OsFamily::Tvos)
            } else if p.starts_with("watch") {
                Some(OsFamily::Watchos)
            } else if p.starts_with("realitydevice") {
                Some(OsFamily::Visionos)
            } else if p.contains("mac") || p.starts_with("xserve") {
                Some(OsFamily::Macos)
            } else {
                None
            }
        })
}

pub fn platform_name(os: OsFamily) -> &'static str {
    match os {
        OsFamily::Ios => "ios",
        OsFamily::Macos => "macos",
        OsFamily::Tvos => "tvos",
        OsFamily::Visionos => "visionos",
        OsFamily::Watchos => "watchos",
    }
}

/// Whether `request_type` can run on this device and channel; `Err` says why not.
pub fn capability(
    request_type: &str,
    rec: &EnrollmentRecord,
    user_channel: bool,
) -> Result<(), String> {
    let Some(cmd) = command::table::lookup(request_type) else {
        return Ok(());
    };
    let known = platform_of(rec);
    let candidates: Vec<OsFamily> = match known {
        Some(os) => vec![os],
        None => vec![
            OsFamily::Ios,
            OsFamily::Macos,
            OsFamily::Tvos,
            OsFamily::Visionos,
            OsFamily::Watchos,
        ],
    };
    let mut reasons = Vec::new();
    for os in candidates {
        let name = os.label();
        let Some(o) = cmd.on(os) else {
            reasons.push(format!("{request_type} is not available on {name}"));
            continue;
        };
        if user_channel && !o.user_channel {
            reasons.push(format!(
                "{request_type} cannot be sent to a user channel on {name}"
            ));
            continue;
        }
        if !user_channel && !o.device_channel {
            reasons.push(format!(
                "{request_type} must be sent to a user channel on {name} (give \"user\")"
            ));
            continue;
        }
        if rec.user_enrollment && !o.user_enrollment {
            reasons.push(format!(
                "{request_type} is not allowed under User Enrollment on {name}"
            ));
            continue;
        }
        if o.supervised && rec.supervised == Some(false) {
            reasons.push(format!(
                "{request_type} requires a supervised device on {name}; this device is not supervised"
            ));
            continue;
        }
        if known.is_some()
            && let Some(v) = rec.os_version.as_deref().filter(|v| !v.is_empty())
            && compare_versions(v, o.introduced) == std::cmp::Ordering::Less
        {
            reasons.push(format!(
                "{request_type} requires {name} {} or later; the device runs {v}",
                o.introduced
            ));
            continue;
        }
        return Ok(());
    }
    Err(if known.is_some() || reasons.is_empty() {
        reasons.join("; ")
    } else {
        format!(
            "{request_type} cannot run on this device: {}",
            reasons.join("; ")
        )
    })
}

/// What a user-enrolled device must not be asked or sent, beyond the command itself: the
/// DeviceInformation queries and profile payloads User Enrollment forbids, each named
/// (`{"key", "problem"}`), so that nothing is silently dropped.
pub fn user_enrollment_limits(
    rt: &str,
    payload: &plist::Dictionary,
    os: Option<OsFamily>,
) -> Result<(), Vec<FieldError>> {
    use crate::command::user_enrollment::{payload_refusal, payload_types, refused_queries};
    let mut problems: Vec<FieldError> = Vec::new();
    match rt {
        "DeviceInformation" => {
            let queries: Vec<String> = payload
                .get("Queries")
                .and_then(Plist::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|q| q.as_string().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let refused = refused_queries(&queries, os);
            if !refused.is_empty() {
                problems.push(FieldError::new(
                    "Queries",
                    format!(
                        "not allowed under User Enrollment (no device identifiers or device-wide state): {}",
                        refused.join(", ")
                    ),
                ));
            }
        }
        "InstallProfile" => {
            let data = payload
                .get("Payload")
                .and_then(Plist::as_data)
                .unwrap_or_default();
            match payload_types(data) {
                Ok(types) => {
                    for t in types {
                        if let Some(reason) = payload_refusal(&t, os) {
                            problems.push(FieldError::new("Payload", reason));
                        }
                    }
                }
                Err(e) => problems.push(FieldError::new("Payload", e)),
            }
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

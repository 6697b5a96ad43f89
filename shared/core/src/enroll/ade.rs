//! `POST /mdm/enroll/ade`: the enrollment request of Automated Device Enrollment (the
//! DEP profile's `url`). The body is the device's CMS-signed MachineInfo.
//!
//! Admission ([`admit`], shared with web enrollment): the signature chains to the Apple
//! device CA; the serial is a device one of our server tokens synced, present (not
//! removed by Apple), assigned a profile of ours; the device meets the profile's minimum
//! OS. Every refusal is a 403 (400 for a body that is not a signed MachineInfo) with the
//! reason, and stores nothing. Admitted: the signed enrollment profile, and a pending
//! enrollment the device's `Authenticate` must match.

use std::cmp::Ordering;

use http::StatusCode;
use serde_json::json;

use super::enrollment_profile;
use super::machineinfo::{self, MachineInfo, VerifiedMachineInfo};
use super::pending::{self, PendingEnrollment, Via};
use super::{EnrollError, EnrollmentTarget};
use crate::api::{Request, Response};
use crate::dep::TokenId;
use crate::dep::inventory::{self, DeviceRecord};
use crate::dep::profile_store::{self, ProfileRecord};
use crate::dep::profiles::UserAffinity;
use crate::dep::skipkeys::Platform as OsPlatform;
use crate::dep::tokens;
use crate::log::loggable;
use crate::mdm::enrollment_type::compare_versions;
use crate::{Clock, Platform};
use mdm_kv::{Backend, Store};

/// Entry point for `POST /mdm/enroll/ade`.
pub async fn handle(p: &impl Platform, req: &Request) -> Response {
    match enroll(p, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response_for(req),
    }
}

async fn enroll(p: &impl Platform, req: &Request) -> Result<Response, EnrollError> {
    let body = super::bounded_body(req)?;
    let anchors = machineinfo::configured_anchors(p.vars()).await?;
    let verified = machineinfo::verify(body, &anchors)?;
    let admission = admit(p.store(), &verified).await?;
    if admission.profile.spec.user_affinity == UserAffinity::WithUser {
        // Apple sends such devices to configuration_web_url; a request here skips the
        // sign-in the profile asks for.
        return Err(EnrollError::forbidden(
            "user.sign_in_required",
            "this device's profile requires the user to sign in (web enrollment)",
        )
        .with_message("Sign in to enroll this device."));
    }
    let profile = answer(p, &verified.info, &admission, None).await?;
    Ok(super::profile_response(profile))
}

/// Where an admitted device enrolls.
#[derive(Debug, Clone)]
pub struct Admission {
    pub token: TokenId,
    pub device: DeviceRecord,
    pub profile: ProfileRecord,
    /// The token account's organisation name, for PayloadOrganization.
    pub organization: Option<String>,
}

/// The synced device and the profile of ours it is assigned, or the refusal.
pub async fn admit<B: Backend>(
    store: &Store<B>,
    verified: &VerifiedMachineInfo,
) -> Result<Admission, EnrollError> {
    let info = &verified.info;
    let not_ours = |code: &str, why: String| {
        EnrollError::forbidden(code, why)
            .with_message("This device is not assigned to this organization's device management.")
    };
    let Some((token, device)) = inventory::token_of(store, &info.serial).await? else {
        return Err(not_ours(
            "device.unknown",
            format!(
                "serial {} is not a device of any server token here (not synced from Apple)",
                loggable(&info.serial)
            ),
        ));
    };
    if device.removed_at.is_some() {
        return Err(not_ours(
            "device.removed",
            format!(
                "serial {} was removed from this server in Apple Business/School Manager",
                loggable(&info.serial)
            ),
        ));
    }
    let assigned = !matches!(device.profile_status(), "empty" | "removed");
    let Some(uuid) = device.profile_uuid().filter(|_| assigned) else {
        return Err(not_ours(
            "device.not_assigned",
            format!(
                "serial {} is not assigned an enrollment profile",
                loggable(&info.serial)
            ),
        ));
    };
    let Some(profile) = profile_store::by_uuid(store, token, uuid).await? else {
        return Err(not_ours(
            "device.not_assigned",
            format!(
                "serial {} carries profile {} which is not one of ours (deleted, or defined elsewhere)",
                loggable(&info.serial),
                loggable(uuid)
            ),
        ));
    };
    check_minimum_os(&profile, info)?;
    let organization = tokens::load(store, token)
        .await?
        .and_then(|t| t.account)
        .and_then(|a| {
            a.get("org_name")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .filter(|o| !o.trim().is_empty());
    Ok(Admission {
        token,
        device,
        profile,
        organization,
    })
}

/// Builds the signed profile for an admitted device and records the pending enrollment.
pub async fn answer(
    p: &impl Platform,
    info: &MachineInfo,
    a: &Admission,
    user: Option<String>,
) -> Result<Vec<u8>, EnrollError> {
    let spec = &a.profile.spec;
    let supervised = spec.supervised || spec.platform == OsPlatform::Ios;
    let topic = enrollment_profile::push_topic(p).await?;
    let target = EnrollmentTarget {
        udid: info.udid.clone(),
        serial: Some(info.serial.clone()),
        purpose: "ade".into(),
        user: user.clone(),
        organization: a.organization.clone(),
        removal_disallowed: supervised && spec.locked_enrollment,
        enrollment_mode: None,
        assigned_managed_apple_id: None,
    };
    let signed = enrollment_profile::build_signed_profile(p, &target).await?;
    let now = p.clock().unix_seconds();
    pending::put(
        p.store(),
        &PendingEnrollment {
            udid: info.udid.clone(),
            serial: info.serial.clone(),
            via: Via::Ade,
            token: Some(a.token),
            profile: Some(a.profile.id),
            apple_profile_uuid: a.device.profile_uuid().map(str::to_owned),
            user,
            topic,
            supervised,
            product: info.product.clone(),
            os_version: info.os_version.clone(),
            build_version: info.build_version.clone(),
            at: now,
            grant: None,
        },
    )
    .await?;
    Ok(signed)
}

/// The OS version that introduced `OS_VERSION` in MachineInfo: a device that does not
/// send it runs something older.
fn os_version_key_introduced(platform: OsPlatform) -> &'static str {
    match platform {
        OsPlatform::Ios | OsPlatform::Tvos => "17.0",
        OsPlatform::Macos => "14.0",
    }
}

/// `"17.4 (a)"` → (`"17.4"`, Some(`"(a)"`)).
fn split_supplemental(v: &str) -> (&str, Option<&str>) {
    match v.trim().split_once(' ') {
        Some((n, s)) => (n, Some(s.trim())),
        None => (v.trim(), None),
    }
}

/// Whether a device running `device` (with its supplemental extra) is older than `min`.
/// `device` is `None` when the device did not say (no `OS_VERSION`).
pub fn below_minimum(
    device: Option<&str>,
    device_extra: Option<&str>,
    min: &str,
    platform: OsPlatform,
) -> bool {
    let (min_numeric, min_extra) = split_supplemental(min);
    let Some(device) = device else {
        // Older than the OS that introduced OS_VERSION; below the minimum for sure only
        // when the minimum is at least that OS. Otherwise undecidable: let it in.
        return compare_versions(min_numeric, os_version_key_introduced(platform))
            != Ordering::Less;
    };
    let (dev_numeric, dev_inline_extra) = split_supplemental(device);
    match compare_versions(dev_numeric, min_numeric) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => match min_extra {
            None => false,
            Some(want) => {
                let have = dev_inline_extra.or(device_extra).unwrap_or("");
                have < want
            }
        },
    }
}

/// The profile's minimum OS: `com.apple.softwareupdate.required` for devices that can
/// update on request, a plain refusal for the others.
pub fn check_minimum_os(profile: &ProfileRecord, info: &MachineInfo) -> Result<(), EnrollError> {
    let spec = &profile.spec;
    let Some(min) = spec.minimum_os_version.as_deref() else {
        return Ok(());
    };
    let below = below_minimum(
        info.os_version.as_deref(),
        info.supplemental_os_version_extra.as_deref(),
        min,
        spec.platform,
    );
    if !below {
        return Ok(());
    }
    let running = info
        .os_version
        .as_deref()
        .map(loggable)
        .unwrap_or_else(|| "an OS that does not report its version".into());
    let description = format!(
        "device runs {running}; profile {} requires {min}",
        profile.id
    );
    if info.can_request_software_update {
        let mut details = json!({ "OSVersion": min });
        if let Some(build) = &spec.minimum_os_build {
            details["BuildVersion"] = json!(build);
        }
        return Err(EnrollError::new(
            StatusCode::FORBIDDEN,
            "com.apple.softwareupdate.required",
            description,
        )
        .with_message("Update required before enrolling.")
        .with_details(details));
    }
    Err(EnrollError::forbidden("os.too_old", description).with_message(format!(
        "This device must be updated to {min} or later before it can enroll. Update it, then start again."
    )))
}

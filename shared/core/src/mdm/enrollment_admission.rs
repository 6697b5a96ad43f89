//! Whether a device may Authenticate: the pending enrollment request it must match, an
//! administrator's challenge for it, or an account-driven enrollment's reference.

use mdm_kv::{Backend, Store};

use crate::enroll::pending;
use crate::mdm::enrollment_record::{DeviceIdentity, EnrollmentKind, Refusal, bad, load};

/// Purposes of account-driven enrollment ([`crate::enroll::account`]): the challenge is
/// bound to a random enrollment reference, not to the device.
const ACCOUNT_PURPOSES: [&str; 2] = ["byod", "adde"];

/// Authenticate of an account-driven enrollment: the identity was issued for reference
/// `rec.device_id`, whose request must still be pending; a `byod` profile must come back
/// as a User Enrollment (EnrollmentID), an `adde` one as a device (UDID). The identity is
/// bound to the first enrollment that uses it, so the reference enrolls one device.
async fn admit_account_driven<B: Backend>(
    store: &Store<B>,
    rec: &crate::scep::issued::IssuedRecord,
    device_id: &str,
    a: &crate::mdm::checkin_message::Authenticate,
    now: u64,
) -> Result<pending::PendingEnrollment, Refusal> {
    let user_enrollment = a.enrollment.is_user_enrollment();
    match (rec.purpose.as_str(), user_enrollment) {
        ("byod", false) => {
            return Err(bad(
                "a User Enrollment profile must authenticate with EnrollmentID, not UDID",
            ));
        }
        ("adde", true) => {
            return Err(bad(
                "an account-driven device enrollment must authenticate with UDID",
            ));
        }
        _ => {}
    }
    let Some(mut p) = pending::get(store, &rec.device_id, now).await? else {
        return Err(bad(
            "the account-driven enrollment request expired or was used: enroll again from Settings",
        ));
    };
    if p.via != pending::Via::AccountDriven {
        return Err(bad("identity certificate issued to another device"));
    }
    if a.topic != p.topic {
        return Err(bad("Topic differs from the enrollment profile's"));
    }
    // A signed-in user enrolls their own device: never one enrolled another way (ADE,
    // by hand) or by someone else, whatever identifier the Authenticate names.
    if let Some(existing) = load(store, device_id).await?
        && existing.checked_out_at.is_none()
        && !(existing.enrollment_kind.is_some_and(|k| {
            matches!(
                k,
                EnrollmentKind::AccountDriven | EnrollmentKind::UserEnrollment
            )
        }) && existing.user.is_some()
            && existing.user == p.user)
    {
        return Err(bad(
            "this device is enrolled another way or by another user: an account-driven enrollment cannot replace it",
        ));
    }
    // One grant, one enrollment: the request and the access token are used up here.
    pending::remove(store, &rec.device_id).await?;
    if let Some(grant) = &p.grant {
        store.delete(grant).await?;
    }
    p.udid = device_id.to_owned();
    Ok(p)
}

/// Whether the device may Authenticate: its pending enrollment request (the serial and
/// topic it announced), and an identity our SCEP issued for it. Without a request, an
/// identity issued through a challenge an administrator created for this device
/// (`POST /api/v1/enrollment/challenges`: manual enrollment) is enough.
pub(super) async fn admit_authenticate<B: Backend>(
    store: &Store<B>,
    identity: &DeviceIdentity,
    device_id: &str,
    a: &crate::mdm::checkin_message::Authenticate,
    now: u64,
) -> Result<pending::PendingEnrollment, Refusal> {
    let issued = match &identity.serial_hex {
        None => None,
        Some(serial) => match crate::scep::issued::issued_for(store, serial).await? {
            Some(rec) if rec.device_id == device_id => Some(rec),
            Some(rec) if ACCOUNT_PURPOSES.contains(&rec.purpose.as_str()) => {
                return admit_account_driven(store, &rec, device_id, a, now).await;
            }
            Some(_) => return Err(bad("identity certificate issued to another device")),
            None => {
                return Err(bad(
                    "identity certificate was not issued by this server's SCEP for an enrollment",
                ));
            }
        },
    };
    let Some(p) = pending::get(store, device_id, now).await? else {
        // Only an identity from an administrator's challenge enrolls without a request: one
        // the server issued (for a request, or as a renewal) never does, so a retired
        // device cannot come back with an identity it renewed.
        if let Some(rec) =
            issued.filter(|r| !crate::scep::issued::SERVER_PURPOSES.contains(&r.purpose.as_str()))
        {
            let mut manual = pending::PendingEnrollment::new(
                device_id,
                rec.device_serial.as_deref().unwrap_or(""),
                &a.topic,
                now,
            );
            manual.via = pending::Via::Manual;
            manual.user = rec.user;
            if let (Some(sn), Some(want)) = (&a.serial_number, &rec.device_serial)
                && !sn.trim().eq_ignore_ascii_case(want.trim())
            {
                return Err(bad("SerialNumber differs from the enrollment challenge's"));
            }
            return Ok(manual);
        }
        return Err(bad(
            "no enrollment request is pending for this device (or it expired): enroll it again",
        ));
    };
    if let Some(sn) = &a.serial_number
        && !sn.trim().eq_ignore_ascii_case(p.serial.trim())
    {
        return Err(bad("SerialNumber differs from the enrollment request's"));
    }
    if a.topic != p.topic {
        return Err(bad("Topic differs from the enrollment profile's"));
    }
    Ok(p)
}

//! Enrollment-time work: at the first TokenUpdate of every enrollment, queue what the
//! device's ADE profile implies (device name from the template, Shared iPad settings,
//! the host-pairing restriction, the eSIM plan refresh) and the admin's own setup
//! commands, all in the priority lane, then `DeviceConfigured` when the device waits in
//! Setup Assistant (`AwaitingConfiguration`), and push.
//!
//! The lane is FIFO and a device answers one command before it gets the next, so
//! `DeviceConfigured` reaches it only after the setup commands were acknowledged or
//! failed. A device is never held: without setup work it gets `DeviceConfigured` at once
//! (and an admin can release it by hand with the `release` device action). A device that
//! does not wait gets the same work; it simply runs while the device is in use.
//!
//! Key layout: `ctr:awc:<d>:<authenticated_at>` claimed once per enrollment, so a
//! repeated TokenUpdate (new push token, say) does not queue the work twice, while a
//! re-enrollment (a new Authenticate) does it again.

use mdm_kv::key::segment;
use mdm_kv::{CounterKey, KvError};

use crate::command::records::{self, NewCommand};
use crate::mdm::enrollment_record::{EnrollmentRecord, device_type};
use crate::queue::{Channel, Lane};
use crate::record::Stored;
use crate::{Clock, Platform};

/// The device's OS version: reported (MachineInfo `OS_VERSION`, DeviceInformation), or
/// for iOS and iPadOS read off the build (`21E219` → 17.4: major = build number − 4,
/// minor = letter − A), which devices before iOS 17 send instead.
pub fn os_version(rec: &EnrollmentRecord) -> Option<String> {
    if let Some(v) = rec.os_version.as_deref().filter(|v| !v.trim().is_empty()) {
        return Some(v.trim().to_owned());
    }
    let family = device_type(rec);
    if !matches!(family.as_str(), "iPhone" | "iPad" | "iPod") {
        return None;
    }
    let build = rec.build_version.as_deref()?;
    let digits: String = build.chars().take_while(char::is_ascii_digit).collect();
    let letter = build[digits.len()..].chars().next()?;
    let major: u32 = digits.parse().ok()?;
    if !letter.is_ascii_uppercase() || major < 14 {
        return None;
    }
    Some(format!("{}.{}", major - 4, letter as u32 - 'A' as u32))
}

/// Called after a device-channel TokenUpdate was accepted. Returns the CommandUUIDs
/// queued (empty when there is no work or it was queued before for this enrollment).
pub async fn on_token_update(p: &impl Platform, device_id: &str) -> Result<Vec<String>, KvError> {
    let Some(rec) = EnrollmentRecord::load_valid(p.store(), device_id).await? else {
        return Ok(Vec::new());
    };
    if !rec.enrolled {
        return Ok(Vec::new());
    }
    let profile = match (rec.dep_token, rec.dep_profile) {
        (Some(token), Some(profile)) => {
            crate::dep::profile_store::load(p.store(), token, profile).await?
        }
        _ => None,
    };
    let serial = rec.serial_number.clone().unwrap_or_default();
    let os = os_version(&rec);
    let built_in = profile
        .as_ref()
        .map(|r| {
            r.spec
                .enrollment_commands(&serial, &device_type(&rec), os.as_deref())
        })
        .unwrap_or_default();
    let admin_work = profile
        .as_ref()
        .is_some_and(|r| !r.spec.setup_commands.is_empty());
    if !rec.awaiting_configuration && !admin_work && built_in.is_empty() {
        return Ok(Vec::new());
    }
    let claim = CounterKey::new(&format!(
        "awc:{}:{}",
        segment(device_id),
        rec.authenticated_at
    ))
    .expect("counter name");
    if !p.store().claim(&claim).await? {
        return Ok(Vec::new());
    }
    let mut work: Vec<(String, plist::Dictionary)> = built_in
        .into_iter()
        .map(|(t, d)| (t.to_owned(), d))
        .collect();
    if let Some(r) = &profile {
        let (chosen, skipped) = r.spec.admin_setup_commands();
        for rt in skipped {
            crate::log::warn(
                "setup command of the profile no longer valid, not queued",
                &[
                    ("request_type", rt.as_str().into()),
                    ("profile", r.id.to_string().into()),
                ],
            );
        }
        work.extend(chosen);
    }
    if rec.awaiting_configuration {
        work.push(("DeviceConfigured".into(), plist::Dictionary::new()));
    }
    let now = p.clock().unix_seconds();
    let ch = Channel::device(device_id);
    let mut queued = Vec::with_capacity(work.len());
    for (request_type, payload) in work {
        let uuid = crate::random::uuid_v4();
        let mut body = crate::command::build::build(&uuid, &request_type, payload);
        // An admin setup command may carry a secret (AccountConfiguration's passwordHash).
        let sealed = crate::command::secrets::carries_secret(&request_type);
        if sealed {
            match crate::config::storage_key(p.vars()).await {
                Ok(key) => body = crate::command::secrets::seal(&key, ch.tag(), &uuid, &body),
                Err(e) => {
                    crate::log::error(
                        "setup command not queued",
                        &[
                            ("request_type", request_type.as_str().into()),
                            ("error", e.message.as_str().into()),
                        ],
                    );
                    continue;
                }
            }
        }
        let cmd = NewCommand {
            body,
            uuid: uuid.clone(),
            request_type: request_type.clone(),
            lane: Lane::Priority,
            sealed,
        };
        match records::enqueue(p.store(), &ch, &cmd, now, u64::MAX).await {
            Ok(_) => queued.push(uuid),
            Err(e) => crate::log::error(
                "setup command not queued",
                &[
                    ("request_type", request_type.as_str().into()),
                    ("error", format!("{e:?}").into()),
                ],
            ),
        }
    }
    // The device is enrolling and fetches its commands itself; the push makes sure.
    if let Err(e) = crate::push::notify_enqueued(p, device_id, false).await {
        crate::log::warn("setup push failed", &[("error", e.to_string().into())]);
    }
    Ok(queued)
}

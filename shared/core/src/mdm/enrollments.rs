//! The check-in state machine: what each check-in message does to an enrollment.
//!
//! Input is a message whose signature the transport already verified, and the lowercase
//! hex SHA-256 of the signing identity certificate. Failures answer 400 with a reason,
//! never 401 (a 401 can make a device unenroll).
//!
//! The records it reads and writes, and their keys: [`crate::mdm::enrollment_record`].
//!
//! `Authenticate` must match the device's pending enrollment request
//! ([`crate::enroll::pending`]: same UDID, serial and topic) and, when the identity's
//! serial is known, an identity our SCEP issued for this UDID
//! ([`crate::scep::issued::issued_for`]); otherwise 400. Manual enrollments (a
//! challenge an administrator created for the device) need no request. A second `Authenticate` of an
//! enrolled device (re-enrollment after a wipe or retire) replaces the enrollment: the
//! old identities' bindings, its user channels, queued commands (device and user
//! channels, cancelled in their history), push token, unlock and bootstrap tokens are
//! dropped; the device is reachable again after its next TokenUpdate. Messages from a
//! device we hold no enrollment for at all answer 403 `com.apple.unrecognized.device`
//! ([`Refusal::Unrecognized`]), which makes the device unenroll.
//!
//! Who may Authenticate is `enrollment_admission.rs`; keeping identity bindings current,
//! `enrollment_binding.rs`; what a re-enrollment or a purge drops, `enrollment_reset.rs`.

use base64::Engine;

use mdm_kv::{Backend, KvError, Store};

use crate::enroll::pending;
use crate::mdm::checkin_message::{CheckinMessage, Enrollment};
use crate::mdm::enrollment_admission::admit_authenticate;
use crate::mdm::enrollment_binding::{adopt_renewal, migrate_legacy_binding, require_binding};
use crate::mdm::enrollment_record::{
    BoundDevice, DeviceIdentity, EnrollmentKind, EnrollmentRecord, ListedDevice, Push,
    Reenrollment, Refusal, SEAL_BOOTSTRAP, SEAL_UNLOCK, SealedBootstrapToken, UserChannel, b64,
    bad, bound_device, index_counter, load, modify_record, save,
};
use crate::mdm::enrollment_reset::{complete_reenrollment, reset_enrollment};
use crate::queue::{self, Channel};
use crate::record::{Record, Stored};
use crate::seal::Sealer;

/// What to answer the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 with an empty body.
    Empty,
    /// 200 with this XML plist.
    Plist(Vec<u8>),
    /// 410: decline (UserAuthenticate for a directory user we do not manage).
    Gone,
}

/// Applies one verified check-in message signed by the certificate hashing to
/// `cert_hash` (see [`checkin_identity`]).
pub async fn checkin<B: Backend>(
    store: &Store<B>,
    storage_key: &crate::config::Secret,
    cert_hash: &str,
    msg: &CheckinMessage,
    now: u64,
) -> Result<Reply, Refusal> {
    checkin_identity(
        store,
        storage_key,
        &DeviceIdentity::from_hash(cert_hash),
        msg,
        now,
    )
    .await
}

/// Applies one verified check-in message signed by `identity`. With the identity's
/// serial known, `Authenticate` also checks our SCEP issued it for this device.
pub async fn checkin_identity<B: Backend>(
    store: &Store<B>,
    storage_key: &crate::config::Secret,
    identity: &DeviceIdentity,
    msg: &CheckinMessage,
    now: u64,
) -> Result<Reply, Refusal> {
    let cert_hash = identity.cert_hash.as_str();
    let e: &Enrollment = msg.enrollment();
    let device_id = e
        .device_id()
        .expect("parser guarantees a device id")
        .to_owned();
    if let Some(der_hash) = &identity.der_hash
        && bound_device(store, cert_hash).await?.is_none()
    {
        migrate_legacy_binding(store, cert_hash, der_hash).await?;
    }
    if !matches!(msg, CheckinMessage::Authenticate(_)) {
        adopt_renewal(store, identity, &device_id).await?;
    }
    match msg {
        CheckinMessage::Authenticate(a) => {
            if let Some(other) = BoundDevice::load(store, cert_hash).await?
                && other.0 != device_id
            {
                return Err(bad(
                    "identity certificate already belongs to another enrollment",
                ));
            }
            let pend = admit_authenticate(store, identity, &device_id, a, now).await?;
            let previous = load(store, &device_id).await?;
            // A live enrollment with another identity stays until the new one's first
            // TokenUpdate: an enrollment request replayed (or a wiped device's) breaks
            // nothing by itself, and the admin sees the re-enrollment meanwhile.
            let live = previous.as_ref().is_some_and(|p| {
                p.enrolled
                    && p.checked_out_at.is_none()
                    && p.retire.is_none()
                    && !p.cert_hashes.iter().any(|h| h == cert_hash)
            });
            if let (Some(prev), false) = (&previous, live) {
                reset_enrollment(store, prev, cert_hash, now).await?;
            }
            let index_pos = match previous.as_ref().and_then(|p| p.index_pos) {
                Some(n) => Some(n),
                None if previous.is_some() => None,
                None => {
                    // A device's Authenticate messages are sequential: listed once.
                    let n = store.increment(&index_counter(), 1).await? as u64;
                    ListedDevice(device_id.clone()).save(store, n).await?;
                    Some(n)
                }
            };
            // (Re-)enrollment: reachable only after its TokenUpdate.
            let user_enrollment = e.is_user_enrollment();
            let rec = EnrollmentRecord {
                device_id: device_id.clone(),
                user_enrollment,
                serial_number: a
                    .serial_number
                    .clone()
                    .or(Some(pend.serial.clone()))
                    .filter(|s| !s.is_empty()),
                product_name: a.product_name.clone().or(pend.product.clone()),
                os_version: a.os_version.clone().or(pend.os_version.clone()),
                build_version: a.build_version.clone().or(pend.build_version.clone()),
                device_name: a.device_name.clone(),
                model: a.model.clone(),
                model_name: a.model_name.clone(),
                topic: a.topic.clone(),
                cert_hashes: vec![cert_hash.to_owned()],
                enrolled: false,
                authenticated_at: now,
                enrolled_at: None,
                checked_out_at: None,
                last_seen_at: now,
                push: None,
                unlock_token: None,
                awaiting_configuration: false,
                // The profile says, when we know it; a later DeviceInformation overrides.
                supervised: match pend.via {
                    // Devices enroll themselves this way: the organisation supervises none.
                    pending::Via::AccountDriven => Some(false),
                    _ => pend.profile.map(|_| pend.supervised),
                },
                inventory: previous.map(|p| p.inventory).unwrap_or_default(),
                enrollment_kind: Some(if user_enrollment {
                    EnrollmentKind::UserEnrollment
                } else {
                    match pend.via {
                        pending::Via::Ade => EnrollmentKind::Ade,
                        pending::Via::Manual => EnrollmentKind::Manual,
                        pending::Via::AccountDriven => EnrollmentKind::AccountDriven,
                    }
                }),
                user: pend.user.clone(),
                dep_token: pend.token,
                dep_profile: pend.profile,
                imei: a.imei.clone(),
                meid: a.meid.clone(),
                identity_serial: identity.serial_hex.clone(),
                identity_expires_at: identity.not_after,
                user_channels: Vec::new(),
                index_pos,
                retire: None,
                name_corrected: None,
                reenrollment: None,
            };
            if live {
                let mut replaced = None;
                let updated = modify_record(store, &device_id, |cur| {
                    replaced = cur.reenrollment.take().map(|r| r.cert_hash);
                    cur.reenrollment = Some(Box::new(Reenrollment {
                        cert_hash: cert_hash.to_owned(),
                        authenticated_at: now,
                        record: rec.clone(),
                    }));
                    Ok(true)
                })
                .await?;
                if updated.is_none() {
                    return Err(bad("the enrollment was deleted meanwhile: enroll again"));
                }
                if let Some(old) = replaced.filter(|h| h != cert_hash) {
                    BoundDevice::delete(store, &old).await?;
                }
                BoundDevice(device_id.clone())
                    .save(store, cert_hash)
                    .await?;
                return Ok(Reply::Empty);
            }
            BoundDevice(device_id.clone())
                .save(store, cert_hash)
                .await?;
            save(store, &rec).await?;
            Ok(Reply::Empty)
        }
        CheckinMessage::TokenUpdate(t) => {
            if e.user_id().is_none() {
                complete_reenrollment(store, cert_hash, &device_id, now).await?;
            }
            let rec = require_binding(store, cert_hash, &device_id).await?;
            if t.topic != rec.topic {
                return Err(bad("Topic differs from the one given at Authenticate"));
            }
            let push = Push {
                token_hex: hex::encode(&t.token),
                push_magic: t.push_magic.clone(),
                topic: t.topic.clone(),
            };
            if let Some(user_id) = e.user_id() {
                let uc = UserChannel {
                    device_id: device_id.clone(),
                    user_id: user_id.to_owned(),
                    user_short_name: e.user_short_name.clone(),
                    user_long_name: e.user_long_name.clone(),
                    push,
                    awaiting_configuration: t.awaiting_configuration,
                    updated_at: now,
                };
                uc.save(store, (&device_id, user_id)).await?;
                queue::open(store, &Channel::user(&device_id, user_id)).await?;
                if !rec.user_channels.iter().any(|u| u == user_id) {
                    modify_record(store, &device_id, |r| {
                        if r.user_channels.iter().any(|u| u == user_id) {
                            return Ok(false);
                        }
                        r.user_channels.push(user_id.to_owned());
                        Ok(true)
                    })
                    .await?;
                }
                return Ok(Reply::Empty);
            }
            let unlock_token = t.unlock_token.as_ref().map(|unlock| {
                let sealer = Sealer::new(storage_key, SEAL_UNLOCK);
                b64().encode(sealer.seal(&unlock.0, EnrollmentRecord::key(&device_id).as_bytes()))
            });
            queue::open(store, &Channel::device(&device_id)).await?;
            let mut first = false;
            modify_record(store, &device_id, |r| {
                // The identity may have lost its place meanwhile (a retire, a newer
                // enrollment): then nothing is changed.
                if !r.cert_hashes.iter().any(|h| h == cert_hash) {
                    return Err(bad("identity certificate is not bound to this enrollment"));
                }
                r.push = Some(push.clone());
                r.awaiting_configuration = t.awaiting_configuration;
                if let Some(u) = &unlock_token {
                    r.unlock_token = Some(u.clone());
                }
                first = !r.enrolled;
                if first {
                    r.enrolled = true;
                    r.enrolled_at = Some(now);
                }
                r.checked_out_at = None;
                r.last_seen_at = now;
                Ok(true)
            })
            .await?
            .ok_or_else(|| bad("no enrollment for this device; Authenticate first"))?;
            if first {
                // The enrollment request is used up: another Authenticate needs a new one.
                pending::remove(store, &device_id).await?;
            }
            Ok(Reply::Empty)
        }
        CheckinMessage::CheckOut(_) => {
            require_binding(store, cert_hash, &device_id).await?;
            modify_record(store, &device_id, |r| {
                if !r.cert_hashes.iter().any(|h| h == cert_hash) {
                    return Err(bad("identity certificate is not bound to this enrollment"));
                }
                r.enrolled = false;
                r.checked_out_at = Some(now);
                r.last_seen_at = now;
                Ok(true)
            })
            .await?;
            Ok(Reply::Empty)
        }
        CheckinMessage::UserAuthenticate(_) => {
            let rec = require_binding(store, cert_hash, &device_id).await?;
            if rec.user_enrollment {
                return Err(bad("UserAuthenticate is not allowed under User Enrollment"));
            }
            // We manage no directory users on the user channel: decline them.
            Ok(Reply::Gone)
        }
        CheckinMessage::SetBootstrapToken(b) => {
            let rec = require_binding(store, cert_hash, &device_id).await?;
            if rec.user_enrollment {
                return Err(bad(
                    "bootstrap tokens are not allowed under User Enrollment",
                ));
            }
            match b.bootstrap_token.as_ref().filter(|t| !t.0.is_empty()) {
                None => SealedBootstrapToken::delete(store, &device_id).await?,
                Some(token) => {
                    let sealed = Sealer::new(storage_key, SEAL_BOOTSTRAP)
                        .seal(&token.0, SealedBootstrapToken::key(&device_id).as_bytes());
                    SealedBootstrapToken(sealed).save(store, &device_id).await?
                }
            }
            Ok(Reply::Empty)
        }
        CheckinMessage::GetBootstrapToken(_) => {
            let rec = require_binding(store, cert_hash, &device_id).await?;
            if rec.user_enrollment {
                return Err(bad(
                    "bootstrap tokens are not allowed under User Enrollment",
                ));
            }
            let Some(sealed) = SealedBootstrapToken::load(store, &device_id).await? else {
                return Ok(Reply::Empty);
            };
            let token = Sealer::new(storage_key, SEAL_BOOTSTRAP)
                .open(&sealed.0, SealedBootstrapToken::key(&device_id).as_bytes())
                .map_err(|e| Refusal::Store(KvError::Backend(format!("bootstrap token: {e}"))))?;
            let mut dict = plist::Dictionary::new();
            dict.insert("BootstrapToken".into(), plist::Value::Data(token));
            let mut out = Vec::new();
            plist::to_writer_xml(&mut out, &plist::Value::Dictionary(dict))
                .expect("plist to memory");
            Ok(Reply::Plist(out))
        }
        CheckinMessage::DeclarativeManagement(_) => {
            require_binding(store, cert_hash, &device_id).await?;
            Err(bad("declarative management is not enabled on this server"))
        }
        CheckinMessage::GetToken(g) => {
            require_binding(store, cert_hash, &device_id).await?;
            Err(bad(format!(
                "unsupported TokenServiceType {:?}",
                g.token_service_type
            )))
        }
    }
}

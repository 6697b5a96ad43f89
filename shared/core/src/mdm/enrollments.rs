//! The check-in state machine: what each check-in message does to an enrollment.
//!
//! Input is a message whose signature the transport already verified, and the lowercase
//! hex SHA-256 of the signing identity certificate. Failures answer 400 with a reason,
//! never 401 (a 401 can make a device unenroll).
//!
//! The records it reads and writes, and their keys: [`super::enrollment_record`].
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

use base64::Engine;

use mdm_kv::{Backend, KvError, Store};

use super::checkin::{CheckinMessage, Enrollment};
use super::command_records;
use super::enrollment_record::{
    b64, bad, binding_key, bootstrap_key, index_counter, index_key, load, save, user_key,
};
// The records' API, still reachable by its former path.
pub use super::enrollment_record::{
    DeviceIdentity, DevicePage, DeviceRead, EnrollmentKind, EnrollmentRecord, InventorySection,
    Push, Reenrollment, Refusal, Retire, SEAL_BOOTSTRAP, SEAL_UNLOCK, UserChannel, bound_device,
    check_bound, device_type, ever_enrolled, get, inventory_key, list, modify_record,
    read_for_request, record_key, require_bound, unlock_token, user_channel,
};
use super::queue::{self, Channel};
use crate::enroll::pending;
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

/// Bindings used to be keyed on the hash of the whole certificate DER; they are keyed on
/// the hash of its tbsCertificate now. A certificate whose binding is only under the old
/// key gets it moved to the new one (and its enrollment record lists the new hash).
/// Returns the device it is bound to.
pub async fn migrate_legacy_binding<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    der_hash: &str,
) -> Result<Option<String>, KvError> {
    if cert_hash == der_hash {
        return Ok(None);
    }
    let Some(device) = bound_device(store, der_hash).await? else {
        return Ok(None);
    };
    store
        .set(&binding_key(cert_hash), device.as_bytes())
        .await?;
    let r = store
        .update::<KvError>(&record_key(&device), 20, |raw| {
            let mut rec: EnrollmentRecord = serde_json::from_slice(raw)
                .map_err(|e| KvError::Backend(format!("enrollment record: {e}")))?;
            if rec.cert_hashes.iter().any(|h| h == cert_hash) {
                return Ok(None);
            }
            rec.cert_hashes.push(cert_hash.to_owned());
            Ok(Some(serde_json::to_vec(&rec).expect("serialises")))
        })
        .await;
    if let Err(mdm_kv::UpdateError::Kv(e) | mdm_kv::UpdateError::Rejected(e)) = r {
        return Err(e);
    }
    store.delete(&binding_key(der_hash)).await?;
    Ok(Some(device))
}

pub async fn require_binding<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    device_id: &str,
) -> Result<EnrollmentRecord, Refusal> {
    let bound = bound_device(store, cert_hash).await?;
    require_bound(store, bound.as_deref(), cert_hash, device_id).await
}

/// A device whose identity was renewed over SCEP (RenewalReq signed by its current
/// identity) signs with the new certificate from then on, without a new Authenticate:
/// bind the new certificate to the enrollment when our SCEP issued it as the renewal of
/// a certificate bound to this very device. The enrollment keeps its queue, channels and
/// tokens. Anything else is left for [`require_binding`] to refuse.
pub async fn adopt_renewal<B: Backend>(
    store: &Store<B>,
    identity: &DeviceIdentity,
    device_id: &str,
) -> Result<bool, KvError> {
    let Some(serial) = &identity.serial_hex else {
        return Ok(false);
    };
    if store
        .get(&binding_key(&identity.cert_hash))
        .await?
        .is_some()
    {
        return Ok(false);
    }
    // A retired (or retiring) or checked-out enrollment takes no new identity.
    match load(store, device_id).await {
        Ok(Some(rec)) if rec.enrolled && rec.retire.is_none() => {}
        Ok(_) => return Ok(false),
        Err(Refusal::Store(e)) => return Err(e),
        Err(_) => return Ok(false),
    }
    let Some(issued) = crate::scep::issued::issued_for(store, serial).await? else {
        return Ok(false);
    };
    let Some(previous) = issued
        .renewed_from
        .as_deref()
        .filter(|_| issued.purpose == "renewal")
    else {
        return Ok(false);
    };
    if !issued.is(identity) {
        return Ok(false);
    }
    let Some(prev) = crate::scep::issued::issued_for(store, previous).await? else {
        return Ok(false);
    };
    let mut prev_bound = false;
    for h in prev.binding_hashes() {
        if store.get(&binding_key(h)).await?.as_deref() == Some(device_id.as_bytes()) {
            prev_bound = true;
            break;
        }
    }
    if !prev_bound {
        return Ok(false);
    }
    store
        .set(&binding_key(&identity.cert_hash), device_id.as_bytes())
        .await?;
    let r = store
        .update::<KvError>(&record_key(device_id), 20, |raw| {
            let mut rec: EnrollmentRecord = serde_json::from_slice(raw)
                .map_err(|e| KvError::Backend(format!("enrollment record: {e}")))?;
            if !rec.cert_hashes.contains(&identity.cert_hash) {
                rec.cert_hashes.push(identity.cert_hash.clone());
            }
            rec.identity_serial = Some(serial.clone());
            rec.identity_expires_at = identity.not_after;
            Ok(Some(serde_json::to_vec(&rec).expect("serialises")))
        })
        .await;
    match r {
        Ok(_) => Ok(true),
        Err(mdm_kv::UpdateError::Kv(e) | mdm_kv::UpdateError::Rejected(e)) => Err(e),
    }
}

/// The first TokenUpdate of a re-enrollment's identity: the enrollment it started
/// replaces the live one now (whose identities, channels and queued commands go, as at any
/// re-enrollment). Nothing for any other identity.
async fn complete_reenrollment<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    device_id: &str,
    now: u64,
) -> Result<(), Refusal> {
    if bound_device(store, cert_hash).await?.as_deref() != Some(device_id) {
        return Ok(());
    }
    let mut replaced: Option<EnrollmentRecord> = None;
    modify_record(store, device_id, |cur| {
        replaced = None;
        let Some(re) = cur
            .reenrollment
            .as_ref()
            .filter(|r| r.cert_hash == cert_hash)
        else {
            return Ok(false);
        };
        if now.saturating_sub(re.authenticated_at) >= pending::PENDING_TTL {
            return Err(bad(
                "this identity's re-enrollment expired: enroll the device again",
            ));
        }
        let mut next = re.record.clone();
        next.index_pos = cur.index_pos;
        next.inventory = std::mem::take(&mut cur.inventory);
        let mut prev = std::mem::replace(cur, next);
        prev.reenrollment = None;
        replaced = Some(prev);
        Ok(true)
    })
    .await?;
    match replaced {
        Some(prev) => reset_enrollment(store, &prev, cert_hash, now).await,
        None => Ok(()),
    }
}

/// Drops what a previous enrollment of the device left: other identities' bindings, user
/// channels, queued commands (cancelled in their history), the bootstrap token.
async fn reset_enrollment<B: Backend>(
    store: &Store<B>,
    prev: &EnrollmentRecord,
    keep_cert: &str,
    now: u64,
) -> Result<(), Refusal> {
    let mut gone = close_channels(store, prev, now)
        .await
        .map_err(queue_error)?;
    gone.extend(
        prev.cert_hashes
            .iter()
            .chain(prev.reenrollment.as_ref().map(|r| &r.cert_hash))
            .filter(|h| h.as_str() != keep_cert)
            .map(|h| binding_key(h)),
    );
    let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
    store.delete_many(&refs).await?;
    Ok(())
}

/// Cancels every queued command of the enrollment's channels (device and users); returns
/// the keys of what goes with them (user channel records, the bootstrap token).
async fn close_channels<B: Backend>(
    store: &Store<B>,
    rec: &EnrollmentRecord,
    now: u64,
) -> Result<Vec<String>, queue::QueueError> {
    let device_id = &rec.device_id;
    let mut gone = Vec::new();
    for user in &rec.user_channels {
        command_records::cancel_all(store, &Channel::user(device_id, user), now).await?;
        gone.push(user_key(device_id, user));
    }
    command_records::cancel_all(store, &Channel::device(device_id), now).await?;
    gone.push(bootstrap_key(device_id));
    Ok(gone)
}

fn queue_error(e: queue::QueueError) -> Refusal {
    match e {
        queue::QueueError::Store(e) => Refusal::Store(e),
        other => Refusal::BadRequest(other.to_string()),
    }
}

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
    a: &super::checkin::Authenticate,
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
async fn admit_authenticate<B: Backend>(
    store: &Store<B>,
    identity: &DeviceIdentity,
    device_id: &str,
    a: &super::checkin::Authenticate,
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
            if let Some(other) = store.get(&binding_key(cert_hash)).await?
                && other != device_id.as_bytes()
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
                    store.set(&index_key(n), device_id.as_bytes()).await?;
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
                    store.delete(&binding_key(&old)).await?;
                }
                store
                    .set(&binding_key(cert_hash), device_id.as_bytes())
                    .await?;
                return Ok(Reply::Empty);
            }
            store
                .set(&binding_key(cert_hash), device_id.as_bytes())
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
                store
                    .set(
                        &user_key(&device_id, user_id),
                        &serde_json::to_vec(&uc).expect("serialises"),
                    )
                    .await?;
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
                b64().encode(sealer.seal(&unlock.0, record_key(&device_id).as_bytes()))
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
                None => store.delete(&bootstrap_key(&device_id)).await?,
                Some(token) => {
                    let sealed = Sealer::new(storage_key, SEAL_BOOTSTRAP)
                        .seal(&token.0, bootstrap_key(&device_id).as_bytes());
                    store.set(&bootstrap_key(&device_id), &sealed).await?
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
            let Some(sealed) = store.get(&bootstrap_key(&device_id)).await? else {
                return Ok(Reply::Empty);
            };
            let token = Sealer::new(storage_key, SEAL_BOOTSTRAP)
                .open(&sealed, bootstrap_key(&device_id).as_bytes())
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

/// Deletes everything held for the device's enrollment: the record and its place in
/// the device list, identity bindings, user channels, queued commands (cancelled in their
/// history), escrowed bootstrap token, push state and any pending enrollment request. The
/// command history and device log stay until their retention ends (an audit trail).
/// Returns false when there was no record. A later enrollment starts afresh.
pub async fn purge<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    now: u64,
) -> Result<bool, KvError> {
    let Some(rec) = load(store, device_id).await.map_err(|e| match e {
        Refusal::Store(e) => e,
        other => KvError::Backend(format!("{other:?}")),
    })?
    else {
        return Ok(false);
    };
    let mut gone = close_channels(store, &rec, now)
        .await
        .map_err(queue_kv_error)?;
    gone.extend(rec.cert_hashes.iter().map(|h| binding_key(h)));
    if let Some(n) = rec.index_pos {
        gone.push(index_key(n));
    }
    let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
    store.delete_many(&refs).await?;
    pending::remove(store, device_id).await?;
    super::push::reset_state(store, device_id).await?;
    // The record last: a failure above leaves it, so the purge can be repeated.
    store.delete(&record_key(device_id)).await?;
    Ok(true)
}

fn queue_kv_error(e: queue::QueueError) -> KvError {
    match e {
        queue::QueueError::Store(e) => e,
        other => KvError::Backend(other.to_string()),
    }
}

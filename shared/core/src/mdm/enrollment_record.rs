//! The enrollment record and what is keyed on it: the record of each device (and user
//! channel) as check-ins left it, the binding of each identity certificate to its
//! enrollment, the device list, and inventory sections kept under their own key.
//!
//! Key layout (`d` = device channel id as a key segment):
//! - `enr:<d>`          the [`EnrollmentRecord`] (unlock token sealed, bound to the record)
//! - `enru:<d>:<u>`     a user channel's [`UserChannel`] record
//! - `certb:<hash>`     device id the identity certificate is bound to
//! - `bst:<d>`          the escrowed bootstrap token (sealed)
//! - `ctr:enrix`        devices that ever authenticated
//! - `enrix:<n>`        the n-th device to authenticate (its id): the device list, read
//!   in order by the admin API without listing keys
//! - `inv:<d>:<RequestType>` a large inventory section (app, certificate, profile lists);
//!   the record only notes when it was reported

use base64::Engine;
use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, KvError, Store};

use crate::dep::TokenId;
use crate::record::{self, Record, Stored};
use crate::seal::Sealer;

pub const SEAL_UNLOCK: &str = "unlock-token";
pub const SEAL_BOOTSTRAP: &str = "bootstrap-token";

pub(crate) fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

pub(crate) fn index_counter() -> mdm_kv::CounterKey {
    mdm_kv::CounterKey::new("enrix").expect("key-safe")
}

impl Record for EnrollmentRecord {
    type Id<'a> = &'a str;
    const NAME: &'static str = "enrollment record";
    /// A check-in, an admin's retire and a command result may change it at once.
    const ATTEMPTS: usize = 50;
    fn key(device_id: &str) -> String {
        format!("enr:{}", segment(device_id))
    }
}

impl Record for UserChannel {
    /// (device id, user id)
    type Id<'a> = (&'a str, &'a str);
    const NAME: &'static str = "user channel";
    fn key((device_id, user_id): (&str, &str)) -> String {
        format!("enru:{}:{}", segment(device_id), segment(user_id))
    }
}

/// The device an identity certificate (by hash) is bound to: `certb:<hash>`, the device
/// id as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BoundDevice(pub String);

impl Record for BoundDevice {
    type Id<'a> = &'a str;
    const NAME: &'static str = "identity binding";
    fn key(cert_hash: &str) -> String {
        format!("certb:{}", segment(cert_hash))
    }
    record::stored_as_text!();
}

/// The escrowed bootstrap token, sealed (bound to its key): `bst:<d>`, the sealed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedBootstrapToken(pub Vec<u8>);

impl Record for SealedBootstrapToken {
    type Id<'a> = &'a str;
    const NAME: &'static str = "bootstrap token";
    fn key(device_id: &str) -> String {
        format!("bst:{}", segment(device_id))
    }
    record::stored_as_bytes!();
}

/// The n-th device to authenticate: `enrix:<n>`, its id as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ListedDevice(pub String);

impl Record for ListedDevice {
    type Id<'a> = u64;
    const NAME: &'static str = "device list entry";
    fn key(n: u64) -> String {
        format!("enrix:{n}")
    }
    record::stored_as_text!();
}

impl Record for InventorySection {
    /// (device id, RequestType): a large section kept under its own key.
    type Id<'a> = (&'a str, &'a str);
    const NAME: &'static str = "inventory section";
    fn key((device_id, section): (&str, &str)) -> String {
        format!("inv:{}:{}", segment(device_id), segment(section))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    pub token_hex: String,
    pub push_magic: String,
    pub topic: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRecord {
    pub device_id: String,
    pub user_enrollment: bool,
    pub serial_number: Option<String>,
    pub product_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub device_name: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub topic: String,
    /// Identity certificates (SHA-256 hex) bound to this device; several after renewals.
    pub cert_hashes: Vec<String>,
    /// Between Authenticate and the first TokenUpdate a device is not yet reachable.
    pub enrolled: bool,
    pub authenticated_at: u64,
    pub enrolled_at: Option<u64>,
    pub checked_out_at: Option<u64>,
    pub last_seen_at: u64,
    pub push: Option<Push>,
    /// Base64 of the sealed UnlockToken (for ClearPasscode).
    pub unlock_token: Option<String>,
    pub awaiting_configuration: bool,
    /// From the latest DeviceInformation answer (`IsSupervised`); unknown before one.
    #[serde(default)]
    pub supervised: Option<bool>,
    /// Latest inventory by section (`DeviceInformation`, `SecurityInfo`, ...), from command
    /// results, with the time each section was reported.
    #[serde(default)]
    pub inventory: std::collections::BTreeMap<String, InventorySection>,
    /// How the device enrolled; `None` for records older than enrollment tracking.
    #[serde(default)]
    pub enrollment_kind: Option<EnrollmentKind>,
    /// Our local user bound to the device (web enrollment sign-in).
    #[serde(default)]
    pub user: Option<String>,
    /// The server token and our profile the device enrolled under (ADE).
    #[serde(default)]
    pub dep_token: Option<TokenId>,
    #[serde(default)]
    pub dep_profile: Option<u64>,
    #[serde(default)]
    pub imei: Option<String>,
    #[serde(default)]
    pub meid: Option<String>,
    /// The current identity certificate: serial (lowercase hex) and end of validity.
    #[serde(default)]
    pub identity_serial: Option<String>,
    #[serde(default)]
    pub identity_expires_at: Option<u64>,
    /// User channels that finished a TokenUpdate (ids), so re-enrollment can drop them.
    #[serde(default)]
    pub user_channels: Vec<String>,
    /// Position in the device list (`enrix:<n>`), so deleting the record can unlist it.
    #[serde(default)]
    pub index_pos: Option<u64>,
    /// An admin asked to retire the device: the RemoveProfile of our MDM profile sent to
    /// it. Its acknowledgement deletes the record ([`crate::mdm::enrollment_reset::purge`]); an error clears this.
    #[serde(default)]
    pub retire: Option<Retire>,
    /// A name the device reported that differed from its profile's name template, and
    /// that we sent the templated name for: reported again, it is not corrected again
    /// (the device may refuse the rename, e.g. unsupervised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_corrected: Option<String>,
    /// A new enrollment of the device (another identity's Authenticate, after a wipe, or
    /// a replayed enrollment request) waiting for its first TokenUpdate: this enrollment
    /// stays live until then, and is replaced only when it arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reenrollment: Option<Box<Reenrollment>>,
}

/// The enrollment an identity's Authenticate started while another was live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reenrollment {
    /// The new identity (bound to the device, not yet used for anything but its
    /// TokenUpdate).
    pub cert_hash: String,
    pub authenticated_at: u64,
    /// The enrollment as its Authenticate made it.
    pub record: EnrollmentRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retire {
    pub command_uuid: String,
    pub requested_at: u64,
}

/// How a device enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentKind {
    /// Automated Device Enrollment (with or without web sign-in).
    Ade,
    /// User Enrollment (BYOD, EnrollmentID).
    UserEnrollment,
    /// A profile made by hand with a challenge from the admin API (Apple Configurator,
    /// tests).
    Manual,
    /// Account-driven Device Enrollment (ADDE): signed in with a Managed Apple ID.
    AccountDriven,
}

/// The identity certificate a message was signed with, as far as the transport knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// Lowercase hex SHA-256 of the certificate's tbsCertificate: the binding key.
    pub cert_hash: String,
    /// Lowercase hex SHA-256 of the whole certificate DER (the binding key of older
    /// bindings, moved over on first use).
    pub der_hash: Option<String>,
    /// Lowercase hex serial number.
    pub serial_hex: Option<String>,
    pub not_after: Option<u64>,
}

impl DeviceIdentity {
    /// Only the hash (callers that verified the certificate elsewhere).
    pub fn from_hash(cert_hash: &str) -> Self {
        DeviceIdentity {
            cert_hash: cert_hash.to_owned(),
            ..Self::default()
        }
    }

    /// From the certificate that signed the message.
    pub fn from_certificate(cert_hash: &str, der: &[u8]) -> Self {
        use sha2::Digest;
        let cert = mdm_crypto::Certificate::from_der(der).ok();
        DeviceIdentity {
            cert_hash: cert_hash.to_owned(),
            der_hash: Some(hex::encode(sha2::Sha256::digest(der))),
            serial_hex: cert.as_ref().map(mdm_crypto::Certificate::serial_hex),
            not_after: cert.map(|c| c.not_after_unix().max(0) as u64),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySection {
    pub reported_at: u64,
    pub data: serde_json::Value,
    /// The section is stored under its own key (`inv:<d>:<RequestType>`, see the key layout above); `data`
    /// holds only a summary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChannel {
    pub device_id: String,
    pub user_id: String,
    pub user_short_name: Option<String>,
    pub user_long_name: Option<String>,
    pub push: Push,
    pub awaiting_configuration: bool,
    pub updated_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Answered 400 with this reason.
    BadRequest(String),
    /// We hold no enrollment for this device: answered 403
    /// `{"code":"com.apple.unrecognized.device"}`, which makes the device unenroll
    /// (iOS/tvOS 17+, macOS 14+; older devices treat it as an error).
    Unrecognized(String),
    Store(KvError),
}

impl From<KvError> for Refusal {
    fn from(e: KvError) -> Self {
        Refusal::Store(e)
    }
}

pub(crate) fn bad(reason: impl Into<String>) -> Refusal {
    Refusal::BadRequest(reason.into())
}

pub(crate) async fn load<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Option<EnrollmentRecord>, Refusal> {
    Ok(EnrollmentRecord::load(store, device_id).await?)
}

/// What a device request reads first, in one store round trip: the enrollment its
/// identity certificate is bound to, the record of the enrollment its report names, and
/// one more key of the caller's (the queue head of the channel it reports on).
#[derive(Debug)]
pub struct DeviceRead {
    /// [`bound_device`] of the certificate.
    pub bound: Option<String>,
    /// The stored record of the device the report names; check it with [`check_bound`].
    pub record: Option<EnrollmentRecord>,
    pub extra: Option<Vec<u8>>,
}

pub async fn read_for_request<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    device_id: &str,
    extra_key: &str,
) -> Result<DeviceRead, Refusal> {
    let keys = [
        BoundDevice::key(cert_hash),
        EnrollmentRecord::key(device_id),
        extra_key.to_owned(),
    ];
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut values = store.get_many(&refs).await?.into_iter();
    let mut next = || values.next().flatten();
    let bound = next()
        .and_then(|v| BoundDevice::decode(&v).ok())
        .map(|b| b.0);
    let record = next()
        .map(|v| EnrollmentRecord::decode_at(&keys[1], &v))
        .transpose()?;
    Ok(DeviceRead {
        bound,
        record,
        extra: next(),
    })
}

pub(crate) async fn save<B: Backend>(
    store: &Store<B>,
    rec: &EnrollmentRecord,
) -> Result<(), Refusal> {
    Ok(rec.save(store, &rec.device_id).await?)
}

/// Read-modify-write of an enrollment record by compare-and-swap (retried on conflict):
/// a check-in, an admin's retire and a command result may touch it at once. `change`
/// returns false to leave it as it is. `None` when there is no record.
pub async fn modify_record<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    mut change: impl FnMut(&mut EnrollmentRecord) -> Result<bool, Refusal>,
) -> Result<Option<EnrollmentRecord>, Refusal> {
    // The state the last attempt of the compare-and-swap started from, for the metrics.
    let mut before = State::default();
    let rec = EnrollmentRecord::modify(store, device_id, |rec| {
        before = State::of(rec);
        change(rec)
    })
    .await?;
    if let Some(rec) = &rec {
        count_transition(store, before, State::of(rec)).await;
    }
    Ok(rec)
}

/// What the device-state metrics count of a record: enrolled, and held in Setup
/// Assistant while enrolled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct State {
    enrolled: bool,
    awaiting: bool,
}

impl State {
    pub(crate) fn of(rec: &EnrollmentRecord) -> State {
        State {
            enrolled: rec.enrolled,
            awaiting: rec.enrolled && rec.awaiting_configuration,
        }
    }
}

/// Counts a record's move from `before` to `after` (a deleted record is `State::default()`).
pub(crate) async fn count_transition<B: Backend>(store: &Store<B>, before: State, after: State) {
    use crate::metrics::{Counter, bump};
    match (before.enrolled, after.enrolled) {
        (false, true) => bump(store, Counter::Enrolled).await,
        (true, false) => bump(store, Counter::Unenrolled).await,
        _ => {}
    }
    match (before.awaiting, after.awaiting) {
        (false, true) => bump(store, Counter::AwaitingStarted).await,
        (true, false) => bump(store, Counter::AwaitingReleased).await,
        _ => {}
    }
}

/// Every message but Authenticate must come from a certificate bound to its device.
/// The device a certificate (by hash) is bound to, if any. Bindings are written only for
/// certificates that passed the CA check.
pub async fn bound_device<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
) -> Result<Option<String>, KvError> {
    Ok(BoundDevice::load_valid(store, cert_hash)
        .await?
        .map(|b| b.0))
}

/// [`crate::mdm::enrollment_binding::require_binding`] for a certificate (`cert_hash`) whose binding (`bound`, from
/// [`bound_device`]) the caller has read already. The identity of a re-enrollment that
/// has not had its TokenUpdate is bound but acts for nothing yet.
pub async fn require_bound<B: Backend>(
    store: &Store<B>,
    bound: Option<&str>,
    cert_hash: &str,
    device_id: &str,
) -> Result<EnrollmentRecord, Refusal> {
    let rec = load(store, device_id).await?;
    check_bound(bound, cert_hash, device_id, rec)
}

/// [`require_bound`] on a record read beforehand (`rec`: the record of `device_id`, as
/// stored).
pub fn check_bound(
    bound: Option<&str>,
    cert_hash: &str,
    device_id: &str,
    rec: Option<EnrollmentRecord>,
) -> Result<EnrollmentRecord, Refusal> {
    if bound != Some(device_id) {
        if bound.is_none() && rec.is_none() {
            return Err(Refusal::Unrecognized(
                "no enrollment for this device on this server".into(),
            ));
        }
        return Err(bad("identity certificate is not bound to this enrollment"));
    }
    let rec = rec.ok_or_else(|| bad("no enrollment for this device; Authenticate first"))?;
    if !rec.cert_hashes.iter().any(|h| h == cert_hash) {
        if rec
            .reenrollment
            .as_ref()
            .is_some_and(|r| r.cert_hash == cert_hash)
        {
            return Err(bad(
                "this identity's re-enrollment is not complete: its TokenUpdate comes first",
            ));
        }
        return Err(bad("identity certificate is not bound to this enrollment"));
    }
    Ok(rec)
}

/// The device's UnlockToken, for ClearPasscode.
pub fn unlock_token(
    rec: &EnrollmentRecord,
    storage_key: &crate::config::Secret,
) -> Option<Vec<u8>> {
    let sealed = b64().decode(rec.unlock_token.as_ref()?).ok()?;
    Sealer::new(storage_key, SEAL_UNLOCK)
        .open(&sealed, EnrollmentRecord::key(&rec.device_id).as_bytes())
        .ok()
}

/// The enrollment record of a device, if it ever authenticated.
pub async fn get<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Option<EnrollmentRecord>, KvError> {
    EnrollmentRecord::load(store, device_id).await
}

/// A user channel of a device, if it finished its TokenUpdate.
pub async fn user_channel<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    user_id: &str,
) -> Result<Option<UserChannel>, KvError> {
    UserChannel::load(store, (device_id, user_id)).await
}

/// A page of [`list`].
#[derive(Debug, Clone, PartialEq)]
pub struct DevicePage {
    pub devices: Vec<EnrollmentRecord>,
    /// The `after` of the next page; `None` at the end.
    pub next: Option<u64>,
}

/// Index slots read per batch.
pub(crate) const LIST_BATCH: u64 = 100;

/// Whether any device ever authenticated (one counter read).
pub async fn ever_enrolled<B: Backend>(store: &Store<B>) -> Result<bool, KvError> {
    Ok(store.counter(&index_counter()).await? > 0)
}

/// Devices in the order they first authenticated, after index position `after`.
/// `enrolled`: only devices currently enrolled (true) or not (false). Reads at most
/// `limit` x 5 (at least 200) index slots per page, so a selective filter may answer a
/// short page with a `next`.
pub async fn list<B: Backend>(
    store: &Store<B>,
    after: u64,
    limit: usize,
    enrolled: Option<bool>,
) -> Result<DevicePage, KvError> {
    let top = store.counter(&index_counter()).await?.max(0) as u64;
    let limit = limit.max(1);
    let budget = (limit as u64 * 5).max(200);
    let mut pos = after;
    let mut out = Vec::new();
    while pos < top {
        if pos - after >= budget {
            return Ok(DevicePage {
                devices: out,
                next: Some(pos),
            });
        }
        let to = (pos + LIST_BATCH).min(top);
        let slots: Vec<u64> = (pos + 1..=to).collect();
        let found: Vec<(u64, String)> = slots
            .iter()
            .zip(ListedDevice::load_many_valid(store, &slots).await?)
            .filter_map(|(n, id)| Some((*n, id?.0)))
            .collect();
        let ids: Vec<&str> = found.iter().map(|(_, id)| id.as_str()).collect();
        let records = EnrollmentRecord::load_many_valid(store, &ids).await?;
        for ((n, _), rec) in found.iter().zip(records) {
            let Some(rec) = rec else {
                continue;
            };
            if enrolled.is_some_and(|e| e != rec.enrolled) {
                continue;
            }
            out.push(rec);
            if out.len() == limit {
                return Ok(DevicePage {
                    devices: out,
                    next: (*n < top).then_some(*n),
                });
            }
        }
        pos = to;
    }
    Ok(DevicePage {
        devices: out,
        next: None,
    })
}

/// The model family Apple's device-name template means by `{{DEVICETYPE}}`.
pub fn device_type(rec: &EnrollmentRecord) -> String {
    let product = rec.product_name.as_deref().unwrap_or("");
    let family: String = product
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    match family.as_str() {
        "" => "Device".into(),
        "iPhone" | "iPad" | "iPod" | "Watch" | "AppleTV" => family,
        _ => "Mac".into(),
    }
}

//! The check-in state machine: what each check-in message does to an enrollment.
//!
//! Input is a message whose signature the transport already verified, and the lowercase
//! hex SHA-256 of the signing identity certificate. Failures answer 400 with a reason,
//! never 401 (a 401 can make a device unenroll).
//!
//! Key layout (`d` = device channel id as a key segment):
//! - `enr:<d>`          the [`EnrollmentRecord`] (unlock token sealed, bound to the record)
//! - `enru:<d>:<u>`     a user channel's [`UserChannel`] record
//! - `certb:<hash>`     device id the identity certificate is bound to
//! - `bst:<d>`          the escrowed bootstrap token (sealed)
//! - `ctr:enrix`        devices that ever authenticated
//! - `enrix:<n>`        the n-th device to authenticate (its id): the device list, read
//!   in order by the admin API without listing keys

use base64::Engine;
use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, KvError, Store};

use super::checkin::{CheckinMessage, Enrollment};
use super::queue::{self, Channel};
use crate::seal::Sealer;

pub const SEAL_UNLOCK: &str = "unlock-token";
pub const SEAL_BOOTSTRAP: &str = "bootstrap-token";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

pub fn record_key(device_id: &str) -> String {
    format!("enr:{}", segment(device_id))
}

fn user_key(device_id: &str, user_id: &str) -> String {
    format!("enru:{}:{}", segment(device_id), segment(user_id))
}

fn binding_key(cert_hash: &str) -> String {
    format!("certb:{}", segment(cert_hash))
}

fn bootstrap_key(device_id: &str) -> String {
    format!("bst:{}", segment(device_id))
}

fn index_counter() -> mdm_kv::CounterKey {
    mdm_kv::CounterKey::new("enrix").expect("key-safe")
}

fn index_key(n: u64) -> String {
    format!("enrix:{n}")
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySection {
    pub reported_at: u64,
    pub data: serde_json::Value,
    /// The section is stored under its own key (see `connect::inventory_key`); `data`
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Answered 400 with this reason.
    BadRequest(String),
    Store(KvError),
}

impl From<KvError> for Refusal {
    fn from(e: KvError) -> Self {
        Refusal::Store(e)
    }
}

fn bad(reason: impl Into<String>) -> Refusal {
    Refusal::BadRequest(reason.into())
}

async fn load<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Option<EnrollmentRecord>, Refusal> {
    match store.get(&record_key(device_id)).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| Refusal::Store(KvError::Backend(format!("enrollment record: {e}")))),
    }
}

async fn save<B: Backend>(store: &Store<B>, rec: &EnrollmentRecord) -> Result<(), Refusal> {
    Ok(store
        .set(
            &record_key(&rec.device_id),
            &serde_json::to_vec(rec).expect("serialises"),
        )
        .await?)
}

/// Every message but Authenticate must come from a certificate bound to its device.
pub async fn require_binding<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    device_id: &str,
) -> Result<EnrollmentRecord, Refusal> {
    let bound = store.get(&binding_key(cert_hash)).await?;
    if bound.as_deref() != Some(device_id.as_bytes()) {
        return Err(bad("identity certificate is not bound to this enrollment"));
    }
    load(store, device_id)
        .await?
        .ok_or_else(|| bad("no enrollment for this device; Authenticate first"))
}

/// Applies one verified check-in message.
pub async fn checkin<B: Backend>(
    store: &Store<B>,
    storage_key: &crate::config::Secret,
    cert_hash: &str,
    msg: &CheckinMessage,
    now: u64,
) -> Result<Reply, Refusal> {
    let e: &Enrollment = msg.enrollment();
    let device_id = e
        .device_id()
        .expect("parser guarantees a device id")
        .to_owned();
    match msg {
        CheckinMessage::Authenticate(a) => {
            if let Some(other) = store.get(&binding_key(cert_hash)).await?
                && other != device_id.as_bytes()
            {
                return Err(bad(
                    "identity certificate already belongs to another enrollment",
                ));
            }
            let previous = load(store, &device_id).await?;
            let mut cert_hashes = previous
                .as_ref()
                .map(|p| p.cert_hashes.clone())
                .unwrap_or_default();
            if !cert_hashes.iter().any(|h| h == cert_hash) {
                cert_hashes.push(cert_hash.to_owned());
            }
            store
                .set(&binding_key(cert_hash), device_id.as_bytes())
                .await?;
            if previous.is_none() {
                // A device's Authenticate messages are sequential: listed once.
                let n = store.increment(&index_counter(), 1).await? as u64;
                store.set(&index_key(n), device_id.as_bytes()).await?;
            }
            // (Re-)enrollment: reachable only after its TokenUpdate.
            let rec = EnrollmentRecord {
                device_id: device_id.clone(),
                user_enrollment: e.is_user_enrollment(),
                serial_number: a.serial_number.clone(),
                product_name: a.product_name.clone(),
                os_version: a.os_version.clone(),
                build_version: a.build_version.clone(),
                device_name: a.device_name.clone(),
                model: a.model.clone(),
                model_name: a.model_name.clone(),
                topic: a.topic.clone(),
                cert_hashes,
                enrolled: false,
                authenticated_at: now,
                enrolled_at: None,
                checked_out_at: None,
                last_seen_at: now,
                push: None,
                unlock_token: None,
                awaiting_configuration: false,
                supervised: previous.as_ref().and_then(|p| p.supervised),
                inventory: previous.map(|p| p.inventory).unwrap_or_default(),
            };
            save(store, &rec).await?;
            Ok(Reply::Empty)
        }
        CheckinMessage::TokenUpdate(t) => {
            let mut rec = require_binding(store, cert_hash, &device_id).await?;
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
                return Ok(Reply::Empty);
            }
            rec.push = Some(push);
            rec.awaiting_configuration = t.awaiting_configuration;
            if let Some(unlock) = &t.unlock_token {
                let sealer = Sealer::new(storage_key, SEAL_UNLOCK);
                rec.unlock_token =
                    Some(b64().encode(sealer.seal(&unlock.0, record_key(&device_id).as_bytes())));
            }
            if !rec.enrolled {
                rec.enrolled = true;
                rec.enrolled_at = Some(now);
            }
            rec.checked_out_at = None;
            rec.last_seen_at = now;
            queue::open(store, &Channel::device(&device_id)).await?;
            save(store, &rec).await?;
            Ok(Reply::Empty)
        }
        CheckinMessage::CheckOut(_) => {
            let mut rec = require_binding(store, cert_hash, &device_id).await?;
            rec.enrolled = false;
            rec.checked_out_at = Some(now);
            rec.last_seen_at = now;
            save(store, &rec).await?;
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

/// The device's UnlockToken, for ClearPasscode.
pub fn unlock_token(
    rec: &EnrollmentRecord,
    storage_key: &crate::config::Secret,
) -> Option<Vec<u8>> {
    let sealed = b64().decode(rec.unlock_token.as_ref()?).ok()?;
    Sealer::new(storage_key, SEAL_UNLOCK)
        .open(&sealed, record_key(&rec.device_id).as_bytes())
        .ok()
}

/// The enrollment record of a device, if it ever authenticated.
pub async fn get<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Option<EnrollmentRecord>, KvError> {
    match store.get(&record_key(device_id)).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| KvError::Backend(format!("enrollment record: {e}"))),
    }
}

/// A user channel of a device, if it finished its TokenUpdate.
pub async fn user_channel<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    user_id: &str,
) -> Result<Option<UserChannel>, KvError> {
    match store.get(&user_key(device_id, user_id)).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| KvError::Backend(format!("user channel: {e}"))),
    }
}

/// A page of [`list`].
#[derive(Debug, Clone, PartialEq)]
pub struct DevicePage {
    pub devices: Vec<EnrollmentRecord>,
    /// The `after` of the next page; `None` at the end.
    pub next: Option<u64>,
}

/// Index slots read per batch.
const LIST_BATCH: u64 = 100;

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
        let keys: Vec<String> = (pos + 1..=to).map(index_key).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let ids = store.get_many(&refs).await?;
        let found: Vec<(u64, String)> = (pos + 1..=to)
            .zip(ids)
            .filter_map(|(n, id)| Some((n, String::from_utf8(id?).ok()?)))
            .collect();
        let rkeys: Vec<String> = found.iter().map(|(_, id)| record_key(id)).collect();
        let rrefs: Vec<&str> = rkeys.iter().map(String::as_str).collect();
        for ((n, _), raw) in found.iter().zip(store.get_many(&rrefs).await?) {
            let Some(rec) = raw.and_then(|r| serde_json::from_slice::<EnrollmentRecord>(&r).ok())
            else {
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

//! The command loop at the ServerURL: a verified report in, the next command (or an
//! empty 200) out.
//!
//! Key layout (channel `c` as in [`super::queue`]):
//! - `res:<c>:<uuid>`   the [`CommandResult`] of an answered command
//! - `hist:<c>:<n>`     the n-th answered command's UUID (history in answer order)
//! - `ctr:hist:<c>`     answered commands so far

use base64::Engine;
use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, Store};

use super::enrollments::{self, Refusal};
use super::queue::{self, Channel, QueueError};
use super::report::{ErrorEntry, Report, Status};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub uuid: String,
    pub request_type: String,
    pub status: String,
    pub enqueued_at: u64,
    pub answered_at: u64,
    pub error_chain: Vec<ErrorResult>,
    /// Base64 of the device's whole report (XML plist), response keys included.
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResult {
    pub code: Option<i64>,
    pub domain: Option<String>,
    pub description: Option<String>,
}

impl From<&ErrorEntry> for ErrorResult {
    fn from(e: &ErrorEntry) -> Self {
        ErrorResult {
            code: e.error_code,
            domain: e.error_domain.clone(),
            description: e
                .us_english_description
                .clone()
                .or_else(|| e.localized_description.clone()),
        }
    }
}

fn channel_of(report: &Report, device_id: &str) -> (Channel, String) {
    match report.enrollment.user_id() {
        Some(user) => (
            Channel::user(device_id, user),
            format!("{}:u:{}", segment(device_id), segment(user)),
        ),
        None => (Channel::device(device_id), segment(device_id)),
    }
}

pub fn result_key(channel_tag: &str, uuid: &str) -> String {
    format!("res:{channel_tag}:{}", segment(uuid))
}

fn history_counter(channel_tag: &str) -> CounterKey {
    CounterKey::new(&format!("hist:{channel_tag}")).expect("segments are key-safe")
}

fn history_key(channel_tag: &str, n: i64) -> String {
    format!("hist:{channel_tag}:{n}")
}

fn queue_refusal(e: QueueError) -> Refusal {
    match e {
        QueueError::Store(e) => Refusal::Store(e),
        other => Refusal::BadRequest(other.to_string()),
    }
}

/// What to send back: a command plist, or nothing (200 with an empty body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Command(Vec<u8>),
    Nothing,
}

/// Handles one verified report from the device whose identity certificate hashes to
/// `cert_hash`.
pub async fn report<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    report: &Report,
    now: u64,
) -> Result<Next, Refusal> {
    let device_id = report
        .enrollment
        .device_id()
        .expect("parser guarantees a device id")
        .to_owned();
    let rec = enrollments::require_binding(store, cert_hash, &device_id).await?;
    if !rec.enrolled {
        return Err(Refusal::BadRequest(
            "device is not enrolled (no TokenUpdate since Authenticate)".into(),
        ));
    }
    let (ch, tag) = channel_of(report, &device_id);
    match report.status {
        Status::Idle => queue::idle(store, &ch).await.map_err(queue_refusal)?,
        Status::NotNow => queue::not_now(
            store,
            &ch,
            report.command_uuid.as_deref().unwrap_or_default(),
        )
        .await
        .map_err(queue_refusal)?,
        s if s.completes() => {
            let uuid = report.command_uuid.clone().unwrap_or_default();
            // An answer to a command we no longer hold (answered before, or never ours)
            // is ignored: the device just gets its next command.
            if let Some(cmd) = queue::complete(store, &ch, &uuid)
                .await
                .map_err(queue_refusal)?
            {
                let mut raw = Vec::new();
                plist::to_writer_xml(&mut raw, &plist::Value::Dictionary(report.raw.clone()))
                    .expect("plist to memory");
                let result = CommandResult {
                    uuid: uuid.clone(),
                    request_type: cmd.request_type,
                    status: format!("{:?}", report.status),
                    enqueued_at: cmd.enqueued_at,
                    answered_at: now,
                    error_chain: report.error_chain.iter().map(ErrorResult::from).collect(),
                    raw: base64::engine::general_purpose::STANDARD.encode(raw),
                };
                store
                    .set(
                        &result_key(&tag, &uuid),
                        &serde_json::to_vec(&result).expect("serialises"),
                    )
                    .await?;
                let n = store.increment(&history_counter(&tag), 1).await?;
                store.set(&history_key(&tag, n), uuid.as_bytes()).await?;
                if report.status == Status::Acknowledged && report.enrollment.user_id().is_none() {
                    update_inventory(store, &device_id, &result.request_type, &report.raw, now)
                        .await?;
                }
            }
        }
        _ => unreachable!("every status is handled above"),
    }
    match queue::next(store, &ch, now).await.map_err(queue_refusal)? {
        Some(cmd) => Ok(Next::Command(cmd.body)),
        None => Ok(Next::Nothing),
    }
}

/// Which key of a result carries inventory, per RequestType.
pub const INVENTORY: &[(&str, &str)] = &[
    ("DeviceInformation", "QueryResponses"),
    ("SecurityInfo", "SecurityInfo"),
    ("InstalledApplicationList", "InstalledApplicationList"),
    ("CertificateList", "CertificateList"),
    ("ProfileList", "ProfileList"),
];

/// Plist to JSON for the admin API: data as base64, dates as RFC 3339.
fn to_json(v: &plist::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        plist::Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        plist::Value::Dictionary(d) => {
            J::Object(d.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        plist::Value::Boolean(b) => J::Bool(*b),
        plist::Value::Data(d) => J::String(base64::engine::general_purpose::STANDARD.encode(d)),
        plist::Value::Date(d) => J::String(d.to_xml_format()),
        plist::Value::Real(r) => serde_json::Number::from_f64(*r).map_or(J::Null, J::Number),
        plist::Value::Integer(i) => i
            .as_signed()
            .map(J::from)
            .or(i.as_unsigned().map(J::from))
            .unwrap_or(J::Null),
        plist::Value::String(s) => J::String(s.clone()),
        plist::Value::Uid(u) => J::from(u.get()),
        _ => J::Null,
    }
}

async fn update_inventory<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    request_type: &str,
    raw: &plist::Dictionary,
    now: u64,
) -> Result<(), Refusal> {
    let Some((_, key)) = INVENTORY.iter().find(|(rt, _)| *rt == request_type) else {
        return Ok(());
    };
    let Some(value) = raw.get(*key) else {
        return Ok(());
    };
    let section = enrollments::InventorySection {
        reported_at: now,
        data: to_json(value),
    };
    let r = store
        .update::<mdm_kv::KvError>(&enrollments::record_key(device_id), 20, |bytes| {
            let mut rec: enrollments::EnrollmentRecord = serde_json::from_slice(bytes)
                .map_err(|e| mdm_kv::KvError::Backend(format!("enrollment record: {e}")))?;
            rec.inventory
                .insert(request_type.to_owned(), section.clone());
            Ok(Some(serde_json::to_vec(&rec).expect("serialises")))
        })
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(mdm_kv::UpdateError::Kv(e) | mdm_kv::UpdateError::Rejected(e)) => {
            Err(Refusal::Store(e))
        }
    }
}

/// A command result by channel tag and UUID.
pub async fn result<B: Backend>(
    store: &Store<B>,
    channel_tag: &str,
    uuid: &str,
) -> Result<Option<CommandResult>, mdm_kv::KvError> {
    Ok(store
        .get(&result_key(channel_tag, uuid))
        .await?
        .and_then(|raw| serde_json::from_slice(&raw).ok()))
}

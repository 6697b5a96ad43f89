//! The command loop at the ServerURL: a verified report in, the next command (or an
//! empty 200) out. An answer completes its command's record ([`crate::command::records`])
//! and adds an entry to the device log ([`devlog`]); inventory results update the
//! enrollment record (large sections under their own key, [`InventorySection`]'s); and
//! the answer to the device's retire command purges the enrollment.
//!
//! Every report reads and writes a fixed number of keys, whatever the length of the queue
//! or of the history.

use crate::metrics::{self, Counter};
use base64::Engine;
use serde_json::{Value, json};

use mdm_kv::{Backend, KvError, Store};

use crate::command::records::completion_into;
use crate::command::records::{
    CommandResult, EnqueueError, ErrorResult, NewCommand, STATUS_NOT_NOW, enqueue, result,
};
use crate::mdm::devlog;
use crate::mdm::enrollment_record::{
    self, EnrollmentRecord, InventorySection, Refusal, device_type, modify_record,
};
use crate::mdm::enrollment_reset::purge;
use crate::mdm::report::{Report, Status};
use crate::queue::{self, Channel, Lane, QueueError};
use crate::record::{Record, Stored, Writes};

/// Reports larger than this are not kept verbatim in the command record (KV values stay
/// well below every backend's item limit).
pub const MAX_RAW_KEPT: usize = 256 * 1024;
/// Inventory sections larger than this (as JSON) are not stored, only noted.
pub const MAX_SECTION: usize = 1024 * 1024;
/// How often the device record's `last_seen_at` is rewritten at most.
const LAST_SEEN_GRANULARITY: u64 = 60;

fn channel_of(report: &Report, device_id: &str) -> Channel {
    match report.enrollment.user_id() {
        Some(user) => Channel::user(device_id, user),
        None => Channel::device(device_id),
    }
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
    /// A command sealed at rest (it carries a secret): open it with the storage key and
    /// this associated data ([`crate::command::secrets::open`]) to send it.
    Sealed {
        body: Vec<u8>,
        aad: String,
    },
    Nothing,
}

fn raw_report(report: &Report) -> (String, Option<u64>) {
    let mut raw = Vec::new();
    let kept = crate::command::secrets::redact(&report.raw);
    plist::to_writer_xml(&mut raw, &plist::Value::Dictionary(kept)).expect("plist to memory");
    if raw.len() > MAX_RAW_KEPT {
        (String::new(), Some(raw.len() as u64))
    } else {
        (base64::engine::general_purpose::STANDARD.encode(raw), None)
    }
}

/// Handles one verified report from the device whose identity certificate hashes to
/// `cert_hash`.
pub async fn report<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    report: &Report,
    now: u64,
) -> Result<Next, Refusal> {
    let read = prefetch(store, cert_hash, report).await?;
    report_read(store, read, cert_hash, report, now).await
}

/// What [`report_read`] needs first, in one store round trip: the certificate's binding,
/// the record of the enrollment the report names and the queue head of its channel.
pub async fn prefetch<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    report: &Report,
) -> Result<enrollment_record::DeviceRead, Refusal> {
    let device_id = report
        .enrollment
        .device_id()
        .ok_or_else(|| Refusal::BadRequest("report names no device".into()))?;
    let ch = channel_of(report, device_id);
    enrollment_record::read_for_request(store, cert_hash, device_id, &queue::Head::key(&ch)).await
}

/// [`report`] given its [`prefetch`], which the caller read after any change to the
/// certificate's binding (a legacy binding moved, a renewal adopted).
pub async fn report_read<B: Backend>(
    store: &Store<B>,
    read: enrollment_record::DeviceRead,
    cert_hash: &str,
    report: &Report,
    now: u64,
) -> Result<Next, Refusal> {
    let device_id = report
        .enrollment
        .device_id()
        .ok_or_else(|| Refusal::BadRequest("report names no device".into()))?
        .to_owned();
    let rec =
        enrollment_record::check_bound(read.bound.as_deref(), cert_hash, &device_id, read.record)?;
    if !rec.enrolled {
        return Err(Refusal::BadRequest(
            "device is not enrolled (no TokenUpdate since Authenticate)".into(),
        ));
    }
    let ch = channel_of(report, &device_id);
    let tag = ch.tag().to_owned();
    let mut inventory: Option<(String, plist::Value)> = None;
    let mut configured = false;
    // Some(acknowledged) when this answers the device's retire command.
    let mut retired: Option<bool> = None;
    // The queue head as Idle left it, for the delivery below.
    let mut head: Option<queue::Head> = None;
    // The RequestType of the command this report answers, when its record says, and
    // whether the device log has the answer already.
    let mut answered: Option<String> = None;
    let mut logged = false;
    match report.status {
        Status::Idle => {
            let h = queue::delivery::idle_from(store, &ch, read.extra.as_deref()).await;
            head = Some(h.map_err(queue_refusal)?)
        }
        Status::NotNow => {
            let uuid = report.command_uuid.clone().unwrap_or_default();
            if queue::delivery::not_now(store, &ch, &uuid)
                .await
                .map_err(queue_refusal)?
                .is_some()
            {
                // Compare-and-swap: an admin may cancel the deferred command meanwhile,
                // and that outcome must not be overwritten.
                answered = CommandResult::modify(store, (&tag, &uuid), |r| {
                    if r.finished() {
                        return Ok::<_, Refusal>(false);
                    }
                    r.status = STATUS_NOT_NOW.into();
                    r.not_now_count += 1;
                    r.last_not_now_at = Some(now);
                    Ok(true)
                })
                .await?
                .map(|r| r.request_type);
                metrics::bump(store, Counter::CommandResults("NotNow")).await;
            }
        }
        s if s.completes() => {
            let uuid = report.command_uuid.clone().unwrap_or_default();
            // An answer to a command we no longer hold (answered before, or never ours)
            // is ignored: the device just gets its next command.
            if let Some(cmd) = queue::delivery::complete(store, &ch, &uuid)
                .await
                .map_err(queue_refusal)?
            {
                let previous = result(store, &tag, &uuid).await?;
                let (raw, raw_omitted_bytes) = raw_report(report);
                let result = CommandResult {
                    uuid: uuid.clone(),
                    request_type: cmd.request_type.clone(),
                    status: format!("{:?}", report.status),
                    enqueued_at: cmd.enqueued_at,
                    answered_at: Some(now),
                    error_chain: report.error_chain.iter().map(ErrorResult::from).collect(),
                    raw,
                    raw_omitted_bytes,
                    lane: Some(cmd.lane),
                    log: previous.as_ref().and_then(|p| p.log),
                    not_now_count: previous.as_ref().map_or(0, |p| p.not_now_count),
                    last_not_now_at: previous.as_ref().and_then(|p| p.last_not_now_at),
                    cancelled_at: None,
                };
                // The result, its place in the finishing order and the device log's
                // entry: one batched write.
                let mut writes = Writes::default();
                writes.put(&result, (&tag, &uuid))?;
                completion_into(store, &tag, &uuid, result.log, now, &mut writes).await?;
                let (status, details) = answer_entry(report);
                let entry = devlog::NewEntry {
                    action: &cmd.request_type,
                    status,
                    details: &details,
                    user: report.enrollment.user_id(),
                };
                devlog::append_into(store, &device_id, &entry, now, &mut writes).await?;
                writes.save(store).await?;
                logged = true;
                metrics::bump(store, Counter::CommandResults(status)).await;
                // The device leaves Setup Assistant: it no longer awaits configuration.
                configured |= report.status == Status::Acknowledged
                    && report.enrollment.user_id().is_none()
                    && cmd.request_type == "DeviceConfigured";
                if report.enrollment.user_id().is_none()
                    && rec.retire.as_ref().is_some_and(|r| r.command_uuid == uuid)
                {
                    retired = Some(report.status == Status::Acknowledged);
                }
                if report.status == Status::Acknowledged
                    && report.enrollment.user_id().is_none()
                    && let Some((_, key)) = INVENTORY.iter().find(|(rt, _)| *rt == cmd.request_type)
                    && let Some(v) = report.raw.get(key)
                {
                    inventory = Some((cmd.request_type.clone(), v.clone()));
                }
            }
        }
        _ => unreachable!("every status is handled above"),
    }
    if retired == Some(true) {
        // Our MDM profile is gone from the device: so is everything we held for it.
        purge(store, &device_id, now).await?;
        if !logged {
            log_answer(store, report, &device_id, answered, now).await;
        }
        return Ok(Next::Nothing);
    }
    let retire_failed = retired == Some(false);
    if inventory.is_some()
        || configured
        || retire_failed
        || rec.last_seen_at + LAST_SEEN_GRANULARITY <= now
    {
        update_device(store, &device_id, inventory, configured, retire_failed, now).await?;
    }
    if !logged {
        log_answer(store, report, &device_id, answered, now).await;
    }
    let delivery = queue::delivery::next_from(store, &ch, now, head)
        .await
        .map_err(queue_refusal)?;
    match delivery.command {
        Some(cmd) if cmd.sealed => Ok(Next::Sealed {
            aad: crate::command::secrets::aad(&tag, &cmd.uuid),
            body: cmd.body,
        }),
        Some(cmd) => Ok(Next::Command(cmd.body)),
        None => {
            // The exchange ends with commands the device deferred: it comes back only when
            // pushed, so one is owed (device channel; user channels are not pushed).
            if delivery.deferred > 0 && report.enrollment.user_id().is_none() {
                crate::push::after_not_now(store, &device_id, now).await?;
            }
            Ok(Next::Nothing)
        }
    }
}

/// The device log's entry for a report that answers a command it did not complete
/// (deferred, or no longer queued): its RequestType (`answered`, else the stored
/// result's, else what the report says) and the status. A log that cannot be written is
/// warned about, never a refusal of the report.
async fn log_answer<B: Backend>(
    store: &Store<B>,
    report: &Report,
    device_id: &str,
    answered: Option<String>,
    now: u64,
) {
    let Some(uuid) = &report.command_uuid else {
        return;
    };
    if report.status == Status::Idle {
        return;
    }
    let request_type = match answered {
        Some(rt) => rt,
        // An answer to a command no longer queued (answered before, or never ours).
        None => match result(store, channel_of(report, device_id).tag(), uuid).await {
            Ok(Some(r)) => r.request_type,
            _ => report
                .request_type
                .clone()
                .unwrap_or_else(|| "Unknown".into()),
        },
    };
    let (status, details) = answer_entry(report);
    let entry = devlog::NewEntry {
        action: &request_type,
        status,
        details: &details,
        user: report.enrollment.user_id(),
    };
    if let Err(e) = devlog::append(store, device_id, &entry, now).await {
        crate::log::warn("device log not written", &[("error", e.to_string().into())]);
    }
}

/// The status and details of an answer's device-log entry (details: the first error).
fn answer_entry(report: &Report) -> (&'static str, String) {
    let status = match report.status {
        Status::Acknowledged => "Acknowledged",
        Status::Error => "Error",
        Status::CommandFormatError => "CommandFormatError",
        Status::NotNow => "NotNow",
        Status::Idle => "Idle",
    };
    let details = report
        .error_chain
        .first()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.error_domain.as_deref().unwrap_or("?"),
                e.error_code.unwrap_or(0),
                e.us_english_description
                    .as_deref()
                    .or(e.localized_description.as_deref())
                    .unwrap_or("")
            )
        })
        .unwrap_or_default();
    (status, details)
}

/// Which key of a result carries inventory, per RequestType.
pub const INVENTORY: &[(&str, &str)] = &[
    ("DeviceInformation", "QueryResponses"),
    ("SecurityInfo", "SecurityInfo"),
    ("InstalledApplicationList", "InstalledApplicationList"),
    ("CertificateList", "CertificateList"),
    ("ProfileList", "ProfileList"),
];

/// Sections kept under their own key (`inv:<d>:<RequestType>`): lists that can be long.
pub const EXTERNAL_SECTIONS: &[&str] =
    &["InstalledApplicationList", "CertificateList", "ProfileList"];

/// Plist to JSON for the admin API: data as base64, dates as RFC 3339.
pub fn to_json(v: &plist::Value) -> Value {
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

/// Device facts that a DeviceInformation answer refreshes on the enrollment record.
fn apply_device_information(rec: &mut EnrollmentRecord, q: &Value) {
    let s = |k: &str| q.get(k).and_then(Value::as_str).map(str::to_owned);
    if let Some(v) = s("OSVersion") {
        rec.os_version = Some(v);
    }
    if let Some(v) = s("BuildVersion") {
        rec.build_version = Some(v);
    }
    if let Some(v) = s("DeviceName") {
        rec.device_name = Some(v);
    }
    if let Some(v) = s("ModelName") {
        rec.model_name = Some(v);
    }
    if let Some(v) = s("Model") {
        rec.model = Some(v);
    }
    if let Some(v) = s("ProductName") {
        rec.product_name = Some(v);
    }
    if let Some(v) = s("SerialNumber") {
        rec.serial_number = Some(v);
    }
    if let Some(v) = q.get("IsSupervised").and_then(Value::as_bool) {
        rec.supervised = Some(v);
    }
}

/// Refreshes `last_seen_at` and, for an inventory answer, the section it carries.
async fn update_device<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    inventory: Option<(String, plist::Value)>,
    configured: bool,
    retire_failed: bool,
    now: u64,
) -> Result<(), Refusal> {
    let mut section: Option<(String, InventorySection)> = None;
    if let Some((request_type, value)) = inventory {
        let data = to_json(&value);
        if EXTERNAL_SECTIONS.contains(&request_type.as_str()) {
            let count = data.as_array().map_or(0, Vec::len);
            let full = InventorySection {
                reported_at: now,
                data,
                external: false,
            };
            let key = InventorySection::key((device_id, &request_type));
            let bytes = full.encode_at(&key)?;
            let stored = if bytes.len() <= MAX_SECTION {
                store.set(&key, &bytes).await?;
                json!({ "count": count })
            } else {
                store.delete(&key).await?;
                json!({ "count": count, "omitted_bytes": bytes.len() })
            };
            section = Some((
                request_type,
                InventorySection {
                    reported_at: now,
                    data: stored,
                    external: true,
                },
            ));
        } else {
            section = Some((
                request_type,
                InventorySection {
                    reported_at: now,
                    data,
                    external: false,
                },
            ));
        }
    }
    let changed = modify_record(store, device_id, |rec| {
        rec.last_seen_at = rec.last_seen_at.max(now);
        if configured {
            rec.awaiting_configuration = false;
        }
        if retire_failed {
            // The device refused to remove the profile: it stays managed, and the
            // admin sees the error in the command history (and may force).
            rec.retire = None;
        }
        if let Some((rt, s)) = &section {
            let mut s = s.clone();
            if rt == "DeviceInformation" {
                apply_device_information(rec, &s.data);
                // Each answer carries only the queried keys: merge with what we knew.
                if let (Some(Value::Object(mut merged)), Value::Object(new)) =
                    (rec.inventory.get(rt).map(|p| p.data.clone()), &s.data)
                {
                    for (k, v) in new {
                        merged.insert(k.clone(), v.clone());
                    }
                    s.data = Value::Object(merged);
                }
            }
            rec.inventory.insert(rt.clone(), s);
        }
        Ok(true)
    })
    .await?;
    let Some(rec) = changed else {
        return Ok(());
    };
    if section
        .as_ref()
        .is_some_and(|(rt, s)| rt == "DeviceInformation" && s.data.get("DeviceName").is_some())
    {
        keep_templated_name(store, &rec, now).await?;
    }
    Ok(())
}

/// The device reported a name other than its profile's template gives it: queue the
/// templated name again (once per differing name, so a device that refuses the rename
/// is not asked forever). It arrives in the exchange the device is in.
async fn keep_templated_name<B: Backend>(
    store: &Store<B>,
    rec: &EnrollmentRecord,
    now: u64,
) -> Result<(), Refusal> {
    let Some(reported) = rec.device_name.clone() else {
        return Ok(());
    };
    if rec.name_corrected.as_deref() == Some(reported.as_str()) || rec.user_enrollment {
        return Ok(());
    }
    let (Some(token), Some(profile)) = (rec.dep_token, rec.dep_profile) else {
        return Ok(());
    };
    let Some(p) = crate::dep::profile_store::load(store, token, profile).await? else {
        return Ok(());
    };
    let serial = rec.serial_number.clone().unwrap_or_default();
    let Some(want) = p.spec.templated_name(&serial, &device_type(rec)) else {
        return Ok(());
    };
    if want == reported {
        return Ok(());
    }
    let uuid = crate::random::uuid_v4();
    let mut payload = plist::Dictionary::new();
    payload.insert(
        "Settings".into(),
        plist::Value::Array(vec![crate::dep::profile_setup::device_name_item(&want)]),
    );
    let cmd = NewCommand {
        body: crate::command::build::build(&uuid, "Settings", payload),
        uuid,
        request_type: "Settings".into(),
        lane: Lane::Priority,
        sealed: false,
    };
    match enqueue(store, &Channel::device(&rec.device_id), &cmd, now, u64::MAX).await {
        Ok(_) => {}
        Err(EnqueueError::Queue(QueueError::Store(e))) => return Err(Refusal::Store(e)),
        Err(e) => {
            crate::log::warn(
                "Settings not queued for a renamed device",
                &[("error", format!("{e:?}").into())],
            );
            return Ok(());
        }
    }
    EnrollmentRecord::modify(store, &rec.device_id, |r| {
        r.name_corrected = Some(reported.clone());
        Ok::<_, Refusal>(true)
    })
    .await?;
    Ok(())
}

/// An inventory section as reported, inline or from its own key.
pub async fn inventory_section<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    name: &str,
    section: &InventorySection,
) -> Result<Value, KvError> {
    if !section.external {
        return Ok(section.data.clone());
    }
    match InventorySection::load(store, (device_id, name)).await? {
        Some(s) => Ok(s.data),
        None => Ok(section.data.clone()),
    }
}

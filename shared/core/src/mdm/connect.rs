//! The command loop at the ServerURL: a verified report in, the next command (or an
//! empty 200) out; and the command records behind the admin API (enqueue, cancel,
//! history, retention).
//!
//! Key layout (channel `c` = [`Channel::tag`], `d` = device id as a key segment):
//! - `res:<c>:<uuid>`        the [`CommandResult`]: the command's record from enqueue to
//!   answer (status, times, error chain, the device's report)
//! - `ctr:clog:<c>`          commands enqueued on the channel so far
//! - `clog:<c>:<n>`          the n-th enqueued command's UUID: the history, in enqueue
//!   order, read newest first by the admin API
//! - `clogf:<c>`             history floor: every log slot at or below it is purged
//! - `ctr:cdone`             commands finished (answered or cancelled), all channels
//! - `cdone:<n>`             the n-th finished command's [`Completion`], in finishing
//!   order: what the retention purge walks, without listing keys
//! - `cpurge`                the retention purge's cursor ([`PurgeState`])
//! - `inv:<d>:<RequestType>` a large inventory section (app, certificate, profile lists);
//!   the enrollment record only notes when it was reported
//!
//! Every per-request operation reads and writes a fixed number of keys, whatever the
//! length of the queue or of the history.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store};

use super::enrollments::{self, EnrollmentRecord, InventorySection, Refusal};
use super::queue::{self, Channel, Lane, QueueError};
use super::report::{ErrorEntry, Report, Status};

/// `status` of a command not answered yet (or deferred, see [`STATUS_NOT_NOW`]).
pub const STATUS_QUEUED: &str = "Queued";
/// `status` of a command the device last answered NotNow (still queued).
pub const STATUS_NOT_NOW: &str = "NotNow";
/// `status` of a command an admin cancelled before delivery.
pub const STATUS_CANCELLED: &str = "Cancelled";
/// Reports larger than this are not kept verbatim in the command record (KV values stay
/// well below every backend's item limit).
pub const MAX_RAW_KEPT: usize = 256 * 1024;
/// Inventory sections larger than this (as JSON) are not stored, only noted.
pub const MAX_SECTION: usize = 1024 * 1024;
/// How often the device record's `last_seen_at` is rewritten at most.
const LAST_SEEN_GRANULARITY: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub uuid: String,
    pub request_type: String,
    /// `Queued`, `NotNow`, `Acknowledged`, `Error`, `CommandFormatError` or `Cancelled`.
    pub status: String,
    pub enqueued_at: u64,
    /// When the device's final answer arrived.
    #[serde(default)]
    pub answered_at: Option<u64>,
    #[serde(default)]
    pub error_chain: Vec<ErrorResult>,
    /// Base64 of the device's last report (XML plist), response keys included; empty
    /// before any answer, or when the report was larger than [`MAX_RAW_KEPT`].
    #[serde(default)]
    pub raw: String,
    /// Size of a report that was too large to keep.
    #[serde(default)]
    pub raw_omitted_bytes: Option<u64>,
    #[serde(default)]
    pub lane: Option<Lane>,
    /// Position in the channel's history log.
    #[serde(default)]
    pub log: Option<u64>,
    #[serde(default)]
    pub not_now_count: u32,
    #[serde(default)]
    pub last_not_now_at: Option<u64>,
    #[serde(default)]
    pub cancelled_at: Option<u64>,
}

impl CommandResult {
    /// Answered or cancelled.
    pub fn finished(&self) -> bool {
        !matches!(self.status.as_str(), STATUS_QUEUED | STATUS_NOT_NOW)
    }

    /// When it finished, if it did.
    pub fn finished_at(&self) -> Option<u64> {
        self.answered_at.or(self.cancelled_at)
    }
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

/// One finished command, in the global finishing order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// Channel tag.
    pub c: String,
    /// CommandUUID.
    pub u: String,
    /// History log position.
    pub n: Option<u64>,
    /// Finished at.
    pub t: u64,
}

fn channel_of(report: &Report, device_id: &str) -> Channel {
    match report.enrollment.user_id() {
        Some(user) => Channel::user(device_id, user),
        None => Channel::device(device_id),
    }
}

pub fn result_key(channel_tag: &str, uuid: &str) -> String {
    format!("res:{channel_tag}:{}", segment(uuid))
}

fn log_counter(channel_tag: &str) -> CounterKey {
    CounterKey::new(&format!("clog:{channel_tag}")).expect("segments are key-safe")
}

fn log_key(channel_tag: &str, n: u64) -> String {
    format!("clog:{channel_tag}:{n}")
}

fn floor_key(channel_tag: &str) -> String {
    format!("clogf:{channel_tag}")
}

fn done_counter() -> CounterKey {
    CounterKey::new("cdone").expect("key-safe")
}

fn done_key(n: u64) -> String {
    format!("cdone:{n}")
}

const PURGE_KEY: &str = "cpurge";

pub fn inventory_key(device_id: &str, section: &str) -> String {
    format!("inv:{}:{}", segment(device_id), segment(section))
}

fn decode<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> Result<T, KvError> {
    serde_json::from_slice(raw).map_err(|e| KvError::Backend(format!("{what}: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialises")
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
    /// this associated data ([`super::command_secrets::open`]) to send it.
    Sealed {
        body: Vec<u8>,
        aad: String,
    },
    Nothing,
}

async fn record_completion<B: Backend>(
    store: &Store<B>,
    tag: &str,
    uuid: &str,
    log: Option<u64>,
    at: u64,
) -> Result<(), KvError> {
    let n = store.increment(&done_counter(), 1).await? as u64;
    let c = Completion {
        c: tag.to_owned(),
        u: uuid.to_owned(),
        n: log,
        t: at,
    };
    store.set(&done_key(n), &encode(&c)).await
}

fn raw_report(report: &Report) -> (String, Option<u64>) {
    let mut raw = Vec::new();
    let kept = super::command_secrets::redact(&report.raw);
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
) -> Result<enrollments::DeviceRead, Refusal> {
    let device_id = report
        .enrollment
        .device_id()
        .ok_or_else(|| Refusal::BadRequest("report names no device".into()))?;
    let ch = channel_of(report, device_id);
    enrollments::read_for_request(store, cert_hash, device_id, &ch.head_key()).await
}

/// [`report`] given its [`prefetch`], which the caller read after any change to the
/// certificate's binding (a legacy binding moved, a renewal adopted).
pub async fn report_read<B: Backend>(
    store: &Store<B>,
    read: enrollments::DeviceRead,
    cert_hash: &str,
    report: &Report,
    now: u64,
) -> Result<Next, Refusal> {
    let device_id = report
        .enrollment
        .device_id()
        .ok_or_else(|| Refusal::BadRequest("report names no device".into()))?
        .to_owned();
    let rec = enrollments::check_bound(read.bound.as_deref(), cert_hash, &device_id, read.record)?;
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
    match report.status {
        Status::Idle => {
            let h = queue::idle_from(store, &ch, read.extra.as_deref()).await;
            head = Some(h.map_err(queue_refusal)?)
        }
        Status::NotNow => {
            let uuid = report.command_uuid.clone().unwrap_or_default();
            if queue::not_now(store, &ch, &uuid)
                .await
                .map_err(queue_refusal)?
                .is_some()
            {
                // Compare-and-swap: an admin may cancel the deferred command meanwhile,
                // and that outcome must not be overwritten.
                let r = store
                    .update::<KvError>(&result_key(&tag, &uuid), 20, |raw| {
                        let mut r: CommandResult = decode(raw, "command record")?;
                        if r.finished() {
                            return Ok(None);
                        }
                        r.status = STATUS_NOT_NOW.into();
                        r.not_now_count += 1;
                        r.last_not_now_at = Some(now);
                        Ok(Some(encode(&r)))
                    })
                    .await;
                if let Err(mdm_kv::UpdateError::Kv(e) | mdm_kv::UpdateError::Rejected(e)) = r {
                    return Err(Refusal::Store(e));
                }
            }
        }
        s if s.completes() => {
            let uuid = report.command_uuid.clone().unwrap_or_default();
            // An answer to a command we no longer hold (answered before, or never ours)
            // is ignored: the device just gets its next command.
            if let Some(cmd) = queue::complete(store, &ch, &uuid)
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
                store
                    .set(&result_key(&tag, &uuid), &encode(&result))
                    .await?;
                record_completion(store, &tag, &uuid, result.log, now).await?;
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
        enrollments::purge(store, &device_id, now).await?;
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
    let delivery = queue::next_from(store, &ch, now, head)
        .await
        .map_err(queue_refusal)?;
    match delivery.command {
        Some(cmd) if cmd.sealed => Ok(Next::Sealed {
            aad: super::command_secrets::aad(&tag, &cmd.uuid),
            body: cmd.body,
        }),
        Some(cmd) => Ok(Next::Command(cmd.body)),
        None => {
            // The exchange ends with commands the device deferred: it comes back only when
            // pushed, so one is owed (device channel; user channels are not pushed).
            if delivery.deferred > 0 && report.enrollment.user_id().is_none() {
                super::push::after_not_now(store, &device_id, now).await?;
            }
            Ok(Next::Nothing)
        }
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
            let bytes = encode(&full);
            let stored = if bytes.len() <= MAX_SECTION {
                store
                    .set(&inventory_key(device_id, &request_type), &bytes)
                    .await?;
                json!({ "count": count })
            } else {
                store
                    .delete(&inventory_key(device_id, &request_type))
                    .await?;
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
    let r = store
        .update::<KvError>(&enrollments::record_key(device_id), 20, |bytes| {
            let mut rec: EnrollmentRecord = decode(bytes, "enrollment record")?;
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
                    apply_device_information(&mut rec, &s.data);
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
            Ok(Some(encode(&rec)))
        })
        .await;
    let rec = match r {
        Ok(Some(raw)) => decode::<EnrollmentRecord>(&raw, "enrollment record")?,
        Ok(None) => return Ok(()),
        Err(mdm_kv::UpdateError::Kv(e) | mdm_kv::UpdateError::Rejected(e)) => {
            return Err(Refusal::Store(e));
        }
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
    let Some(want) = p
        .spec
        .templated_name(&serial, &super::await_config::device_type(rec))
    else {
        return Ok(());
    };
    if want == reported {
        return Ok(());
    }
    let uuid = crate::random::uuid_v4();
    let mut payload = plist::Dictionary::new();
    payload.insert(
        "Settings".into(),
        plist::Value::Array(vec![crate::dep::profiles::device_name_item(&want)]),
    );
    let cmd = NewCommand {
        body: super::command::build(&uuid, "Settings", payload),
        uuid,
        request_type: "Settings".into(),
        lane: Lane::Priority,
        sealed: false,
    };
    match enqueue(store, &Channel::device(&rec.device_id), &cmd, now, u64::MAX).await {
        Ok(_) => {}
        Err(EnqueueError::Queue(QueueError::Store(e))) => return Err(Refusal::Store(e)),
        Err(e) => {
            eprintln!("device name: Settings not queued for a renamed device: {e:?}");
            return Ok(());
        }
    }
    let r = store
        .update::<KvError>(&enrollments::record_key(&rec.device_id), 20, |bytes| {
            let mut r: EnrollmentRecord = decode(bytes, "enrollment record")?;
            r.name_corrected = Some(reported.clone());
            Ok(Some(encode(&r)))
        })
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(mdm_kv::UpdateError::Kv(e) | mdm_kv::UpdateError::Rejected(e)) => {
            Err(Refusal::Store(e))
        }
    }
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
    match store.get(&inventory_key(device_id, name)).await? {
        Some(raw) => Ok(decode::<InventorySection>(&raw, "inventory section")?.data),
        None => Ok(section.data.clone()),
    }
}

/// A command record by channel tag and UUID.
pub async fn result<B: Backend>(
    store: &Store<B>,
    channel_tag: &str,
    uuid: &str,
) -> Result<Option<CommandResult>, KvError> {
    Ok(store
        .get(&result_key(channel_tag, uuid))
        .await?
        .and_then(|raw| serde_json::from_slice(&raw).ok()))
}

/// A command for [`enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    pub uuid: String,
    pub request_type: String,
    /// The command plist, sealed when `sealed` (a command carrying a secret must be:
    /// [`super::command_secrets::seal`]).
    pub body: Vec<u8>,
    pub lane: Lane,
    pub sealed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueError {
    /// A command with this UUID exists on the channel.
    Duplicate,
    /// A command carrying a secret must be sealed before it is stored.
    Unsealed,
    Queue(QueueError),
}

impl From<QueueError> for EnqueueError {
    fn from(e: QueueError) -> Self {
        EnqueueError::Queue(e)
    }
}

impl From<KvError> for EnqueueError {
    fn from(e: KvError) -> Self {
        EnqueueError::Queue(QueueError::Store(e))
    }
}

/// A command queued: its record, and whether the device's coming exchange reaches it
/// without a push of its own ([`queue::Enqueued::ahead`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub record: CommandResult,
    pub behind_others: bool,
}

/// Queues a command and starts its record and history entry. The record is written
/// before the command becomes visible to the device, so an answer always finds it (and
/// is taken back when the queue is full).
pub async fn enqueue<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    cmd: &NewCommand,
    now: u64,
    limit: u64,
) -> Result<Queued, EnqueueError> {
    let tag = ch.tag();
    if super::command_secrets::carries_secret(&cmd.request_type) && !cmd.sealed {
        return Err(EnqueueError::Unsealed);
    }
    if store.exists(&result_key(tag, &cmd.uuid)).await? {
        return Err(EnqueueError::Duplicate);
    }
    let n = store.increment(&log_counter(tag), 1).await? as u64;
    let rec = CommandResult {
        uuid: cmd.uuid.clone(),
        request_type: cmd.request_type.clone(),
        status: STATUS_QUEUED.into(),
        enqueued_at: now,
        answered_at: None,
        error_chain: Vec::new(),
        raw: String::new(),
        raw_omitted_bytes: None,
        lane: Some(cmd.lane),
        log: Some(n),
        not_now_count: 0,
        last_not_now_at: None,
        cancelled_at: None,
    };
    store
        .set(&result_key(tag, &cmd.uuid), &encode(&rec))
        .await?;
    store.set(&log_key(tag, n), cmd.uuid.as_bytes()).await?;
    let queued = queue::enqueue(
        store,
        ch,
        &cmd.uuid,
        &cmd.request_type,
        cmd.body.clone(),
        cmd.sealed,
        cmd.lane,
        now,
        limit,
    )
    .await;
    match queued {
        Ok(q) => Ok(Queued {
            record: rec,
            behind_others: q.ahead > 0,
        }),
        Err(e) => {
            store
                .delete_many(&[&result_key(tag, &cmd.uuid), &log_key(tag, n)])
                .await?;
            Err(e.into())
        }
    }
}

/// What an admin's cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled(CommandResult),
    /// Delivered and not answered yet.
    InFlight,
    /// Answered (or cancelled) already.
    Finished(CommandResult),
    Unknown,
}

/// Cancels a command not delivered yet (or deferred with NotNow).
pub async fn cancel<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    uuid: &str,
    now: u64,
) -> Result<CancelOutcome, QueueError> {
    let tag = ch.tag();
    match queue::cancel(store, ch, uuid).await? {
        queue::Cancel::Cancelled(cmd) => {
            let mut rec = result(store, tag, uuid).await?.unwrap_or(CommandResult {
                uuid: uuid.to_owned(),
                request_type: cmd.request_type.clone(),
                status: String::new(),
                enqueued_at: cmd.enqueued_at,
                answered_at: None,
                error_chain: Vec::new(),
                raw: String::new(),
                raw_omitted_bytes: None,
                lane: Some(cmd.lane),
                log: None,
                not_now_count: 0,
                last_not_now_at: None,
                cancelled_at: None,
            });
            rec.status = STATUS_CANCELLED.into();
            rec.cancelled_at = Some(now);
            store.set(&result_key(tag, uuid), &encode(&rec)).await?;
            record_completion(store, tag, uuid, rec.log, now).await?;
            Ok(CancelOutcome::Cancelled(rec))
        }
        queue::Cancel::InFlight => Ok(CancelOutcome::InFlight),
        queue::Cancel::Finished | queue::Cancel::Unknown => match result(store, tag, uuid).await? {
            Some(r) if r.finished() => Ok(CancelOutcome::Finished(r)),
            _ => Ok(CancelOutcome::Unknown),
        },
    }
}

/// Re-enrollment: cancels every command of the channel not answered yet (see
/// [`queue::drain`]) and marks each cancelled in its record and history. Returns how
/// many.
pub async fn cancel_all<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    now: u64,
) -> Result<u64, QueueError> {
    let tag = ch.tag();
    let drained = queue::drain(store, ch).await?;
    for cmd in &drained {
        if let Some(mut rec) = result(store, tag, &cmd.uuid).await? {
            rec.status = STATUS_CANCELLED.into();
            rec.cancelled_at = Some(now);
            store
                .set(&result_key(tag, &cmd.uuid), &encode(&rec))
                .await?;
            record_completion(store, tag, &cmd.uuid, rec.log, now).await?;
        }
    }
    Ok(drained.len() as u64)
}

/// A page of a channel's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub limit: usize,
    /// Only log positions below this (the `next` of the previous page).
    pub before: Option<u64>,
    /// Only this [`CommandResult::status`].
    pub status: Option<String>,
    pub request_type: Option<String>,
    /// Enqueued at or after (Unix seconds).
    pub from: Option<u64>,
    /// Enqueued at or before (Unix seconds).
    pub to: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub commands: Vec<CommandResult>,
    /// Where the next page starts; `None` at the end. A selective filter may return a
    /// short (even empty) page with a `next`: each page reads a bounded part of the log.
    pub next: Option<u64>,
}

/// Log slots read per batch, and at most per page (times the page size).
const LOG_BATCH: u64 = 50;
const LOG_BUDGET_PER_ITEM: u64 = 5;
const LOG_BUDGET_MIN: u64 = 200;
/// Commands enqueued concurrently may land in the log slightly out of time order.
const LOG_TIME_SLACK: u64 = 300;

/// The channel's commands, newest first.
pub async fn history<B: Backend>(
    store: &Store<B>,
    ch: &Channel,
    q: &HistoryQuery,
) -> Result<HistoryPage, KvError> {
    let tag = ch.tag();
    let top = store.counter(&log_counter(tag)).await?.max(0) as u64;
    let floor = match store.get(&floor_key(tag)).await? {
        Some(raw) => decode::<u64>(&raw, "history floor")?,
        None => 0,
    };
    let limit = q.limit.max(1);
    let budget = (limit as u64 * LOG_BUDGET_PER_ITEM).max(LOG_BUDGET_MIN);
    let mut pos = q.before.map_or(top, |b| b.saturating_sub(1).min(top));
    let mut out = Vec::new();
    let mut read = 0;
    while pos > floor {
        if read >= budget {
            return Ok(HistoryPage {
                commands: out,
                next: Some(pos + 1),
            });
        }
        let low = pos.saturating_sub(LOG_BATCH - 1).max(floor + 1);
        let slots: Vec<u64> = (low..=pos).rev().collect();
        read += slots.len() as u64;
        let keys: Vec<String> = slots.iter().map(|n| log_key(tag, *n)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let uuids = store.get_many(&refs).await?;
        let found: Vec<(u64, String)> = slots
            .iter()
            .zip(uuids)
            .filter_map(|(n, u)| Some((*n, String::from_utf8(u?).ok()?)))
            .collect();
        let rkeys: Vec<String> = found.iter().map(|(_, u)| result_key(tag, u)).collect();
        let rrefs: Vec<&str> = rkeys.iter().map(String::as_str).collect();
        let recs = store.get_many(&rrefs).await?;
        for ((n, _), raw) in found.iter().zip(recs) {
            let Some(raw) = raw else { continue };
            let Ok(r) = serde_json::from_slice::<CommandResult>(&raw) else {
                continue;
            };
            if let Some(from) = q.from {
                if r.enqueued_at + LOG_TIME_SLACK < from {
                    // Older than the range, and so is everything below.
                    return Ok(HistoryPage {
                        commands: out,
                        next: None,
                    });
                }
                if r.enqueued_at < from {
                    continue;
                }
            }
            if q.to.is_some_and(|to| r.enqueued_at > to)
                || q.status.as_ref().is_some_and(|s| *s != r.status)
                || q.request_type
                    .as_ref()
                    .is_some_and(|t| *t != r.request_type)
            {
                continue;
            }
            out.push(r);
            if out.len() == limit {
                let next = (*n > floor + 1).then_some(*n);
                return Ok(HistoryPage {
                    commands: out,
                    next,
                });
            }
        }
        pos = low - 1;
    }
    Ok(HistoryPage {
        commands: out,
        next: None,
    })
}

/// The retention purge's cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeState {
    /// Every completion slot up to here has been handled.
    pub pos: u64,
    /// A missing slot right after `pos` (a completion being written, or one that died
    /// before writing) and when it was first seen.
    #[serde(default)]
    pub hole: Option<(u64, u64)>,
}

/// A completion slot missing this long is given up.
pub const PURGE_HOLE_GRACE: u64 = 3600;
/// Completion slots handled per tick at most.
pub const PURGE_BUDGET: u64 = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub purged: u64,
    /// More finished commands wait (old enough or not).
    pub behind: u64,
}

/// Deletes the records and history entries of commands finished more than
/// `retention_secs` ago, oldest first, handling at most `budget` completion slots. Safe
/// when two ticks overlap (deletes are idempotent; the cursor only moves forward).
pub async fn purge_expired<B: Backend>(
    store: &Store<B>,
    now: u64,
    retention_secs: u64,
    budget: u64,
) -> Result<PurgeReport, KvError> {
    let state: PurgeState = match store.get(PURGE_KEY).await? {
        Some(raw) => decode(&raw, "purge state")?,
        None => PurgeState::default(),
    };
    let top = store.counter(&done_counter()).await?.max(0) as u64;
    let mut st = state.clone();
    let mut report = PurgeReport::default();
    let mut handled = 0;
    'outer: while st.pos < top && handled < budget {
        let from = st.pos + 1;
        let to = (from + LOG_BATCH - 1)
            .min(top)
            .min(from + (budget - handled) - 1);
        let keys: Vec<String> = (from..=to).map(done_key).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        for (n, raw) in (from..=to).zip(store.get_many(&refs).await?) {
            match raw {
                None => match st.hole {
                    Some((h, seen)) if h == n && now.saturating_sub(seen) >= PURGE_HOLE_GRACE => {}
                    Some((h, _)) if h == n => break 'outer,
                    _ => {
                        st.hole = Some((n, now));
                        break 'outer;
                    }
                },
                Some(raw) => {
                    let c: Completion = decode(&raw, "completion")?;
                    if c.t.saturating_add(retention_secs) > now {
                        break 'outer;
                    }
                    purge_one(store, &c).await?;
                    store.delete(&done_key(n)).await?;
                    report.purged += 1;
                }
            }
            st.pos = n;
            st.hole = None;
            handled += 1;
        }
    }
    report.behind = top.saturating_sub(st.pos);
    if st != state {
        let new = st.clone();
        let r = store
            .update::<KvError>(PURGE_KEY, 20, |raw| {
                let cur: PurgeState = decode(raw, "purge state")?;
                if cur.pos > new.pos {
                    return Ok(None);
                }
                Ok(Some(encode(&new)))
            })
            .await;
        match r {
            Ok(Some(_)) => {}
            // Absent: the first purge ever creates it (a concurrent first tick would write
            // an equally valid cursor).
            Ok(None) if state == PurgeState::default() => {
                if !store.exists(PURGE_KEY).await? {
                    store.set(PURGE_KEY, &encode(&new)).await?;
                }
            }
            Ok(None) => {}
            Err(mdm_kv::UpdateError::Kv(e) | mdm_kv::UpdateError::Rejected(e)) => return Err(e),
        }
    }
    Ok(report)
}

/// Removes one finished command's record and history slot, and moves the channel's
/// history floor over slots that are gone.
async fn purge_one<B: Backend>(store: &Store<B>, c: &Completion) -> Result<(), KvError> {
    // The UUID may have been reused by a newer command on the channel: keep that one.
    if let Some(r) = result(store, &c.c, &c.u).await? {
        if r.finished() && r.finished_at() == Some(c.t) {
            store.delete(&result_key(&c.c, &c.u)).await?;
        } else {
            return Ok(());
        }
    }
    let Some(n) = c.n else {
        return Ok(());
    };
    store.delete(&log_key(&c.c, n)).await?;
    let floor = match store.get(&floor_key(&c.c)).await? {
        Some(raw) => decode::<u64>(&raw, "history floor")?,
        None => 0,
    };
    if n <= floor {
        return Ok(());
    }
    // Never walk onto the newest slot: an enqueue may be about to write it.
    let top = store.counter(&log_counter(&c.c)).await?.max(0) as u64;
    let limit = top.saturating_sub(1).min(floor + 32);
    if limit <= floor {
        return Ok(());
    }
    let keys: Vec<String> = (floor + 1..=limit).map(|k| log_key(&c.c, k)).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut new_floor = floor;
    for (k, v) in (floor + 1..=limit).zip(store.get_many(&refs).await?) {
        if v.is_some() {
            break;
        }
        new_floor = k;
    }
    if new_floor > floor {
        store.set(&floor_key(&c.c), &encode(&new_floor)).await?;
    }
    Ok(())
}

/// Variable: days completed command records are kept (default 30).
pub const COMMAND_RETENTION_DAYS: &str = "command_retention_days";
pub const RETENTION_DAYS_DEFAULT: u64 = 30;

/// The scheduled tick's share: purge expired command records (bounded work). Reports
/// what it did, or the configuration/store error, as JSON; never fails the tick.
pub async fn retention_tick(p: &impl crate::Platform) -> Value {
    use crate::{Clock, Variables};
    let days = match p.vars().get(COMMAND_RETENTION_DAYS).await {
        Ok(None) => RETENTION_DAYS_DEFAULT,
        Ok(Some(v)) if v.trim().is_empty() => RETENTION_DAYS_DEFAULT,
        Ok(Some(v)) => match v.trim().parse::<u64>() {
            Ok(d) if (1..=3650).contains(&d) => d,
            _ => {
                return json!({ "error": format!("variable {COMMAND_RETENTION_DAYS} must be a number of days from 1 to 3650") });
            }
        },
        Err(e) => return json!({ "error": format!("variable {COMMAND_RETENTION_DAYS}: {e}") }),
    };
    let now = p.clock().unix_seconds();
    let mut out = match purge_expired(p.store(), now, days * 86_400, PURGE_BUDGET).await {
        Ok(r) => json!({ "retention_days": days, "purged": r.purged, "behind": r.behind }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    // Device logs keep the same retention as command results.
    out["device_logs"] =
        match super::devlog::purge(p.store(), now, days * 86_400, PURGE_BUDGET).await {
            Ok(r) => json!({ "purged": r.deleted, "behind": r.more }),
            Err(e) => json!({ "error": e.to_string() }),
        };
    out
}

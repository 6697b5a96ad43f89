//! One organisation's state: devices (generated plus overlays), the event log, profiles,
//! sessions, nonces, scripted faults and counters. One mutex guards all of it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::SimConfig;
use crate::devgen::{self, Device, InitialProfiles};
use crate::servers::SimClock;

/// What happened to a device, as sync reports it (`op_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Added,
    Modified,
    Deleted,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Added => "added",
            Op::Modified => "modified",
            Op::Deleted => "deleted",
        }
    }
}

/// One entry of the append-only event log. Sync renders the device's current state
/// with this event's `op_type` and `op_date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub index: u64,
    pub op: Op,
    /// Unix seconds (simulator time).
    pub at: u64,
}

/// `profile_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileStatus {
    Empty,
    Assigned,
    Pushed,
    Removed,
}

impl ProfileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileStatus::Empty => "empty",
            ProfileStatus::Assigned => "assigned",
            ProfileStatus::Pushed => "pushed",
            ProfileStatus::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "empty" => Some(ProfileStatus::Empty),
            "assigned" => Some(ProfileStatus::Assigned),
            "pushed" => Some(ProfileStatus::Pushed),
            "removed" => Some(ProfileStatus::Removed),
            _ => None,
        }
    }
}

/// A device's profile fields when they differ from what was generated (kept small:
/// assigning a profile to 200,000 devices must stay cheap).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProfileState {
    status: ProfileStatus,
    uuid: Option<Arc<str>>,
    assign_time: Option<u64>,
    push_time: Option<u64>,
}

#[derive(Debug, Clone, Default)]
struct Overlay {
    /// Every field replaced (scripted edits, devices added at run time).
    custom: Option<Box<Device>>,
    /// Profile fields on top of `custom` or the generated device.
    profile: Option<ProfileState>,
}

/// Devices `0..next_index`: generated from the seed, changed by overlays, minus those
/// no longer in the organisation.
#[derive(Debug)]
pub struct Devices {
    seed: u64,
    next_index: u64,
    overlays: HashMap<u64, Overlay>,
    removed: BTreeSet<u64>,
    custom_serials: HashMap<String, u64>,
    assigned_by: String,
    preexisting_profile: Arc<str>,
    shares: InitialProfiles,
}

impl Devices {
    fn new(cfg: &SimConfig, preexisting_profile: Arc<str>) -> Self {
        Devices {
            seed: cfg.seed,
            next_index: cfg.devices,
            overlays: HashMap::new(),
            removed: BTreeSet::new(),
            custom_serials: HashMap::new(),
            assigned_by: cfg.account.admin_id.clone(),
            preexisting_profile,
            shares: InitialProfiles {
                assigned_percent: cfg.initial_assigned_percent,
                pushed_percent: cfg.initial_pushed_percent,
            },
        }
    }

    /// Indexes ever used (live or removed).
    pub fn end(&self) -> u64 {
        self.next_index
    }

    pub fn live_count(&self) -> u64 {
        self.next_index - self.removed.len() as u64
    }

    pub fn is_live(&self, index: u64) -> bool {
        index < self.next_index && !self.removed.contains(&index)
    }

    /// Live devices at `from..`.
    pub fn live_from(&self, from: u64) -> u64 {
        let from = from.min(self.next_index);
        self.next_index - from - self.removed.range(from..).count() as u64
    }

    /// The index of `serial` (live or removed).
    pub fn lookup(&self, serial: &str) -> Option<u64> {
        if let Some(&i) = self.custom_serials.get(serial) {
            return Some(i);
        }
        let i = devgen::index_of(self.seed, serial)?;
        (i < self.next_index && self.serial(i) == serial).then_some(i)
    }

    /// The live index of `serial`.
    pub fn live(&self, serial: &str) -> Option<u64> {
        self.lookup(serial).filter(|&i| self.is_live(i))
    }

    pub fn serial(&self, index: u64) -> String {
        match self.overlays.get(&index).and_then(|o| o.custom.as_ref()) {
            Some(d) => d.serial_number.clone(),
            None => devgen::serial(self.seed, index),
        }
    }

    /// The current state of device `index`.
    pub fn render(&self, index: u64) -> Device {
        let overlay = self.overlays.get(&index);
        let mut d = match overlay.and_then(|o| o.custom.as_deref()) {
            Some(d) => d.clone(),
            None => devgen::generate(
                self.seed,
                index,
                &self.assigned_by,
                &self.preexisting_profile,
                self.shares,
            ),
        };
        if let Some(p) = overlay.and_then(|o| o.profile.as_ref()) {
            d.profile_status = p.status.as_str().to_owned();
            d.profile_uuid = p.uuid.as_deref().map(str::to_owned);
            d.profile_assign_time = p.assign_time.map(devgen::iso);
            d.profile_push_time = p.push_time.map(devgen::iso);
        }
        d
    }

    /// Adds a device: `spec` as given (its serial must be free), or one generated for
    /// the next index and assigned `now`.
    fn add(&mut self, spec: Option<Device>, now: u64) -> Result<u64, String> {
        let index = self.next_index;
        if index >= devgen::MAX_INDEX {
            return Err("no more device indexes".into());
        }
        let device = match spec {
            Some(d) => {
                if d.serial_number.is_empty() {
                    return Err("empty serial number".into());
                }
                if self.lookup(&d.serial_number).is_some() {
                    return Err(format!("serial {} is taken", d.serial_number));
                }
                self.custom_serials.insert(d.serial_number.clone(), index);
                d
            }
            None => {
                let mut d = devgen::generate(
                    self.seed,
                    index,
                    &self.assigned_by,
                    &self.preexisting_profile,
                    InitialProfiles {
                        assigned_percent: 0,
                        pushed_percent: 0,
                    },
                );
                if self.custom_serials.contains_key(&d.serial_number) {
                    return Err(format!("serial {} is taken", d.serial_number));
                }
                d.device_assigned_date = devgen::iso(now);
                d
            }
        };
        self.next_index += 1;
        self.overlays.insert(
            index,
            Overlay {
                custom: Some(Box::new(device)),
                profile: None,
            },
        );
        Ok(index)
    }

    /// Replaces every field of `index` (the serial stays).
    fn replace(&mut self, index: u64, mut device: Device) {
        device.serial_number = self.serial(index);
        self.overlays.insert(
            index,
            Overlay {
                custom: Some(Box::new(device)),
                profile: None,
            },
        );
    }

    fn set_profile(&mut self, index: u64, p: ProfileState) {
        self.overlays.entry(index).or_default().profile = Some(p);
    }
}

/// A scripted answer to the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// An error answer: `status` with the code written in the configured style.
    Error { status: u16, code: String },
    /// An error answer with exactly this body.
    Raw { status: u16, body: String },
    /// `status` (429, 503, ...) with `Retry-After: seconds`.
    RetryAfter { status: u16, seconds: u64 },
    /// Hold the request this long, then answer it normally.
    Delay(Duration),
    /// Close the connection without an answer.
    Disconnect,
}

/// A fault for the next `times` requests matching `path` (exact, without query;
/// `None` = any) and `method` (`None` = any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub path: Option<String>,
    pub method: Option<http::Method>,
    pub times: u32,
    pub action: FaultAction,
}

impl Fault {
    pub fn new(action: FaultAction, times: u32) -> Self {
        Fault {
            path: None,
            method: None,
            times,
            action,
        }
    }

    pub fn on(mut self, path: &str) -> Self {
        self.path = Some(path.to_owned());
        self
    }

    pub fn method(mut self, method: http::Method) -> Self {
        self.method = Some(method);
        self
    }

    fn matches(&self, method: &http::Method, path: &str) -> bool {
        self.times > 0
            && self.path.as_deref().is_none_or(|p| p == path)
            && self.method.as_ref().is_none_or(|m| m == method)
    }
}

/// A scripted per-device result of assign (and define with `devices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOutcome {
    Failed,
    /// `THROTTLED` for protocol 9+ (`FAILED` before); the response carries
    /// `retry_after_seconds` for protocol 10+.
    Throttled,
    NotAccessible,
}

/// Counters, readable through the control handle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// API requests (control routes excluded).
    pub requests: u64,
    pub requests_by_path: BTreeMap<String, u64>,
    pub responses_by_status: BTreeMap<u16, u64>,
    /// `GET /session` answered with a token.
    pub sessions_issued: u64,
    /// Tokens replaced through `X-ADM-Auth-Session` response headers.
    pub sessions_rotated: u64,
    /// `GET /session` refused (signature, nonce, credentials, scripted, terms).
    pub sessions_refused: u64,
    /// Device records in fetch, sync and details answers.
    pub devices_served: u64,
    pub devices_fetched: u64,
    pub devices_synced: u64,
    /// Per-device results of assign/define/remove/disown answers.
    pub device_results: u64,
    pub faults_fired: u64,
}

#[derive(Debug, Clone)]
pub struct Session {
    /// Unix ms (simulator time).
    pub expires_at_ms: u64,
    pub requests: u32,
}

#[derive(Debug, Default)]
pub struct Modes {
    pub terms_not_signed: bool,
    pub access_denied: bool,
    pub token_revoked: bool,
    pub reject_sessions: u32,
}

pub struct State {
    pub cfg: SimConfig,
    /// The organisation's index on its simulator (0: the one [`SimConfig`] describes).
    pub org: usize,
    /// Key of cursor check values.
    pub cursor_key: u64,
    clock: SimClock,
    pub devices: Devices,
    pub events: Vec<Event>,
    pub profiles: HashMap<Arc<str>, Map<String, Value>>,
    pub sessions: HashMap<String, Session>,
    pub nonces: HashSet<String>,
    pub faults: Vec<Fault>,
    pub assign_script: HashMap<String, (AssignOutcome, u32)>,
    pub stats: Stats,
    pub modes: Modes,
    pub activation_locks: HashMap<String, Value>,
    pub discovery_url: Option<String>,
}

impl State {
    pub fn new(cfg: SimConfig) -> Self {
        State::in_org(cfg, 0, SimClock::default())
    }

    /// Organisation `org` of a simulator whose organisations share `clock`.
    pub(crate) fn in_org(cfg: SimConfig, org: usize, clock: SimClock) -> Self {
        let preexisting: Arc<str> = devgen::hex32(cfg.seed, 0, 0x9F0F).into();
        let mut profiles = HashMap::new();
        let mut profile = Map::new();
        profile.insert("profile_name".into(), "Pre-existing profile".into());
        profile.insert("url".into(), "https://mdm.previous.example/enroll".into());
        fill_profile_defaults(&mut profile);
        profile.insert("profile_uuid".into(), preexisting.as_ref().into());
        profiles.insert(preexisting.clone(), profile);
        State {
            // Cursors of one seed and consumer key stay valid across restarts.
            cursor_key: cfg
                .credentials
                .consumer_key
                .bytes()
                .fold(devgen::mix(cfg.seed), |h, b| devgen::mix(h ^ u64::from(b))),
            org,
            clock,
            devices: Devices::new(&cfg, preexisting),
            events: Vec::new(),
            profiles,
            sessions: HashMap::new(),
            nonces: HashSet::new(),
            faults: Vec::new(),
            assign_script: HashMap::new(),
            stats: Stats::default(),
            modes: Modes::default(),
            activation_locks: HashMap::new(),
            discovery_url: None,
            cfg,
        }
    }

    /// Simulator time.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.clock.offset()
    }

    pub fn now_ms(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64
    }

    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    pub fn advance_time(&mut self, by: Duration) {
        self.clock.advance(by);
    }

    fn log(&mut self, index: u64, op: Op) {
        let at = self.now_secs();
        self.events.push(Event { index, op, at });
    }

    // ---- scripted device changes -------------------------------------------------

    pub fn add_device(&mut self, spec: Option<Device>, op: Op) -> Result<String, String> {
        let now = self.now_secs();
        let index = self.devices.add(spec, now)?;
        self.log(index, op);
        Ok(self.devices.serial(index))
    }

    pub fn modify_device(&mut self, serial: &str, f: impl FnOnce(&mut Device)) -> bool {
        let Some(index) = self.devices.live(serial) else {
            return false;
        };
        let mut d = self.devices.render(index);
        f(&mut d);
        self.devices.replace(index, d);
        self.log(index, Op::Modified);
        true
    }

    pub fn delete_device(&mut self, serial: &str) -> bool {
        let Some(index) = self.devices.live(serial) else {
            return false;
        };
        self.devices.removed.insert(index);
        self.log(index, Op::Deleted);
        true
    }

    /// Brings a removed device back (appears as `added`).
    pub fn restore_device(&mut self, serial: &str) -> bool {
        match self.devices.lookup(serial) {
            Some(index) if self.devices.removed.remove(&index) => {
                self.log(index, Op::Added);
                true
            }
            _ => false,
        }
    }

    pub fn set_profile_status(&mut self, serial: &str, status: ProfileStatus) -> bool {
        let Some(index) = self.devices.live(serial) else {
            return false;
        };
        let d = self.devices.render(index);
        let now = self.now_secs();
        let keep = |t: Option<String>| t.and_then(|t| mdm_core::time::parse_rfc3339(&t));
        let p = match status {
            ProfileStatus::Empty | ProfileStatus::Removed => ProfileState {
                status,
                uuid: None,
                assign_time: None,
                push_time: None,
            },
            ProfileStatus::Assigned => ProfileState {
                status,
                uuid: d.profile_uuid.map(Arc::from),
                assign_time: keep(d.profile_assign_time).map(|t| t as u64).or(Some(now)),
                push_time: None,
            },
            ProfileStatus::Pushed => ProfileState {
                status,
                uuid: d.profile_uuid.map(Arc::from),
                assign_time: keep(d.profile_assign_time).map(|t| t as u64).or(Some(now)),
                push_time: Some(now),
            },
        };
        self.devices.set_profile(index, p);
        self.log(index, Op::Modified);
        true
    }

    // ---- profiles ------------------------------------------------------------------

    pub fn new_profile_uuid(&self) -> Arc<str> {
        loop {
            let uuid: Arc<str> = mdm_core::random::hex_id(16).to_ascii_uppercase().into();
            if !self.profiles.contains_key(&uuid) {
                return uuid;
            }
        }
    }

    /// Assigns `profile` to `serial`: the per-device status.
    pub fn assign_serial(
        &mut self,
        serial: &str,
        profile: &Arc<str>,
        version: u32,
    ) -> &'static str {
        let Some(index) = self.devices.live(serial) else {
            return "NOT_ACCESSIBLE";
        };
        if let Some(entry) = self.assign_script.get_mut(serial) {
            let outcome = entry.0;
            entry.1 -= 1;
            if entry.1 == 0 {
                self.assign_script.remove(serial);
            }
            return match outcome {
                AssignOutcome::Failed => "FAILED",
                AssignOutcome::NotAccessible => "NOT_ACCESSIBLE",
                AssignOutcome::Throttled if version >= 9 => "THROTTLED",
                AssignOutcome::Throttled => "FAILED",
            };
        }
        let now = self.now_secs();
        self.devices.set_profile(
            index,
            ProfileState {
                status: ProfileStatus::Assigned,
                uuid: Some(profile.clone()),
                assign_time: Some(now),
                push_time: None,
            },
        );
        self.log(index, Op::Modified);
        "SUCCESS"
    }

    /// Removes the profile assignment of `serial`.
    pub fn unassign_serial(&mut self, serial: &str) -> &'static str {
        let Some(index) = self.devices.live(serial) else {
            return "NOT_ACCESSIBLE";
        };
        self.devices.set_profile(
            index,
            ProfileState {
                status: ProfileStatus::Removed,
                uuid: None,
                assign_time: None,
                push_time: None,
            },
        );
        self.log(index, Op::Modified);
        "SUCCESS"
    }

    /// Takes the fault for this request, if one is scripted.
    pub fn take_fault(&mut self, method: &http::Method, path: &str) -> Option<FaultAction> {
        let pos = self.faults.iter().position(|f| f.matches(method, path))?;
        let fault = &mut self.faults[pos];
        fault.times -= 1;
        let action = fault.action.clone();
        if fault.times == 0 {
            self.faults.remove(pos);
        }
        self.stats.faults_fired += 1;
        Some(action)
    }
}

/// Apple's defaults for the boolean flags of a stored profile.
pub fn fill_profile_defaults(p: &mut Map<String, Value>) {
    for (k, v) in [
        ("is_supervised", false),
        ("allow_pairing", true),
        ("is_mandatory", false),
        ("is_mdm_removable", true),
        ("await_device_configured", false),
        ("is_multi_user", false),
        ("auto_advance_setup", false),
    ] {
        p.entry(k).or_insert(Value::Bool(v));
    }
}

//! [`SimControl`]: scripting and inspecting one organisation of a running simulator
//! from tests and benchmarks (the `/_depsim/…` routes offer the common operations over
//! HTTP).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use mdm_core::dep::oauth::DepCredentials;
use serde_json::{Map, Value};

use crate::devgen::Device;
use crate::state::{AssignOutcome, Fault, FaultAction, Op, ProfileStatus, State, Stats};

/// How long the server tokens [`SimControl::server_token`] makes are valid (a year, as
/// Apple's).
const TOKEN_LIFETIME: u64 = 365 * 86_400;

/// A cheap, cloneable handle on the state of one organisation of a running simulator
/// (`Send + Sync`).
#[derive(Clone)]
pub struct SimControl {
    pub(crate) state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimControl").finish_non_exhaustive()
    }
}

impl SimControl {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- the organisation ----------------------------------------------------------

    /// The organisation's index on its simulator (0: the one [`crate::SimConfig`]
    /// describes, which [`crate::RunningSim::control`] addresses).
    pub fn index(&self) -> usize {
        self.lock().org
    }

    /// The OAuth secrets `GET /session` accepts for this organisation.
    pub fn credentials(&self) -> DepCredentials {
        self.lock().cfg.credentials.clone()
    }

    /// The JSON of this organisation's server token, to wrap into a `.p7m`.
    pub fn token_json(&self, expiry: &str) -> String {
        crate::config::token_json(&self.credentials(), expiry)
    }

    /// The organisation's server token (`.p7m`) for the MDM server whose public key
    /// (PEM certificate) an admin uploaded, valid for a year from the simulator's clock.
    pub fn server_token(&self, public_key_pem: &str) -> Result<Vec<u8>, String> {
        let expiry = crate::devgen::iso(self.lock().now_secs() + TOKEN_LIFETIME);
        crate::config::server_token(&self.credentials(), &expiry, public_key_pem)
    }

    // ---- counters ------------------------------------------------------------------

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn reset_stats(&self) {
        self.lock().stats = Stats::default();
    }

    /// API requests to `path` so far.
    pub fn requests_to(&self, path: &str) -> u64 {
        self.lock()
            .stats
            .requests_by_path
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    // ---- time ----------------------------------------------------------------------

    /// The simulator's clock (system time plus what [`SimControl::advance_time`] added).
    pub fn now(&self) -> SystemTime {
        self.lock().now()
    }

    /// Moves the simulator's clock forward: sessions and cursors age, `op_date`s move.
    /// The clock is the simulator's, so this moves it for every organisation.
    pub fn advance_time(&self, by: Duration) {
        self.lock().advance_time(by);
    }

    // ---- devices -------------------------------------------------------------------

    /// Devices currently in the organisation.
    pub fn device_count(&self) -> u64 {
        self.lock().devices.live_count()
    }

    /// Serial numbers of the devices currently in the organisation, in fetch order.
    pub fn serials(&self) -> Vec<String> {
        let st = self.lock();
        (0..st.devices.end())
            .filter(|&i| st.devices.is_live(i))
            .map(|i| st.devices.serial(i))
            .collect()
    }

    /// Up to `limit` devices currently in the organisation, as Apple describes them, in
    /// fetch order.
    pub fn devices(&self, limit: usize) -> Vec<Device> {
        let st = self.lock();
        (0..st.devices.end())
            .filter(|&i| st.devices.is_live(i))
            .take(limit)
            .map(|i| st.devices.render(i))
            .collect()
    }

    /// What Setup Assistant on device `serial` gets from Apple when it is turned on: the
    /// profile assigned to it (as its MDM server defined it, with the enrollment `url`),
    /// which is then `pushed`. `None` when the device is not in the organisation or has no
    /// profile assigned.
    pub fn cloud_configuration(&self, serial: &str) -> Option<Map<String, Value>> {
        let mut st = self.lock();
        let device = st.devices.live(serial).map(|i| st.devices.render(i))?;
        if !matches!(device.profile_status.as_str(), "assigned" | "pushed") {
            return None;
        }
        let profile = st.profiles.get(device.profile_uuid?.as_str())?.clone();
        st.set_profile_status(serial, ProfileStatus::Pushed);
        Some(profile)
    }

    /// The serial of device `index` (0-based, in creation order; live or not).
    pub fn serial_at(&self, index: u64) -> Option<String> {
        let st = self.lock();
        (index < st.devices.end()).then(|| st.devices.serial(index))
    }

    /// A device's current state, if it is in the organisation.
    pub fn device(&self, serial: &str) -> Option<Device> {
        let st = self.lock();
        st.devices.live(serial).map(|i| st.devices.render(i))
    }

    /// Adds `n` generated devices (sync reports them as `added`); their serials.
    pub fn add_devices(&self, n: u64) -> Vec<String> {
        self.add_with_op(n, Op::Added)
    }

    /// Adds `n` devices moved from another MDM server: ABM reports them only as
    /// `modified`.
    pub fn move_in_devices(&self, n: u64) -> Vec<String> {
        self.add_with_op(n, Op::Modified)
    }

    fn add_with_op(&self, n: u64, op: Op) -> Vec<String> {
        let mut st = self.lock();
        (0..n).map_while(|_| st.add_device(None, op).ok()).collect()
    }

    /// Adds a device exactly as given (e.g. with the serial of a test device); `added`.
    pub fn add_device(&self, device: Device) -> Result<String, String> {
        self.lock().add_device(Some(device), Op::Added)
    }

    /// A template for [`SimControl::add_device`]: a generated device with `serial`.
    pub fn device_template(&self, serial: &str) -> Device {
        let st = self.lock();
        let mut d = st.devices.render(st.devices.end());
        d.serial_number = serial.to_owned();
        d.profile_status = "empty".into();
        d.profile_uuid = None;
        d.profile_assign_time = None;
        d.profile_push_time = None;
        d.device_assigned_date = crate::devgen::iso(st.now_secs());
        d
    }

    /// Edits a device (`modified`). False if it is not in the organisation.
    pub fn modify_device(&self, serial: &str, f: impl FnOnce(&mut Device)) -> bool {
        self.lock().modify_device(serial, f)
    }

    /// Removes a device from the organisation (`deleted`), as a disown or a release in
    /// ABM does.
    pub fn delete_device(&self, serial: &str) -> bool {
        self.lock().delete_device(serial)
    }

    /// Brings a deleted device back (`added`).
    pub fn restore_device(&self, serial: &str) -> bool {
        self.lock().restore_device(serial)
    }

    /// Sets `profile_status` (`empty`, `assigned`, `pushed`, `removed`; `modified`).
    pub fn set_profile_status(&self, serial: &str, status: &str) -> bool {
        let Some(status) = ProfileStatus::parse(status) else {
            return false;
        };
        self.lock().set_profile_status(serial, status)
    }

    /// The device downloaded its profile: `pushed` with `profile_push_time` (`modified`).
    pub fn push_profile(&self, serial: &str) -> bool {
        self.set_profile_status(serial, "pushed")
    }

    /// Events in the sync log so far.
    pub fn event_count(&self) -> usize {
        self.lock().events.len()
    }

    /// A fetch cursor that starts at device index `position` (skip ahead in a large
    /// set without walking it).
    pub fn fetch_cursor_at(&self, position: u64) -> String {
        self.lock().fetch_cursor_at(position)
    }

    // ---- profiles ------------------------------------------------------------------

    pub fn profile(&self, uuid: &str) -> Option<Map<String, Value>> {
        self.lock().profiles.get(uuid).cloned()
    }

    pub fn profile_uuids(&self) -> Vec<String> {
        self.lock().profiles.keys().map(|k| k.to_string()).collect()
    }

    /// The next `times` assignments of `serial` answer `outcome` instead of assigning.
    pub fn script_assign(&self, serial: &str, outcome: AssignOutcome, times: u32) {
        let mut st = self.lock();
        if times == 0 {
            st.assign_script.remove(serial);
        } else {
            st.assign_script.insert(serial.to_owned(), (outcome, times));
        }
    }

    /// What the last activation-lock request for `serial` sent.
    pub fn activation_lock(&self, serial: &str) -> Option<Value> {
        self.lock().activation_locks.get(serial).cloned()
    }

    // ---- faults --------------------------------------------------------------------

    pub fn inject(&self, fault: Fault) {
        if fault.times > 0 {
            self.lock().faults.push(fault);
        }
    }

    /// The next `n` requests (any path) answer `status` with `code` in the body.
    pub fn fail_next(&self, n: u32, status: u16, code: &str) {
        self.inject(Fault::new(
            FaultAction::Error {
                status,
                code: code.into(),
            },
            n,
        ));
    }

    /// The next `n` requests to `path` answer `status` with `code` in the body.
    pub fn fail_next_on(&self, path: &str, n: u32, status: u16, code: &str) {
        self.inject(
            Fault::new(
                FaultAction::Error {
                    status,
                    code: code.into(),
                },
                n,
            )
            .on(path),
        );
    }

    /// The next `n` requests answer `status` (429, 503) with `Retry-After: seconds`.
    pub fn throttle_next(&self, n: u32, status: u16, seconds: u64) {
        self.inject(Fault::new(FaultAction::RetryAfter { status, seconds }, n));
    }

    pub fn throttle_next_on(&self, path: &str, n: u32, status: u16, seconds: u64) {
        self.inject(Fault::new(FaultAction::RetryAfter { status, seconds }, n).on(path));
    }

    /// Holds the next `n` requests to `path` (`None` = any) for `delay` before answering.
    pub fn delay_next(&self, path: Option<&str>, n: u32, delay: Duration) {
        let mut f = Fault::new(FaultAction::Delay(delay), n);
        f.path = path.map(str::to_owned);
        self.inject(f);
    }

    /// Closes the connection of the next `n` requests to `path` (`None` = any) unanswered.
    pub fn disconnect_next(&self, path: Option<&str>, n: u32) {
        let mut f = Fault::new(FaultAction::Disconnect, n);
        f.path = path.map(str::to_owned);
        self.inject(f);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Faults still waiting for a request.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.iter().map(|f| f.times as usize).sum()
    }

    // ---- sessions and account state ------------------------------------------------

    /// The next `n` otherwise valid `GET /session` answer 401.
    pub fn reject_next_sessions(&self, n: u32) {
        self.lock().modes.reject_sessions = n;
    }

    /// Forgets every session token (as a restart or a server-side expiry does).
    pub fn expire_sessions(&self) {
        self.lock().sessions.clear();
    }

    /// Live session tokens.
    pub fn session_count(&self) -> usize {
        let mut st = self.lock();
        let now = st.now_ms();
        st.sessions.retain(|_, s| s.expires_at_ms > now);
        st.sessions.len()
    }

    /// Whether `token` is a live session.
    pub fn session_valid(&self, token: &str) -> bool {
        let st = self.lock();
        let now = st.now_ms();
        st.sessions
            .get(token)
            .is_some_and(|s| s.expires_at_ms > now)
    }

    /// The organisation must accept new terms: `/session` and every call answer
    /// `403 T_C_NOT_SIGNED`.
    pub fn set_terms_not_signed(&self, on: bool) {
        self.lock().modes.terms_not_signed = on;
    }

    /// Every call answers `403 ACCESS_DENIED`.
    pub fn set_access_denied(&self, on: bool) {
        self.lock().modes.access_denied = on;
    }

    /// The server token is revoked or expired: `/session` answers 401 and live
    /// sessions end.
    pub fn set_token_revoked(&self, on: bool) {
        let mut st = self.lock();
        st.modes.token_revoked = on;
        if on {
            st.sessions.clear();
        }
    }
}

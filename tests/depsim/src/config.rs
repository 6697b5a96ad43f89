//! What a simulator instance looks like: credentials, devices, account, limits, quirks;
//! and what an added organisation ([`ServerConfig`]) changes of it.

use std::net::SocketAddr;
use std::time::Duration;

use mdm_core::dep::oauth::DepCredentials;

/// Page sizes of fetch or sync (`urls[].limit` in `/account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit {
    pub default: u32,
    pub maximum: u32,
}

impl PageLimit {
    /// Apple's documented limits: default 100, maximum 1000.
    pub const APPLE: PageLimit = PageLimit {
        default: 100,
        maximum: 1000,
    };

    /// The page size for a requested `limit` (absent or < 1 = default; clamped to the
    /// maximum).
    pub fn resolve(&self, wanted: Option<i64>) -> usize {
        let max = self.maximum.max(1) as i64;
        match wanted {
            Some(n) if n >= 1 => n.min(max) as usize,
            _ => (self.default.max(1) as i64).min(max) as usize,
        }
    }
}

/// How error codes are written in bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorStyle {
    /// `"INVALID_CURSOR"` (a JSON string; what Apple's own depsim sent).
    #[default]
    JsonQuoted,
    /// `INVALID_CURSOR`.
    Plain,
}

/// The answer to an `X-ADM-Auth-Session` the simulator does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownSession {
    /// `401 UNAUTHORIZED` (Apple).
    #[default]
    Unauthorized,
    /// `403 FORBIDDEN` (Apple's depsim after a restart).
    Forbidden,
}

/// `/account` (AccountDetail). `urls` are generated from the page limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    pub server_name: String,
    pub server_uuid: String,
    pub admin_id: String,
    pub facilitator_id: Option<String>,
    pub org_name: String,
    pub org_email: String,
    pub org_phone: String,
    pub org_address: String,
    pub org_id: String,
    pub org_id_hash: String,
    /// `edu`, `org` or `tvprovider`.
    pub org_type: String,
    /// `v1` or `v2`.
    pub org_version: String,
}

impl AccountConfig {
    /// An account whose identifiers derive from `seed`.
    pub fn for_seed(seed: u64) -> Self {
        AccountConfig {
            server_name: "depsim".into(),
            server_uuid: crate::devgen::hex32(seed, 0, 0xACC0),
            admin_id: "apple-dep@acme.example".into(),
            facilitator_id: Some("apple-dep@acme.example".into()),
            org_name: "Acme, Inc".into(),
            org_email: "apple-dep@acme.example".into(),
            org_phone: "+1 555 0100".into(),
            org_address: "1 Infinite Loop, Cupertino, CA 95014".into(),
            org_id: format!(
                "{}",
                1_000_000 + crate::devgen::derive(seed, 0, 0x0E6) % 9_000_000
            ),
            org_id_hash: crate::devgen::hex32(seed, 1, 0xACC0).to_ascii_lowercase(),
            org_type: "org".into(),
            org_version: "v2".into(),
        }
    }
}

/// Everything about one simulator. Build with [`SimConfig::new`] or `default()` and
/// struct-update syntax.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on; port 0 = any free port.
    pub listen: SocketAddr,
    /// The OAuth secrets `GET /session` accepts.
    pub credentials: DepCredentials,
    /// Devices in the organisation at start (generated from `seed`).
    pub devices: u64,
    pub seed: u64,
    pub account: AccountConfig,
    /// Shares of generated devices that start with a profile (assigned/pushed by
    /// an earlier MDM), in percent.
    pub initial_assigned_percent: u8,
    pub initial_pushed_percent: u8,
    /// How long a session token lives (Apple publishes no value).
    pub session_lifetime: Duration,
    /// Rotate `X-ADM-Auth-Session` (new token in the response header) every N
    /// authenticated requests of a session; `None` = never.
    pub rotate_every: Option<u32>,
    /// Keep accepting a session token after it was rotated away (default: refused).
    pub keep_rotated_sessions: bool,
    /// Answer to unknown or forgotten session tokens.
    pub unknown_session: UnknownSession,
    /// Refuse OAuth timestamps further than this from the simulator's clock.
    pub max_clock_skew: Option<Duration>,
    /// URL the client signs `/session` against (`…/session` is appended). Default:
    /// `http://` + the request's `Host` header.
    pub public_base_url: Option<String>,
    /// Fetch (`POST /server/devices`) page sizes.
    pub fetch_limit: PageLimit,
    /// Sync (`POST /devices/sync`) page sizes.
    pub sync_limit: PageLimit,
    /// Cursors older than this are `EXPIRED_CURSOR` on sync (Apple: 7 days).
    pub cursor_max_age: Duration,
    /// Serials per assign/remove/details/disown request.
    pub max_serials: usize,
    /// `retry_after_seconds` of a response with `THROTTLED` devices (protocol 10+).
    pub throttle_retry_after: u64,
    pub error_style: ErrorStyle,
    /// `400 USER_AGENT_MISSING` without a `User-Agent`.
    pub require_user_agent: bool,
    /// Accept `http://` profile URLs on loopback hosts (Apple wants https; local test
    /// servers usually are plain HTTP).
    pub allow_loopback_http_profile_url: bool,
    /// Serve the `/_depsim/…` control routes (stats, scripted events, faults) for
    /// out-of-process use.
    pub control_api: bool,
    /// Worker threads of the simulator's own runtime.
    pub worker_threads: usize,
}

impl SimConfig {
    /// `devices` devices generated from `seed`, everything else default.
    pub fn new(devices: u64, seed: u64) -> Self {
        SimConfig {
            devices,
            seed,
            account: AccountConfig::for_seed(seed),
            ..SimConfig::default()
        }
    }
}

/// The credentials of a default simulator.
pub fn default_credentials() -> DepCredentials {
    DepCredentials {
        consumer_key: "CK_depsim".into(),
        consumer_secret: "CS_depsim".into(),
        access_token: "AT_depsim".into(),
        access_secret: "AS_depsim".into(),
    }
}

/// The credentials of organisation `index` when its [`ServerConfig`] names none
/// (`CK_depsim_3`, ...; index 0 is [`default_credentials`]).
pub fn server_credentials(index: usize) -> DepCredentials {
    if index == 0 {
        return default_credentials();
    }
    DepCredentials {
        consumer_key: format!("CK_depsim_{index}"),
        consumer_secret: format!("CS_depsim_{index}"),
        access_token: format!("AT_depsim_{index}"),
        access_secret: format!("AS_depsim_{index}"),
    }
}

/// The JSON Apple wraps into a server token (`.p7m`) for `credentials`, expiring at
/// `expiry` (RFC 3339).
pub fn token_json(credentials: &DepCredentials, expiry: &str) -> String {
    serde_json::json!({
        "consumer_key": credentials.consumer_key,
        "consumer_secret": credentials.consumer_secret,
        "access_token": credentials.access_token,
        "access_secret": credentials.access_secret,
        "access_token_expiry": expiry,
    })
    .to_string()
}

/// The server token (`.p7m`) Apple Business Manager hands out for an MDM server whose
/// public key (PEM certificate, as the MDM server offers it for download) was uploaded:
/// [`token_json`] wrapped the way Apple does, so only that key opens it.
pub fn server_token(
    credentials: &DepCredentials,
    expiry: &str,
    public_key_pem: &str,
) -> Result<Vec<u8>, String> {
    let cert = mdm_crypto::Certificate::from_pem(public_key_pem)
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let plaintext = mdm_crypto::token_plaintext(&token_json(credentials, expiry));
    mdm_crypto::encrypt_server_token(&plaintext, &cert).map_err(|e| e.to_string())
}

/// One more organisation (MDM server) on a running simulator: its own credentials,
/// devices, account, event log, profiles and sessions. Everything else (page limits,
/// session lifetime, rotation, error style, ...) follows the simulator's [`SimConfig`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `None`: [`server_credentials`] of the index the organisation gets.
    pub credentials: Option<DepCredentials>,
    /// Devices in the organisation at start (generated from `seed`).
    pub devices: u64,
    /// Give every organisation its own seed: the same seed means the same serials.
    pub seed: u64,
    pub account: AccountConfig,
    pub initial_assigned_percent: u8,
    pub initial_pushed_percent: u8,
}

impl ServerConfig {
    /// `devices` devices generated from `seed`, derived credentials, the account
    /// [`AccountConfig::for_seed`] makes.
    pub fn new(devices: u64, seed: u64) -> Self {
        let defaults = SimConfig::default();
        ServerConfig {
            credentials: None,
            devices,
            seed,
            account: AccountConfig::for_seed(seed),
            initial_assigned_percent: defaults.initial_assigned_percent,
            initial_pushed_percent: defaults.initial_pushed_percent,
        }
    }

    pub fn with_credentials(mut self, credentials: DepCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The whole configuration of organisation `index` on a simulator started with `base`.
    pub(crate) fn resolve(self, base: &SimConfig, index: usize) -> SimConfig {
        SimConfig {
            credentials: self
                .credentials
                .unwrap_or_else(|| server_credentials(index)),
            devices: self.devices,
            seed: self.seed,
            account: self.account,
            initial_assigned_percent: self.initial_assigned_percent,
            initial_pushed_percent: self.initial_pushed_percent,
            ..base.clone()
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: default_credentials(),
            devices: 100,
            seed: 1,
            account: AccountConfig::for_seed(1),
            initial_assigned_percent: 15,
            initial_pushed_percent: 5,
            session_lifetime: Duration::from_secs(30 * 60),
            rotate_every: None,
            keep_rotated_sessions: false,
            unknown_session: UnknownSession::Unauthorized,
            max_clock_skew: None,
            public_base_url: None,
            fetch_limit: PageLimit::APPLE,
            sync_limit: PageLimit::APPLE,
            cursor_max_age: Duration::from_secs(7 * 86_400),
            max_serials: 1000,
            throttle_retry_after: 60,
            error_style: ErrorStyle::JsonQuoted,
            require_user_agent: true,
            allow_loopback_http_profile_url: true,
            control_api: true,
            worker_threads: 2,
        }
    }
}

//! The DEP profile an administrator defines (platform, user affinity, supervision, Setup
//! Assistant panes, setup commands), the profile JSON Apple's Device Assignment API
//! receives for it (`POST /profile`), and which edits reach devices only after a reset.
//!
//! Its rules are in [`super::profile_validation`]; what it has the server send a device
//! at enrollment is in [`super::profile_setup`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::skipkeys::Platform;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAffinity {
    /// The user signs in on our page during Setup Assistant (`configuration_web_url`).
    WithUser,
    /// Kiosk, shared or utility devices.
    WithoutUser,
    /// Shared iPad (`is_multi_user`).
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pairing {
    AllowAll,
    DenyAll,
    /// Only hosts whose certificate is in `pairing_certificates` (Apple Configurator).
    Certificates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pane {
    Show,
    Hide,
}

/// Shared iPad settings, delivered as Settings command items after the first TokenUpdate
/// (before DeviceConfigured when the device awaits configuration), with the keys the
/// device's iPadOS version takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedIpad {
    /// Users expected to share the device (`ResidentUsers`; `MaximumResidentUsers`
    /// before iPadOS 13.4).
    pub maximum_cached_users: u32,
    /// Seconds after screen lock before the passcode is required.
    pub passcode_lock_grace_period: u32,
    /// Seconds of inactivity before the user session logs out (0 = never).
    pub user_session_timeout: u32,
    #[serde(default)]
    pub temporary_session_only: bool,
    #[serde(default)]
    pub temporary_session_timeout: u32,
    /// Storage per user in megabytes (`QuotaSize`); Apple's choice when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_size_mb: Option<u32>,
    /// Days a returning user may sign in without online authentication
    /// (`OnlineAuthenticationGracePeriod`, iPadOS 16+; 0 = every time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_authentication_grace_period_days: Option<u32>,
}

fn yes() -> bool {
    true
}

fn allow_all() -> Pairing {
    Pairing::AllowAll
}

/// What the admin API accepts for an enrollment profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    pub name: String,
    /// Shown to admins only; devices never see it.
    #[serde(default)]
    pub description: String,
    pub platform: Platform,
    pub user_affinity: UserAffinity,
    #[serde(default = "yes")]
    pub supervised: bool,
    #[serde(default)]
    pub locked_enrollment: bool,
    #[serde(default = "yes")]
    pub await_device_configured: bool,
    #[serde(default)]
    pub shared_ipad: Option<SharedIpad>,
    #[serde(default = "allow_all")]
    pub pairing: Pairing,
    /// Base64 DER certificates of the hosts allowed to pair.
    #[serde(default)]
    pub pairing_certificates: Vec<String>,
    #[serde(default)]
    pub device_name_template: Option<String>,
    #[serde(default)]
    pub esim_server_url: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub support_phone_number: Option<String>,
    #[serde(default)]
    pub support_email_address: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub org_magic: Option<String>,
    /// Setup Assistant panes by skip key; panes not named are shown.
    #[serde(default)]
    pub setup_assistant: std::collections::BTreeMap<String, Pane>,
    /// Base64 DER TLS anchors for the enrollment URL.
    #[serde(default)]
    pub anchor_certificates: Vec<String>,
    /// Devices of this profile's platform below this OS version are refused enrollment
    /// (`"17.4"`, optionally with a supplemental letter: `"17.4 (a)"`). Devices that say
    /// they can (iOS 17+, macOS 14+) are told to update first
    /// (`com.apple.softwareupdate.required`); older ones get a reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_os_version: Option<String>,
    /// The build to update to (`"21E219"`), sent along with the minimum for seeding;
    /// Apple lets the version win when they disagree. Needs `minimum_os_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_os_build: Option<String>,
    /// Commands of the admin's choice (e.g. InstallProfile, InstallApplication, Settings),
    /// each a JSON object like the command API takes (`RequestType` + payload keys, data
    /// as base64). Queued, in this order, at the first TokenUpdate of every enrollment
    /// with this profile, after the built-in setup and before `DeviceConfigured`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup_commands: Vec<Map<String, Value>>,
}

impl ProfileSpec {
    /// The profile JSON for Apple. `enroll_url` and `web_url` are our own endpoints
    /// (built from `server_url`); the admin never types them.
    pub fn apple_profile(&self, enroll_url: &str, web_url: &str) -> Value {
        let supervised = self.supervised || self.platform == Platform::Ios;
        let mut p = Map::new();
        p.insert("profile_name".into(), json!(self.name.trim()));
        p.insert("url".into(), json!(enroll_url));
        if self.user_affinity == UserAffinity::WithUser {
            p.insert("configuration_web_url".into(), json!(web_url));
        }
        p.insert("is_supervised".into(), json!(supervised));
        // Always sent: Apple's default is removable.
        p.insert("is_mdm_removable".into(), json!(!self.locked_enrollment));
        p.insert("is_mandatory".into(), json!(true));
        p.insert(
            "await_device_configured".into(),
            json!(self.await_device_configured),
        );
        p.insert(
            "is_multi_user".into(),
            json!(self.user_affinity == UserAffinity::Shared),
        );
        // Which computers may pair ("sync with"): hosts by certificate go in
        // `supervising_host_certs`. `allow_pairing` is deprecated since iOS 13 and only
        // older iOS and tvOS honour it, so it is sent only to say no; newer devices are
        // restricted at enrollment instead (see `enrollment_commands`). macOS has neither.
        if self.platform != Platform::Macos && self.pairing != Pairing::AllowAll {
            p.insert("allow_pairing".into(), json!(false));
        }
        if self.pairing == Pairing::Certificates {
            p.insert(
                "supervising_host_certs".into(),
                json!(self.pairing_certificates),
            );
        }
        if self.platform != Platform::Ios {
            p.insert("auto_advance_setup".into(), json!(false));
        }
        let skip: Vec<&str> = self
            .setup_assistant
            .iter()
            .filter(|(_, v)| **v == Pane::Hide)
            .map(|(k, _)| k.as_str())
            .collect();
        p.insert("skip_setup_items".into(), json!(skip));
        for (key, value) in [
            ("department", &self.department),
            ("support_phone_number", &self.support_phone_number),
            ("support_email_address", &self.support_email_address),
            ("language", &self.language),
            ("region", &self.region),
            ("org_magic", &self.org_magic),
        ] {
            if let Some(v) = value {
                p.insert(key.into(), json!(v));
            }
        }
        if !self.anchor_certificates.is_empty() {
            p.insert("anchor_certs".into(), json!(self.anchor_certificates));
        }
        Value::Object(p)
    }
}

/// Settings that only reach devices through Setup Assistant, i.e. after a reset.
pub fn changes_needing_reset(old: &ProfileSpec, new: &ProfileSpec) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = Vec::new();
    for k in a.keys().chain(b.keys()) {
        if a.get(k) != b.get(k)
            && !matches!(k.as_str(), "device_name_template" | "description" | "name")
            && !keys.contains(k)
        {
            keys.push(k.clone());
        }
    }
    keys
}

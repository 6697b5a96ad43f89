//! Enrollment profiles as an administrator defines them, their validation, and the
//! profile JSON Apple's Device Assignment API receives (`POST /profile`).
//!
//! Validation runs before anything is sent to Apple and reports every offending field
//! with the rule it breaks. Limits are those of Apple's error table (dep-api.md §6).

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::skipkeys::{self, Platform};

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

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

pub const NAME_TEMPLATE_MAX: usize = 63;
pub const NAME_VARIABLES: [&str; 2] = ["{{SERIAL}}", "{{DEVICETYPE}}"];
pub const PASSCODE_GRACE_VALUES: [u32; 6] = [0, 60, 300, 900, 3600, 14400];
/// Most admin-chosen setup commands per profile.
pub const SETUP_COMMANDS_MAX: usize = 20;
/// Most bytes of all setup commands of a profile (as JSON): profiles are read whole.
pub const SETUP_COMMANDS_MAX_BYTES: usize = 1 << 20;
/// Commands that would end, stall or break Setup Assistant (or that we send ourselves):
/// device actions after enrollment do these.
pub const SETUP_COMMANDS_REFUSED: [&str; 9] = [
    "DeviceConfigured",
    "EraseDevice",
    "DeviceLock",
    "ClearPasscode",
    "RestartDevice",
    "ShutDownDevice",
    "EnableLostMode",
    "DisableLostMode",
    "RemoveProfile",
];

/// Notes the response carries alongside a valid profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Notices(pub Vec<String>);

struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn fail(&mut self, field: &str, rule: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            rule: rule.into(),
        });
    }

    fn length(&mut self, field: &str, value: &Option<String>, max: usize) {
        if let Some(v) = value {
            let n = v.chars().count();
            if n == 0 || n > max {
                self.fail(field, format!("1 to {max} characters"));
            }
        }
    }

    fn certificates(&mut self, field: &str, list: &[String]) {
        for (i, c) in list.iter().enumerate() {
            let der = base64::engine::general_purpose::STANDARD.decode(c.trim());
            // A DER certificate is a SEQUENCE; full parsing happens in the crypto core.
            if !matches!(der.as_deref(), Ok([0x30, _, ..])) {
                self.fail(
                    &format!("{field}[{i}]"),
                    "a base64-encoded DER X.509 certificate",
                );
            }
        }
    }
}

fn is_https_url(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty() && !host.contains(char::is_whitespace) && s.len() <= 2000
}

fn template_is_valid(t: &str) -> Result<(), String> {
    if t.chars().count() > NAME_TEMPLATE_MAX {
        return Err(format!(
            "at most {NAME_TEMPLATE_MAX} characters including the variables"
        ));
    }
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start..];
        let Some(end) = after.find("}}") else {
            return Err("unclosed {{".into());
        };
        let var = &after[..end + 2];
        if !NAME_VARIABLES.contains(&var) {
            return Err(format!(
                "unknown variable {var}; use {{{{SERIAL}}}} or {{{{DEVICETYPE}}}}"
            ));
        }
        rest = &after[end + 2..];
    }
    if t.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(())
}

/// `17`, `17.4`, `14.4.1`, each part a number without leading zeros (major 1-99),
/// optionally followed by a supplemental letter in parentheses: `17.4 (a)`.
pub fn os_version_is_valid(v: &str) -> bool {
    let (numeric, supplemental) = match v.split_once(' ') {
        Some((n, s)) => (n, Some(s)),
        None => (v, None),
    };
    let parts: Vec<&str> = numeric.split('.').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.len() <= 3
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'))
    };
    let supplemental_ok = supplemental.is_none_or(|s| {
        s.len() == 3
            && s.starts_with('(')
            && s.ends_with(')')
            && s.as_bytes()[1].is_ascii_lowercase()
    });
    (1..=3).contains(&parts.len())
        && parts.iter().all(part_ok)
        && parts[0].parse::<u32>().is_ok_and(|m| (1..=99).contains(&m))
        && supplemental_ok
}

/// Apple build versions: major number, one letter, a number, optional lowercase letter
/// (`21E219`, `20A242a`).
pub fn os_build_is_valid(b: &str) -> bool {
    let bytes = b.as_bytes();
    let digits = bytes.iter().take_while(|c| c.is_ascii_digit()).count();
    let Some(letter) = bytes.get(digits) else {
        return false;
    };
    let rest = &bytes[digits + 1..];
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let tail = &rest[n..];
    (1..=2).contains(&digits)
        && letter.is_ascii_uppercase()
        && (1..=5).contains(&n)
        && (tail.is_empty() || (tail.len() == 1 && tail[0].is_ascii_lowercase()))
}

impl ProfileSpec {
    /// Every rule, every field: `Err` lists all that are broken.
    pub fn validate(&self) -> Result<Notices, Vec<FieldError>> {
        let mut c = Check { errors: Vec::new() };
        let mut notices = Notices::default();
        let n = self.name.trim().chars().count();
        if n == 0 || n > 125 {
            c.fail("name", "1 to 125 characters");
        }
        if self.description.chars().count() > 2000 {
            c.fail("description", "at most 2000 characters");
        }
        let ios = self.platform == Platform::Ios;
        if ios && !self.supervised {
            notices.0.push("iOS and iPadOS 13 and later are always supervised through Automated Device Enrollment".into());
        }
        let supervised = self.supervised || ios;
        if self.locked_enrollment && !supervised {
            c.fail("locked_enrollment", "requires supervised");
        }
        let shared = self.user_affinity == UserAffinity::Shared;
        if shared {
            if !ios {
                c.fail(
                    "user_affinity",
                    "shared mode (Shared iPad) is for iPadOS only",
                );
            }
            if !supervised {
                c.fail("user_affinity", "shared mode requires supervised");
            }
            match &self.shared_ipad {
                None => c.fail("shared_ipad", "required in shared mode"),
                Some(s) => {
                    if !(1..=24).contains(&s.maximum_cached_users) {
                        c.fail("shared_ipad.maximum_cached_users", "1 to 24");
                    }
                    if !PASSCODE_GRACE_VALUES.contains(&s.passcode_lock_grace_period) {
                        c.fail(
                            "shared_ipad.passcode_lock_grace_period",
                            "one of 0, 60, 300, 900, 3600, 14400",
                        );
                    }
                    if s.quota_size_mb == Some(0) {
                        c.fail("shared_ipad.quota_size_mb", "at least 1 megabyte");
                    }
                    if s.online_authentication_grace_period_days
                        .is_some_and(|d| d > 365)
                    {
                        c.fail(
                            "shared_ipad.online_authentication_grace_period_days",
                            "0 to 365 days",
                        );
                    }
                    for (f, v) in [
                        ("user_session_timeout", s.user_session_timeout),
                        ("temporary_session_timeout", s.temporary_session_timeout),
                    ] {
                        if v != 0 && v < 30 {
                            c.fail(
                                &format!("shared_ipad.{f}"),
                                "0 (never) or at least 30 seconds",
                            );
                        }
                    }
                }
            }
        } else if self.shared_ipad.is_some() {
            c.fail("shared_ipad", "only with user_affinity shared");
        }
        match self.pairing {
            Pairing::Certificates => {
                if !supervised {
                    c.fail("pairing", "pairing by certificate requires supervised");
                }
                if self.pairing_certificates.is_empty() {
                    c.fail(
                        "pairing_certificates",
                        "at least one certificate when pairing is certificates",
                    );
                }
                c.certificates("pairing_certificates", &self.pairing_certificates);
            }
            _ if !self.pairing_certificates.is_empty() => {
                c.fail("pairing_certificates", "only when pairing is certificates")
            }
            _ => {}
        }
        if let Some(t) = &self.device_name_template {
            if let Err(rule) = template_is_valid(t) {
                c.fail("device_name_template", rule);
            }
        }
        if let Some(u) = &self.esim_server_url {
            if !ios {
                c.fail(
                    "esim_server_url",
                    "cellular plans are for iOS and iPadOS only",
                );
            }
            if !is_https_url(u) {
                c.fail("esim_server_url", "an https URL of at most 2000 characters");
            }
        }
        c.length("department", &self.department, 125);
        c.length("support_phone_number", &self.support_phone_number, 50);
        c.length("support_email_address", &self.support_email_address, 250);
        if let Some(e) = &self.support_email_address {
            let ok = e.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !e.contains(char::is_whitespace)
            });
            if !ok {
                c.fail("support_email_address", "an email address");
            }
        }
        c.length("org_magic", &self.org_magic, 256);
        for (field, value, len) in [
            ("language", &self.language, 2..=3),
            ("region", &self.region, 2..=2),
        ] {
            if let Some(v) = value {
                if ios {
                    c.fail(field, "applies to macOS and tvOS only");
                }
                let alpha = v.chars().all(|ch| ch.is_ascii_alphabetic());
                if !len.contains(&v.len()) || !alpha {
                    let rule = if field == "language" {
                        "an ISO 639 language code"
                    } else {
                        "an ISO 3166-1 alpha-2 region code"
                    };
                    c.fail(field, rule);
                }
            }
        }
        for key in self.setup_assistant.keys() {
            match skipkeys::lookup(key) {
                None => c.fail(
                    &format!("setup_assistant.{key}"),
                    "not a Setup Assistant skip key",
                ),
                Some(k) if k.on(self.platform).introduced.is_none() => c.fail(
                    &format!("setup_assistant.{key}"),
                    format!("not available on {:?}", self.platform),
                ),
                Some(_) => {}
            }
        }
        c.certificates("anchor_certificates", &self.anchor_certificates);
        if let Some(v) = &self.minimum_os_version
            && !os_version_is_valid(v)
        {
            c.fail(
                "minimum_os_version",
                "an OS version such as 17.4 or 14.4.1, optionally with a supplemental letter: 17.4 (a)",
            );
        }
        self.check_setup_commands(&mut c, supervised);
        if let Some(b) = &self.minimum_os_build {
            if self.minimum_os_version.is_none() {
                c.fail("minimum_os_build", "only together with minimum_os_version");
            }
            if !os_build_is_valid(b) {
                c.fail(
                    "minimum_os_build",
                    "a build version such as 21E219 or 20A242a",
                );
            }
        }
        if c.errors.is_empty() {
            Ok(notices)
        } else {
            Err(c.errors)
        }
    }

    /// Each setup command must be one Apple's schema accepts, runnable on the device
    /// channel of this platform (and supervision) during Setup Assistant.
    fn check_setup_commands(&self, c: &mut Check, supervised: bool) {
        use crate::mdm::commands_table::{self, OsFamily};
        use crate::mdm::{command_payload, command_schema};
        if self.setup_commands.len() > SETUP_COMMANDS_MAX {
            c.fail(
                "setup_commands",
                format!("at most {SETUP_COMMANDS_MAX} commands"),
            );
            return;
        }
        let bytes = serde_json::to_vec(&self.setup_commands).map_or(usize::MAX, |v| v.len());
        if bytes > SETUP_COMMANDS_MAX_BYTES {
            c.fail(
                "setup_commands",
                format!("at most {SETUP_COMMANDS_MAX_BYTES} bytes in all (as JSON)"),
            );
            return;
        }
        let (os, os_name) = match self.platform {
            Platform::Ios => (OsFamily::Ios, "iOS/iPadOS"),
            Platform::Macos => (OsFamily::Macos, "macOS"),
            Platform::Tvos => (OsFamily::Tvos, "tvOS"),
        };
        for (i, cmd) in self.setup_commands.iter().enumerate() {
            let field = format!("setup_commands[{i}]");
            let Some(rt) = cmd.get("RequestType").and_then(Value::as_str) else {
                c.fail(
                    &format!("{field}.RequestType"),
                    "required: a RequestType string",
                );
                continue;
            };
            if SETUP_COMMANDS_REFUSED.contains(&rt) {
                c.fail(
                    &format!("{field}.RequestType"),
                    format!("{rt} cannot be a setup command: it would stop or break Setup Assistant, or the server sends it itself; use a device action after enrollment"),
                );
                continue;
            }
            if command_schema::schema(rt).is_none() {
                c.fail(
                    &format!("{field}.RequestType"),
                    format!("{rt} is not a RequestType in Apple's command schemas"),
                );
                continue;
            }
            if let Some(t) = commands_table::lookup(rt) {
                match t.on(os) {
                    None => c.fail(
                        &format!("{field}.RequestType"),
                        format!("{rt} is not available on {os_name}"),
                    ),
                    Some(o) if !o.device_channel => c.fail(
                        &format!("{field}.RequestType"),
                        format!("{rt} runs on a user channel only; setup commands go to the device channel"),
                    ),
                    Some(o) if o.supervised && !supervised => c.fail(
                        &format!("{field}.RequestType"),
                        format!("{rt} requires supervision on {os_name}; this profile is not supervised"),
                    ),
                    Some(_) => {}
                }
            }
            let mut payload = cmd.clone();
            payload.remove("RequestType");
            if let Err(errs) = command_payload::payload_from_json(rt, &payload) {
                for e in errs {
                    c.fail(&format!("{field}.{}", e.key), e.problem);
                }
            }
        }
    }

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

/// The `Settings` item naming a device.
pub fn device_name_item(name: &str) -> plist::Value {
    crate::mdm::command::settings_item(
        "DeviceName",
        [("DeviceName", plist::Value::String(name.to_owned()))],
    )
}

/// Whether a dotted OS version is at least `min` (an unknown version is not).
fn at_least(os: Option<&str>, min: &str) -> bool {
    os.is_some_and(|v| {
        crate::mdm::enrollment_type::compare_versions(v, min) != std::cmp::Ordering::Less
    })
}

/// Shared iPad `Settings` items for a device running `os`: `SharedDeviceConfiguration`
/// (iPadOS 13.4+) with the keys its version takes, the deprecated
/// `MaximumResidentUsers` (before 13.4) and `PasscodeLockGracePeriod` (before 17) only
/// where they are still needed. An unknown version gets both forms: a device ignores an
/// item it does not know and answers for each item.
fn shared_ipad_items(s: &SharedIpad, os: Option<&str>) -> Vec<plist::Value> {
    use crate::mdm::command::settings_item;
    use plist::Value;
    let known = os.is_some();
    let mut items = Vec::new();
    if !known || !at_least(os, "13.4") {
        items.push(settings_item(
            "MaximumResidentUsers",
            [(
                "MaximumResidentUsers",
                Value::Integer(s.maximum_cached_users.into()),
            )],
        ));
    }
    if !known || !at_least(os, "17.0") {
        items.push(settings_item(
            "PasscodeLockGracePeriod",
            [(
                "PasscodeLockGracePeriod",
                Value::Integer(s.passcode_lock_grace_period.into()),
            )],
        ));
    }
    if !known || at_least(os, "13.4") {
        // Unknown: the current keys, as a device too new to report its version would take.
        let current = |min: &str| !known || at_least(os, min);
        let mut keys: Vec<(&str, Value)> = vec![(
            "ResidentUsers",
            Value::Integer(s.maximum_cached_users.into()),
        )];
        if let Some(q) = s.quota_size_mb {
            keys.push(("QuotaSize", Value::Integer(q.into())));
        }
        if current("14.5") {
            keys.push((
                "UserSessionTimeout",
                Value::Integer(s.user_session_timeout.into()),
            ));
            keys.push((
                "TemporarySessionOnly",
                Value::Boolean(s.temporary_session_only),
            ));
            keys.push((
                "TemporarySessionTimeout",
                Value::Integer(s.temporary_session_timeout.into()),
            ));
        }
        if current("16.0")
            && let Some(d) = s.online_authentication_grace_period_days
        {
            keys.push(("OnlineAuthenticationGracePeriod", Value::Integer(d.into())));
        }
        if current("17.0") {
            let mut policy = plist::Dictionary::new();
            policy.insert(
                "PasscodeLockGracePeriod".into(),
                Value::Integer(s.passcode_lock_grace_period.into()),
            );
            keys.push(("PasscodePolicy", Value::Dictionary(policy)));
        }
        items.push(settings_item("SharedDeviceConfiguration", keys));
    }
    items
}

/// An unsigned configuration profile (for `InstallProfile`) with the Restrictions
/// payload `allowHostPairing: false`: supervised devices then pair with no computer but
/// their supervising hosts (`supervising_host_certs`). What `allow_pairing: false` once
/// did in the Device Assignment profile, for iOS and tvOS 13 and later.
fn host_pairing_restriction() -> plist::Dictionary {
    use plist::Value;
    // The identifiers stay the same, so installing it again replaces it.
    let uuid = |_: &str| Value::String(crate::random::uuid_v4());
    let mut restriction = plist::Dictionary::new();
    for (k, v) in [
        (
            "PayloadType",
            Value::String("com.apple.applicationaccess".into()),
        ),
        ("PayloadVersion", Value::Integer(1.into())),
        (
            "PayloadIdentifier",
            Value::String("com.mdm.enrollment.host-pairing.restriction".into()),
        ),
        ("PayloadUUID", uuid("payload")),
        (
            "PayloadDisplayName",
            Value::String("Pairing with computers".into()),
        ),
        ("allowHostPairing", Value::Boolean(false)),
    ] {
        restriction.insert(k.into(), v);
    }
    let mut profile = plist::Dictionary::new();
    for (k, v) in [
        ("PayloadType", Value::String("Configuration".into())),
        ("PayloadVersion", Value::Integer(1.into())),
        (
            "PayloadIdentifier",
            Value::String("com.mdm.enrollment.host-pairing".into()),
        ),
        ("PayloadUUID", uuid("profile")),
        (
            "PayloadDisplayName",
            Value::String("Pairing with computers".into()),
        ),
        (
            "PayloadContent",
            Value::Array(vec![Value::Dictionary(restriction)]),
        ),
    ] {
        profile.insert(k.into(), v);
    }
    let mut xml = Vec::new();
    plist::to_writer_xml(&mut xml, &Value::Dictionary(profile)).expect("plist to memory");
    let mut payload = plist::Dictionary::new();
    payload.insert("Payload".into(), Value::Data(xml));
    payload
}

/// The device name a template gives a device (`{{SERIAL}}`, `{{DEVICETYPE}}`).
pub fn device_name(template: &str, serial: &str, device_type: &str) -> String {
    template
        .replace("{{SERIAL}}", serial)
        .replace("{{DEVICETYPE}}", device_type)
}

impl ProfileSpec {
    /// Commands the server sends after the first TokenUpdate of a device enrolled with
    /// this profile (before DeviceConfigured when it awaits configuration): its name from
    /// the template, the Shared iPad settings, the host-pairing restriction, the eSIM plan
    /// refresh. `os` is the device's OS version when known; Shared iPad keys follow it.
    /// `(RequestType, payload keys)`, in sending order.
    pub fn enrollment_commands(
        &self,
        serial: &str,
        device_type: &str,
        os: Option<&str>,
    ) -> Vec<(&'static str, plist::Dictionary)> {
        use plist::Value;
        let mut items = Vec::new();
        if let Some(t) = &self.device_name_template {
            items.push(device_name_item(&device_name(t, serial, device_type)));
        }
        if let (UserAffinity::Shared, Some(s)) = (self.user_affinity, &self.shared_ipad) {
            items.extend(shared_ipad_items(s, os));
        }
        let mut out = Vec::new();
        if !items.is_empty() {
            let mut payload = plist::Dictionary::new();
            payload.insert("Settings".into(), Value::Array(items));
            out.push(("Settings", payload));
        }
        if self.platform != Platform::Macos && self.pairing != Pairing::AllowAll {
            out.push(("InstallProfile", host_pairing_restriction()));
        }
        if let Some(url) = &self.esim_server_url {
            let mut payload = plist::Dictionary::new();
            payload.insert("eSIMServerURL".into(), Value::String(url.clone()));
            out.push(("RefreshCellularPlans", payload));
        }
        out
    }

    /// The name the template gives a device, if the profile has a template.
    pub fn templated_name(&self, serial: &str, device_type: &str) -> Option<String> {
        self.device_name_template
            .as_deref()
            .map(|t| device_name(t, serial, device_type))
    }

    /// The admin's setup commands as `(RequestType, payload)`, in order. A command that no
    /// longer converts (a schema change since the profile was saved) is left out and named
    /// in the second list.
    pub fn admin_setup_commands(&self) -> (Vec<(String, plist::Dictionary)>, Vec<String>) {
        let mut ok = Vec::new();
        let mut skipped = Vec::new();
        for cmd in &self.setup_commands {
            let rt = cmd
                .get("RequestType")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut payload = cmd.clone();
            payload.remove("RequestType");
            match crate::mdm::command_payload::payload_from_json(&rt, &payload) {
                Ok(d) if !rt.is_empty() => ok.push((rt, d)),
                _ => skipped.push(rt),
            }
        }
        (ok, skipped)
    }
}

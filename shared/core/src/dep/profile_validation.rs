//! The rules a DEP profile must keep before anything is sent to Apple: every offending
//! field is reported with the rule it breaks. Limits are those of Apple's error table
//! (dep-api.md §6).

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::profiles::{Pairing, ProfileSpec, UserAffinity};
use super::skipkeys::{self, Platform};

use crate::api::FieldError;

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
        if let Some(t) = &self.device_name_template
            && let Err(rule) = template_is_valid(t)
        {
            c.fail("device_name_template", rule);
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
        use crate::command;
        use crate::command::table::OsFamily;
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
            if command::schema::schema(rt).is_none() {
                c.fail(
                    &format!("{field}.RequestType"),
                    format!("{rt} is not a RequestType in Apple's command schemas"),
                );
                continue;
            }
            if let Some(t) = command::table::lookup(rt) {
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
            if let Err(errs) = command::payload::payload_from_json(rt, &payload) {
                for e in errs {
                    c.fail(&format!("{field}.{}", e.key), e.problem);
                }
            }
        }
    }
}

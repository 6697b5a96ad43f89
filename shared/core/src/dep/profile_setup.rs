//! What a DEP profile has the server send a device after its first TokenUpdate: the
//! templated device name, Shared iPad settings, the host-pairing restriction, the eSIM plan
//! refresh, and the administrator's own setup commands.

use super::profiles::{Pairing, ProfileSpec, SharedIpad, UserAffinity};
use super::skipkeys::Platform;

/// The `Settings` item naming a device.
pub fn device_name_item(name: &str) -> plist::Value {
    crate::command::build::settings_item(
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
    use crate::command::build::settings_item;
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
            match crate::command::payload::payload_from_json(&rt, &payload) {
                Ok(d) if !rt.is_empty() => ok.push((rt, d)),
                _ => skipped.push(rt),
            }
        }
        (ok, skipped)
    }
}

//! What User Enrollment allows beyond the per-command table ([`crate::command::table`]):
//! the DeviceInformation queries a user-enrolled device answers, and the configuration
//! profile payloads it accepts (Apple: "User Enrollment" and the `userenrollment` keys of Apple's schemas). Refused commands never
//! reach the device; the admin gets the reason.
//!
//! [`FORBIDDEN_QUERIES`] is Apple's YAML (`information.device.yaml`, `userenrollment:
//! mode: forbidden` per query and platform; a test keeps them equal). Apple's payload
//! schemas are not in our reference set, so [`ALLOWED_PAYLOADS`] is the list Apple
//! documents as supported in User Enrollment; anything else is refused, never dropped.

use crate::command::table::OsFamily;

#[rustfmt::skip]
pub const FORBIDDEN_QUERIES: &[(&str, &[OsFamily])] = &[
    ("UDID", &[OsFamily::Ios, OsFamily::Macos, OsFamily::Visionos]),
    ("ProvisioningUDID", &[OsFamily::Macos]),
    ("LastCloudBackupDate", &[OsFamily::Ios, OsFamily::Visionos]),
    ("AwaitingConfiguration", &[OsFamily::Ios, OsFamily::Macos, OsFamily::Visionos]),
    ("iTunesStoreAccountIsActive", &[OsFamily::Ios, OsFamily::Macos]),
    ("iTunesStoreAccountHash", &[OsFamily::Ios, OsFamily::Macos]),
    ("SerialNumber", &[OsFamily::Ios, OsFamily::Macos, OsFamily::Visionos]),
    ("IMEI", &[OsFamily::Ios]),
    ("MEID", &[OsFamily::Ios]),
    ("ModemFirmwareVersion", &[OsFamily::Ios]),
    ("IsActivationLockEnabled", &[OsFamily::Ios, OsFamily::Macos]),
    ("IsActivationLockSupported", &[OsFamily::Macos]),
    ("IsDoNotDisturbInEffect", &[OsFamily::Ios, OsFamily::Visionos]),
    ("IsCloudBackupEnabled", &[OsFamily::Ios, OsFamily::Visionos]),
    ("OSUpdateSettings", &[OsFamily::Macos]),
    ("AutoSetupAdminAccounts", &[OsFamily::Macos]),
    ("IsMDMLostModeEnabled", &[OsFamily::Ios]),
    ("MaximumResidentUsers", &[OsFamily::Ios]),
    ("EstimatedResidentUsers", &[OsFamily::Ios]),
    ("QuotaSize", &[OsFamily::Ios]),
    ("ResidentUsers", &[OsFamily::Ios]),
    ("UserSessionTimeout", &[OsFamily::Ios]),
    ("TemporarySessionTimeout", &[OsFamily::Ios]),
    ("TemporarySessionOnly", &[OsFamily::Ios]),
    ("ManagedAppleIDDefaultDomains", &[OsFamily::Ios]),
    ("OnlineAuthenticationGracePeriod", &[OsFamily::Ios]),
    ("SkipLanguageAndLocaleSetupForNewUsers", &[OsFamily::Ios]),
    ("PushToken", &[OsFamily::Ios]),
    ("ICCID", &[OsFamily::Ios]),
    ("BluetoothMAC", &[OsFamily::Ios, OsFamily::Macos, OsFamily::Visionos]),
    ("WiFiMAC", &[OsFamily::Ios, OsFamily::Macos, OsFamily::Visionos]),
    ("EthernetMAC", &[OsFamily::Macos]),
    ("CurrentCarrierNetwork", &[OsFamily::Ios]),
    ("SIMCarrierNetwork", &[OsFamily::Ios]),
    ("SubscriberCarrierNetwork", &[OsFamily::Ios]),
    ("CarrierSettingsVersion", &[OsFamily::Ios]),
    ("PhoneNumber", &[OsFamily::Ios]),
    ("DataRoamingEnabled", &[OsFamily::Ios]),
    ("VoiceRoamingEnabled", &[OsFamily::Ios]),
    ("PersonalHotspotEnabled", &[OsFamily::Ios]),
    ("IsRoaming", &[OsFamily::Ios]),
    ("SubscriberMCC", &[OsFamily::Ios]),
    ("SubscriberMNC", &[OsFamily::Ios]),
    ("CurrentMCC", &[OsFamily::Ios]),
    ("CurrentMNC", &[OsFamily::Ios]),
    ("ServiceSubscriptions", &[OsFamily::Ios]),
    ("PINRequiredForEraseDevice", &[OsFamily::Macos]),
    ("PINRequiredForDeviceLock", &[OsFamily::Macos]),
    ("SoftwareUpdateDeviceID", &[OsFamily::Ios, OsFamily::Macos, OsFamily::Visionos]),
    ("SoftwareUpdateSettings", &[OsFamily::Ios]),
    ("AccessibilitySettings", &[OsFamily::Ios]),
    ("EACSPreflight", &[OsFamily::Macos]),
];

use OsFamily::{Ios, Macos, Visionos};

/// Payload types a user-enrolled device installs, with the name admins know them by.
#[rustfmt::skip]
pub const ALLOWED_PAYLOADS: &[(&str, &str, &[OsFamily])] = &[
    ("com.apple.caldav.account", "CalDAV", &[Ios, Macos, Visionos]),
    ("com.apple.carddav.account", "CardDAV", &[Ios, Macos, Visionos]),
    ("com.apple.eas.account", "Exchange ActiveSync", &[Ios, Macos, Visionos]),
    ("com.apple.google-oauth", "Google account", &[Ios, Visionos]),
    ("com.apple.ldap.account", "LDAP", &[Ios, Macos, Visionos]),
    ("com.apple.mail.managed", "Mail", &[Ios, Macos, Visionos]),
    ("com.apple.subscribedcalendar.account", "Subscribed calendars", &[Ios, Macos, Visionos]),
    ("com.apple.security.acme", "ACME certificate", &[Ios, Macos, Visionos]),
    ("com.apple.security.pkcs1", "Certificate", &[Ios, Macos, Visionos]),
    ("com.apple.security.pkcs12", "Identity (PKCS#12)", &[Ios, Macos, Visionos]),
    ("com.apple.security.pem", "Certificate (PEM)", &[Ios, Macos, Visionos]),
    ("com.apple.security.root", "Root certificate", &[Ios, Macos, Visionos]),
    ("com.apple.security.scep", "SCEP", &[Ios, Macos, Visionos]),
    ("com.apple.vpn.managed.applayer", "Per-app VPN", &[Ios, Macos, Visionos]),
    ("com.apple.vpn.managed.appmapping", "Per-app VPN app mapping", &[Macos]),
    ("com.apple.wifi.managed", "Wi-Fi", &[Ios, Visionos]),
    ("com.apple.webClip.managed", "Web clip", &[Ios, Visionos]),
    ("com.apple.extensiblesso", "Single sign-on extension", &[Ios, Macos, Visionos]),
    ("com.apple.domains", "Managed domains", &[Ios, Visionos]),
    ("com.apple.mobiledevice.passwordpolicy", "Passcode", &[Ios, Visionos]),
    ("com.apple.applicationaccess", "Restrictions", &[Ios, Visionos]),
    ("com.apple.font", "Font", &[Ios, Visionos]),
    ("com.apple.relay.managed", "Relay", &[Ios, Macos, Visionos]),
];

/// Names admins know other payload types by, for refusals.
const KNOWN_NAMES: &[(&str, &str)] = &[
    ("com.apple.vpn.managed", "VPN"),
    (
        "com.apple.syspolicy.kernel-extension-policy",
        "Kernel extensions",
    ),
    ("com.apple.system-extension-policy", "System extensions"),
    (
        "com.apple.TCC.configuration-profile-policy",
        "Privacy preferences",
    ),
    ("com.apple.SoftwareUpdate", "Software updates"),
    ("com.apple.MCX.FileVault2", "FileVault"),
    ("com.apple.security.firewall", "Firewall"),
    ("com.apple.systempolicy.control", "System policy"),
    ("com.apple.MCX", "Time server / energy saver"),
    ("com.apple.applicationaccess.new", "Allowed apps"),
    ("com.apple.dnsSettings.managed", "DNS settings"),
    ("com.apple.notificationsettings", "Notifications"),
    ("com.apple.mdm", "MDM"),
];

/// Queries a user-enrolled device on `os` must not be asked (`None`: platform unknown,
/// every platform's limits apply).
pub fn refused_queries(queries: &[String], os: Option<OsFamily>) -> Vec<String> {
    queries
        .iter()
        .filter(|q| {
            FORBIDDEN_QUERIES
                .iter()
                .any(|(k, on)| k == q && os.is_none_or(|os| on.contains(&os)))
        })
        .cloned()
        .collect()
}

/// Why a payload type cannot be installed under User Enrollment on `os`, if it cannot.
pub fn payload_refusal(payload_type: &str, os: Option<OsFamily>) -> Option<String> {
    let allowed = ALLOWED_PAYLOADS.iter().find(|(t, _, _)| *t == payload_type);
    if let Some((_, _, on)) = allowed
        && os.is_none_or(|os| on.contains(&os))
    {
        return None;
    }
    let name = allowed
        .map(|(_, n, _)| *n)
        .or_else(|| {
            KNOWN_NAMES
                .iter()
                .find(|(t, _)| *t == payload_type)
                .map(|(_, n)| *n)
        })
        .unwrap_or("Payload");
    let place = os.map_or("User Enrollment".to_owned(), |os| {
        format!("User Enrollment on {}", os.label())
    });
    Some(format!(
        "{name} ({payload_type}) - this is not a valid payload under {place}: a personally owned device only accepts the payloads Apple allows there"
    ))
}

/// The `PayloadType`s of a configuration profile (XML or binary plist, or CMS-signed).
pub fn payload_types(profile: &[u8]) -> Result<Vec<String>, String> {
    let content: Vec<u8> = if profile.first() == Some(&0x30) {
        let signed = mdm_crypto::verify_signed_data(profile, None)
            .map_err(|e| format!("the signed profile does not verify: {e}"))?;
        signed
            .content()
            .ok_or("the signed profile has no content")?
            .to_vec()
    } else {
        profile.to_vec()
    };
    let v: plist::Value =
        plist::from_bytes(&content).map_err(|e| format!("not a configuration profile: {e}"))?;
    let top = v
        .as_dictionary()
        .ok_or("not a configuration profile: no top-level dictionary")?;
    let items = top
        .get("PayloadContent")
        .and_then(plist::Value::as_array)
        .ok_or("not a configuration profile: no PayloadContent array")?;
    items
        .iter()
        .map(|i| {
            i.as_dictionary()
                .and_then(|d| d.get("PayloadType"))
                .and_then(plist::Value::as_string)
                .map(str::to_owned)
                .ok_or_else(|| "a payload without PayloadType".to_owned())
        })
        .collect()
}

//! Setup Assistant panes an enrollment profile can skip (`skip_setup_items`), per
//! platform. Generated from Apple's `other/skipkeys.yaml` (each key inherits the
//! payload-level `supportedOS`, overridden field by field by its own); the test
//! `skipkeys_table_matches_apple_yaml` re-derives it from the YAML, so the two cannot drift.

/// Availability of a key on one platform: `introduced` None means not available there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avail {
    pub introduced: Option<&'static str>,
    pub deprecated: Option<&'static str>,
}

const NA: Avail = Avail {
    introduced: None,
    deprecated: None,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkipKey {
    pub key: &'static str,
    pub ios: Avail,
    pub macos: Avail,
    pub tvos: Avail,
}

/// Platforms an enrollment profile targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// iOS and iPadOS.
    Ios,
    Macos,
    Tvos,
}

impl SkipKey {
    pub fn on(&self, platform: Platform) -> Avail {
        match platform {
            Platform::Ios => self.ios,
            Platform::Macos => self.macos,
            Platform::Tvos => self.tvos,
        }
    }
}

pub fn lookup(key: &str) -> Option<&'static SkipKey> {
    SKIP_KEYS.iter().find(|k| k.key == key)
}

#[rustfmt::skip]
pub const SKIP_KEYS: &[SkipKey] = &[
    SkipKey { key: "Accessibility", ios: NA, macos: Avail { introduced: Some("11.0"), deprecated: None }, tvos: NA },
    SkipKey { key: "ActionButton", ios: Avail { introduced: Some("17.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "Android", ios: Avail { introduced: Some("9.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "Appearance", ios: Avail { introduced: Some("13.0"), deprecated: None }, macos: Avail { introduced: Some("10.14"), deprecated: None }, tvos: NA },
    SkipKey { key: "AppleID", ios: Avail { introduced: Some("7.0"), deprecated: None }, macos: Avail { introduced: Some("10.9"), deprecated: None }, tvos: Avail { introduced: Some("10.2"), deprecated: None } },
    SkipKey { key: "AppStore", ios: Avail { introduced: Some("14.3"), deprecated: None }, macos: Avail { introduced: Some("11.1"), deprecated: None }, tvos: NA },
    SkipKey { key: "Biometric", ios: Avail { introduced: Some("8.1"), deprecated: None }, macos: Avail { introduced: Some("10.12.4"), deprecated: None }, tvos: NA },
    SkipKey { key: "CameraButton", ios: Avail { introduced: Some("18.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "DeviceToDeviceMigration", ios: Avail { introduced: Some("12.4"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "Diagnostics", ios: Avail { introduced: Some("7.0"), deprecated: None }, macos: Avail { introduced: Some("10.9"), deprecated: None }, tvos: Avail { introduced: Some("10.2"), deprecated: None } },
    SkipKey { key: "DisplayTone", ios: Avail { introduced: Some("9.3.2"), deprecated: Some("15.0") }, macos: Avail { introduced: Some("10.13.6"), deprecated: Some("12.0") }, tvos: NA },
    SkipKey { key: "EnableLockdownMode", ios: Avail { introduced: Some("17.1"), deprecated: None }, macos: Avail { introduced: Some("14.0"), deprecated: None }, tvos: NA },
    SkipKey { key: "FileVault", ios: NA, macos: Avail { introduced: Some("10.10"), deprecated: None }, tvos: NA },
    SkipKey { key: "HomeButtonSensitivity", ios: Avail { introduced: Some("10.0"), deprecated: Some("15.0") }, macos: NA, tvos: NA },
    SkipKey { key: "iCloudDiagnostics", ios: NA, macos: Avail { introduced: Some("10.12.4"), deprecated: None }, tvos: NA },
    SkipKey { key: "iCloudStorage", ios: NA, macos: Avail { introduced: Some("10.13.4"), deprecated: None }, tvos: NA },
    SkipKey { key: "iMessageAndFaceTime", ios: Avail { introduced: Some("12.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "Intelligence", ios: Avail { introduced: Some("18.0"), deprecated: None }, macos: Avail { introduced: Some("15.0"), deprecated: None }, tvos: NA },
    SkipKey { key: "Keyboard", ios: Avail { introduced: Some("13.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "Location", ios: Avail { introduced: Some("7.0"), deprecated: None }, macos: Avail { introduced: Some("10.11"), deprecated: None }, tvos: Avail { introduced: Some("10.2"), deprecated: None } },
    SkipKey { key: "MessagingActivationUsingPhoneNumber", ios: Avail { introduced: Some("10.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "OnBoarding", ios: Avail { introduced: Some("11.0"), deprecated: Some("14.0") }, macos: NA, tvos: NA },
    SkipKey { key: "Passcode", ios: Avail { introduced: Some("7.0"), deprecated: None }, macos: Avail { introduced: Some("10.9"), deprecated: None }, tvos: NA },
    SkipKey { key: "Payment", ios: Avail { introduced: Some("8.1"), deprecated: None }, macos: Avail { introduced: Some("10.12.4"), deprecated: None }, tvos: NA },
    SkipKey { key: "Privacy", ios: Avail { introduced: Some("11.3"), deprecated: None }, macos: Avail { introduced: Some("10.13.4"), deprecated: None }, tvos: Avail { introduced: Some("11.3"), deprecated: None } },
    SkipKey { key: "Restore", ios: Avail { introduced: Some("7.0"), deprecated: None }, macos: Avail { introduced: Some("10.9"), deprecated: None }, tvos: NA },
    SkipKey { key: "RestoreCompleted", ios: Avail { introduced: Some("14.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "ScreenSaver", ios: NA, macos: NA, tvos: Avail { introduced: Some("10.2"), deprecated: None } },
    SkipKey { key: "Safety", ios: Avail { introduced: Some("16.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "ScreenTime", ios: Avail { introduced: Some("12.0"), deprecated: None }, macos: Avail { introduced: Some("10.15"), deprecated: None }, tvos: NA },
    SkipKey { key: "SIMSetup", ios: Avail { introduced: Some("12.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "Siri", ios: Avail { introduced: Some("7.0"), deprecated: None }, macos: Avail { introduced: Some("10.12"), deprecated: None }, tvos: Avail { introduced: Some("10.2"), deprecated: None } },
    SkipKey { key: "SoftwareUpdate", ios: Avail { introduced: Some("12.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "SpokenLanguage", ios: Avail { introduced: Some("13.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "TapToSetup", ios: NA, macos: NA, tvos: Avail { introduced: Some("10.2"), deprecated: None } },
    SkipKey { key: "TermsOfAddress", ios: Avail { introduced: Some("16.0"), deprecated: None }, macos: Avail { introduced: Some("13.0"), deprecated: None }, tvos: NA },
    SkipKey { key: "TOS", ios: Avail { introduced: Some("7.0"), deprecated: None }, macos: Avail { introduced: Some("10.9"), deprecated: None }, tvos: Avail { introduced: Some("10.2"), deprecated: None } },
    SkipKey { key: "TVHomeScreenSync", ios: NA, macos: NA, tvos: Avail { introduced: Some("11.0"), deprecated: None } },
    SkipKey { key: "TVProviderSignIn", ios: NA, macos: NA, tvos: Avail { introduced: Some("11.0"), deprecated: None } },
    SkipKey { key: "TVRoom", ios: NA, macos: NA, tvos: Avail { introduced: Some("11.4"), deprecated: None } },
    SkipKey { key: "UpdateCompleted", ios: Avail { introduced: Some("14.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "Wallpaper", ios: NA, macos: Avail { introduced: Some("14.1"), deprecated: None }, tvos: NA },
    SkipKey { key: "WatchMigration", ios: Avail { introduced: Some("11.0"), deprecated: None }, macos: NA, tvos: NA },
    SkipKey { key: "Welcome", ios: Avail { introduced: Some("13.0"), deprecated: None }, macos: Avail { introduced: Some("15.0"), deprecated: None }, tvos: NA },
    SkipKey { key: "Zoom", ios: Avail { introduced: Some("8.3"), deprecated: Some("17.0") }, macos: NA, tvos: NA },
];

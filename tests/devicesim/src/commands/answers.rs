//! What the device answers: a scripted responder's answer, else a default one from its
//! fake facts (DeviceInformation, SecurityInfo, the profile and app lists, installing and
//! removing profiles and apps, Settings; `Error` for a command it does not know).

use plist::{Dictionary, Value};

use super::command::{Command, Status};
use crate::{App, Device, DeviceKind, InstalledProfile, random_uuid};

fn dict<const N: usize>(entries: [(&str, Value); N]) -> Dictionary {
    let mut d = Dictionary::new();
    for (k, v) in entries {
        d.insert(k.into(), v);
    }
    d
}

/// `ErrorChain` of one error.
pub fn error_chain(code: i64, domain: &str, description: &str) -> Value {
    Value::Array(vec![Value::Dictionary(dict([
        ("ErrorCode", code.into()),
        ("ErrorDomain", domain.into()),
        ("LocalizedDescription", description.into()),
        ("USEnglishDescription", description.into()),
    ]))])
}

fn mac_address(seed: &str, salt: u8) -> String {
    let h = seeded_digest(seed.as_bytes(), salt);
    h[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn seeded_digest(data: &[u8], salt: u8) -> Vec<u8> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update([salt]);
    h.update(data);
    h.finalize().to_vec()
}

impl Device {
    /// Everything DeviceInformation can answer: the device's own facts, then
    /// [`Device::facts`] on top.
    pub fn device_information(&self) -> Dictionary {
        let mut d = dict([
            ("UDID", self.udid.clone().into()),
            ("SerialNumber", self.serial.clone().into()),
            ("DeviceName", self.device_name.clone().into()),
            ("OSVersion", self.os_version.clone().into()),
            ("BuildVersion", self.build_version.clone().into()),
            ("ProductName", self.product.clone().into()),
            ("Model", self.model.clone().into()),
            ("ModelName", self.model_name.clone().into()),
            ("IsSupervised", self.supervised.into()),
            ("AwaitingConfiguration", self.awaiting_configuration.into()),
            ("IsActivationLockEnabled", false.into()),
            ("IsDeviceLocatorServiceEnabled", false.into()),
            ("IsCloudBackupEnabled", false.into()),
            ("DeviceCapacity", 128.0.into()),
            ("AvailableDeviceCapacity", 96.5.into()),
            ("WiFiMAC", mac_address(&self.udid, 1).into()),
            ("BluetoothMAC", mac_address(&self.udid, 2).into()),
        ]);
        if self.kind.is_ios() {
            d.insert("BatteryLevel".into(), 0.8.into());
            d.insert("IsMDMLostModeEnabled".into(), false.into());
        }
        if let Some(imei) = &self.imei {
            d.insert("IMEI".into(), imei.clone().into());
        }
        for (k, v) in &self.facts {
            d.insert(k.clone(), v.clone());
        }
        if self.enrollment_id.is_some() {
            // Under User Enrollment the device keeps its identifiers to itself.
            for k in [
                "UDID",
                "SerialNumber",
                "IMEI",
                "MEID",
                "WiFiMAC",
                "BluetoothMAC",
                "EthernetMAC",
                "DeviceName",
            ] {
                d.remove(k);
            }
        }
        d
    }

    fn certificate_list(&self) -> Vec<Value> {
        let mut out = Vec::new();
        if let Some(id) = &self.identity {
            out.push(Value::Dictionary(dict([
                (
                    "CommonName",
                    id.certificate.common_name().unwrap_or_default().into(),
                ),
                ("Data", Value::Data(id.certificate.der().to_vec())),
                ("IsIdentity", true.into()),
            ])));
        }
        for c in self.profile.iter().flat_map(|p| p.ca_certs.iter()) {
            out.push(Value::Dictionary(dict([
                ("CommonName", c.common_name().unwrap_or_default().into()),
                ("Data", Value::Data(c.der().to_vec())),
                ("IsIdentity", false.into()),
            ])));
        }
        out
    }

    /// What the device answers to `cmd` unless a responder is set: a plausible result
    /// for the common query and action commands, `Error` ("Unknown command") otherwise.
    pub fn default_response(&mut self, cmd: &Command) -> (Status, Dictionary) {
        let ack = |d: Dictionary| (Status::Acknowledged, d);
        match cmd.request_type.as_str() {
            "DeviceInformation" => {
                let all = self.device_information();
                let queries: Option<Vec<String>> = cmd
                    .payload
                    .get("Queries")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|q| q.as_string().map(str::to_owned))
                            .collect()
                    });
                let answers: Dictionary = match queries {
                    Some(q) => all
                        .into_iter()
                        .filter(|(k, _)| q.iter().any(|x| x == k))
                        .collect(),
                    None => all,
                };
                ack(dict([("QueryResponses", Value::Dictionary(answers))]))
            }
            "SecurityInfo" => {
                let info = if self.kind == DeviceKind::Mac {
                    dict([
                        ("FDE_Enabled", true.into()),
                        ("SystemIntegrityProtectionEnabled", true.into()),
                        (
                            "FirewallSettings",
                            Value::Dictionary(dict([("FirewallEnabled", true.into())])),
                        ),
                    ])
                } else {
                    dict([
                        ("HardwareEncryptionCaps", 3.into()),
                        ("PasscodePresent", true.into()),
                        ("PasscodeCompliant", true.into()),
                        ("PasscodeCompliantWithProfiles", true.into()),
                    ])
                };
                ack(dict([("SecurityInfo", Value::Dictionary(info))]))
            }
            "ProfileList" => {
                let list = self
                    .installed_profiles
                    .iter()
                    .map(|p| {
                        let mut d = dict([
                            ("PayloadIdentifier", p.identifier.clone().into()),
                            ("PayloadUUID", p.uuid.clone().into()),
                            ("PayloadVersion", 1.into()),
                            ("IsManaged", p.is_managed.into()),
                            ("IsEncrypted", false.into()),
                        ]);
                        if let Some(n) = &p.display_name {
                            d.insert("PayloadDisplayName".into(), n.clone().into());
                        }
                        if let Some(o) = &p.organization {
                            d.insert("PayloadOrganization".into(), o.clone().into());
                        }
                        Value::Dictionary(d)
                    })
                    .collect();
                ack(dict([("ProfileList", Value::Array(list))]))
            }
            "InstalledApplicationList" => {
                let list = self
                    .apps
                    .iter()
                    .map(|a| {
                        Value::Dictionary(dict([
                            ("Identifier", a.identifier.clone().into()),
                            ("Name", a.name.clone().into()),
                            ("Version", a.version.clone().into()),
                            ("ShortVersion", a.short_version.clone().into()),
                            ("BundleSize", 48_123_904.into()),
                        ]))
                    })
                    .collect();
                ack(dict([("InstalledApplicationList", Value::Array(list))]))
            }
            "CertificateList" => ack(dict([(
                "CertificateList",
                Value::Array(self.certificate_list()),
            )])),
            "ProvisioningProfileList" => {
                ack(dict([("ProvisioningProfileList", Value::Array(vec![]))]))
            }
            "ManagedApplicationList" => ack(dict([(
                "ManagedApplicationList",
                Value::Dictionary(Dictionary::new()),
            )])),
            "AvailableOSUpdates" => ack(dict([("AvailableOSUpdates", Value::Array(vec![]))])),
            "OSUpdateStatus" => ack(dict([("OSUpdateStatus", Value::Array(vec![]))])),
            "UserList" => ack(dict([("Users", Value::Array(vec![]))])),
            "Restrictions" => ack(dict([
                ("GlobalRestrictions", Value::Dictionary(Dictionary::new())),
                ("ProfileRestrictions", Value::Dictionary(Dictionary::new())),
            ])),
            "ActivationLockBypassCode" => ack(dict([(
                "ActivationLockBypassCode",
                "Q0A8F-5W1HR-DK4KD-9H3P2-J1GQ".into(),
            )])),
            "DeviceConfigured" => {
                self.awaiting_configuration = false;
                ack(Dictionary::new())
            }
            "InstallProfile" => match cmd.payload.get("Payload") {
                Some(Value::Data(bytes)) => match installed_profile(bytes) {
                    Some(p) => {
                        self.installed_profiles
                            .retain(|i| i.identifier != p.identifier);
                        self.installed_profiles.push(p);
                        ack(Dictionary::new())
                    }
                    None => (
                        Status::Error,
                        dict([(
                            "ErrorChain",
                            error_chain(1000, "MCProfileErrorDomain", "The profile is malformed."),
                        )]),
                    ),
                },
                _ => (Status::CommandFormatError, Dictionary::new()),
            },
            "RemoveProfile" => {
                let id = cmd.payload.get("Identifier").and_then(Value::as_string);
                match id {
                    Some(id) if self.installed_profiles.iter().any(|p| p.identifier == id) => {
                        self.installed_profiles.retain(|p| p.identifier != id);
                        ack(Dictionary::new())
                    }
                    Some(_) => (
                        Status::Error,
                        dict([(
                            "ErrorChain",
                            error_chain(
                                1001,
                                "MCProfileErrorDomain",
                                "The profile is not installed.",
                            ),
                        )]),
                    ),
                    None => (Status::CommandFormatError, Dictionary::new()),
                }
            }
            "InstallApplication" => {
                let identifier = cmd
                    .payload
                    .get("Identifier")
                    .and_then(Value::as_string)
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        let id = cmd
                            .payload
                            .get("iTunesStoreID")
                            .and_then(Value::as_unsigned_integer)
                            .unwrap_or(0);
                        format!("com.example.store.{id}")
                    });
                if !self.apps.iter().any(|a| a.identifier == identifier) {
                    self.apps.push(App {
                        identifier: identifier.clone(),
                        name: identifier.clone(),
                        version: "1".into(),
                        short_version: "1.0".into(),
                    });
                }
                ack(dict([
                    ("Identifier", identifier.into()),
                    ("State", "Queued".into()),
                ]))
            }
            "RemoveApplication" => {
                if let Some(id) = cmd.payload.get("Identifier").and_then(Value::as_string) {
                    self.apps.retain(|a| a.identifier != id);
                }
                ack(Dictionary::new())
            }
            "Settings" => {
                let items: Vec<Dictionary> = cmd
                    .payload
                    .get("Settings")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|i| i.as_dictionary().cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                let mut results = Vec::new();
                for i in &items {
                    let Some(item) = i.get("Item").and_then(Value::as_string) else {
                        continue;
                    };
                    // A supervised device takes the name it is given.
                    if item == "DeviceName"
                        && let Some(name) = i.get("DeviceName").and_then(Value::as_string)
                    {
                        self.device_name = name.to_owned();
                    }
                    results.push(Value::Dictionary(dict([
                        ("Item", item.into()),
                        ("Status", "Acknowledged".into()),
                    ])));
                }
                ack(dict([("Settings", Value::Array(results))]))
            }
            "DeviceLock"
            | "RestartDevice"
            | "ShutDownDevice"
            | "EraseDevice"
            | "ClearPasscode"
            | "EnableLostMode"
            | "DisableLostMode"
            | "PlayLostModeSound"
            | "DeviceLocation"
            | "RefreshCellularPlans"
            | "DeclarativeManagement"
            | "SetRecoveryLock"
            | "AccountConfiguration"
            | "SetAutoAdminPassword"
            | "ScheduleOSUpdate"
            | "ScheduleOSUpdateScan"
            | "ClearRestrictionsPassword"
            | "EnableRemoteDesktop"
            | "DisableRemoteDesktop"
            | "ValidateApplications"
            | "InstallProvisioningProfile"
            | "RemoveProvisioningProfile"
            | "InstallEnterpriseApplication"
            | "ManagedApplicationConfiguration"
            | "ManagedApplicationAttributes"
            | "ManagedApplicationFeedback"
            | "RotateFileVaultKey"
            | "UnlockUserAccount"
            | "DeleteUser"
            | "LogOutUser"
            | "UserConfigured" => ack(Dictionary::new()),
            _ => (
                Status::Error,
                dict([(
                    "ErrorChain",
                    error_chain(12021, "MCMDMErrorDomain", "Unknown command"),
                )]),
            ),
        }
    }

    /// The answer to `cmd`: a scripted responder's, else [`Device::default_response`].
    pub fn respond(&mut self, cmd: &Command) -> (Status, Dictionary) {
        if let Some(mut r) = self.responders.remove(&cmd.request_type) {
            let out = r(cmd);
            self.responders.insert(cmd.request_type.clone(), r);
            return out;
        }
        self.default_response(cmd)
    }
}

/// The profile in an InstallProfile payload (signed or plain).
fn installed_profile(bytes: &[u8]) -> Option<InstalledProfile> {
    let content = match mdm_crypto::verify_signed_data(bytes, None) {
        Ok(m) => m.content()?.to_vec(),
        Err(_) => bytes.to_vec(),
    };
    let d = plist::from_bytes::<Value>(&content)
        .ok()?
        .into_dictionary()?;
    Some(InstalledProfile {
        identifier: d.get("PayloadIdentifier")?.as_string()?.to_owned(),
        uuid: d
            .get("PayloadUUID")
            .and_then(Value::as_string)
            .map_or_else(random_uuid, str::to_owned),
        display_name: d
            .get("PayloadDisplayName")
            .and_then(Value::as_string)
            .map(str::to_owned),
        organization: d
            .get("PayloadOrganization")
            .and_then(Value::as_string)
            .map(str::to_owned),
        is_managed: true,
    })
}

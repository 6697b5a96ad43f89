//! The command loop (Apple: "Commands and Queries"): `Idle`, the command in the answer,
//! the device's result, the next command. Default answers come from the device's fake
//! facts; [`Device::set_responder`] scripts others.

use plist::{Dictionary, Value};

use crate::checkin::{REPORT_CONTENT_TYPE, User};
use crate::http::Http;
use crate::{App, Device, DeviceKind, InstalledProfile, SimError, random_uuid, to_xml};

/// Commands one [`Device::run_until_idle`] answers at most (a server that never stops
/// sending commands is a bug the loop must not hide by spinning forever).
pub const MAX_COMMANDS_PER_SESSION: usize = 10_000;

/// A report with its `Mdm-Signature`, ready to be sent (again): see
/// [`Device::signed_idle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReport {
    /// The ServerURL.
    pub url: String,
    /// The report's `Status`.
    pub status: String,
    pub body: Vec<u8>,
    /// None when the profile does not ask for signed messages.
    pub signature: Option<String>,
}

/// A command as delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub uuid: String,
    pub request_type: String,
    /// The `Command` dictionary without `RequestType`.
    pub payload: Dictionary,
    /// The plist as received.
    pub raw: Vec<u8>,
}

impl Command {
    /// Parses a server answer that carries a command.
    pub fn parse(body: &[u8]) -> Result<Command, SimError> {
        let bad = |m: &str| SimError::Protocol(format!("command plist: {m}"));
        let top = plist::from_bytes::<Value>(body)
            .map_err(|e| bad(&e.to_string()))?
            .into_dictionary()
            .ok_or_else(|| bad("not a dictionary"))?;
        let uuid = top
            .get("CommandUUID")
            .and_then(Value::as_string)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("CommandUUID missing"))?
            .to_owned();
        let mut payload = top
            .get("Command")
            .and_then(Value::as_dictionary)
            .cloned()
            .ok_or_else(|| bad("Command dictionary missing"))?;
        let request_type = payload
            .remove("RequestType")
            .and_then(Value::into_string)
            .ok_or_else(|| bad("RequestType missing"))?;
        Ok(Command {
            uuid,
            request_type,
            payload,
            raw: body.to_vec(),
        })
    }
}

/// The status a device reports for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Acknowledged,
    Error,
    NotNow,
    CommandFormatError,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Acknowledged => "Acknowledged",
            Status::Error => "Error",
            Status::NotNow => "NotNow",
            Status::CommandFormatError => "CommandFormatError",
        }
    }
}

/// A command the device answered, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub command: Command,
    pub status: Status,
    pub response: Dictionary,
}

/// Scripted answer to a RequestType: status and response keys. `Sync` keeps [`Device`]
/// `Sync`, so that its `&self` exchanges can run in spawned tasks.
pub type Responder = Box<dyn FnMut(&Command) -> (Status, Dictionary) + Send + Sync>;

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

    fn report_dict(&self, user: Option<&User>, status: &str) -> Dictionary {
        let mut d = Dictionary::new();
        let (key, id) = self.channel_id();
        d.insert(key.into(), id.to_owned().into());
        if let Some(u) = user {
            d.insert("UserID".into(), u.user_id.clone().into());
            d.insert("UserShortName".into(), u.short_name.clone().into());
            d.insert("UserLongName".into(), u.long_name.clone().into());
        }
        d.insert("Status".into(), status.into());
        d
    }

    /// A report to the ServerURL, signed.
    fn sign_report(&self, body: Dictionary) -> Result<SignedReport, SimError> {
        let url = self
            .mdm
            .as_ref()
            .ok_or_else(|| SimError::NotReady("no MDM settings: install a profile first".into()))?
            .server_url
            .clone();
        let status = body
            .get("Status")
            .and_then(Value::as_string)
            .unwrap_or_default()
            .to_owned();
        let body = to_xml(body);
        let signature = self.sign_body(&body)?;
        Ok(SignedReport {
            url,
            status,
            body,
            signature,
        })
    }

    /// PUTs a report to the ServerURL; the next command or None for an empty answer.
    async fn report(
        &self,
        http: &impl Http,
        body: Dictionary,
    ) -> Result<Option<Command>, SimError> {
        let r = self.sign_report(body)?;
        self.send_signed(http, &r).await
    }

    /// `Status: Idle` on the device channel: the first queued command, or None.
    pub async fn idle(&self, http: &impl Http) -> Result<Option<Command>, SimError> {
        self.report(http, self.report_dict(None, "Idle")).await
    }

    /// The device channel's `Idle` report, signed once for [`Device::send_signed`]: its
    /// body never changes, so neither does its `Mdm-Signature`.
    pub fn signed_idle(&self) -> Result<SignedReport, SimError> {
        self.sign_report(self.report_dict(None, "Idle"))
    }

    /// Sends a report signed beforehand; the next command or None for an empty answer.
    pub async fn send_signed(
        &self,
        http: &impl Http,
        r: &SignedReport,
    ) -> Result<Option<Command>, SimError> {
        let mut headers = vec![("content-type", REPORT_CONTENT_TYPE)];
        if let Some(s) = &r.signature {
            headers.push(("mdm-signature", s.as_str()));
        }
        let resp = http.send("PUT", &r.url, &headers, r.body.clone()).await?;
        if resp.status != 200 {
            return Err(SimError::Status {
                what: format!("{} report", r.status),
                status: resp.status,
                body: resp.body_text(),
            });
        }
        if resp.body.is_empty() {
            return Ok(None);
        }
        Command::parse(&resp.body).map(Some)
    }

    /// Reports `status` for `cmd` with `response` keys; returns the next command. An
    /// `Error` without `ErrorChain` gets a generic one.
    pub async fn answer(
        &mut self,
        http: &impl Http,
        cmd: &Command,
        status: Status,
        response: Dictionary,
    ) -> Result<Option<Command>, SimError> {
        self.answer_on(http, None, cmd, status, response).await
    }

    async fn answer_on(
        &mut self,
        http: &impl Http,
        user: Option<&User>,
        cmd: &Command,
        status: Status,
        response: Dictionary,
    ) -> Result<Option<Command>, SimError> {
        let d = self.answer_dict(user, cmd, status, &response);
        let next = self.report(http, d).await?;
        self.history.push(Answered {
            command: cmd.clone(),
            status,
            response,
        });
        Ok(next)
    }

    /// The report that answers `cmd` with `status` and `response` keys.
    fn answer_dict(
        &self,
        user: Option<&User>,
        cmd: &Command,
        status: Status,
        response: &Dictionary,
    ) -> Dictionary {
        let mut d = self.report_dict(user, status.as_str());
        d.insert("CommandUUID".into(), cmd.uuid.clone().into());
        d.insert("RequestType".into(), cmd.request_type.clone().into());
        for (k, v) in response {
            d.insert(k.clone(), v.clone());
        }
        if status == Status::Error && !d.contains_key("ErrorChain") {
            d.insert(
                "ErrorChain".into(),
                error_chain(-1, "SimulatedDeviceErrorDomain", "Simulated failure"),
            );
        }
        d
    }

    /// The answer to `cmd` ([`Device::respond`]), signed, to be sent with
    /// [`Device::send_signed`] (e.g. at the same moment as a check-in from elsewhere).
    pub fn signed_answer(&mut self, cmd: &Command) -> Result<SignedReport, SimError> {
        let (status, response) = self.respond(cmd);
        self.sign_report(self.answer_dict(None, cmd, status, &response))
    }

    /// Signs ahead of time the device channel's `Idle` and the answers
    /// ([`Device::respond`]) it will give to `commands` (known by their CommandUUIDs before
    /// they are queued), so that sending them later costs no RSA signature. A report whose
    /// bytes turn out different is signed when sent, as always.
    pub fn presign_answers(&mut self, commands: &[Command]) -> Result<(), SimError> {
        let idle = to_xml(self.report_dict(None, "Idle"));
        self.presign(&idle)?;
        for cmd in commands {
            let (status, response) = self.respond(cmd);
            let body = to_xml(self.answer_dict(None, cmd, status, &response));
            self.presign(&body)?;
        }
        Ok(())
    }

    /// `Idle`, then answers every command ([`Device::respond`]) until the server answers
    /// empty. Returns what was answered this session.
    pub async fn run_until_idle(&mut self, http: &impl Http) -> Result<Vec<Answered>, SimError> {
        let first = self.idle(http).await?;
        self.drain(http, None, first).await
    }

    async fn drain(
        &mut self,
        http: &impl Http,
        user: Option<&User>,
        mut next: Option<Command>,
    ) -> Result<Vec<Answered>, SimError> {
        let start = self.history.len();
        let mut n = 0;
        while let Some(cmd) = next {
            n += 1;
            if n > MAX_COMMANDS_PER_SESSION {
                return Err(SimError::Protocol(format!(
                    "more than {MAX_COMMANDS_PER_SESSION} commands in one session"
                )));
            }
            let (status, response) = self.respond(&cmd);
            next = self.answer_on(http, user, &cmd, status, response).await?;
        }
        Ok(self.history[start..].to_vec())
    }

    /// `Idle` on a macOS user channel.
    pub async fn user_idle(
        &self,
        http: &impl Http,
        user: &User,
    ) -> Result<Option<Command>, SimError> {
        self.report(http, self.report_dict(Some(user), "Idle"))
            .await
    }

    /// Reports a result on a macOS user channel.
    pub async fn user_answer(
        &mut self,
        http: &impl Http,
        user: &User,
        cmd: &Command,
        status: Status,
        response: Dictionary,
    ) -> Result<Option<Command>, SimError> {
        self.answer_on(http, Some(user), cmd, status, response)
            .await
    }

    /// [`Device::run_until_idle`] on a user channel.
    pub async fn user_run_until_idle(
        &mut self,
        http: &impl Http,
        user: &User,
    ) -> Result<Vec<Answered>, SimError> {
        let first = self.user_idle(http, user).await?;
        self.drain(http, Some(user), first).await
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

//! `mdm-devicesim`: a scriptable Apple device for tests and benchmarks. It plays the
//! device's side of every step of an ADE (zero-touch) enrollment and of the command loop,
//! over any [`Http`] transport (e.g. [`HyperHttp`] against a server by URL):
//!
//! 1. Its own fake Apple device identity: [`FakeAppleCa`] stands in for Apple's "Apple
//!    iPhone Device CA" and issues RSA-1024 identities (`CN=<UDID>`), as real devices hold.
//! 2. [`Device::machine_info_request`]: the signed MachineInfo a device POSTs to the DEP
//!    profile's `url` (CMS SignedData with attached content, SHA-1 or SHA-256, by default
//!    BER with indefinite lengths like real devices), or as the `x-apple-aspen-deviceinfo`
//!    header ([`Device::aspen_deviceinfo`]) for web enrollment.
//! 3. [`Device::install_profile`]: checks the profile's CMS signature and parses the
//!    `com.apple.mdm`, `com.apple.security.scep` and CA payloads ([`ProfileError`] says
//!    what is wrong).
//! 4. [`Device::scep_enroll`]: GetCACaps, GetCACert, a CSR with the challenge on a fresh
//!    RSA key, PKCSReq signed by a temporary self-signed certificate, CertRep → the MDM
//!    identity certificate.
//! 5. Check-ins ([`Device::authenticate`], [`Device::token_update`], ...), each body
//!    signed as `Mdm-Signature` (detached CMS SignedData) by the MDM identity when the
//!    profile says `SignMessage`.
//! 6. The command loop: [`Device::idle`], [`Device::answer`], default answers from the
//!    device's fake facts ([`Device::default_response`]), [`Device::run_until_idle`].
//!
//! [`Device::enroll_ade`] runs 2–5 in one call.

pub mod account;
mod checkin;
pub mod cms;
mod commands;
mod fakeca;
mod fast_sign;
pub mod http;
pub mod profile;
mod scep;

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use mdm_crypto::{Certificate, KeyPair};
use plist::{Dictionary, Value};

pub use checkin::User;
pub use cms::Digest;
pub use commands::SignedReport;
pub use commands::{Answered, Command, Responder, Status};
pub use fakeca::{
    APPLE_DEVICE_CA_SUBJECT, DEVICE_KEY_BITS, DeviceIdentity, FakeAppleCa, generate_device_key,
};
pub use http::{Http, HttpError, HttpResponse, HyperHttp, KeepAliveHttp};
pub use profile::{EnrollmentProfile, MdmPayload, ProfileError, ProfilePolicy, ScepPayload};

/// Anything that stops the simulated device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// No HTTP answer.
    Http(HttpError),
    /// An HTTP answer the device does not accept at this step.
    Status {
        what: String,
        status: u16,
        body: String,
    },
    Profile(ProfileError),
    /// SCEP failed (FAILURE/PENDING reply, unusable CA certificates, bad reply).
    Scep(String),
    Crypto(String),
    /// The server answered something the protocol does not allow.
    Protocol(String),
    /// A step needs an earlier one (e.g. check-ins before SCEP).
    NotReady(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Http(e) => write!(f, "transport: {e}"),
            SimError::Status { what, status, body } => {
                write!(f, "{what}: HTTP {status}: {body}")
            }
            SimError::Profile(e) => write!(f, "enrollment profile: {e}"),
            SimError::Scep(e) => write!(f, "SCEP: {e}"),
            SimError::Crypto(e) => write!(f, "crypto: {e}"),
            SimError::Protocol(e) => write!(f, "protocol: {e}"),
            SimError::NotReady(e) => write!(f, "not ready: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

impl From<HttpError> for SimError {
    fn from(e: HttpError) -> Self {
        SimError::Http(e)
    }
}

impl From<ProfileError> for SimError {
    fn from(e: ProfileError) -> Self {
        SimError::Profile(e)
    }
}

/// What kind of device this is; sets the product names and platform behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Iphone,
    Ipad,
    Mac,
}

impl DeviceKind {
    pub fn is_ios(self) -> bool {
        matches!(self, DeviceKind::Iphone | DeviceKind::Ipad)
    }

    /// (PRODUCT / ProductName, Model, ModelName, build of the default OS).
    fn defaults(self) -> (&'static str, &'static str, &'static str) {
        match self {
            DeviceKind::Iphone => ("iPhone15,2", "MQ8Q3LL/A", "iPhone"),
            DeviceKind::Ipad => ("iPad13,18", "MMXK3LL/A", "iPad"),
            DeviceKind::Mac => ("Mac14,2", "Mac14,2", "MacBook Air"),
        }
    }
}

/// How the MachineInfo is signed and encoded.
#[derive(Debug, Clone)]
pub struct MachineInfoOptions {
    pub digest: Digest,
    /// BER with indefinite lengths and a chunked content (what devices send); false: DER.
    pub ber: bool,
    /// `MDM_CAN_REQUEST_SOFTWARE_UPDATE` (iOS 17+ / macOS 14+ send it).
    pub can_request_software_update: bool,
}

impl Default for MachineInfoOptions {
    fn default() -> Self {
        MachineInfoOptions {
            digest: Digest::Sha1,
            ber: true,
            can_request_software_update: true,
        }
    }
}

/// The device's MDM identity (from SCEP, or set by a test).
#[derive(Debug, Clone)]
pub struct MdmIdentity {
    pub key: KeyPair,
    pub certificate: Certificate,
}

/// Key pairs generated once and handed to many simulated devices
/// ([`Device::with_shared_keys`]): RSA key generation takes tens to hundreds of
/// milliseconds, which a test or benchmark with thousands of devices cannot pay per device.
#[derive(Clone)]
pub struct SharedKeys {
    /// For the Apple device identities (RSA-1024, as real devices').
    pub apple: rsa::RsaPrivateKey,
    /// For the SCEP CSRs, hence the MDM identities (RSA-2048).
    pub scep: KeyPair,
}

impl std::fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeys").finish_non_exhaustive()
    }
}

impl SharedKeys {
    pub fn generate() -> Result<SharedKeys, SimError> {
        Ok(SharedKeys {
            apple: generate_device_key()?,
            scep: KeyPair::generate().map_err(|e| SimError::Crypto(format!("SCEP key: {e}")))?,
        })
    }
}

/// A profile the device reports in ProfileList.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledProfile {
    pub identifier: String,
    pub uuid: String,
    pub display_name: Option<String>,
    pub organization: Option<String>,
    pub is_managed: bool,
}

/// An app the device reports in InstalledApplicationList.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub identifier: String,
    pub name: String,
    pub version: String,
    pub short_version: String,
}

/// A simulated device. Fields are public where tests may want to change them.
pub struct Device {
    pub kind: DeviceKind,
    pub serial: String,
    pub udid: String,
    pub os_version: String,
    pub build_version: String,
    pub product: String,
    pub model: String,
    pub model_name: String,
    pub device_name: String,
    pub language: String,
    pub imei: Option<String>,
    pub supervised: bool,
    pub machine_info_options: MachineInfoOptions,
    /// Extra or overriding DeviceInformation answers (query name → value).
    pub facts: BTreeMap<String, Value>,
    /// Accept a plain (unsigned) enrollment profile.
    pub accept_unsigned_profiles: bool,
    /// When not empty, the profile signer must chain to one of these.
    pub trusted_profile_signers: Vec<Certificate>,
    pub push_token: Vec<u8>,
    pub push_magic: String,
    /// Set by a User Enrollment ([`Device::user_enroll`]): messages carry this
    /// `EnrollmentID` and no device identifier (UDID, serial, IMEI) at all.
    pub enrollment_id: Option<String>,
    /// Sent in TokenUpdate on iOS (escrowed for ClearPasscode).
    pub unlock_token: Option<Vec<u8>>,
    /// Setup Assistant waits for DeviceConfigured (set by the first TokenUpdate's flag).
    pub awaiting_configuration: bool,
    /// Escrowed by SetBootstrapToken (macOS).
    pub bootstrap_token: Option<Vec<u8>>,
    pub installed_profiles: Vec<InstalledProfile>,
    pub apps: Vec<App>,
    /// Every answered command, in order.
    pub history: Vec<Answered>,
    /// SCEP uses this key for the CSR instead of generating one (see [`SharedKeys`]).
    pub scep_key: Option<KeyPair>,
    apple: DeviceIdentity,
    profile: Option<EnrollmentProfile>,
    mdm: Option<MdmPayload>,
    identity: Option<MdmIdentity>,
    responders: HashMap<String, Responder>,
    /// `Mdm-Signature`s made ahead of time ([`Device::presign_answers`]), by SHA-256 of the
    /// body they sign: a real device signs on its own CPU, so a benchmark signs before it
    /// starts the clock.
    presigned: HashMap<[u8; 32], String>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("kind", &self.kind)
            .field("serial", &self.serial)
            .field("udid", &self.udid)
            .field("enrolled_to", &self.mdm.as_ref().map(|m| &m.server_url))
            .finish_non_exhaustive()
    }
}

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("system randomness");
    b
}

/// A random UUID (version 4), uppercase like Apple's.
pub fn random_uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A UDID of the kind's shape: iOS `00008xxx-xxxxxxxxxxxxxxxx`, macOS a UUID.
pub fn random_udid(kind: DeviceKind) -> String {
    match kind {
        DeviceKind::Mac => random_uuid(),
        _ => {
            let h = hex::encode_upper(random_bytes(10));
            format!("00008{}-{}", &h[..3], &h[4..20])
        }
    }
}

/// A 12-character serial number (letters and digits, as Apple's newer ones).
pub fn random_serial() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    random_bytes(12)
        .into_iter()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

fn default_build(kind: DeviceKind, os: &str) -> String {
    let major: u32 = os
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(17);
    // iOS 17 → 21x, macOS 14 → 23x: Apple's build trains.
    let train = if kind.is_ios() { major + 4 } else { major + 9 };
    format!("{train}E219")
}

impl Device {
    /// A device with an Apple identity from `ca`. Push token, PushMagic and (iOS) unlock
    /// token are random; the build version follows `os_version`.
    pub fn new(
        ca: &FakeAppleCa,
        kind: DeviceKind,
        serial: &str,
        udid: &str,
        os_version: &str,
    ) -> Result<Device, SimError> {
        let apple = ca.issue_device_identity(udid)?;
        Ok(Self::with_apple_identity(
            apple, kind, serial, udid, os_version,
        ))
    }

    /// A device whose keys are `keys` (made once for many devices): its Apple identity
    /// certificate from `ca` is its own (`CN=<udid>`), and so will be its MDM identity
    /// certificate from SCEP; only the key pairs behind them are shared. A server cannot
    /// tell, unless it refuses a public key it has seen before.
    pub fn with_shared_keys(
        ca: &FakeAppleCa,
        keys: &SharedKeys,
        kind: DeviceKind,
        serial: &str,
        udid: &str,
        os_version: &str,
    ) -> Result<Device, SimError> {
        let apple = ca.issue_device_identity_for(udid, keys.apple.clone())?;
        let mut d = Self::with_apple_identity(apple, kind, serial, udid, os_version);
        d.scep_key = Some(keys.scep.clone());
        Ok(d)
    }

    fn with_apple_identity(
        apple: DeviceIdentity,
        kind: DeviceKind,
        serial: &str,
        udid: &str,
        os_version: &str,
    ) -> Device {
        let (product, model, model_name) = kind.defaults();
        Device {
            kind,
            serial: serial.to_owned(),
            udid: udid.to_owned(),
            os_version: os_version.to_owned(),
            build_version: default_build(kind, os_version),
            product: product.to_owned(),
            model: model.to_owned(),
            model_name: model_name.to_owned(),
            device_name: format!("{model_name} {serial}"),
            language: "en-US".to_owned(),
            imei: (kind == DeviceKind::Iphone).then(|| "35 345678 901234 5".to_owned()),
            supervised: true,
            machine_info_options: MachineInfoOptions::default(),
            facts: BTreeMap::new(),
            accept_unsigned_profiles: false,
            trusted_profile_signers: Vec::new(),
            push_token: random_bytes(32),
            push_magic: random_uuid(),
            unlock_token: kind.is_ios().then(|| random_bytes(64)),
            awaiting_configuration: false,
            bootstrap_token: None,
            installed_profiles: Vec::new(),
            apps: vec![App {
                identifier: "com.example.notes".into(),
                name: "Notes Example".into(),
                version: "412".into(),
                short_version: "4.1.2".into(),
            }],
            history: Vec::new(),
            enrollment_id: None,
            scep_key: None,
            apple,
            profile: None,
            mdm: None,
            identity: None,
            responders: HashMap::new(),
            presigned: HashMap::new(),
        }
    }

    /// A device with a random serial and UDID.
    pub fn random(
        ca: &FakeAppleCa,
        kind: DeviceKind,
        os_version: &str,
    ) -> Result<Device, SimError> {
        Self::new(ca, kind, &random_serial(), &random_udid(kind), os_version)
    }

    /// The Apple device identity (signs the MachineInfo).
    pub fn apple_identity(&self) -> &DeviceIdentity {
        &self.apple
    }

    /// The MDM identity from SCEP (or [`Device::set_mdm_identity`]).
    pub fn mdm_identity(&self) -> Option<&MdmIdentity> {
        self.identity.as_ref()
    }

    /// Uses this MDM identity instead of doing SCEP.
    pub fn set_mdm_identity(&mut self, key: KeyPair, certificate: Certificate) {
        self.identity = Some(MdmIdentity { key, certificate });
    }

    /// The installed enrollment profile.
    pub fn profile(&self) -> Option<&EnrollmentProfile> {
        self.profile.as_ref()
    }

    /// The MDM settings in force (from the profile, or [`Device::configure_mdm`]).
    pub fn mdm(&self) -> Option<&MdmPayload> {
        self.mdm.as_ref()
    }

    /// Talks to this server without an enrollment profile (tests that skip ADE).
    pub fn configure_mdm(&mut self, mdm: MdmPayload) {
        self.mdm = Some(mdm);
    }

    /// The device channel's identifier as messages carry it: `EnrollmentID` under User
    /// Enrollment, else `UDID`.
    pub fn channel_id(&self) -> (&'static str, &str) {
        match &self.enrollment_id {
            Some(e) => ("EnrollmentID", e),
            None => ("UDID", &self.udid),
        }
    }

    /// Lowercase hex of the push token, as the server stores it and APNs sees it.
    pub fn push_token_hex(&self) -> String {
        hex::encode(&self.push_token)
    }

    /// The MachineInfo plist (XML).
    pub fn machine_info_plist(&self) -> Vec<u8> {
        let mut d = Dictionary::new();
        d.insert("UDID".into(), self.udid.clone().into());
        d.insert("SERIAL".into(), self.serial.clone().into());
        d.insert("PRODUCT".into(), self.product.clone().into());
        d.insert("VERSION".into(), self.build_version.clone().into());
        d.insert("OS_VERSION".into(), self.os_version.clone().into());
        d.insert("LANGUAGE".into(), self.language.clone().into());
        if let Some(imei) = &self.imei {
            d.insert("IMEI".into(), imei.clone().into());
        }
        if self.machine_info_options.can_request_software_update {
            d.insert("MDM_CAN_REQUEST_SOFTWARE_UPDATE".into(), true.into());
        }
        to_xml(d)
    }

    /// The body of the ADE enrollment request: the MachineInfo as CMS SignedData with
    /// attached content, signed by the Apple device identity (certificate embedded),
    /// encoded per [`Device::machine_info_options`].
    pub fn machine_info_request(&self) -> Result<Vec<u8>, SimError> {
        let der = cms::sign(
            &self.machine_info_plist(),
            &self.apple.key,
            self.apple.cert.der(),
            self.machine_info_options.digest,
            false,
            fakeca::now_unix(),
        )?;
        if self.machine_info_options.ber {
            cms::to_ber_indefinite(&der)
        } else {
            Ok(der)
        }
    }

    /// The `x-apple-aspen-deviceinfo` header value (web enrollment): base64 of
    /// [`Device::machine_info_request`].
    pub fn aspen_deviceinfo(&self) -> Result<String, SimError> {
        Ok(base64::engine::general_purpose::STANDARD.encode(self.machine_info_request()?))
    }

    /// POSTs the MachineInfo to the DEP profile's `url` and returns the answer as is.
    pub async fn request_enrollment(
        &self,
        http: &impl Http,
        url: &str,
    ) -> Result<HttpResponse, SimError> {
        let body = self.machine_info_request()?;
        Ok(http
            .send(
                "POST",
                url,
                &[("content-type", "application/pkcs7-signature")],
                body,
            )
            .await?)
    }

    /// Installs an enrollment profile as served: checks the CMS signature (see
    /// [`ProfilePolicy`]) and the payloads, then takes the MDM settings from it.
    pub fn install_profile(&mut self, bytes: &[u8]) -> Result<&EnrollmentProfile, ProfileError> {
        let policy = ProfilePolicy {
            accept_unsigned: self.accept_unsigned_profiles,
            trusted_signers: self.trusted_profile_signers.clone(),
        };
        let p = profile::parse(bytes, &policy)?;
        self.installed_profiles
            .retain(|i| i.identifier != p.payload_identifier);
        self.installed_profiles.push(InstalledProfile {
            identifier: p.payload_identifier.clone(),
            uuid: p.payload_uuid.clone(),
            display_name: p.display_name.clone(),
            organization: p.organization.clone(),
            is_managed: true,
        });
        self.mdm = Some(p.mdm.clone());
        Ok(self.profile.insert(p))
    }

    /// The whole ADE enrollment: MachineInfo to `enroll_url`, profile, SCEP,
    /// Authenticate, TokenUpdate (`AwaitingConfiguration` as given).
    pub async fn enroll_ade(
        &mut self,
        http: &impl Http,
        enroll_url: &str,
        awaiting_configuration: bool,
    ) -> Result<(), SimError> {
        let resp = self.request_enrollment(http, enroll_url).await?;
        if resp.status != 200 {
            return Err(SimError::Status {
                what: "ADE enrollment request".into(),
                status: resp.status,
                body: resp.body_text(),
            });
        }
        self.install_profile(&resp.body)?;
        self.scep_enroll(http).await?;
        self.authenticate(http).await?;
        self.token_update(http, awaiting_configuration).await?;
        Ok(())
    }

    /// Overrides the answer to one RequestType (see [`Responder`]).
    pub fn set_responder(&mut self, request_type: &str, responder: Responder) {
        self.responders.insert(request_type.to_owned(), responder);
    }

    pub fn clear_responder(&mut self, request_type: &str) {
        self.responders.remove(request_type);
    }
}

/// XML plist bytes of a dictionary.
pub fn to_xml(d: Dictionary) -> Vec<u8> {
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &Value::Dictionary(d)).expect("plist serialises");
    out
}

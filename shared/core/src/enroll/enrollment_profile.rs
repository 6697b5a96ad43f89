//! The enrollment profile (`.mobileconfig`, Apple: "MDM" payload): a
//! `com.apple.security.root` payload with our CA, a `com.apple.security.scep` payload
//! (one-time challenge bound to the device) and the `com.apple.mdm` payload whose
//! `IdentityCertificateUUID` names the SCEP payload — signed as attached CMS SignedData.
//!
//! `PayloadIdentifier` is the constant [`PROFILE_IDENTIFIER`]: installing the profile
//! again (re-enrollment, identity renewal) replaces the MDM profile in place.
//!
//! The signing identity is `profile_signing_cert` + `profile_signing_key` (PEM; e.g. a
//! publicly trusted certificate, so devices show "Verified"), else one our SCEP CA issues
//! on first use, kept at `enrsign` (certificate DER and the PKCS#8 key sealed with
//! `storage_key`, purpose [`SIGNING_PURPOSE`]). Creation is race-safe without locking:
//! concurrent first uses may each issue an identity, each is valid (issued by our CA),
//! the last write wins and everyone then signs with what the store holds. It is
//! replaced when it nears its end ([`SIGNING_RENEW_BEFORE`]) or the CA changed.

use base64::Engine;
use http::StatusCode;
use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};

use mdm_crypto::{Certificate, CsrParams, IssueOptions, KeyPair};

use super::{APNS_TOPIC, EnrollError, EnrollmentTarget, ORGANIZATION_NAME};
use crate::config::{self, SERVER_URL};
use crate::push;
use crate::push::certificate::Topic;
use crate::record::{Record, Stored};
use crate::scep::ca::{self, ScepSetupError};
use crate::scep::challenge::{self, ChallengeGrant};
use crate::seal::Sealer;
use crate::{Clock, Platform, Variables, random};

/// Top-level PayloadIdentifier of every enrollment profile (sub-payloads append `.mdm`,
/// `.scep`, `.ca`). Never change it: devices replace a profile by this identifier.
pub const PROFILE_IDENTIFIER: &str = "com.mdm-server.enrollment";
/// All 13 access rights (spec §4.1).
pub const ACCESS_RIGHTS: i64 = 8191;
pub const SERVER_CAPABILITIES: [&str; 2] = [
    "com.apple.mdm.per-user-connections",
    "com.apple.mdm.bootstraptoken",
];
/// Variables: a PEM certificate (chain after it) and its PEM private key.
pub const PROFILE_SIGNING_CERT: &str = "profile_signing_cert";
pub const PROFILE_SIGNING_KEY: &str = "profile_signing_key";
pub const SIGNING_RECORD_KEY: &str = "enrsign";
pub const SIGNING_PURPOSE: &str = "profile-signing-key";
/// A generated signing identity is replaced this long before it expires.
pub const SIGNING_RENEW_BEFORE: i64 = 30 * 86_400;
const SIGNING_VALIDITY_DAYS: u32 = 825;
const SIGNING_CN: &str = "MDM Enrollment Profile Signing";

/// Everything that goes into the profile plist.
#[derive(Debug, Clone)]
pub struct ProfileParams<'a> {
    /// Public base URL, no trailing slash.
    pub server_url: &'a str,
    pub topic: &'a str,
    pub challenge: &'a str,
    pub udid: &'a str,
    pub organization: Option<&'a str>,
    /// Our CA certificate (DER), delivered as `com.apple.security.root`.
    pub ca_der: Option<&'a [u8]>,
    pub removal_disallowed: bool,
    /// Account-driven enrollment: `BYOD` (User Enrollment) or `ADDE`.
    pub enrollment_mode: Option<&'a str>,
    pub assigned_managed_apple_id: Option<&'a str>,
}

/// A random (version 4) UUID, uppercase as Apple writes them.
pub fn new_uuid() -> String {
    random::uuid_v4()
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn payload(kind: &str, id_suffix: &str, uuid: &str, name: &str) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("PayloadType".into(), s(kind));
    d.insert("PayloadVersion".into(), Value::Integer(1.into()));
    d.insert(
        "PayloadIdentifier".into(),
        s(&format!("{PROFILE_IDENTIFIER}.{id_suffix}")),
    );
    d.insert("PayloadUUID".into(), s(uuid));
    d.insert("PayloadDisplayName".into(), s(name));
    d
}

/// The unsigned profile (XML plist).
pub fn enrollment_profile_plist(p: &ProfileParams<'_>) -> Vec<u8> {
    let base = p.server_url.trim_end_matches('/');
    let scep_uuid = new_uuid();
    let mut content = Vec::new();

    if let Some(ca) = p.ca_der {
        let mut d = payload(
            "com.apple.security.root",
            "ca",
            &new_uuid(),
            "MDM certificate authority",
        );
        d.insert("PayloadCertificateFileName".into(), s("mdm-ca.cer"));
        d.insert("PayloadContent".into(), Value::Data(ca.to_vec()));
        content.push(Value::Dictionary(d));
    }

    let mut scep = Dictionary::new();
    scep.insert("URL".into(), s(&format!("{base}/scep")));
    scep.insert("Name".into(), s("mdm-scep"));
    let rdn = |k: &str, v: &str| Value::Array(vec![Value::Array(vec![s(k), s(v)])]);
    scep.insert(
        "Subject".into(),
        Value::Array(vec![
            rdn("O", p.organization.unwrap_or("MDM")),
            rdn("CN", p.udid),
        ]),
    );
    scep.insert("Challenge".into(), s(p.challenge));
    scep.insert("Keysize".into(), Value::Integer(2048.into()));
    scep.insert("Key Type".into(), s("RSA"));
    scep.insert("Key Usage".into(), Value::Integer(5.into()));
    let mut d = payload(
        "com.apple.security.scep",
        "scep",
        &scep_uuid,
        "MDM identity (SCEP)",
    );
    d.insert("PayloadContent".into(), Value::Dictionary(scep));
    content.push(Value::Dictionary(d));

    let mut d = payload("com.apple.mdm", "mdm", &new_uuid(), "Device management");
    d.insert("IdentityCertificateUUID".into(), s(&scep_uuid));
    d.insert("Topic".into(), s(p.topic));
    d.insert("ServerURL".into(), s(&format!("{base}/mdm/connect")));
    d.insert("CheckInURL".into(), s(&format!("{base}/mdm/checkin")));
    d.insert("SignMessage".into(), Value::Boolean(true));
    d.insert("AccessRights".into(), Value::Integer(ACCESS_RIGHTS.into()));
    d.insert("CheckOutWhenRemoved".into(), Value::Boolean(true));
    let byod = p.enrollment_mode == Some("BYOD");
    d.insert(
        "ServerCapabilities".into(),
        Value::Array(
            SERVER_CAPABILITIES
                .iter()
                // No bootstrap token under User Enrollment.
                .filter(|c| !(byod && c.ends_with("bootstraptoken")))
                .map(|c| s(c))
                .collect(),
        ),
    );
    if let Some(mode) = p.enrollment_mode {
        d.insert("EnrollmentMode".into(), s(mode));
    }
    if let Some(maid) = p.assigned_managed_apple_id {
        d.insert("AssignedManagedAppleID".into(), s(maid));
    }
    content.push(Value::Dictionary(d));

    let mut top = Dictionary::new();
    top.insert("PayloadType".into(), s("Configuration"));
    top.insert("PayloadVersion".into(), Value::Integer(1.into()));
    top.insert("PayloadIdentifier".into(), s(PROFILE_IDENTIFIER));
    top.insert("PayloadUUID".into(), s(&new_uuid()));
    let display = match p.organization {
        Some(org) => format!("{org} device management"),
        None => "Device management".to_owned(),
    };
    top.insert("PayloadDisplayName".into(), s(&display));
    top.insert(
        "PayloadDescription".into(),
        s("Enrolls this device in mobile device management."),
    );
    if let Some(org) = p.organization {
        top.insert("PayloadOrganization".into(), s(org));
    }
    top.insert("PayloadScope".into(), s("System"));
    if p.removal_disallowed {
        top.insert("PayloadRemovalDisallowed".into(), Value::Boolean(true));
    }
    top.insert("PayloadContent".into(), Value::Array(content));
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &Value::Dictionary(top)).expect("plist to memory");
    out
}

/// The key and certificate that sign profiles, with the chain sent along.
#[derive(Debug, Clone)]
pub struct SigningIdentity {
    pub key: KeyPair,
    pub cert: Certificate,
    pub chain: Vec<Certificate>,
}

impl SigningIdentity {
    pub fn sign(&self, content: &[u8], now: u64) -> Result<Vec<u8>, EnrollError> {
        mdm_crypto::sign_profile(content, &self.key, &self.cert, &self.chain, now as i64)
            .map_err(|e| internal(format!("signing the enrollment profile: {e}")))
    }
}

fn internal(d: String) -> EnrollError {
    EnrollError::new(StatusCode::INTERNAL_SERVER_ERROR, "server.error", d)
}

fn misconfigured(d: String) -> EnrollError {
    EnrollError::new(StatusCode::INTERNAL_SERVER_ERROR, "server.misconfigured", d)
}

pub fn scep_error(e: ScepSetupError) -> EnrollError {
    match e {
        ScepSetupError::Store(e) => e.into(),
        ScepSetupError::Busy => EnrollError::unavailable("server.busy", e.to_string()),
        ScepSetupError::Misconfigured(d) => misconfigured(d),
        other => internal(other.to_string()),
    }
}

/// What is stored at [`SIGNING_RECORD_KEY`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSigner {
    /// Base64 DER.
    cert: String,
    /// Base64 of the sealed PKCS#8 key.
    sealed_key: String,
    created_at: u64,
}

impl Record for StoredSigner {
    type Id<'a> = ();
    const NAME: &'static str = "profile signing identity";
    fn key((): ()) -> String {
        SIGNING_RECORD_KEY.into()
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

async fn optional_var(vars: &impl Variables, name: &str) -> Option<String> {
    vars.get(name)
        .await
        .ok()
        .flatten()
        .filter(|v| !v.trim().is_empty())
}

/// Every `CERTIFICATE` block of a PEM text, in order.
fn pem_certificates(text: &str) -> Result<Vec<Certificate>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    const END: &str = "-----END CERTIFICATE-----";
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let block = &rest[start..];
        let end = block.find(END).ok_or("unterminated PEM certificate")? + END.len();
        out.push(Certificate::from_pem(&block[..end]).map_err(|e| e.to_string())?);
        rest = &block[end..];
    }
    if out.is_empty() {
        return Err("no PEM CERTIFICATE block".into());
    }
    Ok(out)
}

/// The configured identity (both variables), `None` when neither is set.
async fn configured_identity(
    vars: &impl Variables,
) -> Result<Option<SigningIdentity>, EnrollError> {
    let cert = optional_var(vars, PROFILE_SIGNING_CERT).await;
    let key = optional_var(vars, PROFILE_SIGNING_KEY).await;
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => {
            return Err(misconfigured(format!(
                "set both {PROFILE_SIGNING_CERT} and {PROFILE_SIGNING_KEY}, or neither"
            )));
        }
    };
    let mut certs = pem_certificates(&cert)
        .map_err(|e| misconfigured(format!("variable {PROFILE_SIGNING_CERT}: {e}")))?;
    let key = KeyPair::from_pem(&key)
        .map_err(|e| misconfigured(format!("variable {PROFILE_SIGNING_KEY}: {e}")))?;
    let leaf = certs.remove(0);
    if !leaf.matches_key(&key) {
        return Err(misconfigured(format!(
            "{PROFILE_SIGNING_KEY} is not the key of the first certificate in {PROFILE_SIGNING_CERT}"
        )));
    }
    Ok(Some(SigningIdentity {
        key,
        cert: leaf,
        chain: certs,
    }))
}

fn open_stored(
    s: &StoredSigner,
    storage_key: &config::Secret,
) -> Result<(Certificate, KeyPair), String> {
    let der = b64().decode(&s.cert).map_err(|e| e.to_string())?;
    let cert = Certificate::from_der(&der).map_err(|e| e.to_string())?;
    let sealed = b64().decode(&s.sealed_key).map_err(|e| e.to_string())?;
    let pkcs8 = mdm_crypto::Zeroizing::new(
        Sealer::new(storage_key, SIGNING_PURPOSE)
            .open(&sealed, SIGNING_RECORD_KEY.as_bytes())
            .map_err(|e| e.to_string())?,
    );
    let key = KeyPair::from_pkcs8_der(&pkcs8).map_err(|e| e.to_string())?;
    if !cert.matches_key(&key) {
        return Err("key does not match the certificate".into());
    }
    Ok((cert, key))
}

/// The identity that signs enrollment profiles: the configured one, else ours (see the
/// module documentation). `ca_cert` is our SCEP CA, sent along as the chain.
pub async fn signing_identity(
    p: &impl Platform,
    ca_cert: &Certificate,
) -> Result<SigningIdentity, EnrollError> {
    if let Some(id) = configured_identity(p.vars()).await? {
        return Ok(id);
    }
    let storage_key = config::storage_key(p.vars()).await?;
    let now = p.clock().unix_seconds() as i64;
    let usable = |cert: &Certificate| {
        cert.not_after_unix() - SIGNING_RENEW_BEFORE > now && cert.verify_issued_by(ca_cert).is_ok()
    };
    if let Some(stored) = StoredSigner::load_valid(p.store(), ()).await?
        && let Ok((cert, key)) = open_stored(&stored, &storage_key)
        && usable(&cert)
    {
        return Ok(SigningIdentity {
            key,
            cert,
            chain: vec![ca_cert.clone()],
        });
    }
    // None yet, expiring, unreadable (storage_key changed) or from an older CA: issue one.
    let authority = ca::authority(p).await.map_err(scep_error)?;
    let crypto = |e: mdm_crypto::CryptoError| internal(format!("profile signing identity: {e}"));
    let key = KeyPair::generate().map_err(crypto)?;
    let mut params = CsrParams::new(SIGNING_CN);
    params.organization = Some("MDM");
    let csr = mdm_crypto::build_csr(&key, &params).map_err(crypto)?;
    let csr = mdm_crypto::Csr::from_der(&csr)
        .map_err(|e| internal(format!("profile signing identity: {e}")))?;
    let opts = IssueOptions {
        validity_days: SIGNING_VALIDITY_DAYS,
        copy_subject_alt_name: false,
        key_encipherment: false,
        subject: None,
    };
    let cert = authority.issue(&csr, now, &opts).map_err(crypto)?;
    let pkcs8 = key.to_pkcs8_der().map_err(crypto)?;
    let stored = StoredSigner {
        cert: b64().encode(cert.der()),
        sealed_key: b64().encode(
            Sealer::new(&storage_key, SIGNING_PURPOSE).seal(&pkcs8, SIGNING_RECORD_KEY.as_bytes()),
        ),
        created_at: now as u64,
    };
    stored.save(p.store(), ()).await?;
    // Converge on what the store holds if a concurrent first use wrote after us.
    if let Some(stored) = StoredSigner::load_valid(p.store(), ()).await?
        && let Ok((c, k)) = open_stored(&stored, &storage_key)
        && usable(&c)
    {
        return Ok(SigningIdentity {
            key: k,
            cert: c,
            chain: vec![authority.ca_certificate().clone()],
        });
    }
    Ok(SigningIdentity {
        key,
        cert,
        chain: vec![authority.ca_certificate().clone()],
    })
}

/// The push topic ([`push::certificate::topic`]: the uploaded certificate's, else the variable's);
/// enrollment is impossible without it (503 naming why).
pub async fn push_topic(p: &impl Platform) -> Result<String, EnrollError> {
    match push::certificate::topic(p).await? {
        Topic::Certificate(t) => Ok(t),
        Topic::Variable(t) if t.starts_with("com.apple.mgmt.") => Ok(t),
        Topic::Variable(_) => Err(EnrollError::unavailable(
            "server.push_topic_invalid",
            format!(
                "variable {APNS_TOPIC} must be the push certificate's topic (com.apple.mgmt.…): enrollment is impossible until it is"
            ),
        )),
        Topic::None => Err(EnrollError::unavailable(
            "server.push_topic_missing",
            format!(
                "no MDM push certificate uploaded (PUT /api/v1/push/certificate) and variable {APNS_TOPIC} not set: devices cannot enroll without the push topic"
            ),
        )),
    }
}

/// Builds and signs the enrollment profile for `target`: a fresh one-time SCEP challenge
/// bound to the device (and user), our CA, the push topic ([`push_topic`]). Returns the
/// DER SignedData (`application/x-apple-aspen-config`). Reused by web enrollment, and
/// later by User Enrollment and identity renewal.
pub async fn build_signed_profile(
    p: &impl Platform,
    target: &EnrollmentTarget,
) -> Result<Vec<u8>, EnrollError> {
    let topic = push_topic(p).await?;
    let server_url = config::required(p.vars(), SERVER_URL).await?;
    let organization = match &target.organization {
        Some(o) => Some(o.clone()),
        None => optional_var(p.vars(), ORGANIZATION_NAME).await,
    };
    let ca_cert = ca::ca_certificate(p).await.map_err(scep_error)?;
    let signer = signing_identity(p, &ca_cert).await?;
    let now = p.clock().unix_seconds();
    let challenge = challenge::issue(
        p.store(),
        now,
        &ChallengeGrant {
            device_id: target.udid.clone(),
            serial: target.serial.clone(),
            purpose: target.purpose.clone(),
            user: target.user.clone(),
        },
    )
    .await?;
    let plist = enrollment_profile_plist(&ProfileParams {
        server_url: server_url.trim(),
        topic: &topic,
        challenge: &challenge,
        udid: &target.udid,
        organization: organization.as_deref().map(str::trim),
        ca_der: Some(ca_cert.der()),
        removal_disallowed: target.removal_disallowed,
        enrollment_mode: target.enrollment_mode.as_deref(),
        assigned_managed_apple_id: target.assigned_managed_apple_id.as_deref(),
    });
    signer.sign(&plist, now)
}

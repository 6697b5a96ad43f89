//! The enrollment profile as a device installs it (Apple: "MDM" payload): the
//! CMS signature, the `Configuration` envelope, the `com.apple.mdm` payload, the
//! `com.apple.security.scep` identity payload it names, and CA payloads. Anything a
//! device would refuse (or that would leave it unable to talk to the server) is a typed
//! [`ProfileError`].

use mdm_crypto::Certificate;
use plist::{Dictionary, Value};

/// Why a profile cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileError {
    /// A plain plist, and unsigned profiles are not accepted (see
    /// [`crate::Device::accept_unsigned_profiles`]).
    Unsigned,
    /// The CMS signature does not verify (or the CMS is malformed).
    BadSignature(String),
    /// The signer is not issued by (or equal to) any trusted certificate.
    UntrustedSigner(String),
    /// The content is not a property list.
    NotAPlist(String),
    /// Top-level `PayloadType` is not `Configuration`.
    NotAConfiguration(String),
    /// A payload type the profile must contain.
    MissingPayload(&'static str),
    /// A payload type that may appear only once.
    DuplicatePayload(&'static str),
    /// A required key is absent.
    MissingKey {
        payload: &'static str,
        key: &'static str,
    },
    /// A key has the wrong type or an unusable value.
    BadValue {
        payload: &'static str,
        key: &'static str,
        problem: String,
    },
    /// `IdentityCertificateUUID` names no identity payload of the profile.
    IdentityMismatch { identity_uuid: String },
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProfileError::Unsigned => f.write_str("the profile is not signed"),
            ProfileError::BadSignature(e) => write!(f, "profile signature: {e}"),
            ProfileError::UntrustedSigner(s) => write!(f, "profile signer {s} is not trusted"),
            ProfileError::NotAPlist(e) => write!(f, "profile content is not a plist: {e}"),
            ProfileError::NotAConfiguration(t) => {
                write!(f, "top-level PayloadType is {t:?}, not Configuration")
            }
            ProfileError::MissingPayload(t) => write!(f, "no {t} payload"),
            ProfileError::DuplicatePayload(t) => write!(f, "more than one {t} payload"),
            ProfileError::MissingKey { payload, key } => write!(f, "{payload}: {key} missing"),
            ProfileError::BadValue {
                payload,
                key,
                problem,
            } => write!(f, "{payload}: {key}: {problem}"),
            ProfileError::IdentityMismatch { identity_uuid } => write!(
                f,
                "IdentityCertificateUUID {identity_uuid:?} names no SCEP payload of the profile"
            ),
        }
    }
}

impl std::error::Error for ProfileError {}

pub const MDM: &str = "com.apple.mdm";
pub const SCEP: &str = "com.apple.security.scep";
pub const ROOT: &str = "com.apple.security.root";
pub const PKCS1: &str = "com.apple.security.pkcs1";
pub const PEM: &str = "com.apple.security.pem";
pub const CONFIGURATION: &str = "Configuration";

/// The `com.apple.mdm` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdmPayload {
    pub payload_uuid: String,
    pub payload_identifier: String,
    pub server_url: String,
    pub check_in_url: Option<String>,
    pub topic: String,
    pub identity_certificate_uuid: String,
    pub sign_message: bool,
    pub access_rights: Option<u64>,
    pub server_capabilities: Vec<String>,
    pub check_out_when_removed: bool,
    pub use_development_apns: bool,
    /// Account-driven enrollment: `BYOD` (User Enrollment) or `ADDE`.
    pub enrollment_mode: Option<String>,
    pub assigned_managed_apple_id: Option<String>,
}

impl MdmPayload {
    /// Where check-ins go: `CheckInURL`, else `ServerURL`.
    pub fn checkin_url(&self) -> &str {
        self.check_in_url.as_deref().unwrap_or(&self.server_url)
    }

    /// A payload for tests that skip the enrollment profile.
    pub fn manual(server_url: &str, check_in_url: Option<&str>, topic: &str) -> MdmPayload {
        MdmPayload {
            payload_uuid: String::new(),
            payload_identifier: "com.example.mdm.manual".into(),
            server_url: server_url.into(),
            check_in_url: check_in_url.map(str::to_owned),
            topic: topic.into(),
            identity_certificate_uuid: String::new(),
            sign_message: true,
            access_rights: Some(8191),
            server_capabilities: Vec::new(),
            check_out_when_removed: true,
            use_development_apns: false,
            enrollment_mode: None,
            assigned_managed_apple_id: None,
        }
    }
}

/// The `com.apple.security.scep` payload (keys from its `PayloadContent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepPayload {
    pub payload_uuid: String,
    pub url: String,
    /// GetCACert's `message`.
    pub name: Option<String>,
    pub challenge: Option<String>,
    /// RDNs, each a list of (type, value) pairs.
    pub subject: Vec<Vec<(String, String)>>,
    /// Absent means 1024 for a real device.
    pub keysize: Option<u64>,
    pub key_usage: Option<u64>,
    pub ca_fingerprint: Option<Vec<u8>>,
    pub retries: Option<u64>,
    pub retry_delay: Option<u64>,
}

impl ScepPayload {
    /// The value of the first `short`/`oid` attribute of the subject.
    pub fn subject_attr(&self, names: &[&str]) -> Option<&str> {
        self.subject
            .iter()
            .flatten()
            .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
            .map(|(_, v)| v.as_str())
    }
}

/// An installed enrollment profile.
#[derive(Debug, Clone)]
pub struct EnrollmentProfile {
    pub payload_identifier: String,
    pub payload_uuid: String,
    pub display_name: Option<String>,
    pub organization: Option<String>,
    pub mdm: MdmPayload,
    pub scep: ScepPayload,
    /// Certificates of `com.apple.security.root` / `pkcs1` / `pem` payloads.
    pub ca_certs: Vec<Certificate>,
    /// Who signed it (None for an accepted unsigned profile).
    pub signer: Option<Certificate>,
    /// The certificates the CMS carried (signer and chain).
    pub signer_chain: Vec<Certificate>,
    /// The profile plist itself.
    pub content: Vec<u8>,
}

/// How [`parse`] treats signatures.
#[derive(Debug, Clone, Default)]
pub struct ProfilePolicy {
    pub accept_unsigned: bool,
    /// When not empty, the signer (or a certificate of its chain) must be one of these or
    /// issued by one of them.
    pub trusted_signers: Vec<Certificate>,
}

fn looks_like_plist(b: &[u8]) -> bool {
    let t = b.trim_ascii_start();
    t.starts_with(b"<?xml") || t.starts_with(b"<plist") || t.starts_with(b"bplist")
}

/// Verifies and parses an enrollment profile as served (signed CMS, or a plain plist when
/// the policy allows it).
pub fn parse(bytes: &[u8], policy: &ProfilePolicy) -> Result<EnrollmentProfile, ProfileError> {
    let (content, signer, chain) = if looks_like_plist(bytes) {
        if !policy.accept_unsigned {
            return Err(ProfileError::Unsigned);
        }
        (bytes.to_vec(), None, Vec::new())
    } else {
        let msg = mdm_crypto::verify_signed_data(bytes, None)
            .map_err(|e| ProfileError::BadSignature(e.to_string()))?;
        if !msg.is_data() {
            return Err(ProfileError::BadSignature(
                "content type is not id-data".into(),
            ));
        }
        let content = msg
            .content()
            .ok_or_else(|| ProfileError::BadSignature("no content".into()))?
            .to_vec();
        (
            content,
            Some(msg.signer().clone()),
            msg.certificates().to_vec(),
        )
    };
    if let (Some(s), false) = (&signer, policy.trusted_signers.is_empty()) {
        let trusted = std::iter::once(s).chain(chain.iter()).any(|c| {
            policy
                .trusted_signers
                .iter()
                .any(|t| t.der() == c.der() || c.verify_issued_by(t).is_ok())
        });
        if !trusted {
            return Err(ProfileError::UntrustedSigner(s.subject()));
        }
    }
    let mut profile = parse_plist(&content)?;
    profile.signer = signer;
    profile.signer_chain = chain;
    Ok(profile)
}

fn str_key(
    d: &Dictionary,
    payload: &'static str,
    key: &'static str,
) -> Result<Option<String>, ProfileError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ProfileError::BadValue {
            payload,
            key,
            problem: "expected a string".into(),
        }),
    }
}

/// An optional non-empty string.
fn opt_str(
    d: &Dictionary,
    payload: &'static str,
    key: &'static str,
) -> Result<Option<String>, ProfileError> {
    Ok(str_key(d, payload, key)?.filter(|s| !s.is_empty()))
}

fn req_str(
    d: &Dictionary,
    payload: &'static str,
    key: &'static str,
) -> Result<String, ProfileError> {
    match str_key(d, payload, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(ProfileError::BadValue {
            payload,
            key,
            problem: "empty".into(),
        }),
        None => Err(ProfileError::MissingKey { payload, key }),
    }
}

fn bool_key(
    d: &Dictionary,
    payload: &'static str,
    key: &'static str,
) -> Result<bool, ProfileError> {
    match d.get(key) {
        None => Ok(false),
        Some(Value::Boolean(b)) => Ok(*b),
        Some(_) => Err(ProfileError::BadValue {
            payload,
            key,
            problem: "expected a boolean".into(),
        }),
    }
}

fn int_key(
    d: &Dictionary,
    payload: &'static str,
    key: &'static str,
) -> Result<Option<u64>, ProfileError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Integer(i)) => i.as_unsigned().map(Some).ok_or(ProfileError::BadValue {
            payload,
            key,
            problem: "negative".into(),
        }),
        Some(_) => Err(ProfileError::BadValue {
            payload,
            key,
            problem: "expected an integer".into(),
        }),
    }
}

fn url_key(
    d: &Dictionary,
    payload: &'static str,
    key: &'static str,
) -> Result<String, ProfileError> {
    let u = req_str(d, payload, key)?;
    if !(u.starts_with("https://") || u.starts_with("http://")) {
        return Err(ProfileError::BadValue {
            payload,
            key,
            problem: format!("{u:?} is not an http(s) URL"),
        });
    }
    Ok(u)
}

/// Parses the profile plist (no signature involved).
pub fn parse_plist(content: &[u8]) -> Result<EnrollmentProfile, ProfileError> {
    let top: Dictionary = plist::from_bytes::<Value>(content)
        .map_err(|e| ProfileError::NotAPlist(e.to_string()))?
        .into_dictionary()
        .ok_or_else(|| ProfileError::NotAPlist("top level is not a dictionary".into()))?;
    const TOP: &str = "Configuration";
    let t = req_str(&top, TOP, "PayloadType")?;
    if t != CONFIGURATION {
        return Err(ProfileError::NotAConfiguration(t));
    }
    let payloads = match top.get("PayloadContent") {
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ProfileError::BadValue {
                payload: TOP,
                key: "PayloadContent",
                problem: "expected an array of payloads".into(),
            });
        }
        None => {
            return Err(ProfileError::MissingKey {
                payload: TOP,
                key: "PayloadContent",
            });
        }
    };
    let mut mdm = None;
    let mut sceps = Vec::new();
    let mut ca_certs = Vec::new();
    for p in payloads {
        let d = p.as_dictionary().ok_or(ProfileError::BadValue {
            payload: TOP,
            key: "PayloadContent",
            problem: "a payload is not a dictionary".into(),
        })?;
        let ty = req_str(d, TOP, "PayloadType")?;
        match ty.as_str() {
            MDM => {
                if mdm.is_some() {
                    return Err(ProfileError::DuplicatePayload(MDM));
                }
                mdm = Some(parse_mdm(d)?);
            }
            SCEP => sceps.push(parse_scep(d)?),
            ROOT | PKCS1 => {
                let data = match d.get("PayloadContent") {
                    Some(Value::Data(b)) => b,
                    _ => {
                        return Err(ProfileError::BadValue {
                            payload: ROOT,
                            key: "PayloadContent",
                            problem: "expected certificate data".into(),
                        });
                    }
                };
                ca_certs.push(
                    Certificate::from_der(data).map_err(|e| ProfileError::BadValue {
                        payload: ROOT,
                        key: "PayloadContent",
                        problem: e.to_string(),
                    })?,
                );
            }
            PEM => {
                let text = match d.get("PayloadContent") {
                    Some(Value::Data(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        return Err(ProfileError::BadValue {
                            payload: PEM,
                            key: "PayloadContent",
                            problem: "expected PEM data".into(),
                        });
                    }
                };
                ca_certs.push(Certificate::from_pem(&text).map_err(|e| {
                    ProfileError::BadValue {
                        payload: PEM,
                        key: "PayloadContent",
                        problem: e.to_string(),
                    }
                })?);
            }
            _ => {}
        }
    }
    let mdm = mdm.ok_or(ProfileError::MissingPayload(MDM))?;
    if sceps.is_empty() {
        return Err(ProfileError::MissingPayload(SCEP));
    }
    let scep = sceps
        .into_iter()
        .find(|s| s.payload_uuid == mdm.identity_certificate_uuid)
        .ok_or_else(|| ProfileError::IdentityMismatch {
            identity_uuid: mdm.identity_certificate_uuid.clone(),
        })?;
    Ok(EnrollmentProfile {
        payload_identifier: req_str(&top, TOP, "PayloadIdentifier")?,
        payload_uuid: req_str(&top, TOP, "PayloadUUID")?,
        display_name: str_key(&top, TOP, "PayloadDisplayName")?,
        organization: str_key(&top, TOP, "PayloadOrganization")?,
        mdm,
        scep,
        ca_certs,
        signer: None,
        signer_chain: Vec::new(),
        content: content.to_vec(),
    })
}

fn parse_mdm(d: &Dictionary) -> Result<MdmPayload, ProfileError> {
    let topic = req_str(d, MDM, "Topic")?;
    if !topic.starts_with("com.apple.mgmt") {
        return Err(ProfileError::BadValue {
            payload: MDM,
            key: "Topic",
            problem: format!("{topic:?} does not start with com.apple.mgmt"),
        });
    }
    let check_in_url = match d.get("CheckInURL") {
        None => None,
        Some(_) => Some(url_key(d, MDM, "CheckInURL")?),
    };
    let access_rights = int_key(d, MDM, "AccessRights")?;
    if access_rights == Some(0) {
        return Err(ProfileError::BadValue {
            payload: MDM,
            key: "AccessRights",
            problem: "0 is not allowed".into(),
        });
    }
    let server_capabilities = match d.get("ServerCapabilities") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_string().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(ProfileError::BadValue {
                payload: MDM,
                key: "ServerCapabilities",
                problem: "expected strings".into(),
            })?,
        Some(_) => {
            return Err(ProfileError::BadValue {
                payload: MDM,
                key: "ServerCapabilities",
                problem: "expected an array".into(),
            });
        }
    };
    Ok(MdmPayload {
        payload_uuid: req_str(d, MDM, "PayloadUUID")?,
        payload_identifier: req_str(d, MDM, "PayloadIdentifier")?,
        server_url: url_key(d, MDM, "ServerURL")?,
        check_in_url,
        topic,
        identity_certificate_uuid: req_str(d, MDM, "IdentityCertificateUUID")?,
        sign_message: bool_key(d, MDM, "SignMessage")?,
        access_rights,
        server_capabilities,
        check_out_when_removed: bool_key(d, MDM, "CheckOutWhenRemoved")?,
        use_development_apns: bool_key(d, MDM, "UseDevelopmentAPNS")?,
        enrollment_mode: opt_str(d, MDM, "EnrollmentMode")?,
        assigned_managed_apple_id: opt_str(d, MDM, "AssignedManagedAppleID")?,
    })
}

fn parse_scep(d: &Dictionary) -> Result<ScepPayload, ProfileError> {
    let payload_uuid = req_str(d, SCEP, "PayloadUUID")?;
    let c = match d.get("PayloadContent") {
        Some(Value::Dictionary(c)) => c,
        Some(_) => {
            return Err(ProfileError::BadValue {
                payload: SCEP,
                key: "PayloadContent",
                problem: "expected a dictionary".into(),
            });
        }
        None => {
            return Err(ProfileError::MissingKey {
                payload: SCEP,
                key: "PayloadContent",
            });
        }
    };
    let bad_subject = || ProfileError::BadValue {
        payload: SCEP,
        key: "Subject",
        problem: "expected an array of RDNs, each an array of [type, value] pairs".into(),
    };
    let subject = match c.get("Subject") {
        None => Vec::new(),
        Some(Value::Array(rdns)) => rdns
            .iter()
            .map(|rdn| {
                rdn.as_array()
                    .ok_or_else(bad_subject)?
                    .iter()
                    .map(|pair| match pair.as_array().map(Vec::as_slice) {
                        Some([Value::String(k), Value::String(v)]) => Ok((k.clone(), v.clone())),
                        _ => Err(bad_subject()),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad_subject()),
    };
    let keysize = int_key(c, SCEP, "Keysize")?;
    if let Some(k) = keysize
        && ![1024, 2048, 4096].contains(&k)
    {
        return Err(ProfileError::BadValue {
            payload: SCEP,
            key: "Keysize",
            problem: format!("{k} (devices take 1024, 2048 or 4096)"),
        });
    }
    if let Some(t) = str_key(c, SCEP, "Key Type")?
        && t != "RSA"
    {
        return Err(ProfileError::BadValue {
            payload: SCEP,
            key: "Key Type",
            problem: format!("{t:?} (only RSA)"),
        });
    }
    Ok(ScepPayload {
        payload_uuid,
        url: url_key(c, SCEP, "URL")?,
        name: str_key(c, SCEP, "Name")?,
        challenge: str_key(c, SCEP, "Challenge")?,
        subject,
        keysize,
        key_usage: int_key(c, SCEP, "Key Usage")?,
        ca_fingerprint: match c.get("CAFingerprint") {
            None => None,
            Some(Value::Data(b)) => Some(b.clone()),
            Some(_) => {
                return Err(ProfileError::BadValue {
                    payload: SCEP,
                    key: "CAFingerprint",
                    problem: "expected data".into(),
                });
            }
        },
        retries: int_key(c, SCEP, "Retries")?,
        retry_delay: int_key(c, SCEP, "RetryDelay")?,
    })
}

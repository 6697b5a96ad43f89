//! Check-in messages (`PUT` to the CheckInURL), one type per Apple `MessageType`,
//! mirroring `mdm/checkin/*.yaml`. Parsing only checks what every later step relies on
//! (a known MessageType, an enrollment identity, the keys that type cannot do without);
//! Apple's "required" markers are per-enrollment-type and old devices omit some.

use std::fmt;

use serde::Deserialize;

/// Bytes that must never reach a log: unlock and bootstrap tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretData(pub Vec<u8>);

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretData([{} bytes redacted])", self.0.len())
    }
}

/// Who is checking in: the device channel (UDID, or EnrollmentID for User Enrollment)
/// and, for user-channel messages, the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrollment {
    pub udid: Option<String>,
    pub enrollment_id: Option<String>,
    pub user_id: Option<String>,
    pub enrollment_user_id: Option<String>,
    pub user_short_name: Option<String>,
    pub user_long_name: Option<String>,
    /// The device channel id ([`Enrollment::device_id`]).
    key: Option<String>,
}

/// Prefix of the device channel id of a User Enrollment: `ue:<EnrollmentID>`. A UDID
/// never contains `:` (see [`valid_udid`]), so no EnrollmentID a device (or an attacker)
/// chooses can name a device enrolled by UDID: the two kinds live in separate key spaces.
pub const USER_ENROLLMENT_PREFIX: &str = "ue:";

/// What a UDID may be made of: letters, digits and `-`, at most 64 characters (Apple's
/// are 25 or 40 hex digits, or a UUID).
pub fn valid_udid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An EnrollmentID: printable ASCII, at most 128 characters.
fn valid_enrollment_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The device channel id of a User Enrollment's EnrollmentID.
pub fn user_enrollment_key(enrollment_id: &str) -> String {
    format!("{USER_ENROLLMENT_PREFIX}{enrollment_id}")
}

impl Enrollment {
    /// The identity keys of any check-in or report dictionary. `Err` names a key that
    /// is present but not a string.
    pub fn from_plist(d: &plist::Dictionary) -> Result<Self, String> {
        let string = |key: &str| match d.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_string()
                .map(|s| (!s.is_empty()).then(|| s.to_owned()))
                .ok_or_else(|| format!("{key} must be a string")),
        };
        let udid = string("UDID")?;
        let enrollment_id = string("EnrollmentID")?;
        if udid.as_deref().is_some_and(|u| !valid_udid(u)) {
            return Err("UDID must be letters, digits and '-' (at most 64)".into());
        }
        if enrollment_id
            .as_deref()
            .is_some_and(|e| !valid_enrollment_id(e))
        {
            return Err("EnrollmentID must be printable ASCII (at most 128)".into());
        }
        let key = match (&udid, &enrollment_id) {
            (Some(u), _) => Some(u.clone()),
            (None, Some(e)) => Some(user_enrollment_key(e)),
            (None, None) => None,
        };
        Ok(Enrollment {
            udid,
            enrollment_id,
            user_id: string("UserID")?,
            enrollment_user_id: string("EnrollmentUserID")?,
            user_short_name: string("UserShortName")?,
            user_long_name: string("UserLongName")?,
            key,
        })
    }

    /// The device channel id: the UDID, or `ue:<EnrollmentID>` for a User Enrollment.
    pub fn device_id(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The user channel id, for messages about a user (macOS user channel, Shared iPad).
    pub fn user_id(&self) -> Option<&str> {
        self.user_id
            .as_deref()
            .or(self.enrollment_user_id.as_deref())
            .filter(|s| !s.is_empty())
    }

    pub fn is_user_enrollment(&self) -> bool {
        self.udid.is_none() && self.enrollment_id.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    pub enrollment: Enrollment,
    pub topic: String,
    pub device_name: Option<String>,
    pub model_name: Option<String>,
    pub model: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub product_name: Option<String>,
    pub serial_number: Option<String>,
    pub imei: Option<String>,
    pub meid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUpdate {
    pub enrollment: Enrollment,
    pub topic: String,
    pub token: Vec<u8>,
    pub push_magic: String,
    pub unlock_token: Option<SecretData>,
    pub awaiting_configuration: bool,
    pub not_on_console: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOut {
    pub enrollment: Enrollment,
    pub topic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAuthenticate {
    pub enrollment: Enrollment,
    pub digest_response: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetBootstrapToken {
    pub enrollment: Enrollment,
    pub bootstrap_token: Option<SecretData>,
    pub awaiting_configuration: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetBootstrapToken {
    pub enrollment: Enrollment,
    pub awaiting_configuration: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclarativeManagement {
    pub enrollment: Enrollment,
    pub endpoint: String,
    pub data: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GetToken {
    pub enrollment: Enrollment,
    pub token_service_type: String,
    pub token_parameters: Option<plist::Dictionary>,
}

/// A check-in message, by `MessageType`.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckinMessage {
    Authenticate(Authenticate),
    TokenUpdate(TokenUpdate),
    CheckOut(CheckOut),
    UserAuthenticate(UserAuthenticate),
    SetBootstrapToken(SetBootstrapToken),
    GetBootstrapToken(GetBootstrapToken),
    DeclarativeManagement(DeclarativeManagement),
    GetToken(GetToken),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckinError {
    NotAPlist(String),
    MissingMessageType,
    UnknownMessageType(String),
    /// A key the message type needs is missing or has the wrong type.
    Malformed {
        message_type: String,
        reason: String,
    },
    /// Neither UDID nor EnrollmentID.
    NoEnrollmentId,
}

impl fmt::Display for CheckinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckinError::NotAPlist(e) => write!(f, "body is not a property list: {e}"),
            CheckinError::MissingMessageType => f.write_str("MessageType is missing"),
            CheckinError::UnknownMessageType(t) => write!(f, "unknown MessageType {t:?}"),
            CheckinError::Malformed {
                message_type,
                reason,
            } => write!(f, "{message_type}: {reason}"),
            CheckinError::NoEnrollmentId => f.write_str("neither UDID nor EnrollmentID present"),
        }
    }
}

impl std::error::Error for CheckinError {}

/// Every key any check-in message may carry, as on the wire; typed messages are built
/// from it (plist cannot deserialise serde's flattened structs).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Wire {
    topic: Option<String>,
    device_name: Option<String>,
    model_name: Option<String>,
    model: Option<String>,
    #[serde(rename = "OSVersion")]
    os_version: Option<String>,
    build_version: Option<String>,
    product_name: Option<String>,
    serial_number: Option<String>,
    #[serde(rename = "IMEI")]
    imei: Option<String>,
    #[serde(rename = "MEID")]
    meid: Option<String>,
    token: Option<serde_bytes::ByteBuf>,
    push_magic: Option<String>,
    unlock_token: Option<serde_bytes::ByteBuf>,
    awaiting_configuration: Option<bool>,
    not_on_console: Option<bool>,
    digest_response: Option<String>,
    bootstrap_token: Option<serde_bytes::ByteBuf>,
    endpoint: Option<String>,
    data: Option<serde_bytes::ByteBuf>,
    token_service_type: Option<String>,
    token_parameters: Option<plist::Dictionary>,
}

impl CheckinMessage {
    pub fn parse(body: &[u8]) -> Result<Self, CheckinError> {
        // Two steps, so a well-formed plist with a mistyped key is reported as such.
        let value = plist::Value::from_reader(std::io::Cursor::new(body))
            .map_err(|e| CheckinError::NotAPlist(e.to_string()))?;
        let kind = value
            .as_dictionary()
            .ok_or_else(|| CheckinError::NotAPlist("top level is not a dictionary".into()))?
            .get("MessageType")
            .and_then(plist::Value::as_string)
            .ok_or(CheckinError::MissingMessageType)?
            .to_owned();
        let w: Wire = plist::from_value(&value).map_err(|e| CheckinError::Malformed {
            message_type: kind.clone(),
            reason: e.to_string(),
        })?;
        let need = |v: Option<String>, key: &str| {
            v.filter(|s| !s.is_empty())
                .ok_or_else(|| CheckinError::Malformed {
                    message_type: kind.clone(),
                    reason: format!("{key} is missing"),
                })
        };
        let enrollment = Enrollment::from_plist(value.as_dictionary().expect("checked above"))
            .map_err(|reason| CheckinError::Malformed {
                message_type: kind.clone(),
                reason,
            })?;
        if enrollment.device_id().is_none() {
            return Err(CheckinError::NoEnrollmentId);
        }
        let secret = |b: Option<serde_bytes::ByteBuf>| b.map(|b| SecretData(b.into_vec()));
        let awaiting = w.awaiting_configuration.unwrap_or(false);
        Ok(match kind.as_str() {
            "Authenticate" => CheckinMessage::Authenticate(Authenticate {
                topic: need(w.topic, "Topic")?,
                enrollment,
                device_name: w.device_name,
                model_name: w.model_name,
                model: w.model,
                os_version: w.os_version,
                build_version: w.build_version,
                product_name: w.product_name,
                serial_number: w.serial_number,
                imei: w.imei,
                meid: w.meid,
            }),
            "TokenUpdate" => CheckinMessage::TokenUpdate(TokenUpdate {
                topic: need(w.topic, "Topic")?,
                push_magic: need(w.push_magic, "PushMagic")?,
                token: w
                    .token
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| CheckinError::Malformed {
                        message_type: kind.clone(),
                        reason: "Token is missing".into(),
                    })?
                    .into_vec(),
                enrollment,
                unlock_token: secret(w.unlock_token),
                awaiting_configuration: awaiting,
                not_on_console: w.not_on_console.unwrap_or(false),
            }),
            "CheckOut" => CheckinMessage::CheckOut(CheckOut {
                enrollment,
                topic: w.topic,
            }),
            "UserAuthenticate" => CheckinMessage::UserAuthenticate(UserAuthenticate {
                enrollment,
                digest_response: w.digest_response,
            }),
            "SetBootstrapToken" => CheckinMessage::SetBootstrapToken(SetBootstrapToken {
                enrollment,
                bootstrap_token: secret(w.bootstrap_token),
                awaiting_configuration: awaiting,
            }),
            "GetBootstrapToken" => CheckinMessage::GetBootstrapToken(GetBootstrapToken {
                enrollment,
                awaiting_configuration: awaiting,
            }),
            "DeclarativeManagement" => {
                CheckinMessage::DeclarativeManagement(DeclarativeManagement {
                    endpoint: need(w.endpoint, "Endpoint")?,
                    enrollment,
                    data: w.data.map(|d| d.into_vec()),
                })
            }
            "GetToken" => CheckinMessage::GetToken(GetToken {
                token_service_type: need(w.token_service_type, "TokenServiceType")?,
                enrollment,
                token_parameters: w.token_parameters,
            }),
            _ => return Err(CheckinError::UnknownMessageType(kind)),
        })
    }

    /// The `MessageType` as Apple names it.
    pub fn message_type(&self) -> &'static str {
        match self {
            CheckinMessage::Authenticate(_) => "Authenticate",
            CheckinMessage::TokenUpdate(_) => "TokenUpdate",
            CheckinMessage::CheckOut(_) => "CheckOut",
            CheckinMessage::UserAuthenticate(_) => "UserAuthenticate",
            CheckinMessage::SetBootstrapToken(_) => "SetBootstrapToken",
            CheckinMessage::GetBootstrapToken(_) => "GetBootstrapToken",
            CheckinMessage::DeclarativeManagement(_) => "DeclarativeManagement",
            CheckinMessage::GetToken(_) => "GetToken",
        }
    }

    pub fn enrollment(&self) -> &Enrollment {
        match self {
            CheckinMessage::Authenticate(m) => &m.enrollment,
            CheckinMessage::TokenUpdate(m) => &m.enrollment,
            CheckinMessage::CheckOut(m) => &m.enrollment,
            CheckinMessage::UserAuthenticate(m) => &m.enrollment,
            CheckinMessage::SetBootstrapToken(m) => &m.enrollment,
            CheckinMessage::GetBootstrapToken(m) => &m.enrollment,
            CheckinMessage::DeclarativeManagement(m) => &m.enrollment,
            CheckinMessage::GetToken(m) => &m.enrollment,
        }
    }
}

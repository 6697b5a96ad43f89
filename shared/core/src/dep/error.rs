//! What a call to the Device Assignment API can end with: the error codes Apple documents
//! in its answers, and the client's own error that carries them. Messages are redacted
//! by the client before they get here.

use std::time::Duration;

/// A documented error code in the body of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiError {
    // cursors (fetch/sync)
    ExhaustedCursor,
    ExpiredCursor,
    InvalidCursor,
    CursorRequired,
    // access
    TermsNotSigned,
    AccessDenied,
    Forbidden,
    // headers
    UserAgentMissing,
    UserAgentInvalid,
    // requests
    MalformedRequestBody,
    DeviceIdRequired,
    ProfileUuidRequired,
    // profile definition
    ConfigNameRequired,
    ConfigNameInvalid,
    ConfigUrlRequired,
    ConfigUrlInvalid,
    FlagsInvalid,
    DepartmentInvalid,
    SupportPhoneInvalid,
    SupportEmailInvalid,
    MagicInvalid,
    LocaleInvalid,
    // account-driven enrollment, beta enrollment
    MdmServiceDiscoveryUrlRequired,
    MdmServiceDiscoveryUrlNotValid,
    OrgNotSupported,
    AppleSeedForItTurnedOff,
    /// `404` without one of the codes above (e.g. an unknown profile UUID).
    NotFound,
}

impl ApiError {
    pub const ALL: [ApiError; 27] = [
        ApiError::ExhaustedCursor,
        ApiError::ExpiredCursor,
        ApiError::InvalidCursor,
        ApiError::CursorRequired,
        ApiError::TermsNotSigned,
        ApiError::AccessDenied,
        ApiError::Forbidden,
        ApiError::UserAgentMissing,
        ApiError::UserAgentInvalid,
        ApiError::MalformedRequestBody,
        ApiError::DeviceIdRequired,
        ApiError::ProfileUuidRequired,
        ApiError::ConfigNameRequired,
        ApiError::ConfigNameInvalid,
        ApiError::ConfigUrlRequired,
        ApiError::ConfigUrlInvalid,
        ApiError::FlagsInvalid,
        ApiError::DepartmentInvalid,
        ApiError::SupportPhoneInvalid,
        ApiError::SupportEmailInvalid,
        ApiError::MagicInvalid,
        ApiError::LocaleInvalid,
        ApiError::MdmServiceDiscoveryUrlRequired,
        ApiError::MdmServiceDiscoveryUrlNotValid,
        ApiError::OrgNotSupported,
        ApiError::AppleSeedForItTurnedOff,
        ApiError::NotFound,
    ];

    /// Apple's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiError::ExhaustedCursor => "EXHAUSTED_CURSOR",
            ApiError::ExpiredCursor => "EXPIRED_CURSOR",
            ApiError::InvalidCursor => "INVALID_CURSOR",
            ApiError::CursorRequired => "CURSOR_REQUIRED",
            ApiError::TermsNotSigned => "T_C_NOT_SIGNED",
            ApiError::AccessDenied => "ACCESS_DENIED",
            ApiError::Forbidden => "FORBIDDEN",
            ApiError::UserAgentMissing => "USER_AGENT_MISSING",
            ApiError::UserAgentInvalid => "USER_AGENT_INVALID",
            ApiError::MalformedRequestBody => "MALFORMED_REQUEST_BODY",
            ApiError::DeviceIdRequired => "DEVICE_ID_REQUIRED",
            ApiError::ProfileUuidRequired => "PROFILE_UUID_REQUIRED",
            ApiError::ConfigNameRequired => "CONFIG_NAME_REQUIRED",
            ApiError::ConfigNameInvalid => "CONFIG_NAME_INVALID",
            ApiError::ConfigUrlRequired => "CONFIG_URL_REQUIRED",
            ApiError::ConfigUrlInvalid => "CONFIG_URL_INVALID",
            ApiError::FlagsInvalid => "FLAGS_INVALID",
            ApiError::DepartmentInvalid => "DEPARTMENT_INVALID",
            ApiError::SupportPhoneInvalid => "SUPPORT_PHONE_INVALID",
            ApiError::SupportEmailInvalid => "SUPPORT_EMAIL_INVALID",
            ApiError::MagicInvalid => "MAGIC_INVALID",
            ApiError::LocaleInvalid => "LOCALE_INVALID",
            ApiError::MdmServiceDiscoveryUrlRequired => "MDM_SERVICE_DISCOVERY_URL_REQUIRED",
            ApiError::MdmServiceDiscoveryUrlNotValid => "MDM_SERVICE_DISCOVERY_URL_NOT_VALID",
            ApiError::OrgNotSupported => "ORG_NOT_SUPPORTED",
            ApiError::AppleSeedForItTurnedOff => "APPLE_SEED_FOR_IT_TURNED_OFF",
            ApiError::NotFound => "NOT_FOUND",
        }
    }

    /// The documented code in an error body: plain (`INVALID_CURSOR`), JSON-quoted
    /// (`"INVALID_CURSOR"`) or inside a JSON object or sentence; whole words only, the
    /// earliest in the body wins.
    pub fn find(body: &str) -> Option<ApiError> {
        let word = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_';
        let bytes = body.as_bytes();
        ApiError::ALL
            .iter()
            .filter_map(|&code| {
                body.match_indices(code.as_str())
                    .find(|&(at, s)| {
                        let before = at.checked_sub(1).map(|i| bytes[i]);
                        let after = bytes.get(at + s.len()).copied();
                        !before.is_some_and(word) && !after.is_some_and(word)
                    })
                    .map(|(at, _)| (at, code))
            })
            .min_by_key(|&(at, _)| at)
            .map(|(_, code)| code)
    }

    /// A cursor problem of fetch/sync (see `dep-api.md` §5).
    pub fn is_cursor_error(self) -> bool {
        matches!(
            self,
            ApiError::ExhaustedCursor
                | ApiError::ExpiredCursor
                | ApiError::InvalidCursor
                | ApiError::CursorRequired
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call to the Device Assignment API can end with. Messages are safe to log and
/// show: no OAuth secret or session token is ever part of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepError {
    /// No HTTP answer (connection, TLS, denied host, ...).
    Transport(String),
    /// `401` even with a fresh session (or on `/session`): consumer key, token or
    /// signature refused, token expired or revoked, nonce reused.
    Unauthorized { excerpt: String },
    /// An error answer with a documented code.
    Api { status: u16, code: ApiError },
    /// `429`/`5xx` that the client did not wait out: retries used up, or Apple asked for
    /// a longer wait than [`RetryPolicy::max_wait`](super::client::RetryPolicy::max_wait). Try again after `after`.
    RetryLater { status: u16, after: Duration },
    /// Any other non-success answer.
    Unexpected { status: u16, excerpt: String },
    /// A success answer whose body is not what the endpoint documents.
    BadJson { path: String, detail: String },
    /// The request was not sent: the arguments cannot make a valid one.
    InvalidRequest(String),
}

impl std::fmt::Display for DepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DepError::Transport(m) => write!(f, "Device Assignment API unreachable: {m}"),
            DepError::Unauthorized { excerpt } => {
                write!(f, "Apple refused the server token (401)")?;
                if !excerpt.is_empty() {
                    write!(f, ": {excerpt}")?;
                }
                Ok(())
            }
            DepError::Api { status, code } => write!(f, "Apple answered {status} {code}"),
            DepError::RetryLater { status, after } => write!(
                f,
                "Apple answered {status}; retry after {} s",
                after.as_secs()
            ),
            DepError::Unexpected { status, excerpt } => {
                write!(f, "unexpected answer {status} from Apple")?;
                if !excerpt.is_empty() {
                    write!(f, ": {excerpt}")?;
                }
                Ok(())
            }
            DepError::BadJson { path, detail } => {
                write!(f, "malformed answer from Apple to {path}: {detail}")
            }
            DepError::InvalidRequest(m) => write!(f, "invalid Device Assignment request: {m}"),
        }
    }
}

impl std::error::Error for DepError {}

impl DepError {
    /// The documented code, if this is an [`DepError::Api`].
    pub fn code(&self) -> Option<ApiError> {
        match self {
            DepError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

//! What a device PUTs to the ServerURL: `Idle`, or the result of a command
//! (`Acknowledged`, `Error`, `CommandFormatError`, `NotNow`) with its response keys.

use std::fmt;

use serde::Deserialize;

use crate::mdm::checkin_message::Enrollment;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Idle,
    Acknowledged,
    Error,
    CommandFormatError,
    NotNow,
}

impl Status {
    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "Idle" => Status::Idle,
            "Acknowledged" => Status::Acknowledged,
            "Error" => Status::Error,
            "CommandFormatError" => Status::CommandFormatError,
            "NotNow" => Status::NotNow,
            _ => return None,
        })
    }

    /// The command leaves the queue.
    pub fn completes(self) -> bool {
        matches!(
            self,
            Status::Acknowledged | Status::Error | Status::CommandFormatError
        )
    }
}

/// One entry of `ErrorChain`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorEntry {
    pub error_code: Option<i64>,
    pub error_domain: Option<String>,
    pub localized_description: Option<String>,
    #[serde(rename = "USEnglishDescription")]
    pub us_english_description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub enrollment: Enrollment,
    pub status: Status,
    /// Present for every status but Idle.
    pub command_uuid: Option<String>,
    pub request_type: Option<String>,
    pub error_chain: Vec<ErrorEntry>,
    /// The whole plist as sent, response keys included, for the command history.
    pub raw: plist::Dictionary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportError {
    NotAPlist(String),
    MissingStatus,
    UnknownStatus(String),
    MissingCommandUuid,
    NoEnrollmentId,
    Malformed(String),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::NotAPlist(e) => write!(f, "body is not a property list: {e}"),
            ReportError::MissingStatus => f.write_str("Status is missing"),
            ReportError::UnknownStatus(s) => write!(f, "unknown Status {s:?}"),
            ReportError::MissingCommandUuid => f.write_str("CommandUUID is missing"),
            ReportError::NoEnrollmentId => f.write_str("neither UDID nor EnrollmentID present"),
            ReportError::Malformed(e) => write!(f, "malformed report: {e}"),
        }
    }
}

impl std::error::Error for ReportError {}

fn string(d: &plist::Dictionary, key: &str) -> Option<String> {
    d.get(key)
        .and_then(plist::Value::as_string)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl Report {
    pub fn parse(body: &[u8]) -> Result<Self, ReportError> {
        let value = plist::Value::from_reader(std::io::Cursor::new(body))
            .map_err(|e| ReportError::NotAPlist(e.to_string()))?;
        let raw = value
            .into_dictionary()
            .ok_or_else(|| ReportError::NotAPlist("top level is not a dictionary".into()))?;
        let status_text = string(&raw, "Status").ok_or(ReportError::MissingStatus)?;
        let status = Status::parse(&status_text).ok_or(ReportError::UnknownStatus(status_text))?;
        let enrollment = Enrollment::from_plist(&raw).map_err(ReportError::Malformed)?;
        if enrollment.device_id().is_none() {
            return Err(ReportError::NoEnrollmentId);
        }
        let command_uuid = string(&raw, "CommandUUID");
        if status != Status::Idle && command_uuid.is_none() {
            return Err(ReportError::MissingCommandUuid);
        }
        let error_chain = match raw.get("ErrorChain") {
            None => Vec::new(),
            Some(v) => plist::from_value(v)
                .map_err(|e| ReportError::Malformed(format!("ErrorChain: {e}")))?,
        };
        Ok(Report {
            enrollment,
            status,
            command_uuid,
            request_type: string(&raw, "RequestType"),
            error_chain,
            raw,
        })
    }
}

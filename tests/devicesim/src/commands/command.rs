//! A command as delivered, the status a device reports for it, and the signed reports
//! that carry the answers.

use plist::{Dictionary, Value};

use crate::SimError;

/// A report with its `Mdm-Signature`, ready to be sent (again): see
/// [`crate::Device::signed_idle`].
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

/// Scripted answer to a RequestType: status and response keys. `Sync` keeps [`crate::Device`]
/// `Sync`, so that its `&self` exchanges can run in spawned tasks.
pub type Responder = Box<dyn FnMut(&Command) -> (Status, Dictionary) + Send + Sync>;

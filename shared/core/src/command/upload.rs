//! Reading a command plist an admin uploads: the envelope around the payload
//! (`CommandUUID`, `Command`, `RequestType`), before the payload is checked.

use plist::{Dictionary, Value as Plist};

use crate::command::payload::{MISSING, PayloadError, unknown_key_problem, validate_plist};
use crate::command::payload_source::plist_kind;

/// Reads a command plist an admin uploads (XML or binary): either a full command
/// `{CommandUUID, Command: {RequestType, …}}` or just the inner `{RequestType, …}`. Returns
/// the RequestType, the payload without it, and the CommandUUID if given, after
/// [`validate_plist`]. Error keys are paths into the payload, as for JSON; `Command`,
/// `CommandUUID` and `RequestType` for the envelope, `plist` when it does not parse.
pub fn parse_raw_command(
    bytes: &[u8],
) -> Result<(String, Dictionary, Option<String>), Vec<PayloadError>> {
    let err = |key: &str, problem: String| {
        vec![PayloadError {
            key: key.into(),
            problem,
        }]
    };
    let top = match plist::from_bytes::<Plist>(bytes) {
        Ok(Plist::Dictionary(d)) => d,
        Ok(other) => {
            return Err(err(
                "plist",
                format!("expected a dictionary, found {}", plist_kind(&other)),
            ));
        }
        Err(e) => return Err(err("plist", format!("not a property list: {e}"))),
    };
    let (mut command, uuid) = if top.contains_key("Command") {
        let mut errs = Vec::new();
        for k in top
            .keys()
            .filter(|k| *k != "Command" && *k != "CommandUUID")
        {
            errs.push(PayloadError {
                key: k.clone(),
                problem: unknown_key_problem(),
            });
        }
        let uuid = match top.get("CommandUUID") {
            None => None,
            Some(Plist::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Plist::String(_)) => {
                errs.push(PayloadError {
                    key: "CommandUUID".into(),
                    problem: "empty".into(),
                });
                None
            }
            Some(v) => {
                errs.push(PayloadError {
                    key: "CommandUUID".into(),
                    problem: format!("expected string, found {}", plist_kind(v)),
                });
                None
            }
        };
        let command = match top.get("Command") {
            Some(Plist::Dictionary(d)) => d.clone(),
            Some(v) => {
                errs.push(PayloadError {
                    key: "Command".into(),
                    problem: format!("expected dictionary, found {}", plist_kind(v)),
                });
                Dictionary::new()
            }
            None => unreachable!("checked above"),
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        (command, uuid)
    } else {
        (top, None)
    };
    let request_type = match command.remove("RequestType") {
        Some(Plist::String(s)) => s,
        Some(v) => {
            return Err(err(
                "RequestType",
                format!("expected string, found {}", plist_kind(&v)),
            ));
        }
        None => return Err(err("RequestType", MISSING.into())),
    };
    validate_plist(&request_type, &command)?;
    Ok((request_type, command, uuid))
}

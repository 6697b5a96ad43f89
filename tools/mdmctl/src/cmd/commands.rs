//! `mdmctl commands`: send an MDM command (from a JSON, YAML or plist file, or just a
//! RequestType) to one device or, through the bulk route, to many; a device's command
//! history; one command with the device's answer; cancelling one not yet delivered.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Map, Value, json};

use crate::client::Body;
use crate::ctx::Ctx;
use crate::error::{CliError, detail_lines};
use crate::input;
use crate::output::{Column, Format, col, computed};
use crate::paging::{self, Listing, PageArgs};

#[derive(Subcommand, Debug)]
pub enum CommandsCmd {
    /// Queue a command for one device, or for many (one request, each device its own result)
    Send {
        /// Device ids (UDID, or EnrollmentID under User Enrollment)
        devices: Vec<String>,
        /// A file of device ids, one a line (`-`: standard input)
        #[arg(long, value_name = "FILE")]
        devices_file: Option<PathBuf>,
        /// The command: JSON or YAML (RequestType and payload keys, data as base64), or a
        /// command plist (`{RequestType, ...}` or `{CommandUUID, Command}`)
        #[arg(
            short = 'f',
            long = "file",
            value_name = "FILE",
            required_unless_present = "request_type"
        )]
        file: Option<PathBuf>,
        /// A command without payload keys, e.g. ProfileList
        #[arg(long, conflicts_with = "file")]
        request_type: Option<String>,
        /// A user channel of the device (UserID or EnrollmentUserID); one device only
        #[arg(long)]
        user: Option<String>,
        /// The priority lane
        #[arg(long)]
        priority: bool,
    },
    /// The device's commands, newest first
    History {
        device: String,
        #[arg(long)]
        user: Option<String>,
        /// queued, not_now, acknowledged, error, command_format_error, cancelled
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        request_type: Option<String>,
        /// Enqueued at or after (Unix seconds or RFC 3339)
        #[arg(long)]
        from: Option<String>,
        /// Enqueued at or before (Unix seconds or RFC 3339)
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One command with the device's answer
    Show {
        device: String,
        uuid: String,
        #[arg(long)]
        user: Option<String>,
    },
    /// Cancel a command not yet delivered (or deferred with NotNow)
    Cancel {
        device: String,
        uuid: String,
        #[arg(long)]
        user: Option<String>,
    },
}

fn first_error(c: &Value) -> String {
    c["error_chain"]
        .as_array()
        .and_then(|a| a.first())
        .map(|e| {
            let code = e["code"]
                .as_i64()
                .map(|c| c.to_string())
                .unwrap_or_default();
            let domain = e["domain"].as_str().unwrap_or("");
            let text = e["description"].as_str().unwrap_or("");
            format!("{domain} {code}: {text}").trim().to_owned()
        })
        .unwrap_or_default()
}

pub const COLUMNS: &[Column] = &[
    col("COMMAND UUID", "command_uuid"),
    col("REQUEST TYPE", "request_type"),
    col("STATUS", "status"),
    col("LANE", "lane"),
    col("ENQUEUED", "enqueued_at"),
    col("ANSWERED", "answered_at"),
    computed("ERROR", first_error),
];

pub const SENT: &[Column] = &[
    col("DEVICE", "device"),
    col("COMMAND UUID", "command_uuid"),
    col("REQUEST TYPE", "request_type"),
    col("LANE", "lane"),
    col("STATUS", "status"),
    computed("PUSH", |v| match &v["push"] {
        Value::String(s) => s.clone(),
        p => p["outcome"].as_str().unwrap_or("").to_owned(),
    }),
];

pub const BULK: &[Column] = &[
    col("DEVICE", "device"),
    col("COMMAND UUID", "command_uuid"),
    computed("RESULT", |v| {
        if v.get("command_uuid").is_some() {
            "queued".to_owned()
        } else {
            format!("{} {}", v["status"], v["error"].as_str().unwrap_or(""))
        }
    }),
    computed("DETAIL", |v| {
        // The error's message, fields and facts; not the result's own device and status.
        let mut error = v.clone();
        if let Value::Object(m) = &mut error {
            m.remove("device");
            m.remove("status");
        }
        let mut lines = vec![v["message"].as_str().unwrap_or("").to_owned()];
        lines.extend(detail_lines(&error));
        lines.retain(|l| !l.is_empty());
        lines.join("; ")
    }),
];

/// A command document as the API's JSON: the envelope's `Command` when there is one.
fn command_json(v: Value, name: &str) -> Result<Map<String, Value>, CliError> {
    let Value::Object(mut m) = v else {
        return Err(CliError::local(format!("{name}: a command is an object")));
    };
    if !m.contains_key("RequestType")
        && let Some(Value::Object(inner)) = m.remove("Command")
    {
        return Ok(inner);
    }
    Ok(m)
}

fn device_list(
    ctx: &mut Ctx,
    mut devices: Vec<String>,
    file: Option<PathBuf>,
) -> Result<Vec<String>, CliError> {
    if let Some(path) = file {
        let text = String::from_utf8_lossy(&input::read_bytes(ctx, &path)?).into_owned();
        devices.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if devices.is_empty() {
        return Err(CliError::local(
            "no devices: give device ids or --devices-file",
        ));
    }
    Ok(devices)
}

fn user_query(user: Option<String>) -> Vec<(&'static str, String)> {
    user.map(|u| vec![("user", u)]).unwrap_or_default()
}

const DEVICE_COMMANDS: &str = "/api/v1/devices/{device}/commands";
const ONE: &str = "/api/v1/devices/{device}/commands/{uuid}";

pub fn run(ctx: &mut Ctx, cmd: CommandsCmd) -> Result<(), CliError> {
    match cmd {
        CommandsCmd::Send {
            devices,
            devices_file,
            file,
            request_type,
            user,
            priority,
        } => {
            let devices = device_list(ctx, devices, devices_file)?;
            let raw = file
                .as_ref()
                .map(|f| input::read_bytes(ctx, f).map(|b| (f.display().to_string(), b)))
                .transpose()?;
            if let [device] = devices.as_slice() {
                send_one(ctx, device, raw, request_type, user, priority)
            } else {
                if user.is_some() {
                    return Err(CliError::local("--user works with one device at a time"));
                }
                let mut command = match raw {
                    Some((name, bytes)) => command_json(input::document(&name, &bytes)?, &name)?,
                    None => Map::new(),
                };
                if let Some(rt) = request_type {
                    command.insert("RequestType".into(), json!(rt));
                }
                if priority {
                    command.insert("priority".into(), json!(true));
                }
                let body = json!({ "devices": devices, "command": command });
                let v = ctx
                    .api()?
                    .send("POST", "/api/v1/commands", &[], Some(&body))?;
                ctx.answer_list(&v, "results", BULK)?;
                match v["failed"].as_u64().unwrap_or(0) {
                    0 => Ok(()),
                    n => Err(CliError::Partial(format!(
                        "{n} of {} devices did not take the command",
                        devices.len()
                    ))),
                }
            }
        }
        CommandsCmd::History {
            device,
            user,
            status,
            request_type,
            from,
            to,
            page,
        } => {
            let filters: Vec<(&str, String)> = [
                ("user", user),
                ("status", status),
                ("request_type", request_type),
                ("from", from),
                ("to", to),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
            let listing = Listing {
                pattern: DEVICE_COMMANDS,
                params: &[&device],
            };
            let items = paging::fetch(ctx, &listing, filters, &page)?;
            ctx.list(&items, COLUMNS)
        }
        CommandsCmd::Show { device, uuid, user } => {
            let v = ctx
                .api()?
                .call("GET", ONE, &[&device, &uuid], &user_query(user), Body::None)?
                .json()?;
            ctx.object(&v)
        }
        CommandsCmd::Cancel { device, uuid, user } => {
            let v = ctx
                .api()?
                .call(
                    "DELETE",
                    ONE,
                    &[&device, &uuid],
                    &user_query(user),
                    Body::None,
                )?
                .json()?;
            ctx.done(&format!("command {uuid} cancelled"), &v)
        }
    }
}

/// One device: a plist goes as it is (its CommandUUID kept), JSON with `user`/`priority`.
fn send_one(
    ctx: &mut Ctx,
    device: &str,
    raw: Option<(String, Vec<u8>)>,
    request_type: Option<String>,
    user: Option<String>,
    priority: bool,
) -> Result<(), CliError> {
    let api = ctx.api()?;
    let answer = match raw {
        Some((_, bytes)) if input::is_plist(&bytes) => {
            let mut query = user_query(user);
            if priority {
                query.push(("priority", "true".to_owned()));
            }
            let body = Body::Raw {
                content_type: "application/x-apple-plist",
                bytes: &bytes,
            };
            api.call("POST", DEVICE_COMMANDS, &[device], &query, body)?
        }
        raw => {
            let mut command = match raw {
                Some((name, bytes)) => command_json(input::document(&name, &bytes)?, &name)?,
                None => Map::new(),
            };
            if let Some(rt) = request_type {
                command.insert("RequestType".into(), json!(rt));
            }
            if let Some(u) = user {
                command.insert("user".into(), json!(u));
            }
            if priority {
                command.insert("priority".into(), json!(true));
            }
            let body = Value::Object(command);
            api.call("POST", DEVICE_COMMANDS, &[device], &[], Body::Json(&body))?
        }
    };
    let v = answer.json()?;
    match ctx.format {
        Format::Table | Format::Csv => ctx.list(std::slice::from_ref(&v), SENT),
        _ => ctx.object(&v),
    }
}

//! Device actions (`mdmctl devices lock|wipe|restart|...`): each is
//! `POST /api/v1/devices/{device}/actions/{action}` with the few fields it takes; the
//! server turns it into the MDM commands it stands for.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::ctx::Ctx;
use crate::error::CliError;
use crate::output::{Column, col, obj};

#[derive(Subcommand, Debug)]
pub enum ActionCmd {
    /// Lock the device (DeviceLock)
    Lock {
        device: String,
        /// Shown on the lock screen
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        phone_number: Option<String>,
        /// Six-digit PIN (macOS)
        #[arg(long)]
        pin: Option<String>,
    },
    /// Erase the device (EraseDevice); needs --yes
    Wipe {
        device: String,
        /// Six-digit PIN (macOS)
        #[arg(long)]
        pin: Option<String>,
        #[arg(long)]
        preserve_data_plan: bool,
        #[arg(long)]
        disallow_proximity_setup: bool,
        /// Confirm: everything on the device is erased
        #[arg(long)]
        yes: bool,
    },
    /// Restart the device (RestartDevice)
    Restart {
        device: String,
        #[arg(long)]
        notify_user: bool,
    },
    /// Shut the device down (ShutDownDevice)
    Shutdown { device: String },
    /// Rename the device (Settings DeviceName)
    Rename { device: String, name: String },
    /// Clear the passcode with the escrowed unlock token (ClearPasscode)
    ClearPasscode { device: String },
    /// Lost Mode (supervised devices)
    #[command(subcommand)]
    LostMode(LostMode),
    /// Ask for the inventory again (DeviceInformation, SecurityInfo, app, certificate and profile lists)
    Refresh { device: String },
    /// End Setup Assistant's wait for configuration (DeviceConfigured)
    Release { device: String },
}

#[derive(Subcommand, Debug)]
pub enum LostMode {
    /// EnableLostMode: a message and/or phone number on the lock screen
    Enable {
        device: String,
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        phone_number: Option<String>,
        #[arg(long)]
        footnote: Option<String>,
    },
    /// DisableLostMode
    Disable { device: String },
}

pub const COLUMNS: &[Column] = &[
    col("COMMAND UUID", "command_uuid"),
    col("REQUEST TYPE", "request_type"),
    col("LANE", "lane"),
    col("STATUS", "status"),
];

fn s(v: Option<String>) -> Option<Value> {
    v.map(Value::from)
}

fn flag(b: bool) -> Option<Value> {
    b.then_some(Value::Bool(true))
}

/// The device, the server's action name, and its body.
fn plan(cmd: ActionCmd) -> Result<(String, &'static str, Value), CliError> {
    Ok(match cmd {
        ActionCmd::Lock {
            device,
            message,
            phone_number,
            pin,
        } => {
            let body = obj(vec![
                ("message", s(message)),
                ("phone_number", s(phone_number)),
                ("pin", s(pin)),
            ]);
            (device, "lock", body)
        }
        ActionCmd::Wipe {
            device,
            pin,
            preserve_data_plan,
            disallow_proximity_setup,
            yes,
        } => {
            if !yes {
                return Err(CliError::local(format!(
                    "wiping erases everything on {device}: repeat with --yes"
                )));
            }
            let body = obj(vec![
                ("pin", s(pin)),
                ("preserve_data_plan", flag(preserve_data_plan)),
                ("disallow_proximity_setup", flag(disallow_proximity_setup)),
            ]);
            (device, "wipe", body)
        }
        ActionCmd::Restart {
            device,
            notify_user,
        } => (
            device,
            "restart",
            obj(vec![("notify_user", flag(notify_user))]),
        ),
        ActionCmd::Shutdown { device } => (device, "shutdown", json!({})),
        ActionCmd::Rename { device, name } => (device, "rename", json!({ "name": name })),
        ActionCmd::ClearPasscode { device } => (device, "clear-passcode", json!({})),
        ActionCmd::LostMode(LostMode::Enable {
            device,
            message,
            phone_number,
            footnote,
        }) => {
            let body = obj(vec![
                ("message", s(message)),
                ("phone_number", s(phone_number)),
                ("footnote", s(footnote)),
            ]);
            (device, "enable-lost-mode", body)
        }
        ActionCmd::LostMode(LostMode::Disable { device }) => {
            (device, "disable-lost-mode", json!({}))
        }
        ActionCmd::Refresh { device } => (device, "refresh-inventory", json!({})),
        ActionCmd::Release { device } => (device, "release", json!({})),
    })
}

pub fn run(ctx: &mut Ctx, cmd: ActionCmd) -> Result<(), CliError> {
    let (device, action, body) = plan(cmd)?;
    let v = ctx.api()?.send(
        "POST",
        "/api/v1/devices/{device}/actions/{action}",
        &[&device, action],
        Some(&body),
    )?;
    ctx.answer_list(&v, "commands", COLUMNS)
}

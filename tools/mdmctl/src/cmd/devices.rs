//! `mdmctl devices`: enrolled devices: the list (filters, pagination), one device with
//! its inventory, its log, retiring it, and the device actions of [`super::actions`].

use clap::Subcommand;

use super::actions::{self, ActionCmd};
use crate::client::Body;
use crate::ctx::Ctx;
use crate::error::CliError;
use crate::output::{Column, col};
use crate::paging::{self, Listing, PageArgs};

#[derive(Subcommand, Debug)]
pub enum DevicesCmd {
    /// Devices that enrolled, in the order they first authenticated
    List {
        /// Only enrolled (true) or not enrolled (false) devices
        #[arg(long)]
        enrolled: Option<bool>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One device: enrollment facts, inventory, push state
    Show { device: String },
    /// The device's log (check-ins and command exchanges), newest first
    Logs {
        device: String,
        /// Action name, e.g. TokenUpdate or DeviceLock
        #[arg(long)]
        action: Option<String>,
        /// ok, refused, queued, Acknowledged, Error, NotNow, CommandFormatError
        #[arg(long)]
        status: Option<String>,
        /// Start time (Unix seconds or RFC 3339)
        #[arg(long)]
        from: Option<String>,
        /// End time (Unix seconds or RFC 3339)
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Retire the device: remove our MDM profile from it, then its record
    Retire {
        device: String,
        /// Delete the record at once, leaving our profile on the device
        #[arg(long)]
        force: bool,
    },
    #[command(flatten)]
    Action(ActionCmd),
}

pub const COLUMNS: &[Column] = &[
    col("DEVICE", "device_id"),
    col("SERIAL", "serial_number"),
    col("NAME", "device_name"),
    col("MODEL", "model_name"),
    col("PLATFORM", "platform"),
    col("OS", "os_version"),
    col("ENROLLED", "enrolled"),
    col("VIA", "enrolled_via"),
    col("SUPERVISED", "supervised"),
    col("LAST SEEN", "last_seen_at"),
];

pub const LOG_COLUMNS: &[Column] = &[
    col("AT", "at"),
    col("ACTION", "action"),
    col("STATUS", "status"),
    col("USER", "user"),
    col("DETAILS", "details"),
];

const ONE: &str = "/api/v1/devices/{device}";

pub fn run(ctx: &mut Ctx, cmd: DevicesCmd) -> Result<(), CliError> {
    match cmd {
        DevicesCmd::List { enrolled, page } => {
            let filters = enrolled
                .map(|e| vec![("enrolled", e.to_string())])
                .unwrap_or_default();
            let listing = Listing {
                pattern: "/api/v1/devices",
                params: &[],
            };
            let items = paging::fetch(ctx, &listing, filters, &page)?;
            ctx.list(&items, COLUMNS)
        }
        DevicesCmd::Show { device } => {
            let v = ctx.api()?.get(ONE, &[&device])?;
            ctx.object(&v)
        }
        DevicesCmd::Logs {
            device,
            action,
            status,
            from,
            to,
            page,
        } => {
            let filters: Vec<(&str, String)> = [
                ("action", action),
                ("status", status),
                ("from", from),
                ("to", to),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
            let listing = Listing {
                pattern: "/api/v1/devices/{device}/logs",
                params: &[&device],
            };
            let items = paging::fetch(ctx, &listing, filters, &page)?;
            ctx.list(&items, LOG_COLUMNS)
        }
        DevicesCmd::Retire { device, force } => {
            let query = if force {
                vec![("force", "true".to_owned())]
            } else {
                Vec::new()
            };
            let answer = ctx
                .api()?
                .call("DELETE", ONE, &[&device], &query, Body::None)?;
            let v = answer.json()?;
            let sentence = if answer.status == 202 {
                format!(
                    "RemoveProfile queued for {device} (command {}); the record goes when the device acknowledges it",
                    v["command_uuid"].as_str().unwrap_or("?")
                )
            } else {
                format!("device {device} deleted")
            };
            ctx.done(&sentence, &v)
        }
        DevicesCmd::Action(a) => actions::run(ctx, a),
    }
}

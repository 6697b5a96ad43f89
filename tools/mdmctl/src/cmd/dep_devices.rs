//! `mdmctl dep-devices`: the devices Apple assigns to a server token (the ADE
//! inventory), with the API's filters and pagination.

use clap::Subcommand;
use serde_json::json;

use super::slot::{self, SlotArg};
use crate::ctx::Ctx;
use crate::error::CliError;
use crate::output::{Column, col};
use crate::paging::{self, Listing, PageArgs};

#[derive(Subcommand, Debug)]
pub enum DepDevicesCmd {
    /// The token's devices, in sync order
    List {
        #[command(flatten)]
        slot: SlotArg,
        /// `unassigned`, `any`, or a profile's Apple UUID
        #[arg(long)]
        assignment: Option<String>,
        /// Case-insensitive serial-number prefix
        #[arg(long)]
        serial_prefix: Option<String>,
        /// Only devices Apple reported removed (true) or only present ones (false)
        #[arg(long)]
        removed: Option<bool>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One device with every field Apple sent, and Apple's last assignment answer
    Show {
        serial: String,
        #[command(flatten)]
        slot: SlotArg,
    },
    /// Delete the device record (it returns with the next full sync if Apple still assigns it)
    Delete {
        serial: String,
        #[command(flatten)]
        slot: SlotArg,
    },
}

pub const COLUMNS: &[Column] = &[
    col("SERIAL", "serial_number"),
    col("MODEL", "apple.model"),
    col("FAMILY", "apple.device_family"),
    col("OS", "apple.os"),
    col("PROFILE STATUS", "profile_status"),
    col("PROFILE UUID", "profile_uuid"),
    col("REMOVED", "removed_from_abm"),
];

const ONE: &str = "/api/v1/tokens/{token}/devices/{serial}";

pub fn run(ctx: &mut Ctx, cmd: DepDevicesCmd) -> Result<(), CliError> {
    match cmd {
        DepDevicesCmd::List {
            slot,
            assignment,
            serial_prefix,
            removed,
            page,
        } => {
            let token = slot::resolve(ctx, &slot)?;
            let mut filters = Vec::new();
            if let Some(a) = assignment {
                filters.push(("assignment", a));
            }
            if let Some(p) = serial_prefix {
                filters.push(("serial_prefix", p));
            }
            if let Some(r) = removed {
                filters.push(("removed", r.to_string()));
            }
            let listing = Listing {
                pattern: "/api/v1/tokens/{token}/devices",
                params: &[&token],
            };
            let items = paging::fetch(ctx, &listing, filters, &page)?;
            ctx.list(&items, COLUMNS)
        }
        DepDevicesCmd::Show { serial, slot } => {
            let token = slot::resolve(ctx, &slot)?;
            let v = ctx.api()?.get(ONE, &[&token, &serial])?;
            ctx.object(&v)
        }
        DepDevicesCmd::Delete { serial, slot } => {
            let token = slot::resolve(ctx, &slot)?;
            ctx.api()?.send("DELETE", ONE, &[&token, &serial], None)?;
            ctx.done(
                &format!("device {serial} deleted from token {token}"),
                &json!({ "deleted": serial, "token": token }),
            )
        }
    }
}

//! `mdmctl profiles`: a server token's enrollment profiles (from YAML or JSON files,
//! checked locally against the server's own type first), assigning them to devices, and
//! the default profile. Auto-assign rules are in [`super::rules`].

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::rules::{self, RulesCmd};
use super::slot::{self, SlotArg};
use crate::client::Body;
use crate::ctx::Ctx;
use crate::error::CliError;
use crate::input;
use crate::output::{Column, col, items};

#[derive(clap::Args, Debug)]
pub struct ProfilesArgs {
    #[command(flatten)]
    pub slot: SlotArg,
    #[command(subcommand)]
    pub cmd: ProfilesCmd,
}

#[derive(Subcommand, Debug)]
pub enum ProfilesCmd {
    /// The token's enrollment profiles
    List,
    /// One profile
    Show { profile: u64 },
    /// Create a profile from a YAML or JSON file (the API's ProfileSettings)
    Create {
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Replace a profile's settings from a YAML or JSON file
    Update {
        profile: u64,
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete a profile that is not the default and has no devices
    Delete {
        profile: u64,
        /// Remove the assignment of its devices first
        #[arg(long)]
        unassign: bool,
    },
    /// Assign the profile to devices
    Assign {
        profile: u64,
        #[command(flatten)]
        selection: Selection,
    },
    /// Remove the profile assignment of devices
    Unassign {
        #[command(flatten)]
        selection: Selection,
    },
    /// The profile devices get when no rule matches
    #[command(subcommand)]
    Default(DefaultCmd),
    /// Auto-assign rules: first match wins
    #[command(subcommand)]
    Rules(RulesCmd),
}

#[derive(Subcommand, Debug)]
pub enum DefaultCmd {
    /// The default profile's id (or none)
    Get,
    /// Set the default profile: an id, or `none` to clear it
    Set { profile: String },
}

/// Devices to assign or unassign: serials, or a filter.
#[derive(clap::Args, Debug)]
pub struct Selection {
    /// Serial numbers
    pub serials: Vec<String>,
    /// A file of serial numbers, one a line (`-`: standard input)
    #[arg(long, value_name = "FILE")]
    pub serials_file: Option<PathBuf>,
    /// Instead of serials: `unassigned`, `any`, or a profile id (its devices)
    #[arg(long, conflicts_with_all = ["serials", "serials_file"])]
    pub filter: Option<String>,
}

pub const COLUMNS: &[Column] = &[
    col("ID", "id"),
    col("NAME", "settings.name"),
    col("PLATFORM", "settings.platform"),
    col("AFFINITY", "settings.user_affinity"),
    col("DEFAULT", "is_default"),
    col("APPLE UUID", "apple_uuid"),
    col("UPDATED", "updated_at"),
];

const LIST: &str = "/api/v1/tokens/{token}/profiles";
const ONE: &str = "/api/v1/tokens/{token}/profiles/{profile}";
const DEFAULT: &str = "/api/v1/tokens/{token}/default-profile";

/// A profile file, checked against the server's `ProfileSpec` (unknown fields, types).
fn profile_file(ctx: &mut Ctx, path: &std::path::Path) -> Result<Value, CliError> {
    let v = input::read_document(ctx, path)?;
    input::check_as::<mdm_core::dep::profiles::ProfileSpec>(
        &path.display().to_string(),
        "enrollment profile",
        &v,
    )?;
    Ok(v)
}

fn selection_body(ctx: &mut Ctx, s: Selection) -> Result<Value, CliError> {
    if let Some(f) = s.filter {
        let filter = match f.parse::<u64>() {
            Ok(id) => json!(id),
            Err(_) => json!(f),
        };
        return Ok(json!({ "filter": filter }));
    }
    let mut serials = s.serials;
    if let Some(path) = &s.serials_file {
        let text = String::from_utf8_lossy(&input::read_bytes(ctx, path)?).into_owned();
        serials.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if serials.is_empty() {
        return Err(CliError::local(
            "no devices: give serial numbers, --serials-file or --filter",
        ));
    }
    Ok(json!({ "serials": serials }))
}

pub fn run(ctx: &mut Ctx, args: ProfilesArgs) -> Result<(), CliError> {
    let token = slot::resolve(ctx, &args.slot)?;
    let api = ctx.api()?;
    let t = token.as_str();
    match args.cmd {
        ProfilesCmd::List => {
            let v = api.get(LIST, &[t])?;
            ctx.list(items(&v, crate::paging::ITEMS)?, COLUMNS)
        }
        ProfilesCmd::Show { profile } => {
            let v = api.get(ONE, &[t, &profile.to_string()])?;
            ctx.object(&v)
        }
        ProfilesCmd::Create { file } => {
            let body = profile_file(ctx, &file)?;
            let v = api.send("POST", LIST, &[t], Some(&body))?;
            ctx.object(&v)
        }
        ProfilesCmd::Update { profile, file } => {
            let body = profile_file(ctx, &file)?;
            let v = api.send("PUT", ONE, &[t, &profile.to_string()], Some(&body))?;
            ctx.object(&v)
        }
        ProfilesCmd::Delete { profile, unassign } => {
            let query = if unassign {
                vec![("unassign", "true".to_owned())]
            } else {
                Vec::new()
            };
            let v = api
                .call(
                    "DELETE",
                    ONE,
                    &[t, &profile.to_string()],
                    &query,
                    Body::None,
                )?
                .json()?;
            ctx.done(&format!("profile {profile} deleted"), &v)
        }
        ProfilesCmd::Assign { profile, selection } => {
            let body = selection_body(ctx, selection)?;
            let pattern = "/api/v1/tokens/{token}/profiles/{profile}/devices";
            let answer = api.call(
                "POST",
                pattern,
                &[t, &profile.to_string()],
                &[],
                Body::Json(&body),
            )?;
            assigned(ctx, answer.status, &answer.json()?)
        }
        ProfilesCmd::Unassign { selection } => {
            let body = selection_body(ctx, selection)?;
            let pattern = "/api/v1/tokens/{token}/unassign";
            let answer = api.call("POST", pattern, &[t], &[], Body::Json(&body))?;
            assigned(ctx, answer.status, &answer.json()?)
        }
        ProfilesCmd::Default(DefaultCmd::Get) => {
            let v = api.get(DEFAULT, &[t])?;
            ctx.object(&v)
        }
        ProfilesCmd::Default(DefaultCmd::Set { profile }) => {
            let id = match profile.as_str() {
                "none" | "null" => Value::Null,
                other => json!(other.parse::<u64>().map_err(|_| {
                    CliError::local(format!("{other:?} is not a profile id (or none)"))
                })?),
            };
            let v = api.send("PUT", DEFAULT, &[t], Some(&json!({ "profile": id })))?;
            ctx.object(&v)
        }
        ProfilesCmd::Rules(cmd) => rules::run(ctx, &api, t, cmd),
    }
}

/// An assignment's per-status counts; 202 means Apple throttled part of it.
fn assigned(ctx: &mut Ctx, status: u16, v: &Value) -> Result<(), CliError> {
    ctx.object(v)?;
    if status == 202 {
        ctx.note("not finished: the server retries the rest (see result.stopped)");
    }
    Ok(())
}

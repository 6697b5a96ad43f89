//! `mdmctl tokens`: server token slots (one per ABM/ASM MDM server): create one, download
//! its public key for Apple, upload the `.p7m` Apple gives back (and renewals), rotate
//! its key, rename, delete, sync.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::sync::{self, SyncArgs};
use crate::client::Body;
use crate::ctx::Ctx;
use crate::error::CliError;
use crate::input;
use crate::output::{Column, col, items, obj};

const LIST: &str = "/api/v1/tokens";
const ONE: &str = "/api/v1/tokens/{token}";

#[derive(Subcommand, Debug)]
pub enum TokensCmd {
    /// Every server token slot
    List,
    /// Create a slot: a key pair whose public key you upload in ABM/ASM
    Create {
        name: String,
        /// Managed Apple ID of the ABM/ASM administrator who renews the token
        #[arg(long)]
        apple_id: Option<String>,
    },
    /// One slot
    Show { token: u64 },
    /// Rename a slot or set its administrator's Apple ID
    Update {
        token: u64,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        apple_id: Option<String>,
    },
    /// Delete a slot that holds no devices, profiles or default profile
    Delete { token: u64 },
    /// The certificate (.pem) to upload for this MDM server in ABM/ASM
    PublicKey {
        token: u64,
        /// Write it to this file instead of standard output
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Upload the server token (.p7m) Apple gave for the slot, first or renewed
    #[command(visible_alias = "renew")]
    Upload {
        token: u64,
        /// The .p7m file as downloaded (`-`: standard input)
        file: PathBuf,
        #[arg(long)]
        apple_id: Option<String>,
        /// Accept a token of another ABM/ASM MDM server (its sync starts over)
        #[arg(long)]
        force: bool,
    },
    /// Start a key rotation: download the new public key, then upload the token made for it
    RotateKey { token: u64 },
    /// Sync the slot's devices with Apple now (at most once per 15 minutes)
    Sync(SyncArgs),
    /// The slot's sync status
    SyncStatus { token: u64 },
}

pub const COLUMNS: &[Column] = &[
    col("ID", "id"),
    col("NAME", "name"),
    col("STATUS", "status"),
    col("DAYS LEFT", "days_left"),
    col("DEVICES", "device_count"),
    col("PROFILES", "profile_count"),
    col("DEFAULT", "default_profile"),
    col("ORG", "org_name"),
    col("LAST DELTA SYNC", "last_delta_sync_at"),
];

pub fn run(ctx: &mut Ctx, cmd: TokensCmd) -> Result<(), CliError> {
    let api = ctx.api()?;
    match cmd {
        TokensCmd::List => {
            let v = api.get(LIST, &[])?;
            ctx.list(items(&v, crate::paging::ITEMS)?, COLUMNS)
        }
        TokensCmd::Create { name, apple_id } => {
            let body = obj(vec![
                ("name", Some(json!(name))),
                ("apple_id", apple_id.map(Value::from)),
            ]);
            let v = api.send("POST", LIST, &[], Some(&body))?;
            ctx.object(&v)?;
            let id = &v["id"];
            ctx.note(&format!(
                "next: mdmctl tokens public-key {id} -f token-{id}.pem, upload it in Apple \
                 Business Manager, then mdmctl tokens upload {id} FILE.p7m"
            ));
            Ok(())
        }
        TokensCmd::Show { token } => {
            let v = api.get(ONE, &[&token.to_string()])?;
            ctx.object(&v)
        }
        TokensCmd::Update {
            token,
            name,
            apple_id,
        } => {
            let body = obj(vec![
                ("name", name.map(Value::from)),
                ("apple_id", apple_id.map(Value::from)),
            ]);
            if body.as_object().is_some_and(|m| m.is_empty()) {
                return Err(CliError::local(
                    "nothing to change: give --name or --apple-id",
                ));
            }
            let v = api.send("PATCH", ONE, &[&token.to_string()], Some(&body))?;
            ctx.object(&v)
        }
        TokensCmd::Delete { token } => {
            api.send("DELETE", ONE, &[&token.to_string()], None)?;
            ctx.done(
                &format!("token {token} deleted"),
                &json!({ "deleted": token }),
            )
        }
        TokensCmd::PublicKey { token, file } => {
            let pem = api
                .call(
                    "GET",
                    "/api/v1/tokens/{token}/public-key",
                    &[&token.to_string()],
                    &[],
                    Body::None,
                )?
                .bytes;
            match file {
                Some(path) => {
                    std::fs::write(&path, &pem)
                        .map_err(|e| CliError::local(format!("{}: {e}", path.display())))?;
                    ctx.note(&format!("wrote {}", path.display()));
                    Ok(())
                }
                None => ctx
                    .out
                    .write_all(&pem)
                    .map_err(|e| CliError::local(format!("writing output: {e}"))),
            }
        }
        TokensCmd::Upload {
            token,
            file,
            apple_id,
            force,
        } => {
            let bytes = input::read_bytes(ctx, &file)?;
            let mut query = Vec::new();
            if let Some(a) = apple_id {
                query.push(("apple_id", a));
            }
            if force {
                query.push(("force", "true".to_owned()));
            }
            let body = Body::Raw {
                content_type: "application/pkcs7-mime",
                bytes: &bytes,
            };
            let v = api
                .call(
                    "PUT",
                    "/api/v1/tokens/{token}/server-token",
                    &[&token.to_string()],
                    &query,
                    body,
                )?
                .json()?;
            ctx.object(&v)
        }
        TokensCmd::RotateKey { token } => {
            let v = api.send(
                "POST",
                "/api/v1/tokens/{token}/rotate-key",
                &[&token.to_string()],
                None,
            )?;
            ctx.object(&v)?;
            ctx.note(&format!(
                "next: mdmctl tokens public-key {token} -f new.pem, upload it in ABM/ASM, then \
                 mdmctl tokens upload {token} FILE.p7m"
            ));
            Ok(())
        }
        TokensCmd::Sync(args) => sync::run(ctx, &api, args),
        TokensCmd::SyncStatus { token } => {
            let v = api.get(sync::STATUS, &[&token.to_string()])?;
            ctx.object(&v)
        }
    }
}

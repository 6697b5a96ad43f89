//! `mdmctl push` (push a device now, its push state) and `mdmctl push-cert` (the MDM
//! push certificate: its status, uploading a new or renewed one).

use std::path::PathBuf;

use clap::Subcommand;

use crate::client::Body;
use crate::ctx::Ctx;
use crate::error::CliError;
use crate::input;

#[derive(Subcommand, Debug)]
pub enum PushCmd {
    /// Push the device now (APNs), whatever its coalescing or backoff state
    Send { device: String },
    /// The device's push state: last attempt, outcome, reachability, retry
    State { device: String },
}

#[derive(Subcommand, Debug)]
pub enum PushCertCmd {
    /// The push certificate: topic, expiry, warnings, how APNs last judged it
    Show,
    /// Register the push certificate (PEM or DER, the public certificate only)
    Upload {
        /// The certificate file (`-`: standard input)
        file: PathBuf,
        /// Switch to a certificate of another topic although devices enrolled with the old one
        #[arg(long)]
        force: bool,
    },
}

const DEVICE_PUSH: &str = "/api/v1/devices/{device}/push";
const CERT: &str = "/api/v1/push/certificate";

pub fn run(ctx: &mut Ctx, cmd: PushCmd) -> Result<(), CliError> {
    let api = ctx.api()?;
    let v = match cmd {
        PushCmd::Send { device } => api.send("POST", DEVICE_PUSH, &[&device], None)?,
        PushCmd::State { device } => api.get(DEVICE_PUSH, &[&device])?,
    };
    ctx.object(&v)
}

pub fn run_cert(ctx: &mut Ctx, cmd: PushCertCmd) -> Result<(), CliError> {
    let api = ctx.api()?;
    let v = match cmd {
        PushCertCmd::Show => api.get(CERT, &[])?,
        PushCertCmd::Upload { file, force } => {
            let bytes = input::read_bytes(ctx, &file)?;
            let pem = bytes.starts_with(b"-----") || bytes.trim_ascii_start().starts_with(b"-----");
            let body = Body::Raw {
                content_type: if pem {
                    "application/x-pem-file"
                } else {
                    "application/pkix-cert"
                },
                bytes: &bytes,
            };
            let query = if force {
                vec![("force", "true".to_owned())]
            } else {
                Vec::new()
            };
            api.call("PUT", CERT, &[], &query, body)?.json()?
        }
    };
    ctx.object(&v)?;
    if let Some(warnings) = v["warnings"].as_array() {
        for w in warnings.iter().filter_map(|w| w.as_str()) {
            ctx.note(&format!("warning: {w}"));
        }
    }
    Ok(())
}

//! The server token (ABM/ASM MDM server slot) a DEP command works on: `--dep-token`, or
//! the server's only one.

use crate::ctx::Ctx;
use crate::error::CliError;

#[derive(clap::Args, Debug, Clone)]
pub struct SlotArg {
    /// Server token id (`mdmctl tokens list`); may be left out when the server has one
    #[arg(short = 'T', long = "dep-token", value_name = "ID", global = true)]
    pub dep_token: Option<u64>,
}

/// The token id as a path segment.
pub fn resolve(ctx: &mut Ctx, arg: &SlotArg) -> Result<String, CliError> {
    if let Some(id) = arg.dep_token {
        return Ok(id.to_string());
    }
    let v = ctx.api()?.get("/api/v1/tokens", &[])?;
    let ids: Vec<String> = v[crate::paging::ITEMS]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["id"].as_u64())
                .map(|id| id.to_string())
                .collect()
        })
        .unwrap_or_default();
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::local(
            "the server has no server token yet: mdmctl tokens create NAME",
        )),
        many => Err(CliError::local(format!(
            "the server has {} server tokens ({}): choose one with --dep-token ID",
            many.len(),
            many.join(", ")
        ))),
    }
}

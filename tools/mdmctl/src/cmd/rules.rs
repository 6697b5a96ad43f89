//! `mdmctl profiles rules`: a server token's auto-assign rules, set from a YAML or JSON
//! file (checked against the server's `Rule` type), and the dry run that tells which
//! devices a rule set would move.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Api;
use crate::ctx::Ctx;
use crate::error::CliError;
use crate::input;
use crate::output::{Column, col, computed, items};

#[derive(Subcommand, Debug)]
pub enum RulesCmd {
    /// The rules, in order
    Get,
    /// Replace the rules from a file: a list of rules, or `rules:` with one
    Set {
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        /// Only show which devices the rules would move; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Which devices the stored rules (or a file's) would move; nothing moves
    DryRun {
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

const RULES: &str = "/api/v1/tokens/{token}/assignment-rules";
const DRY_RUN: &str = "/api/v1/tokens/{token}/assignment-rules/dry-run";

fn matches(r: &Value) -> String {
    r["match"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", crate::output::cell_text(v)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

pub const COLUMNS: &[Column] = &[
    col("NAME", "name"),
    computed("MATCH", matches),
    col("PROFILE", "profile"),
];

pub const MOVES: &[Column] = &[
    col("SERIAL", "serial_number"),
    col("FROM", "from"),
    col("TO", "to"),
    col("RULE", "rule"),
];

/// `{"rules": [...]}` from a file holding that or the bare list.
fn rules_file(ctx: &mut Ctx, path: &std::path::Path) -> Result<Value, CliError> {
    let v = input::read_document(ctx, path)?;
    let rules = match v {
        Value::Array(_) => v,
        Value::Object(mut m) if m.contains_key("rules") => m.remove("rules").unwrap_or_default(),
        _ => {
            return Err(CliError::local(format!(
                "{}: expected a list of rules or `rules:`",
                path.display()
            )));
        }
    };
    input::check_as::<Vec<mdm_core::dep::profile_store::Rule>>(
        &path.display().to_string(),
        "rule list",
        &rules,
    )?;
    Ok(json!({ "rules": rules }))
}

fn dry_run(ctx: &mut Ctx, api: &Api, token: &str, body: Option<&Value>) -> Result<(), CliError> {
    let v = api.send("POST", DRY_RUN, &[token], body)?;
    ctx.list(items(&v, "moves")?, MOVES)?;
    ctx.note(&format!("{} devices unchanged", v["unchanged"]));
    Ok(())
}

pub fn run(ctx: &mut Ctx, api: &Api, token: &str, cmd: RulesCmd) -> Result<(), CliError> {
    match cmd {
        RulesCmd::Get => {
            let v = api.get(RULES, &[token])?;
            ctx.list(items(&v, "rules")?, COLUMNS)
        }
        RulesCmd::Set {
            file,
            dry_run: true,
        } => {
            let body = rules_file(ctx, &file)?;
            dry_run(ctx, api, token, Some(&body))
        }
        RulesCmd::Set { file, .. } => {
            let body = rules_file(ctx, &file)?;
            let v = api.send("PUT", RULES, &[token], Some(&body))?;
            ctx.list(items(&v, "rules")?, COLUMNS)
        }
        RulesCmd::DryRun { file } => {
            let body = file.map(|f| rules_file(ctx, &f)).transpose()?;
            dry_run(ctx, api, token, body.as_ref())
        }
    }
}

//! `mdmctl config`: the contexts file (named servers and their API tokens) managed like
//! kubectl's. The token is never printed.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use crate::config::{self, Context};
use crate::ctx::Ctx;
use crate::error::CliError;
use crate::output::{Column, col};

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Add or change a context from the global --server, --token or --token-file and
    /// --ca-cert (a --token is stored in the file, readable by you only; a --token-file
    /// is read at each run, keeping the token out of the config); the first context, or
    /// one given --use, becomes current
    SetContext {
        name: String,
        /// Make it the current context
        #[arg(long = "use")]
        use_it: bool,
    },
    /// Make a context the current one
    UseContext { name: String },
    /// Every context (tokens are never shown)
    GetContexts,
    /// The current context's name
    CurrentContext,
    /// Remove a context
    DeleteContext { name: String },
}

pub const COLUMNS: &[Column] = &[
    col("CURRENT", "current"),
    col("NAME", "name"),
    col("SERVER", "server"),
    col("TOKEN", "token"),
];

fn absolute(p: PathBuf) -> Result<PathBuf, CliError> {
    std::path::absolute(&p).map_err(|e| CliError::local(format!("{}: {e}", p.display())))
}

pub fn run(ctx: &mut Ctx, cmd: ConfigCmd) -> Result<(), CliError> {
    let path = ctx.config_path()?;
    let mut cfg = config::load(&path)?;
    match cmd {
        ConfigCmd::SetContext { name, use_it } => {
            let flags = ctx.conn.clone();
            let (server, token, token_file, ca_cert) =
                (flags.server, flags.token, flags.token_file, flags.ca_cert);
            let server = server.map(|s| config::normalise_server(&s)).transpose()?;
            let token_file = token_file.map(absolute).transpose()?;
            if let Some(f) = &token_file {
                config::read_token_file(f)?;
            }
            let ca_cert = ca_cert.map(absolute).transpose()?;
            match cfg.contexts.iter_mut().find(|c| c.name == name) {
                Some(c) => {
                    if let Some(s) = server {
                        c.server = s;
                    }
                    if token.is_some() || token_file.is_some() {
                        c.token = token;
                        c.token_file = token_file;
                    }
                    if ca_cert.is_some() {
                        c.ca_cert = ca_cert;
                    }
                }
                None => {
                    let server = server.ok_or_else(|| {
                        CliError::local(format!("new context {name:?} needs --server URL"))
                    })?;
                    cfg.contexts.push(Context {
                        name: name.clone(),
                        server,
                        token,
                        token_file,
                        ca_cert,
                    });
                }
            }
            if use_it || cfg.current_context.is_none() {
                cfg.current_context = Some(name.clone());
            }
            config::save(&path, &cfg)?;
            ctx.done(
                &format!("context {name:?} saved in {}", path.display()),
                &json!({ "context": name }),
            )
        }
        ConfigCmd::UseContext { name } => {
            if !cfg.contexts.iter().any(|c| c.name == name) {
                return Err(CliError::local(format!("no context {name:?}")));
            }
            cfg.current_context = Some(name.clone());
            config::save(&path, &cfg)?;
            ctx.done(
                &format!("switched to context {name:?}"),
                &json!({ "current": name }),
            )
        }
        ConfigCmd::GetContexts => {
            let rows: Vec<_> = cfg
                .contexts
                .iter()
                .map(|c| {
                    let current = cfg.current_context.as_deref() == Some(c.name.as_str());
                    json!({
                        "current": if current { "*" } else { "" },
                        "name": c.name,
                        "server": c.server,
                        "token": c.token_source(),
                    })
                })
                .collect();
            ctx.list(&rows, COLUMNS)
        }
        ConfigCmd::CurrentContext => match &cfg.current_context {
            Some(name) => {
                let name = name.clone();
                ctx.done(&name, &json!({ "current": name }))
            }
            None => Err(CliError::local(
                "no current context (mdmctl config use-context NAME)",
            )),
        },
        ConfigCmd::DeleteContext { name } => {
            let before = cfg.contexts.len();
            cfg.contexts.retain(|c| c.name != name);
            if cfg.contexts.len() == before {
                return Err(CliError::local(format!("no context {name:?}")));
            }
            if cfg.current_context.as_deref() == Some(name.as_str()) {
                cfg.current_context = None;
            }
            config::save(&path, &cfg)?;
            ctx.done(
                &format!("context {name:?} deleted"),
                &json!({ "deleted": name }),
            )
        }
    }
}

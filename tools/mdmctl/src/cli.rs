//! The command line: global options (connection, output), the resource subcommands, and
//! the run that parses, dispatches and maps the result to an exit code.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::cmd;
use crate::config::{ConnFlags, Secret};
use crate::ctx::Ctx;
use crate::env::Env;
use crate::error::{CliError, EXIT_CODES, exit};
use crate::output::{self, Format};

const ABOUT: &str = "Command line of the MDM server's admin API";

const CONNECTION: &str = "\
Connection: --server and --token/--token-file, else MDM_SERVER and MDM_TOKEN, else the
context (--context, MDM_CONTEXT, or the current one) of the config file (--config,
MDMCTL_CONFIG, else ~/.config/mdmctl/config.yaml), managed with `mdmctl config`.";

#[derive(Parser, Debug)]
#[command(name = "mdmctl", version, about = ABOUT, long_about = None,
          after_help = format!("{CONNECTION}\n\n{EXIT_CODES}"))]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Server base URL, e.g. https://mdm.example.com [env: MDM_SERVER]
    #[arg(long = "server", id = "api_server", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Admin API token (visible to other local users in the process list: prefer
    /// --token-file or MDM_TOKEN) [env: MDM_TOKEN]
    #[arg(long = "token", id = "api_token", global = true, value_name = "TOKEN", value_parser = parse_secret)]
    pub token: Option<Secret>,
    /// File holding the admin API token
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "api_token")]
    pub token_file: Option<PathBuf>,
    /// Context of the config file to use instead of the current one [env: MDM_CONTEXT]
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Config file [env: MDMCTL_CONFIG] [default: ~/.config/mdmctl/config.yaml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PEM certificate(s) to trust for https instead of the public roots
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Seconds to wait for each answer
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 120)]
    pub timeout: u64,
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Contexts: named servers and their API tokens
    #[command(subcommand)]
    Config(cmd::config::ConfigCmd),
    /// Server tokens (ABM/ASM MDM servers): create, upload the .p7m, sync
    #[command(subcommand)]
    Tokens(cmd::tokens::TokensCmd),
    /// Devices Apple assigns to a server token (the ADE inventory)
    #[command(subcommand, name = "dep-devices")]
    DepDevices(cmd::dep_devices::DepDevicesCmd),
    /// Enrollment profiles, the default profile and auto-assign rules of a server token
    Profiles(cmd::profiles::ProfilesArgs),
    /// Enrolled devices: list, show, logs, retire, and actions (lock, wipe, ...)
    #[command(subcommand)]
    Devices(cmd::devices::DevicesCmd),
    /// MDM commands: send to one or many devices, history, show, cancel
    #[command(subcommand)]
    Commands(cmd::commands::CommandsCmd),
    /// Local user accounts (web enrollment sign-in)
    #[command(subcommand)]
    Users(cmd::users::UsersCmd),
    /// User groups and their enrollment-type settings
    #[command(subcommand)]
    Groups(cmd::groups::GroupsCmd),
    /// Push a device now, or show its push state
    #[command(subcommand)]
    Push(cmd::push::PushCmd),
    /// The MDM push certificate: show, upload
    #[command(subcommand, name = "push-cert")]
    PushCert(cmd::push::PushCertCmd),
    /// One-time SCEP challenges for manual enrollments
    #[command(subcommand)]
    Challenges(cmd::challenges::ChallengesCmd),
    /// Server and key-value store health
    Health,
    /// The server's Prometheus metrics, as a scraper gets them
    Metrics,
    /// Checks of the key-value store behind the server
    #[command(subcommand)]
    Diagnostics(cmd::diagnostics::DiagnosticsCmd),
    /// Shell completion script
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

pub fn run<I, T>(env: Env, args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let text = e.render().to_string();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = out.write_all(text.as_bytes());
                    exit::OK
                }
                _ => {
                    let _ = err.write_all(text.as_bytes());
                    exit::USAGE
                }
            };
        }
    };
    let g = cli.global;
    let conn = ConnFlags {
        server: g.server,
        token: g.token,
        token_file: g.token_file,
        context: g.context,
        ca_cert: g.ca_cert,
    };
    let format = g.output;
    let mut ctx = Ctx::new(
        out,
        err,
        env,
        format,
        conn,
        g.config,
        Duration::from_secs(g.timeout.max(1)),
    );
    match dispatch(&mut ctx, cli.command) {
        Ok(()) => exit::OK,
        Err(e) => {
            let text = match format {
                Format::Json | Format::Yaml if e.status().is_some() => {
                    let v = e.to_json();
                    let body = if format == Format::Json {
                        output::json_text(&v)
                    } else {
                        output::yaml_text(&v).unwrap_or_default()
                    };
                    e.render() + &body
                }
                _ => e.render(),
            };
            let _ = ctx.err.write_all(text.as_bytes());
            e.exit_code()
        }
    }
}

fn dispatch(ctx: &mut Ctx, command: Command) -> Result<(), CliError> {
    match command {
        Command::Config(c) => cmd::config::run(ctx, c),
        Command::Tokens(c) => cmd::tokens::run(ctx, c),
        Command::DepDevices(c) => cmd::dep_devices::run(ctx, c),
        Command::Profiles(c) => cmd::profiles::run(ctx, c),
        Command::Devices(c) => cmd::devices::run(ctx, c),
        Command::Commands(c) => cmd::commands::run(ctx, c),
        Command::Users(c) => cmd::users::run(ctx, c),
        Command::Groups(c) => cmd::groups::run(ctx, c),
        Command::Push(c) => cmd::push::run(ctx, c),
        Command::PushCert(c) => cmd::push::run_cert(ctx, c),
        Command::Challenges(c) => cmd::challenges::run(ctx, c),
        Command::Health => cmd::diagnostics::health(ctx),
        Command::Metrics => cmd::diagnostics::metrics(ctx),
        Command::Diagnostics(c) => cmd::diagnostics::run(ctx, c),
        Command::Completion { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "mdmctl", ctx.out);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}

//! `mdmctl`, the command line of the MDM server's admin API: one module per resource
//! under `cmd/` over a shared layer of connection ([`config`], [`client`]), errors and
//! exit codes ([`error`]) and output ([`output`]).
//!
//! [`run`] runs one command line in this process and returns what it printed, for
//! tests; the binary is [`run_in`] over the process's own streams.

pub mod cli;
pub mod client;
pub mod cmd;
pub mod config;
pub mod ctx;
pub mod env;
pub mod error;
pub mod input;
pub mod output;
pub mod paging;
pub mod routes;

use std::ffi::OsString;
use std::io::Write;

pub use env::Env;
pub use error::exit;

/// What one run printed, and its exit code.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `args` (the first being the program name) with `env`, capturing the output.
pub fn run<I, T>(env: Env, args: I) -> Outcome
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_in(env, args, &mut out, &mut err);
    Outcome {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Runs `args` with `env`, writing to `out` and `err`; returns the exit code.
pub fn run_in<I, T>(env: Env, args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    cli::run(env, args, out, err)
}

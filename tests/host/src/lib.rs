//! A small local host for the app's Spin components, for development and tests (the
//! `spin` CLI cannot be installed on our build machines). It reads `spin.toml`, serves
//! each component's HTTP routes on wasmtime 47 with wasi:http@0.3.0 (the crates Spin 4
//! is built on, with its instance reuse and response framing), and provides what the components import: spin:key-value, wasi:keyvalue
//! (store, atomics, batch) on SQLite, spin:variables, spin:redis (to a Redis server of
//! the app's choosing) and outbound HTTP, both limited to `allowed_outbound_hosts`, HTTP
//! with the runtime config's `[[client_tls]]`.
//!
//! It implements only what Spin implements, so nothing may come to depend on it:
//! `spin up` on the same manifest is the production path.

mod clock;
pub mod kv;
pub mod logs;
pub mod manifest;
pub mod outbound;
mod outbound_redis;
pub mod resp;
pub mod runtime_config;
mod server;
pub mod spin_api;
pub mod variables;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use clock::GuestClock;
pub use kv::KvStats;
pub use server::{RunningHost, engine_config};
/// hyper I/O over tokio streams, for clients in tests.
pub use wasmtime_wasi_http::io::TokioIo;

#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The Spin manifest (`spin.toml`); component sources resolve against its directory.
    pub manifest: PathBuf,
    /// Where to listen; port 0 picks a free one (see [`RunningHost::addr`]).
    pub listen: SocketAddr,
    /// Key-value data (`sqlite_key_value.db`) and the compiled-component cache live here
    /// unless the runtime config says otherwise. Spin's default is `<app dir>/.spin`.
    pub state_dir: PathBuf,
    /// A Spin runtime-config file (`--runtime-config-file`).
    pub runtime_config: Option<PathBuf>,
    /// `--variable name=value` pairs; they win over `SPIN_VARIABLE_*` and defaults.
    pub variables: Vec<(String, String)>,
    /// Correct key-value semantics instead of Spin SQLite's observed defects.
    pub kv_strict: bool,
    /// The wall clock the components read; tests move it forward to pass leases,
    /// backoffs and expiries without waiting. Spin has no such thing: it is a test aid.
    pub guest_clock: GuestClock,
    /// Component stdout/stderr files (`<component>_stdout.txt`, `_stderr.txt`), as
    /// `spin up --log-dir`; Spin's default is `<state dir>/logs`. `None`: no files.
    pub log_dir: Option<PathBuf>,
    /// Also show component output on the host's own stdout/stderr (`spin up` does unless
    /// `--quiet`).
    pub follow_logs: bool,
}

/// Makes `std::backtrace::Backtrace::capture` (errors inside libraries) a no-op unless
/// `RUST_LIB_BACKTRACE` asks for it; panics still print backtraces under `RUST_BACKTRACE`.
/// Wasmtime disposes of every store's idle worker fiber with an error value, and with
/// `RUST_BACKTRACE` set that error walks the stack, under the unwinder's process-wide
/// lock, on every request. Spin is normally run without it; so is this host now.
///
/// # Safety
/// Sets an environment variable: call it before the process starts any thread.
pub unsafe fn skip_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

/// Loads the app, binds the listener and starts serving in the background.
pub async fn start(config: HostConfig) -> anyhow::Result<RunningHost> {
    server::start(config, |name| std::env::var(name).ok()).await
}

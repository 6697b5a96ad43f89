//! `depsim`: a simulator of Apple's Device Assignment (DEP / ADE) API
//! (Apple: "Device Assignment") for tests and benchmarks.
//!
//! A real HTTP/1.1 server on 127.0.0.1 with its own tokio runtime thread, so it works
//! from any test harness (tokio, `block_on`, plain threads):
//!
//! ```no_run
//! use mdm_depsim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::new(2_500, 1)).unwrap();
//! println!("{} {:?}", sim.base_url(), sim.credentials());
//! sim.control().add_devices(3);            // sync reports them as `added`
//! sim.control().fail_next_on("/devices/sync", 1, 400, "EXPIRED_CURSOR");
//! sim.shutdown();
//! ```
//!
//! - `GET /session` checks the OAuth 1.0a HMAC-SHA1 header with
//!   [`mdm_core::dep::oauth::verify_authorization`], refuses reused nonces, unknown
//!   consumers and tokens (401) and answers `403 T_C_NOT_SIGNED` when told to;
//!   sessions expire and can rotate through `X-ADM-Auth-Session` response headers.
//! - Devices are generated from `(seed, index)` on the fly (200,000+ cost nothing);
//!   only changes and the event log are kept.
//! - Cursors are opaque, carry a position and an issue time and are checked:
//!   `INVALID_CURSOR`, `EXHAUSTED_CURSOR`, `EXPIRED_CURSOR`, `CURSOR_REQUIRED`.
//! - [`SimControl`] scripts device events, per-device assign results, faults (any
//!   status and code, `Retry-After`, delays, dropped connections) and reads counters.
//! - More organisations (MDM servers, each with its own server token) can share the
//!   URL: [`RunningSim::add_server`] gives each its own credentials, devices, account,
//!   event log, profiles, sessions, faults, counters and [`SimControl`].
//! - [`client::HyperHttp`] is a [`mdm_core::platform::HttpClient`] over hyper, to
//!   drive the simulator with the real `DepClient`.

pub mod api;
pub mod client;
pub mod config;
pub mod control;
pub mod cursor;
pub mod devgen;
pub mod io;
mod server;
mod servers;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

pub use config::{
    AccountConfig, ErrorStyle, PageLimit, ServerConfig, SimConfig, UnknownSession,
    server_credentials, server_token, token_json,
};
pub use control::SimControl;
pub use devgen::Device;
pub use mdm_core::dep::oauth::DepCredentials;
pub use state::{AssignOutcome, Fault, FaultAction, Stats};

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Binds `config.listen` and serves on a thread of its own until
    /// [`RunningSim::shutdown`] (or drop).
    pub fn start(config: SimConfig) -> std::io::Result<RunningSim> {
        let listener = std::net::TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("depsim")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let credentials = config.credentials.clone();
        let orgs = Arc::new(servers::Orgs::new(config));
        let control = orgs.default_org();
        let (stop, stopped) = oneshot::channel();
        let served = orgs.clone();
        let thread = std::thread::Builder::new()
            .name("depsim".into())
            .spawn(move || {
                runtime.block_on(server::serve(listener, served, stopped));
                runtime.shutdown_background();
            })?;
        Ok(RunningSim {
            addr,
            credentials,
            control,
            orgs,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A simulator serving on [`RunningSim::addr`]; stops on [`RunningSim::shutdown`] or drop.
pub struct RunningSim {
    addr: SocketAddr,
    credentials: DepCredentials,
    control: SimControl,
    orgs: Arc<servers::Orgs>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningSim {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the client's Device Assignment base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OAuth secrets of the default organisation (the one `SimConfig` describes).
    pub fn credentials(&self) -> DepCredentials {
        self.credentials.clone()
    }

    /// The default organisation's handle.
    pub fn control(&self) -> &SimControl {
        &self.control
    }

    /// Adds an organisation (an MDM server with a server token of its own) at the next
    /// index, served at the same URL from now on. Its handle scripts it as
    /// [`RunningSim::control`] scripts the default one; [`SimControl::credentials`] and
    /// [`SimControl::token_json`] give its secrets.
    ///
    /// # Panics
    /// When another organisation has the same consumer key.
    pub fn add_server(&self, config: ServerConfig) -> SimControl {
        self.orgs
            .add(config)
            .unwrap_or_else(|e| panic!("depsim: {e}"))
    }

    /// Organisation `index` (0: the default one).
    pub fn server(&self, index: usize) -> Option<SimControl> {
        self.orgs.get(index)
    }

    /// Every organisation, the default one first.
    pub fn servers(&self) -> Vec<SimControl> {
        self.orgs.all()
    }

    /// Organisations on this simulator, the default one included.
    pub fn server_count(&self) -> usize {
        self.orgs.len()
    }

    /// Stops accepting, drops open connections and joins the server thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.stop_now();
    }
}

//! `apnssim`: a local stand-in for Apple's APNs provider API as an MDM server uses it
//! (Apple: "Sending notification requests to APNs"), for tests.
//!
//! - HTTP/2 over TLS only (ALPN `h2`; a client that does not negotiate h2 is dropped),
//!   on 127.0.0.1 with its own tokio runtime thread, so it works from any test harness.
//! - Requires a client certificate issued by its test "Apple push CA" ([`pki`]); the
//!   handshake fails without one or with one from another CA ([`ApnsSim::tls_failures`]).
//! - Checks each push like APNs: `POST /3/device/<hex token>`, `apns-topic` equal to the
//!   identity's topic (the certificate's subject UID), `apns-push-type: mdm`,
//!   `apns-priority: 10`, a numeric `apns-expiration`, an optional UUID `apns-id`, body
//!   exactly `{"mdm":"<PushMagic>"}`. A malformed push gets APNs' status and
//!   `{"reason": ...}` (`MethodNotAllowed`, `BadPath`, `MissingDeviceToken`,
//!   `BadDeviceToken`, `DuplicateHeaders`, `MissingTopic`, `BadTopic`, `TopicDisallowed`,
//!   `InvalidPushType`, `BadPriority`, `BadExpirationDate`, `BadMessageId`,
//!   `PayloadEmpty`, `PayloadTooLarge`; a body other than `{"mdm": "<string>"}` gets
//!   `BadPayload`, which is this simulator's own word: APNs has no code for it).
//! - Records every push that reached HTTP ([`RecordedPush`]), answers 200 with an
//!   `apns-id`, or what was scripted for the device token ([`Scripted`]): 410
//!   `Unregistered` (with `timestamp`), 400 `BadDeviceToken`, 403 `BadCertificate`, 429,
//!   500, 503, with `Retry-After` if asked.
//!
//! ```no_run
//! use mdm_apnssim::{ApnsSim, Scripted};
//! let sim = ApnsSim::start().unwrap();
//! let token = "00ff".repeat(16);
//! sim.script(&token, Scripted::unregistered());
//! // point `apns_base_url` at sim.base_url(), trust sim.server_ca_pem(),
//! // present sim.client_cert_pem() / sim.client_key_pem()
//! let pushes = sim.wait_for_pushes(1, std::time::Duration::from_secs(5)).unwrap();
//! assert_eq!(pushes[0].status, 410);
//! ```
//!
//! [`client::H2Client`] is an [`mdm_core::platform::HttpClient`] over rustls + hyper's
//! HTTP/2 client that presents a client certificate, to drive `mdm_core::push`
//! against the simulator natively.

pub mod client;
pub mod io;
pub mod pki;
mod server;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

pub use pki::{Identity, Pki};

/// An answer scripted for a device token (or for every token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripted {
    pub status: u16,
    pub reason: String,
    /// `Retry-After` header value (delay-seconds or an HTTP-date).
    pub retry_after: Option<String>,
    /// Add APNs' `timestamp` (ms, now) to the body, as for 410.
    pub timestamp: bool,
    /// How many pushes get this answer; `None`: every push from now on.
    pub times: Option<u32>,
}

impl Scripted {
    /// One answer with `status` and `{"reason": reason}`.
    pub fn new(status: u16, reason: &str) -> Self {
        Scripted {
            status,
            reason: reason.to_owned(),
            retry_after: None,
            timestamp: false,
            times: Some(1),
        }
    }
    /// 410 `Unregistered` with a `timestamp`.
    pub fn unregistered() -> Self {
        Scripted {
            timestamp: true,
            ..Scripted::new(410, "Unregistered")
        }
    }
    /// 410 `ExpiredToken` with a `timestamp`.
    pub fn expired_token() -> Self {
        Scripted {
            timestamp: true,
            ..Scripted::new(410, "ExpiredToken")
        }
    }
    pub fn bad_device_token() -> Self {
        Scripted::new(400, "BadDeviceToken")
    }
    pub fn bad_certificate() -> Self {
        Scripted::new(403, "BadCertificate")
    }
    pub fn bad_certificate_environment() -> Self {
        Scripted::new(403, "BadCertificateEnvironment")
    }
    pub fn too_many_requests() -> Self {
        Scripted::new(429, "TooManyRequests")
    }
    pub fn internal_server_error() -> Self {
        Scripted::new(500, "InternalServerError")
    }
    pub fn service_unavailable() -> Self {
        Scripted::new(503, "ServiceUnavailable")
    }
    pub fn with_retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
    pub fn always(mut self) -> Self {
        self.times = None;
        self
    }
}

/// One push request as the simulator received it, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPush {
    pub at: SystemTime,
    pub method: String,
    pub path: String,
    /// The device token from the path (lowercase as sent; empty if the path had none).
    pub token: String,
    pub topic: Option<String>,
    pub push_type: Option<String>,
    pub priority: Option<String>,
    pub expiration: Option<String>,
    pub apns_id: Option<String>,
    /// Every header, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `mdm` of a well-formed body.
    pub push_magic: Option<String>,
    /// Topic (subject UID) of the client certificate the connection presented.
    pub identity_topic: String,
    /// True when the request came over HTTP/2 (always, since only h2 is served).
    pub http2: bool,
    /// What the simulator answered.
    pub status: u16,
    pub reason: Option<String>,
    /// `apns-id` of the answer.
    pub answered_apns_id: String,
}

#[derive(Default)]
pub(crate) struct State {
    pushes: Vec<RecordedPush>,
    scripts: HashMap<String, VecDeque<Scripted>>,
    any: VecDeque<Scripted>,
    tls_failures: Vec<String>,
    /// Client certificate DER → topic.
    identities: HashMap<Vec<u8>, String>,
    connections: u64,
    listeners: Vec<Listener>,
}

type Listener = Arc<dyn Fn(&RecordedPush) + Send + Sync>;

fn next_from(queue: &mut VecDeque<Scripted>) -> Option<Scripted> {
    let front = queue.front_mut()?;
    let answer = front.clone();
    match &mut front.times {
        None => {}
        Some(n) if *n > 1 => *n -= 1,
        Some(_) => {
            queue.pop_front();
        }
    }
    Some(answer)
}

impl State {
    pub(crate) fn scripted(&mut self, token: &str) -> Option<Scripted> {
        if let Some(q) = self.scripts.get_mut(token)
            && let Some(s) = next_from(q)
        {
            return Some(s);
        }
        next_from(&mut self.any)
    }
}

/// State shared by the server tasks and the test.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(&self, push: RecordedPush) {
        let listeners = {
            let mut state = self.lock();
            state.pushes.push(push.clone());
            state.listeners.clone()
        };
        self.changed.notify_all();
        // Outside the lock: a listener may call back into the simulator.
        for l in listeners {
            l(&push);
        }
    }

    pub(crate) fn tls_failure(&self, what: String) {
        self.lock().tls_failures.push(what);
        self.changed.notify_all();
    }

    pub(crate) fn connected(&self) {
        self.lock().connections += 1;
    }

    pub(crate) fn topic_of(&self, cert_der: &[u8]) -> Option<String> {
        self.lock().identities.get(cert_der).cloned()
    }
}

/// Where to serve and with which PKI.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Default `127.0.0.1:0` (any free port).
    pub listen: SocketAddr,
    /// Default: [`Pki::shared`].
    pub pki: Option<Pki>,
    /// Serve TLS 1.2 only (default: 1.2 and 1.3). Under TLS 1.3 the client learns that
    /// its certificate was refused only after its handshake completed (a failed read);
    /// under 1.2 the handshake itself fails, as with older APNs front ends.
    pub tls12_only: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            pki: None,
            tls12_only: false,
        }
    }
}

/// PEM files written by [`ApnsSim::write_files`].
#[derive(Debug, Clone)]
pub struct SimFiles {
    /// The server CA (client trust: `ca_roots_file`).
    pub ca: PathBuf,
    /// The trusted push identity (`client_cert_file`, `client_private_key_file`).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// An identity from a CA the simulator does not trust.
    pub untrusted_cert: PathBuf,
    pub untrusted_key: PathBuf,
}

/// A running simulator; stops on [`ApnsSim::shutdown`] or drop.
pub struct ApnsSim {
    addr: SocketAddr,
    pki: Pki,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ApnsSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl ApnsSim {
    /// Serves on a free port of 127.0.0.1 with the process-wide test PKI.
    pub fn start() -> std::io::Result<ApnsSim> {
        Self::start_with(SimConfig::default())
    }

    pub fn start_with(config: SimConfig) -> std::io::Result<ApnsSim> {
        let pki = match config.pki {
            Some(p) => p,
            None => Pki::shared().clone(),
        };
        let tls = server::tls_config(&pki, config.tls12_only).map_err(other)?;
        let listener = std::net::TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("apnssim")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared::default());
        shared
            .lock()
            .identities
            .insert(pki.client.cert_der.clone(), pki.client.topic.clone());
        let (stop, stopped) = oneshot::channel();
        let served = shared.clone();
        let thread = std::thread::Builder::new()
            .name("apnssim".into())
            .spawn(move || {
                runtime.block_on(server::serve(listener, tls, served, stopped));
                runtime.shutdown_background();
            })?;
        Ok(ApnsSim {
            addr,
            pki,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`: the value for `apns_base_url`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The base URL under another name the certificate covers (`localhost`, or
    /// `api.push.apple.com` with a resolver pointing it here).
    pub fn base_url_for(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }

    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The CA the client must trust for the server's certificate.
    pub fn server_ca_pem(&self) -> &str {
        &self.pki.server_ca_pem
    }

    /// The push identity the simulator accepts.
    pub fn client_cert_pem(&self) -> &str {
        &self.pki.client.cert_pem
    }

    pub fn client_key_pem(&self) -> &str {
        &self.pki.client.key_pem
    }

    /// An identity of the same shape from an untrusted CA.
    pub fn untrusted_client_cert_pem(&self) -> &str {
        &self.pki.untrusted_client.cert_pem
    }

    pub fn untrusted_client_key_pem(&self) -> &str {
        &self.pki.untrusted_client.key_pem
    }

    /// The push topic of the accepted identity (`com.apple.mgmt.External.<uuid>`).
    pub fn topic(&self) -> &str {
        &self.pki.client.topic
    }

    /// Issues (and accepts) another push identity, e.g. for another topic.
    pub fn issue_identity(&self, topic: &str) -> Result<Identity, String> {
        let id = self.pki.issue_push_identity(topic)?;
        self.shared
            .lock()
            .identities
            .insert(id.cert_der.clone(), id.topic.clone());
        Ok(id)
    }

    /// Scripts the next answer(s) for pushes to `token` (hex, any case). Scripts for one
    /// token queue up in order.
    pub fn script(&self, token: &str, answer: Scripted) {
        self.shared
            .lock()
            .scripts
            .entry(token.to_ascii_lowercase())
            .or_default()
            .push_back(answer);
    }

    /// Scripts answers for any token without a script of its own.
    pub fn script_any(&self, answer: Scripted) {
        self.shared.lock().any.push_back(answer);
    }

    pub fn clear_scripts(&self) {
        let mut s = self.shared.lock();
        s.scripts.clear();
        s.any.clear();
    }

    /// Every push received so far, in order.
    pub fn pushes(&self) -> Vec<RecordedPush> {
        self.shared.lock().pushes.clone()
    }

    /// Calls `listener` with every push received from now on, as it is recorded (before
    /// the client gets its answer). For load tests and benchmarks that wake simulated
    /// devices on their pushes without polling [`ApnsSim::pushes`]. It runs on the
    /// simulator's thread: keep it short.
    pub fn on_push(&self, listener: impl Fn(&RecordedPush) + Send + Sync + 'static) {
        self.shared.lock().listeners.push(Arc::new(listener));
    }

    /// The pushes answered 200.
    pub fn accepted(&self) -> Vec<RecordedPush> {
        self.pushes()
            .into_iter()
            .filter(|p| p.status == 200)
            .collect()
    }

    /// Waits until at least `n` pushes arrived; `Err` with what did arrive on timeout.
    pub fn wait_for_pushes(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedPush>, Vec<RecordedPush>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if state.pushes.len() >= n {
                return Ok(state.pushes.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(state.pushes.clone());
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until at least `n` TLS handshakes were refused; `Err` with the refusals so
    /// far on timeout.
    pub fn wait_for_tls_failures(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<String>, Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if state.tls_failures.len() >= n {
                return Ok(state.tls_failures.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(state.tls_failures.clone());
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// TLS handshakes the simulator refused (no client certificate, untrusted issuer, no
    /// h2), with rustls' reason.
    pub fn tls_failures(&self) -> Vec<String> {
        self.shared.lock().tls_failures.clone()
    }

    /// TLS connections accepted.
    pub fn connections(&self) -> u64 {
        self.shared.lock().connections
    }

    /// Writes the PEM files a runtime config's `[[client_tls]]` points at.
    pub fn write_files(&self, dir: &Path) -> std::io::Result<SimFiles> {
        std::fs::create_dir_all(dir)?;
        let files = SimFiles {
            ca: dir.join("apnssim-ca.pem"),
            cert: dir.join("push-cert.pem"),
            key: dir.join("push-key.pem"),
            untrusted_cert: dir.join("untrusted-push-cert.pem"),
            untrusted_key: dir.join("untrusted-push-key.pem"),
        };
        std::fs::write(&files.ca, &self.pki.server_ca_pem)?;
        std::fs::write(&files.cert, &self.pki.client.cert_pem)?;
        std::fs::write(&files.key, &self.pki.client.key_pem)?;
        std::fs::write(&files.untrusted_cert, &self.pki.untrusted_client.cert_pem)?;
        std::fs::write(&files.untrusted_key, &self.pki.untrusted_client.key_pem)?;
        Ok(files)
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

impl Drop for ApnsSim {
    fn drop(&mut self) {
        self.stop_now();
    }
}

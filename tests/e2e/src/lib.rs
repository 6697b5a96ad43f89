//! Test kit for integration tests: start the app from the workspace's `spin.toml` on the
//! local host, with test secrets and a private state directory, and call it over HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
pub use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use mdm_host::{HostConfig, RunningHost};

pub mod binaries;
pub mod dep;
pub mod external;
pub mod host_process;
pub mod imports;
pub mod lab;
pub mod redis;
use serde_json::Value;

pub const ADMIN_KEY: &str = "e2e-admin-key-4f1c9a7b2d";
pub const SYNC_KEY: &str = "e2e-sync-key-8e2b6d0c1a";
pub const STORAGE_KEY: &str = "e2e-storage-key-0a9b8c7d6e5f-1a2b3c4d5e6f";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Where the compiled components are: `<target>/wasm32-wasip2/release`, `<target>` being
/// `CARGO_TARGET_DIR` when set (at run time, else when this crate was built), else
/// `<workspace>/target`.
pub fn wasm_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_TARGET_DIR").map(PathBuf::from))
        .map(|t| {
            if t.is_relative() {
                workspace_root().join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("wasm32-wasip2/release")
}

/// The manifest to serve: the workspace's `spin.toml`, or, when the components live in
/// another target directory ([`wasm_dir`]), a copy in `state_dir` whose component sources
/// point there (sources resolve against the manifest's directory).
pub fn manifest_for(root: &Path, state_dir: &Path) -> anyhow::Result<PathBuf> {
    const DEFAULT_SOURCES: &str = "source = \"target/wasm32-wasip2/release/";
    let manifest = root.join("spin.toml");
    let dir = wasm_dir();
    if dir == root.join("target/wasm32-wasip2/release") {
        return Ok(manifest);
    }
    let text = std::fs::read_to_string(&manifest).context("reading spin.toml")?;
    let redirected = text.replace(DEFAULT_SOURCES, &format!("source = \"{}/", dir.display()));
    std::fs::create_dir_all(state_dir)?;
    let copy = state_dir.join("spin.toml");
    std::fs::write(&copy, redirected).context("writing the redirected spin.toml")?;
    Ok(copy)
}

/// Copies the compiled components of one state directory into another, so that a second
/// host on the same app starts without compiling them again (seconds per component).
pub fn copy_compiled(from_state: &Path, to_state: &Path) {
    let to = to_state.join("compiled");
    let _ = std::fs::create_dir_all(&to);
    if let Ok(entries) = std::fs::read_dir(from_state.join("compiled")) {
        for e in entries.flatten() {
            let _ = std::fs::copy(e.path(), to.join(e.file_name()));
        }
    }
}

/// The app running on the local host.
pub struct App {
    host: Option<RunningHost>,
    pub addr: SocketAddr,
    /// The components' wall clock; kept across restarts (time does not go back).
    pub clock: mdm_host::GuestClock,
    state_dir: PathBuf,
    extra_vars: Vec<(String, String)>,
    runtime_config: Option<PathBuf>,
}

impl App {
    /// Starts the app with its state in `state_dir` (reuse one to test persistence).
    pub async fn start(state_dir: &Path) -> anyhow::Result<App> {
        Self::start_with(state_dir, Vec::new()).await
    }

    pub async fn start_with(
        state_dir: &Path,
        extra_vars: Vec<(String, String)>,
    ) -> anyhow::Result<App> {
        Self::start_with_config(state_dir, extra_vars, None).await
    }

    /// [`App::start_with`] plus a runtime-config file (`--runtime-config-file`), e.g. with
    /// `[[client_tls]]` for the APNs push certificate.
    pub async fn start_with_config(
        state_dir: &Path,
        extra_vars: Vec<(String, String)>,
        runtime_config: Option<PathBuf>,
    ) -> anyhow::Result<App> {
        Self::start_at(state_dir, extra_vars, runtime_config, Default::default()).await
    }

    async fn start_at(
        state_dir: &Path,
        extra_vars: Vec<(String, String)>,
        runtime_config: Option<PathBuf>,
        clock: mdm_host::GuestClock,
    ) -> anyhow::Result<App> {
        let root = workspace_root();
        let wasm = wasm_dir().join("mdm_admin.wasm");
        anyhow::ensure!(
            wasm.exists(),
            "{} is missing: run ./scripts/test.sh, which builds the components",
            wasm.display()
        );
        let mut variables = vec![
            ("admin_api_key".to_owned(), ADMIN_KEY.to_owned()),
            ("sync_api_key".to_owned(), SYNC_KEY.to_owned()),
            ("storage_key".to_owned(), STORAGE_KEY.to_owned()),
        ];
        variables.extend(extra_vars.iter().cloned());
        let host = mdm_host::start(HostConfig {
            manifest: manifest_for(&root, state_dir)?,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: state_dir.to_path_buf(),
            runtime_config: runtime_config.clone(),
            variables,
            kv_strict: false,
            guest_clock: clock.clone(),
            // Like `spin up --quiet`: component output in the state directory's log files
            // (tests read them), not in the test output.
            log_dir: Some(state_dir.join("logs")),
            follow_logs: false,
        })
        .await
        .context("starting the local host")?;
        Ok(App {
            addr: host.addr(),
            clock,
            host: Some(host),
            state_dir: state_dir.to_path_buf(),
            extra_vars,
            runtime_config,
        })
    }

    /// Stops the host and starts a new one on the same state directory.
    pub async fn restart(mut self) -> anyhow::Result<App> {
        if let Some(h) = self.host.take() {
            h.shutdown().await;
        }
        let vars = std::mem::take(&mut self.extra_vars);
        Self::start_at(
            &self.state_dir,
            vars,
            self.runtime_config.take(),
            self.clock.clone(),
        )
        .await
    }

    pub async fn shutdown(mut self) {
        if let Some(h) = self.host.take() {
            h.shutdown().await;
        }
    }

    /// Stops the host abruptly (requests in flight are dropped, as when the process is
    /// killed) and starts a new one on the same state directory.
    pub async fn kill_and_restart(mut self) -> anyhow::Result<App> {
        if let Some(h) = self.host.take() {
            h.kill().await;
        }
        let vars = std::mem::take(&mut self.extra_vars);
        Self::start_at(
            &self.state_dir,
            vars,
            self.runtime_config.take(),
            self.clock.clone(),
        )
        .await
    }

    /// Moves the components' wall clock forward (past a lease, a backoff, an expiry).
    pub fn advance_clock(&self, d: std::time::Duration) {
        self.clock.advance(d);
    }

    /// Key-value operations the components made since this host started.
    pub fn kv_stats(&self) -> mdm_host::KvStats {
        self.host.as_ref().map(|h| h.kv_stats()).unwrap_or_default()
    }

    /// A request with the admin key; returns status and JSON body (Null if not JSON).
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.client().admin(method, path, body).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.client().call(method, path, key, body).await
    }

    /// One request on a fresh connection; returns status, headers and body bytes.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<(StatusCode, http::HeaderMap, Bytes)> {
        request(self.addr, method, path, headers, body).await
    }

    /// A handle for making API calls from other tasks (it does not keep the app running).
    pub fn client(&self) -> Client {
        Client { addr: self.addr }
    }
}

/// API calls to a running app, one fresh connection each.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    /// A request with the admin key; returns status and JSON body (Null if not JSON).
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method, path, Some(ADMIN_KEY), body).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut headers = Vec::new();
        if let Some(k) = key {
            headers.push(("authorization".to_owned(), format!("Bearer {k}")));
        }
        let body = match body {
            Some(b) => {
                headers.push(("content-type".to_owned(), "application/json".to_owned()));
                serde_json::to_vec(&b).expect("JSON body")
            }
            None => Vec::new(),
        };
        let (status, _, bytes) = request(self.addr, method, path, &headers, body)
            .await
            .expect("request reached the host");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// A plain HTTP/1.1 client request to `addr`.
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, http::HeaderMap, Bytes)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(mdm_host::TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body)))?)
        .await?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await?.to_bytes();
    drop(sender);
    let _ = conn.await;
    Ok((parts.status, parts.headers, bytes))
}

//! Loading the app and serving HTTP the way Spin 4's HTTP trigger does: wasmtime-wasi-http's
//! `ProxyHandler` reuses a component instance for up to 128 requests, 16 at a time, and
//! drops it after a second idle; responses stream from the guest to hyper (chunked unless
//! the component set Content-Length); accepted sockets keep Nagle's algorithm on (no
//! `TCP_NODELAY`). So the tests meet production's framing, latency and instance reuse.
//!
//! `instances` keeps a component's instances as Spin does, `app` loads and links the
//! components; this module serves them.

mod app;
mod instances;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::watch;
use wasmtime_wasi_http::handler;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;

use crate::HostConfig;
use crate::kv::{Db, KvStats};
use crate::manifest::{Manifest, Route};
use crate::runtime_config::RuntimeConfig;
use crate::variables::Resolved;
use app::{App, Logs, load};

pub use app::engine_config;

/// The host serving in the background; dropping it without [`RunningHost::shutdown`]
/// also stops it.
pub struct RunningHost {
    addr: SocketAddr,
    guest_clock: crate::GuestClock,
    killed: Arc<std::sync::atomic::AtomicBool>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    dbs: Vec<Arc<Db>>,
}

impl RunningHost {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The components' wall clock (tests move it forward).
    pub fn guest_clock(&self) -> &crate::GuestClock {
        &self.guest_clock
    }

    /// Key-value operations served so far, summed over the app's stores.
    pub fn kv_stats(&self) -> KvStats {
        let mut total = KvStats::default();
        for db in &self.dbs {
            total.add(&db.stats());
        }
        total
    }

    /// Stops at once, like a killed process: requests in flight are dropped wherever
    /// they are (their component instances with them) and get no answer. What they
    /// already wrote to the store stays, as it would on disk.
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            // Requests still running fail at their next store call and send no answer:
            // nothing is written, nothing is said after the kill.
            self.killed.store(true, std::sync::atomic::Ordering::SeqCst);
            for db in &self.dbs {
                db.kill();
            }
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops accepting, lets requests in flight finish, and returns when all is closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until the task ends (the binary's main loop).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub(crate) async fn start(
    config: HostConfig,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<RunningHost> {
    let manifest = Manifest::load(&config.manifest)?;
    let runtime = match &config.runtime_config {
        Some(p) => RuntimeConfig::load(p)?,
        None => RuntimeConfig::default(),
    };
    let variables = Resolved::resolve(&manifest, &config.variables, env)?;
    let app = load(
        manifest,
        runtime,
        &variables,
        &config.state_dir,
        config.kv_strict,
        &config.guest_clock,
        &Logs {
            dir: config.log_dir.clone(),
            follow: config.follow_logs,
        },
    )?;
    let killed = app.killed.clone();
    let dbs = app.dbs.clone();
    let app = Arc::new(app);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve(listener, app, stopped));
    Ok(RunningHost {
        addr,
        guest_clock: config.guest_clock,
        killed,
        stop,
        task: Some(task),
        dbs,
    })
}

async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("mdm-host: accept failed: {e}");
                        continue;
                    }
                };
                // No TCP_NODELAY, as Spin: a response leaving in two writes has its second
                // segment held until the client's delayed ACK (docs/platform.md).
                let app = app.clone();
                let mut stop = stopped.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(handle(app, req, client).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        r = conn.as_mut() => { let _ = r; }
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// What the host answers with: a guest's streamed body, or one of its own.
type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn text(status: u16, body: &str) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(
            Full::new(Bytes::from(body.to_owned()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("static response")
}

async fn handle(
    app: Arc<App>,
    req: hyper::Request<Incoming>,
    client: SocketAddr,
) -> hyper::Response<Body> {
    let path = req.uri().path().to_owned();
    let Some((route, component_id)) = app.manifest.route(&path) else {
        return text(404, "Not Found");
    };
    let component = &app.components[component_id];
    let req = spin_request(req, route, client).map(|body| {
        body.map_err(|e| {
            handler::ErrorCode::from(ErrorCode::InternalError(Some(format!("request body: {e}"))))
        })
        .boxed_unsync()
    });
    let result = component.handler.handle((), req).await;
    if app.killed.load(std::sync::atomic::Ordering::SeqCst) {
        // A dead process answers nothing; the connection goes with the task.
        std::future::pending::<()>().await;
    }
    match result {
        Ok(res) => res.map(|body| {
            body.map_err(|e| -> Box<dyn std::error::Error + Send + Sync> {
                format!("response body: {e}").into()
            })
            .boxed_unsync()
        }),
        Err(e) => {
            eprintln!("mdm-host: component {component_id:?} failed on {path}: {e:#}");
            text(500, "Internal Server Error")
        }
    }
}

/// The request as Spin gives it to a component: absolute URI and the `spin-*` headers.
fn spin_request(
    req: hyper::Request<Incoming>,
    route: &Route,
    client: SocketAddr,
) -> hyper::Request<Incoming> {
    let (mut parts, body) = req.into_parts();
    let authority = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    if let Ok(uri) = http::Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query(pq.as_str())
        .build()
    {
        parts.uri = uri;
    }
    let path = parts.uri.path().to_owned();
    let path_info = path.strip_prefix(route.base()).unwrap_or("").to_owned();
    let h = &mut parts.headers;
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    put("spin-full-url", format!("http://{authority}{pq}"));
    put("spin-path-info", path_info);
    put("spin-matched-route", route.as_manifest());
    put("spin-raw-component-route", route.as_manifest());
    put("spin-component-route", route.base().to_owned());
    put("spin-base-path", "/".to_owned());
    put("spin-client-addr", client.to_string());
    hyper::Request::from_parts(parts, body)
}

//! Loading the app and serving HTTP the way Spin 4's HTTP trigger does: wasmtime-wasi-http's
//! `ProxyHandler` reuses a component instance for up to 128 requests, 16 at a time, and
//! drops it after a second idle; responses stream from the guest to hyper (chunked unless
//! the component set Content-Length); accepted sockets keep Nagle's algorithm on (no
//! `TCP_NODELAY`). So the tests meet production's framing, latency and instance reuse.

use crate::logs::ComponentOutput;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use wasmtime::component::{Component, GuestTaskId, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreContextMut};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::handler::{
    self, HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, ViewFn, WorkerExpiration,
    WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::{WasiHttpCtxView, WasiHttpView};

use crate::HostConfig;
use crate::kv::{Db, KvStats};
use crate::manifest::{Manifest, Route};
use crate::outbound::{AllowedHost, ConnectionPool, Hooks, OutboundPolicy};
use crate::outbound_redis::RedisAccess;
use crate::runtime_config::{RuntimeConfig, StoreConfig};
use crate::spin_api::{self, ComponentEnv, SpinView};
use crate::variables::Resolved;

/// Per-request store data.
struct Ctx {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: Hooks,
    env: Arc<ComponentEnv>,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

fn http_view(c: &mut Ctx) -> WasiHttpCtxView<'_> {
    c.http()
}

fn spin_view(c: &mut Ctx) -> SpinView<'_> {
    SpinView {
        table: &mut c.table,
        env: &c.env,
    }
}

/// Spin 4's defaults for wasi:http 0.3 components (spin-trigger-http: `--max-instance-reuse-count`,
/// `--max-instance-concurrent-reuse-count`, `--idle-instance-timeout`; no request timeout).
const MAX_INSTANCE_REUSE: usize = 128;
const MAX_INSTANCE_CONCURRENT: usize = 16;
const IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(1);

/// One component: how to make its instances (each a store of its own), handed to the
/// `ProxyHandler` that routes requests to them.
struct ComponentState {
    engine: Engine,
    pre: ServicePre<Ctx>,
    env: Arc<ComponentEnv>,
    policy: Arc<OutboundPolicy>,
    guest_clock: crate::GuestClock,
    stdout: ComponentOutput,
    stderr: ComponentOutput,
}

/// Where component output goes: files in `dir` (none: the host's own streams only) and,
/// when `follow`, the host's streams too.
struct Logs {
    dir: Option<PathBuf>,
    follow: bool,
}

impl HandlerState for ComponentState {
    type StoreData = Ctx;
    type WorkerExpiration = IdleExpiration;
    type WorkerState = InstanceLimits;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Ctx, IdleExpiration, InstanceLimits>> {
        let mut store = Store::new(
            &self.engine,
            Ctx {
                table: ResourceTable::new(),
                wasi: WasiCtxBuilder::new()
                    .stdout(self.stdout.clone())
                    .stderr(self.stderr.clone())
                    .wall_clock(self.guest_clock.wasi())
                    .build(),
                http: WasiHttpCtx::new(),
                hooks: Hooks {
                    policy: self.policy.clone(),
                },
                env: self.env.clone(),
            },
        );
        let service = self.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: ViewFn::P3(http_view),
            expiration: IdleExpiration {
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
            },
            state: InstanceLimits,
        })
    }
}

/// An instance goes after [`IDLE_INSTANCE_TIMEOUT`] without requests; requests have no
/// time limit (Spin's default).
struct IdleExpiration {
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for IdleExpiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        if status != WorkerStatus::Idle {
            return Poll::Pending;
        }
        let deadline = tokio::time::Instant::from(start + IDLE_INSTANCE_TIMEOUT);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

struct InstanceLimits;

impl WorkerState for InstanceLimits {
    type StoreData = Ctx;
    type RequestId = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= MAX_INSTANCE_REUSE {
            ShouldAccept::Never
        } else if concurrent >= MAX_INSTANCE_CONCURRENT {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _: StoreContextMut<'_, Ctx>,
        _: (),
        _: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        Box::pin(std::future::pending())
    }

    /// A trap reaches the request it failed ([`handle`] logs it); the rest of what ends
    /// here is the runtime stopping.
    fn drop(&self, store: Store<Ctx>, _: wasmtime::Result<()>) {
        drop(store);
    }
}

struct LoadedComponent {
    handler: ProxyHandler<ComponentState>,
}

struct App {
    /// Set when the host is killed: no answer leaves it any more.
    killed: Arc<std::sync::atomic::AtomicBool>,
    manifest: Manifest,
    components: BTreeMap<String, LoadedComponent>,
    /// Every key-value database in use (for [`RunningHost::kv_stats`]).
    dbs: Vec<Arc<Db>>,
}

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

/// Set to have wasmtime write `/tmp/perf-<pid>.map`, so that `perf` can name the
/// components' functions when profiling the host; set to `jitdump` for a
/// `jit-<pid>.dump` instead, which `perf inject --jit` turns into annotatable code
/// (record with `perf record -k 1`).
pub const PERFMAP_ENV: &str = "MDM_HOST_PERFMAP";

/// The compiler and feature settings of the host's engine (without its instance pool).
pub fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model_async(true);
    match std::env::var(PERFMAP_ENV).as_deref() {
        Ok("jitdump") => {
            config.profiler(wasmtime::ProfilingStrategy::JitDump);
        }
        Ok(_) => {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        Err(_) => {}
    }
    config
}

fn engine() -> anyhow::Result<Engine> {
    let base = engine_config;
    // Spin (spin-core's `Config::default`) serves with Wasmtime's pooling instance
    // allocator whenever the address space allows it, with these limits: instances,
    // memories and async stacks come from pools reserved once, instead of an mmap and
    // munmap of each per request. Where the reservation fails, Spin falls back to
    // on-demand allocation, and so does this host.
    let mut pooled = base();
    pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
        spin_pooling_config(),
    ));
    match Engine::new(&pooled) {
        Ok(engine) => Ok(engine),
        Err(_) => Ok(Engine::new(&base())?),
    }
}

/// spin-core's default pooling limits (its `SPIN_WASMTIME_*` overrides aside).
fn spin_pooling_config() -> wasmtime::PoolingAllocationConfig {
    const MB: usize = 1 << 20;
    const GB: usize = 1 << 30;
    let max_instances = 1_000;
    let mut c = wasmtime::PoolingAllocationConfig::default();
    c.total_component_instances(max_instances)
        .total_memories(max_instances)
        .total_tables(2 * max_instances)
        .total_stacks(max_instances)
        .total_core_instances(4 * max_instances)
        .table_elements(100_000)
        .max_component_instance_size(10 * MB)
        .max_core_instance_size(10 * MB)
        .max_core_instances_per_component(200)
        .max_tables_per_component(64)
        .max_memories_per_component(32)
        .max_tables_per_module(2)
        .max_memories_per_module(2)
        .max_memory_size(4 * GB)
        .linear_memory_keep_resident(2 * MB)
        .table_keep_resident(MB / 2)
        // Not set by Spin; a performance knob only: reset just the pages a request
        // dirtied (Linux ≥ 6.7), instead of a memset of the whole kept-resident
        // 2 MiB of linear memory on every instance's release.
        .pagemap_scan(wasmtime::Enabled::Auto);
    c
}

/// `anyhow` context for wasmtime's own error type.
fn wt<T>(r: wasmtime::Result<T>, msg: impl FnOnce() -> String) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::Error::from(e).context(msg()))
}

fn load(
    manifest: Manifest,
    runtime: RuntimeConfig,
    variables: &Resolved,
    state_dir: &Path,
    kv_strict: bool,
    guest_clock: &crate::GuestClock,
    logs: &Logs,
) -> anyhow::Result<App> {
    let engine = engine()?;
    let runtime = Arc::new(runtime);

    // Spin always offers the `default` label (SQLite under the state directory); the
    // runtime config may move it or add more labels.
    let mut store_configs: BTreeMap<String, StoreConfig> = BTreeMap::new();
    store_configs.insert(
        "default".into(),
        StoreConfig {
            path: state_dir.join("sqlite_key_value.db"),
        },
    );
    store_configs.extend(runtime.stores.clone());
    // Labels sharing a file share one connection.
    let mut dbs: BTreeMap<PathBuf, Arc<Db>> = BTreeMap::new();
    let mut labels: BTreeMap<String, Arc<Db>> = BTreeMap::new();
    for (label, sc) in &store_configs {
        let used = manifest
            .components
            .values()
            .any(|c| c.key_value_stores.contains(label));
        if !used {
            continue;
        }
        let db = match dbs.get(&sc.path) {
            Some(db) => db.clone(),
            None => {
                let db = Arc::new(Db::open(&sc.path, kv_strict)?);
                dbs.insert(sc.path.clone(), db.clone());
                db
            }
        };
        labels.insert(label.clone(), db);
    }
    let known_labels: Vec<String> = store_configs.keys().cloned().collect();

    // Set by a kill: the SQLite stores have their own flag, spin:redis reads this one.
    let killed: Arc<std::sync::atomic::AtomicBool> = Default::default();
    let mut linker: Linker<Ctx> = Linker::new(&engine);
    wt(wasmtime_wasi::p2::add_to_linker_async(&mut linker), || {
        "linking WASI 0.2".into()
    })?;
    wt(wasmtime_wasi::p3::add_to_linker(&mut linker), || {
        "linking WASI 0.3".into()
    })?;
    wt(wasmtime_wasi_http::p3::add_to_linker(&mut linker), || {
        "linking wasi:http 0.3".into()
    })?;
    wt(spin_api::add_to_linker(&mut linker, spin_view), || {
        "linking the Spin interfaces".into()
    })?;

    // One pool for the app, as Spin's outbound HTTP keeps one.
    let pool = Arc::new(ConnectionPool::new(
        runtime.connection_pooling != Some(false),
    ));
    let cache_dir = state_dir.join("compiled");
    let mut components = BTreeMap::new();
    for (id, decl) in &manifest.components {
        let mut stores = BTreeMap::new();
        for label in &decl.key_value_stores {
            let db = labels.get(label).with_context(|| {
                format!("component {id:?} uses key-value store {label:?}, which no runtime config defines")
            })?;
            stores.insert(label.clone(), db.clone());
        }
        let vars = decl
            .variables
            .iter()
            .map(|(name, template)| {
                variables
                    .expand(template)
                    .map(|v| (name.clone(), v))
                    .with_context(|| format!("component {id:?} variable {name:?}"))
            })
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        let allowed = decl
            .allowed_outbound_hosts
            .iter()
            .filter_map(|h| {
                let expanded = match variables.expand(h) {
                    Ok(e) => e,
                    Err(e) => return Some(Err(e)),
                };
                // As Spin: a template that comes out empty is an optional endpoint left
                // unset, skipped; a literal empty entry stays an error.
                let optional =
                    h.contains("{{") && matches!(expanded.as_str(), "" | "http://" | "https://");
                (!optional).then(|| AllowedHost::parse(&expanded))
            })
            .map(|r| r.with_context(|| format!("component {id:?} allowed_outbound_hosts")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let redis_allowed = allowed.clone();
        let policy = Arc::new(OutboundPolicy::new(
            id,
            allowed,
            runtime.clone(),
            pool.clone(),
        )?);
        let component = compile(&engine, &decl.source, &cache_dir)
            .with_context(|| format!("loading component {id:?}"))?;
        let pre = wt(linker.instantiate_pre(&component), || {
            format!("component {id:?} imports something this host does not provide")
        })?;
        let pre = wt(ServicePre::new(pre), || {
            format!("component {id:?} does not export wasi:http/handler@0.3.0")
        })?;
        let (stdout, stderr) = ComponentOutput::open(id, logs.dir.as_deref(), logs.follow)
            .with_context(|| format!("opening the log files of component {id:?}"))?;
        let state = ComponentState {
            engine: engine.clone(),
            pre,
            stdout,
            stderr,
            env: Arc::new(ComponentEnv {
                stores,
                known_labels: known_labels.clone(),
                variables: vars,
                redis: Arc::new(RedisAccess {
                    allowed: redis_allowed,
                    killed: killed.clone(),
                }),
            }),
            policy,
            guest_clock: guest_clock.clone(),
        };
        components.insert(
            id.clone(),
            LoadedComponent {
                handler: ProxyHandler::new(state),
            },
        );
    }
    Ok(App {
        killed,
        manifest,
        components,
        dbs: dbs.into_values().collect(),
    })
}

/// Compiles a component, or loads the machine code compiled for the same bytes and
/// engine settings before: compiling the app takes seconds, loading it milliseconds.
fn compile(engine: &Engine, source: &Path, cache_dir: &Path) -> anyhow::Result<Component> {
    let wasm = std::fs::read(source).with_context(|| {
        format!(
            "reading {} (build the components first: cargo build --release --target wasm32-wasip2)",
            source.display()
        )
    })?;
    let mut h = Sha256::new();
    h.update(&wasm);
    let mut engine_hash = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut engine_hash);
    h.update(std::hash::Hasher::finish(&engine_hash).to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION"));
    let cached = cache_dir.join(format!("{}.cwasm", hex::encode(h.finalize())));
    if cached.exists() {
        // SAFETY: the file was written by `precompile_component` of this same engine
        // configuration (its name hashes the engine settings and the wasm bytes) into our
        // own state directory.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(c) => return Ok(c),
            Err(e) => eprintln!("mdm-host: recompiling {} ({e})", source.display()),
        }
    }
    let compiled = engine.precompile_component(&wasm)?;
    std::fs::create_dir_all(cache_dir)?;
    let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &compiled)?;
    std::fs::rename(&tmp, &cached)?;
    // SAFETY: produced just above by this engine.
    Ok(unsafe { Component::deserialize(engine, &compiled) }?)
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

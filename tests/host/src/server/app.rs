//! Loading the app: the engine (Spin's pooling allocator and compiler settings), each
//! component compiled once and cached by its bytes, linked with what the host provides,
//! its key-value stores, variables and outbound policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};
use wasmtime_wasi_http::handler::ProxyHandler;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use super::instances::{ComponentState, Ctx, spin_view};
use crate::kv::Db;
use crate::logs::ComponentOutput;
use crate::manifest::Manifest;
use crate::outbound::{AllowedHost, ConnectionPool, OutboundPolicy};
use crate::outbound_redis::RedisAccess;
use crate::runtime_config::{RuntimeConfig, StoreConfig};
use crate::spin_api::{self, ComponentEnv};
use crate::variables::Resolved;

/// Where component output goes: files in `dir` (none: the host's own streams only) and,
/// when `follow`, the host's streams too.
pub(super) struct Logs {
    pub(super) dir: Option<PathBuf>,
    pub(super) follow: bool,
}

pub(super) struct LoadedComponent {
    pub(super) handler: ProxyHandler<ComponentState>,
}

pub(super) struct App {
    /// Set when the host is killed: no answer leaves it any more.
    pub(super) killed: Arc<std::sync::atomic::AtomicBool>,
    pub(super) manifest: Manifest,
    pub(super) components: BTreeMap<String, LoadedComponent>,
    /// Every key-value database in use (for [`super::RunningHost::kv_stats`]).
    pub(super) dbs: Vec<Arc<Db>>,
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

pub(super) fn load(
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

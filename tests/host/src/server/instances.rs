//! A component's instances as Spin 4 keeps them: the per-request store data (WASI,
//! wasi:http, the Spin interfaces), and reuse for up to 128 requests, 16 at a time,
//! dropped after a second idle.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::{GuestTaskId, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ShouldAccept, ViewFn, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::{WasiHttpCtxView, WasiHttpView};

use crate::logs::ComponentOutput;
use crate::outbound::{Hooks, OutboundPolicy};
use crate::spin_api::{ComponentEnv, SpinView};

/// Per-request store data.
pub(super) struct Ctx {
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

pub(super) fn spin_view(c: &mut Ctx) -> SpinView<'_> {
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
pub(super) struct ComponentState {
    pub(super) engine: Engine,
    pub(super) pre: ServicePre<Ctx>,
    pub(super) env: Arc<ComponentEnv>,
    pub(super) policy: Arc<OutboundPolicy>,
    pub(super) guest_clock: crate::GuestClock,
    pub(super) stdout: ComponentOutput,
    pub(super) stderr: ComponentOutput,
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
pub(super) struct IdleExpiration {
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

pub(super) struct InstanceLimits;

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

    /// A trap reaches the request it failed ([`super::handle`] logs it); the rest of what ends
    /// here is the runtime stopping.
    fn drop(&self, store: Store<Ctx>, _: wasmtime::Result<()>) {
        drop(store);
    }
}

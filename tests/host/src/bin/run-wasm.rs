//! `run-wasm <command.wasm> [args...]`: runs a wasi:cli command component (such as a
//! benchmark built for wasm32-wasip2) with the host's compiler settings, stdout and
//! stderr inherited; exits non-zero when the command fails or traps. For testing and
//! measuring core code as the components execute it.

use anyhow::Context;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

struct Ctx {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .context("usage: run-wasm <command.wasm> [args...]")?;
    let engine = Engine::new(&mdm_host::engine_config())?;
    let component = Component::from_file(&engine, path)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("loading {path}"))?;
    let mut linker: Linker<Ctx> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
    let wasi = WasiCtxBuilder::new().inherit_stdio().args(&args).build();
    let mut store = Store::new(
        &engine,
        Ctx {
            wasi,
            table: ResourceTable::new(),
        },
    );
    let command =
        Command::instantiate(&mut store, &component, &linker).map_err(anyhow::Error::from)?;
    match command.wasi_cli_run().call_run(&mut store) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(())) => std::process::exit(1),
        // `std::process::exit` in the guest; WASI 0.2 carries only success or failure.
        Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => std::process::exit(exit.0),
            None => Err(anyhow::Error::from(e).context("the command trapped")),
        },
    }
}

//! The Spin interfaces a component imports besides WASI: spin:key-value@3.0.0,
//! wasi:keyvalue@0.2.0-draft2 (store, atomics, batch) and spin:variables@3.0.0
//! (spin:redis@3.0.0 is `outbound_redis`).

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, Resource, ResourceTable, StreamReader};

use crate::kv::{Db, KvFailure};

pub(crate) mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "mdm:host/spin-imports",
        imports: { default: trappable },
        with: {
            "spin:key-value/key-value.store": crate::spin_api::OpenStore,
            "wasi:keyvalue/store.bucket": crate::spin_api::OpenStore,
            "wasi:keyvalue/atomics.cas": crate::spin_api::CasTicket,
            "spin:redis/redis.connection": crate::outbound_redis::RedisConnection,
        },
    });
}

use generated::spin::key_value::key_value as spin_kv;
use generated::spin::variables::variables as spin_vars;
use generated::wasi::keyvalue::{atomics, batch, store as wasi_kv};

/// What one component may reach: its key-value labels and its variables.
pub struct ComponentEnv {
    /// Label → database, only for labels the component lists in `key_value_stores`.
    pub stores: BTreeMap<String, Arc<Db>>,
    /// Every label the application configures (to tell "denied" from "no such store").
    pub known_labels: Vec<String>,
    /// Component variable → value (templates already expanded).
    pub variables: BTreeMap<String, String>,
    /// Where its spin:redis may connect.
    pub redis: Arc<crate::outbound_redis::RedisAccess>,
}

/// An open store (spin:key-value) or bucket (wasi:keyvalue): both name the same data.
pub struct OpenStore {
    label: String,
    db: Arc<Db>,
}

pub struct CasTicket {
    label: String,
    key: String,
    db: Arc<Db>,
    seen: Option<Vec<u8>>,
}

pub struct SpinApi;

impl HasData for SpinApi {
    type Data<'a> = SpinView<'a>;
}

pub struct SpinView<'a> {
    pub table: &'a mut ResourceTable,
    pub env: &'a ComponentEnv,
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> SpinView<'_>,
) -> wasmtime::Result<()> {
    generated::SpinImports::add_to_linker::<T, SpinApi>(linker, get)
}

enum OpenError {
    NoSuchStore,
    AccessDenied,
}

impl ComponentEnv {
    fn open(&self, label: &str) -> Result<OpenStore, OpenError> {
        match self.stores.get(label) {
            Some(db) => Ok(OpenStore {
                label: label.to_owned(),
                db: db.clone(),
            }),
            None if self.known_labels.iter().any(|l| l == label) => Err(OpenError::AccessDenied),
            None => Err(OpenError::NoSuchStore),
        }
    }
}

/// Splits a store failure into the component-visible error and the trap Spin's host
/// would cause.
fn spin_err<T>(r: Result<T, KvFailure>) -> wasmtime::Result<Result<T, spin_kv::Error>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(KvFailure::Other(m)) => Ok(Err(spin_kv::Error::Other(m))),
        Err(KvFailure::Trap(m)) => Err(wasmtime::format_err!("{m}")),
    }
}

fn wasi_err<T>(r: Result<T, KvFailure>) -> wasmtime::Result<Result<T, wasi_kv::Error>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(KvFailure::Other(m)) => Ok(Err(wasi_kv::Error::Other(m))),
        Err(KvFailure::Trap(m)) => Err(wasmtime::format_err!("{m}")),
    }
}

fn handle<T>(
    acc: &Accessor<T, SpinApi>,
    store: &Resource<OpenStore>,
) -> wasmtime::Result<(String, Arc<Db>)> {
    acc.with(|mut a| {
        let s = a.get().table.get(store)?;
        Ok((s.label.clone(), s.db.clone()))
    })
}

// --- spin:key-value@3.0.0 ------------------------------------------------------------

impl spin_kv::Host for SpinView<'_> {}

impl spin_kv::HostStore for SpinView<'_> {
    fn drop(&mut self, rep: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl<T> spin_kv::HostStoreWithStore<T> for SpinApi {
    async fn open(
        acc: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, spin_kv::Error>> {
        acc.with(|mut a| {
            let view = a.get();
            match view.env.open(&label) {
                Ok(s) => Ok(Ok(view.table.push(s)?)),
                Err(OpenError::AccessDenied) => Ok(Err(spin_kv::Error::AccessDenied)),
                Err(OpenError::NoSuchStore) => Ok(Err(spin_kv::Error::NoSuchStore)),
            }
        })
    }

    async fn get(
        acc: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, spin_kv::Error>> {
        let (label, db) = handle(acc, &store)?;
        spin_err(db.get(&label, &key))
    }

    async fn set(
        acc: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let (label, db) = handle(acc, &store)?;
        spin_err(db.set(&label, &key, &value))
    }

    async fn delete(
        acc: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let (label, db) = handle(acc, &store)?;
        spin_err(db.delete(&label, &key))
    }

    async fn exists(
        acc: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        let (label, db) = handle(acc, &store)?;
        spin_err(db.exists(&label, &key))
    }

    async fn get_keys(
        acc: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        wasmtime::component::FutureReader<Result<(), spin_kv::Error>>,
    )> {
        let (label, db) = handle(acc, &store)?;
        let (keys, result) = match db.keys(&label) {
            Ok(k) => (k, Ok(())),
            Err(KvFailure::Other(m) | KvFailure::Trap(m)) => {
                (Vec::new(), Err(spin_kv::Error::Other(m)))
            }
        };
        acc.with(|mut a| {
            let stream = StreamReader::new(&mut a, keys)?;
            let done = wasmtime::component::FutureReader::new(&mut a, async move {
                wasmtime::error::Ok(result)
            })?;
            Ok((stream, done))
        })
    }
}

// --- wasi:keyvalue@0.2.0-draft2 ------------------------------------------------------

impl wasi_kv::Host for SpinView<'_> {
    fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, wasi_kv::Error>> {
        match self.env.open(&identifier) {
            Ok(s) => Ok(Ok(self.table.push(s)?)),
            Err(OpenError::AccessDenied) => Ok(Err(wasi_kv::Error::AccessDenied)),
            Err(OpenError::NoSuchStore) => Ok(Err(wasi_kv::Error::NoSuchStore)),
        }
    }
}

impl SpinView<'_> {
    fn bucket(&self, b: &Resource<OpenStore>) -> wasmtime::Result<(String, Arc<Db>)> {
        let s = self.table.get(b)?;
        Ok((s.label.clone(), s.db.clone()))
    }
}

impl wasi_kv::HostBucket for SpinView<'_> {
    fn get(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        let (label, db) = self.bucket(&b)?;
        wasi_err(db.get(&label, &key))
    }

    fn set(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (label, db) = self.bucket(&b)?;
        wasi_err(db.set(&label, &key, &value))
    }

    fn delete(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (label, db) = self.bucket(&b)?;
        wasi_err(db.delete(&label, &key))
    }

    fn exists(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_kv::Error>> {
        let (label, db) = self.bucket(&b)?;
        wasi_err(db.exists(&label, &key))
    }

    fn list_keys(
        &mut self,
        b: Resource<OpenStore>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        let (label, db) = self.bucket(&b)?;
        // Spin returns every key at once and ignores the cursor.
        let _ = cursor;
        wasi_err(
            db.keys(&label)
                .map(|keys| wasi_kv::KeyResponse { keys, cursor: None }),
        )
    }

    fn drop(&mut self, rep: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl batch::Host for SpinView<'_> {
    fn get_many(
        &mut self,
        b: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        let (label, db) = self.bucket(&b)?;
        wasi_err(db.get_many(&label, &keys))
    }

    fn set_many(
        &mut self,
        b: Resource<OpenStore>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (label, db) = self.bucket(&b)?;
        wasi_err(db.set_many(&label, &key_values))
    }

    fn delete_many(
        &mut self,
        b: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (label, db) = self.bucket(&b)?;
        wasi_err(db.delete_many(&label, &keys))
    }
}

impl atomics::Host for SpinView<'_> {
    fn increment(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_kv::Error>> {
        let (label, db) = self.bucket(&b)?;
        wasi_err(db.increment(&label, &key, delta))
    }

    fn swap(
        &mut self,
        cas: Resource<CasTicket>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let t = self.table.get(&cas)?;
        match t.db.swap(&t.label, &t.key, t.seen.as_deref(), &value) {
            Ok(true) => {
                self.table.delete(cas)?;
                Ok(Ok(()))
            }
            // The ticket goes back to the guest, which may read it again and retry.
            Ok(false) => Ok(Err(atomics::CasError::CasFailed(cas))),
            Err(e) => {
                self.table.delete(cas)?;
                match wasi_err::<()>(Err(e))? {
                    Err(e) => Ok(Err(atomics::CasError::StoreError(e))),
                    Ok(()) => unreachable!(),
                }
            }
        }
    }
}

impl atomics::HostCas for SpinView<'_> {
    fn new(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasTicket>, wasi_kv::Error>> {
        let (label, db) = self.bucket(&b)?;
        let seen = match wasi_err(db.get(&label, &key))? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.table.push(CasTicket {
            label,
            key,
            db,
            seen,
        })?))
    }

    fn current(
        &mut self,
        cas: Resource<CasTicket>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        Ok(Ok(self.table.get(&cas)?.seen.clone()))
    }

    fn drop(&mut self, rep: Resource<CasTicket>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

// --- spin:variables@3.0.0 ------------------------------------------------------------

impl spin_vars::Host for SpinView<'_> {}

impl<T> spin_vars::HostWithStore<T> for SpinApi {
    async fn get(
        acc: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, spin_vars::Error>> {
        if crate::manifest::check_variable_name(&name).is_err() {
            return Ok(Err(spin_vars::Error::InvalidName(name)));
        }
        acc.with(|mut a| match a.get().env.variables.get(&name) {
            Some(v) => Ok(Ok(v.clone())),
            None => Ok(Err(spin_vars::Error::Undefined(format!(
                "no variable for {name:?} in this component"
            )))),
        })
    }
}

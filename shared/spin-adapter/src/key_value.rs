//! The key-value store through Spin's own interfaces: spin:key-value for plain
//! operations, wasi:keyvalue (same label, same data) for batch and atomics.

use spin_sdk::experimental::wasi::keyvalue::{atomics, batch, store as wasi_store};
use spin_sdk::key_value;

use mdm_kv::{Backend, CasHandle, KvError};

/// The key-value store label every component uses (spin.toml `key_value_stores`).
pub const STORE_LABEL: &str = "default";

fn kv_error(e: key_value::Error) -> KvError {
    match e {
        key_value::Error::NoSuchStore => KvError::NoSuchStore,
        key_value::Error::AccessDenied => KvError::AccessDenied,
        key_value::Error::StoreTableFull => KvError::Backend("store table full".into()),
        key_value::Error::Other(m) => KvError::Backend(m),
    }
}

fn wasi_error(e: wasi_store::Error) -> KvError {
    match e {
        wasi_store::Error::NoSuchStore => KvError::NoSuchStore,
        wasi_store::Error::AccessDenied => KvError::AccessDenied,
        wasi_store::Error::Other(m) => KvError::Backend(m),
    }
}

/// spin:key-value for plain operations, wasi:keyvalue (same label, same data) for batch
/// and atomics, which spin:key-value does not offer.
pub struct SpinKv {
    kv: key_value::Store,
    bucket: wasi_store::Bucket,
}

impl SpinKv {
    pub async fn open(label: &str) -> Result<Self, KvError> {
        let kv = key_value::Store::open(label).await.map_err(kv_error)?;
        let bucket = wasi_store::open(label).map_err(wasi_error)?;
        Ok(SpinKv { kv, bucket })
    }
}

pub struct SpinCas {
    ticket: atomics::Cas,
    seen: Option<Vec<u8>>,
}

impl CasHandle for SpinCas {
    fn current(&self) -> Option<&[u8]> {
        self.seen.as_deref()
    }
}

impl Backend for SpinKv {
    type Cas = SpinCas;

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.kv.get(key).await.map_err(kv_error)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.kv.set(key, value).await.map_err(kv_error)
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.kv.delete(key).await.map_err(kv_error)
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.kv.exists(key).await.map_err(kv_error)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        batch::get_many(&self.bucket, keys).map_err(wasi_error)
    }

    async fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        batch::set_many(&self.bucket, items).map_err(wasi_error)
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        batch::delete_many(&self.bucket, keys).map_err(wasi_error)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        atomics::increment(&self.bucket, key, delta).map_err(wasi_error)
    }

    async fn cas_begin(&self, key: &str) -> Result<SpinCas, KvError> {
        let ticket = atomics::Cas::new(&self.bucket, key).map_err(wasi_error)?;
        let seen = ticket.current().map_err(wasi_error)?;
        Ok(SpinCas { ticket, seen })
    }

    async fn cas_swap(&self, cas: SpinCas, value: &[u8]) -> Result<bool, KvError> {
        match atomics::swap(cas.ticket, value) {
            Ok(()) => Ok(true),
            Err(atomics::CasError::CasFailed(_)) => Ok(false),
            Err(atomics::CasError::StoreError(e)) => Err(wasi_error(e)),
        }
    }
}

//! Which store a request gets: Redis/Valkey through spin:redis when the `redis_url`
//! variable is set, else the key-value label. The core sees one `Backend` either way.

use mdm_core::Variables;
use mdm_kv::{Backend, CasHandle, KvError};

use crate::key_value::{STORE_LABEL, SpinCas, SpinKv};
use crate::redis::{RedisCas, RedisKv};
use mdm_kv::redis::address;

pub enum AppKv {
    KeyValue(SpinKv),
    Redis(RedisKv),
}

pub enum AppCas {
    KeyValue(SpinCas),
    Redis(RedisCas),
}

impl CasHandle for AppCas {
    fn current(&self) -> Option<&[u8]> {
        match self {
            AppCas::KeyValue(c) => c.current(),
            AppCas::Redis(c) => c.current(),
        }
    }
}

async fn variable(vars: &impl Variables, name: &str) -> Result<String, KvError> {
    vars.get(name)
        .await
        .map(Option::unwrap_or_default)
        .map_err(|e| KvError::Backend(format!("variable {name}: {e}")))
}

impl AppKv {
    /// Opens the store the variables choose.
    pub async fn open(vars: &impl Variables) -> Result<AppKv, KvError> {
        let url = variable(vars, "redis_url").await?;
        if url.trim().is_empty() {
            return Ok(AppKv::KeyValue(SpinKv::open(STORE_LABEL).await?));
        }
        let address = address(
            url.trim(),
            &variable(vars, "redis_username").await?,
            &variable(vars, "redis_password").await?,
            &variable(vars, "redis_database").await?,
        )?;
        Ok(AppKv::Redis(RedisKv::new(address)))
    }
}

/// The ticket of one backend handed to the other: a bug, never a state of the store.
fn mixed() -> KvError {
    KvError::Backend("compare-and-swap ticket from another backend".into())
}

impl Backend for AppKv {
    type Cas = AppCas;

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self {
            AppKv::KeyValue(b) => b.get(key).await,
            AppKv::Redis(b) => b.get(key).await,
        }
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        match self {
            AppKv::KeyValue(b) => b.set(key, value).await,
            AppKv::Redis(b) => b.set(key, value).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        match self {
            AppKv::KeyValue(b) => b.delete(key).await,
            AppKv::Redis(b) => b.delete(key).await,
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        match self {
            AppKv::KeyValue(b) => b.exists(key).await,
            AppKv::Redis(b) => b.exists(key).await,
        }
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        match self {
            AppKv::KeyValue(b) => b.get_many(keys).await,
            AppKv::Redis(b) => b.get_many(keys).await,
        }
    }

    async fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        match self {
            AppKv::KeyValue(b) => b.set_many(items).await,
            AppKv::Redis(b) => b.set_many(items).await,
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        match self {
            AppKv::KeyValue(b) => b.delete_many(keys).await,
            AppKv::Redis(b) => b.delete_many(keys).await,
        }
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        match self {
            AppKv::KeyValue(b) => b.increment(key, delta).await,
            AppKv::Redis(b) => b.increment(key, delta).await,
        }
    }

    async fn cas_begin(&self, key: &str) -> Result<AppCas, KvError> {
        match self {
            AppKv::KeyValue(b) => b.cas_begin(key).await.map(AppCas::KeyValue),
            AppKv::Redis(b) => b.cas_begin(key).await.map(AppCas::Redis),
        }
    }

    async fn cas_swap(&self, cas: AppCas, value: &[u8]) -> Result<bool, KvError> {
        match (self, cas) {
            (AppKv::KeyValue(b), AppCas::KeyValue(c)) => b.cas_swap(c, value).await,
            (AppKv::Redis(b), AppCas::Redis(c)) => b.cas_swap(c, value).await,
            _ => Err(mixed()),
        }
    }
}

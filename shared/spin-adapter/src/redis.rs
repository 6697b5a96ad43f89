//! The store on Redis or Valkey through Spin's outbound Redis (spin:redis), not Spin's
//! Redis key-value backend, whose compare-and-swap cannot work (docs/platform.md).
//! Compare-and-swap is a server-side Lua script (`mdm_kv::redis`); counters are `INCRBY`
//! (ASCII decimal).

use std::cell::RefCell;
use std::rc::Rc;

use spin_sdk::redis::{Connection, Error, RedisParameter, RedisResult};

use mdm_kv::redis::CAS_SCRIPT;
use mdm_kv::{Backend, CasHandle, KvError};

fn redis_error(e: Error) -> KvError {
    match e {
        Error::InvalidAddress => KvError::Backend(
            "redis_url is not a Redis address, or allowed_outbound_hosts does not allow it".into(),
        ),
        Error::TooManyConnections => KvError::Backend("too many Redis connections".into()),
        Error::TypeError => KvError::Backend("Redis: wrong type".into()),
        Error::Other(m) => KvError::Backend(format!("Redis: {m}")),
    }
}

fn unexpected(what: &str, got: &[RedisResult]) -> KvError {
    KvError::Backend(format!("Redis: unexpected reply to {what}: {got:?}"))
}

fn key(k: &str) -> RedisParameter {
    RedisParameter::Binary(k.as_bytes().to_vec())
}

/// One connection to the server per request (Spin pools nothing), opened at the first
/// store call: a request that never touches the store (a liveness probe) neither waits
/// for Redis nor fails without it.
pub struct RedisKv {
    address: String,
    conn: RefCell<Option<Rc<Connection>>>,
}

impl RedisKv {
    /// The store at `address` (see [`mdm_kv::redis::address`]); connects on first use.
    pub fn new(address: String) -> Self {
        RedisKv {
            address,
            conn: RefCell::new(None),
        }
    }

    async fn conn(&self) -> Result<Rc<Connection>, KvError> {
        if let Some(c) = self.conn.borrow().as_ref() {
            return Ok(c.clone());
        }
        let opened = Rc::new(Connection::open(&self.address).await.map_err(redis_error)?);
        // Two first calls running at once both connect; the first to finish stays.
        Ok(self.conn.borrow_mut().get_or_insert(opened).clone())
    }

    async fn execute(
        &self,
        command: &str,
        args: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, KvError> {
        let conn = self.conn().await?;
        conn.execute(command, args).await.map_err(redis_error)
    }

    async fn integer(&self, command: &str, args: Vec<RedisParameter>) -> Result<i64, KvError> {
        match self.execute(command, args).await?.as_slice() {
            [RedisResult::Int64(n)] => Ok(*n),
            other => Err(unexpected(command, other)),
        }
    }
}

/// A compare-and-swap ticket: the key and the value (or absence) seen.
pub struct RedisCas {
    key: String,
    seen: Option<Vec<u8>>,
}

impl CasHandle for RedisCas {
    fn current(&self) -> Option<&[u8]> {
        self.seen.as_deref()
    }
}

impl Backend for RedisKv {
    type Cas = RedisCas;

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.conn().await?.get(key).await.map_err(redis_error)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.conn()
            .await?
            .set(key, value)
            .await
            .map_err(redis_error)
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        let conn = self.conn().await?;
        conn.del([key]).await.map_err(redis_error).map(drop)
    }

    async fn exists(&self, k: &str) -> Result<bool, KvError> {
        Ok(self.integer("EXISTS", vec![key(k)]).await? > 0)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values = self
            .execute("MGET", keys.iter().map(|k| key(k)).collect())
            .await?;
        // Spin flattens the reply: one result per key, nil where absent.
        if values.len() != keys.len() {
            return Err(unexpected("MGET", &values));
        }
        keys.iter()
            .zip(values)
            .map(|(k, v)| match v {
                RedisResult::Nil => Ok((k.clone(), None)),
                RedisResult::Binary(b) => Ok((k.clone(), Some(b))),
                other => Err(unexpected("MGET", &[other])),
            })
            .collect()
    }

    async fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut args = Vec::with_capacity(items.len() * 2);
        for (k, v) in items {
            args.push(key(k));
            args.push(RedisParameter::Binary(v.clone()));
        }
        match self.execute("MSET", args).await?.as_slice() {
            [RedisResult::Status(s)] if s == "OK" => Ok(()),
            other => Err(unexpected("MSET", other)),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        conn.del(keys).await.map_err(redis_error).map(drop)
    }

    async fn increment(&self, k: &str, delta: i64) -> Result<i64, KvError> {
        self.integer("INCRBY", vec![key(k), RedisParameter::Int64(delta)])
            .await
    }

    async fn cas_begin(&self, key: &str) -> Result<RedisCas, KvError> {
        Ok(RedisCas {
            key: key.to_owned(),
            seen: self.get(key).await?,
        })
    }

    async fn cas_swap(&self, cas: RedisCas, value: &[u8]) -> Result<bool, KvError> {
        let (present, expected) = match cas.seen {
            Some(v) => (b"1", v),
            None => (b"0", Vec::new()),
        };
        let wrote = self
            .integer(
                "EVAL",
                vec![
                    RedisParameter::Binary(CAS_SCRIPT.as_bytes().to_vec()),
                    RedisParameter::Int64(1),
                    key(&cas.key),
                    RedisParameter::Binary(present.to_vec()),
                    RedisParameter::Binary(expected),
                    RedisParameter::Binary(value.to_vec()),
                ],
            )
            .await?;
        Ok(wrote == 1)
    }
}

//! spin:redis@3.0.0 for the components, as Spin's outbound Redis serves it (see
//! docs/platform.md): the address is checked against `allowed_outbound_hosts`, each
//! `open` is a connection of its own, and replies reach the guest converted and
//! flattened the way Spin's redis-rs host converts them, with its error texts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Mutex;
use wasmtime::component::{Accessor, Resource};

use crate::outbound::{AllowedHost, well_known_port};
use crate::resp::{IoFailure, Reply, RespConnection};
use crate::spin_api::generated::spin::redis::redis as v3;
use crate::spin_api::{SpinApi, SpinView};

/// Spin refuses a result larger than this (spin-world's `MAX_HOST_BUFFERED_BYTES`).
const MAX_HOST_BUFFERED_BYTES: usize = 128 << 20;
/// redis-rs's port when an address names none, whatever the scheme.
const DEFAULT_PORT: u16 = 6379;

/// What one component's spin:redis may reach.
pub struct RedisAccess {
    /// The component's `allowed_outbound_hosts` (the same list outbound HTTP checks).
    pub allowed: Vec<AllowedHost>,
    /// Set when the host is killed: no command leaves it any more.
    pub killed: Arc<AtomicBool>,
}

/// An open connection (the guest's `connection` resource).
pub struct RedisConnection {
    conn: Arc<Mutex<RespConnection>>,
    killed: Arc<AtomicBool>,
}

/// The parts of a Redis URL the host uses.
#[derive(Debug, PartialEq, Eq)]
struct Address {
    scheme: String,
    host: String,
    port: Option<u16>,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `scheme://[user][:password@]host[:port][/db][?...][#...]`; `None` where Spin's allow
/// check or redis-rs would not take it (both end in `invalid-address`).
fn parse_address(address: &str) -> Option<Address> {
    let (scheme, rest) = address.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "redis" | "rediss" | "valkey" | "valkeys") {
        return None;
    }
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (hostport, tail) = rest.split_at(end);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    let path = tail.split(['?', '#']).next().unwrap_or_default();
    let db = match path.trim_matches('/') {
        "" => 0,
        n => n.parse().ok()?,
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, pass) = match u.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (u, None),
            };
            let user = (!user.is_empty())
                .then(|| percent_decode(user))
                .map(|u| u.ok_or(()))
                .transpose()
                .ok()?;
            let pass = pass.map(|p| percent_decode(p).ok_or(())).transpose().ok()?;
            (user, pass)
        }
    };
    Some(Address {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        username,
        password,
        db,
    })
}

/// redis-rs's text for an error reply, as Spin hands it on in `error::other`.
fn server_error(code: &str, detail: Option<&str>) -> String {
    let kind = match code {
        "ERR" => "ResponseError",
        "EXECABORT" => "ExecAbortError",
        "LOADING" => "BusyLoadingError",
        "NOSCRIPT" => "NoScriptError",
        "MOVED" => "Moved",
        "ASK" => "Ask",
        "TRYAGAIN" => "TryAgain",
        "CLUSTERDOWN" => "ClusterDown",
        "CROSSSLOT" => "CrossSlot",
        "MASTERDOWN" => "MasterDown",
        "READONLY" => "ReadOnly",
        "NOTBUSY" => "NotBusy",
        "NOSUB" => "NoSub",
        _ => {
            let detail = detail.unwrap_or("Unknown extension error encountered");
            return format!("{code}: {detail}");
        }
    };
    match detail {
        Some(d) => format!("An error was signalled by the server - {kind}: {d}"),
        None => format!("An error was signalled by the server- {kind}"),
    }
}

fn other(e: IoFailure) -> v3::Error {
    v3::Error::Other(e.0)
}

/// An incompatible reply to a typed call (GET answering an integer, say).
fn type_mismatch(reply: &Reply) -> v3::Error {
    v3::Error::Other(format!(
        "Response was of incompatible type - TypeError: {reply:?}"
    ))
}

impl RedisAccess {
    async fn open(&self, address: &str) -> Result<RedisConnection, v3::Error> {
        let a = parse_address(address).ok_or(v3::Error::InvalidAddress)?;
        let check_port = a.port.or_else(|| well_known_port(&a.scheme)).unwrap_or(0);
        let host = a.host.trim_start_matches('[').trim_end_matches(']');
        if !self
            .allowed
            .iter()
            .any(|h| h.allows(&a.scheme, host, check_port))
        {
            eprintln!(
                "mdm-host: a component may not reach {}://{}:{} (allowed_outbound_hosts)",
                a.scheme, a.host, check_port
            );
            return Err(v3::Error::InvalidAddress);
        }
        if matches!(a.scheme.as_str(), "rediss" | "valkeys") {
            return Err(v3::Error::Other(format!(
                "TLS ({}://) is not available in the local host; Spin connects with TLS",
                a.scheme
            )));
        }
        let mut conn = RespConnection::connect(host, a.port.unwrap_or(DEFAULT_PORT))
            .await
            .map_err(other)?;
        if let Some(password) = &a.password {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &a.username {
                auth.push(user.as_bytes());
            }
            auth.push(password.as_bytes());
            if let Reply::Error(..) = conn.call(&auth).await.map_err(other)? {
                return Err(v3::Error::Other(
                    "Password authentication failed- AuthenticationFailed".into(),
                ));
            }
        }
        if a.db != 0 {
            let db = a.db.to_string();
            if let Reply::Error(_, detail) = conn
                .call(&[b"SELECT", db.as_bytes()])
                .await
                .map_err(other)?
            {
                let msg = match detail {
                    Some(d) => {
                        format!("Redis server refused to switch database - ResponseError: {d}")
                    }
                    None => "Redis server refused to switch database- ResponseError".into(),
                };
                return Err(v3::Error::Other(msg));
            }
        }
        Ok(RedisConnection {
            conn: Arc::new(Mutex::new(conn)),
            killed: self.killed.clone(),
        })
    }
}

impl RedisConnection {
    /// One command; an error reply becomes `error::other` as in Spin. A killed host
    /// traps instead: the request dies without a word.
    async fn call(&self, args: &[&[u8]]) -> wasmtime::Result<Result<Reply, v3::Error>> {
        if self.killed.load(Ordering::SeqCst) {
            return Err(wasmtime::format_err!("the host was killed"));
        }
        let mut conn = self.conn.lock().await;
        if self.killed.load(Ordering::SeqCst) {
            return Err(wasmtime::format_err!("the host was killed"));
        }
        Ok(match conn.call(args).await {
            Ok(Reply::Error(code, detail)) => {
                Err(v3::Error::Other(server_error(&code, detail.as_deref())))
            }
            Ok(reply) => Ok(reply),
            Err(e) => Err(other(e)),
        })
    }

    fn handle(conn: &RedisConnection) -> RedisConnection {
        RedisConnection {
            conn: conn.conn.clone(),
            killed: conn.killed.clone(),
        }
    }
}

/// `execute`'s reply as Spin returns it: one flat list, arrays spliced in.
fn flatten(reply: Reply, out: &mut Vec<v3::RedisResult>) -> Result<(), v3::Error> {
    match reply {
        Reply::Nil => out.push(v3::RedisResult::Nil),
        Reply::Int(n) => out.push(v3::RedisResult::Int64(n)),
        Reply::Bulk(b) => out.push(v3::RedisResult::Binary(b)),
        Reply::Status(s) => out.push(v3::RedisResult::Status(s)),
        Reply::Array(items) => {
            for item in items {
                flatten(item, out)?;
            }
        }
        Reply::Error(code, detail) => {
            return Err(v3::Error::Other(format!(
                "Server error - ResponseError: {}",
                server_error(&code, detail.as_deref())
            )));
        }
    }
    Ok(())
}

fn result_size(results: &[v3::RedisResult]) -> usize {
    let each = std::mem::size_of::<v3::RedisResult>();
    std::mem::size_of::<Vec<v3::RedisResult>>()
        + results
            .iter()
            .map(|r| match r {
                v3::RedisResult::Binary(b) => each + b.len(),
                v3::RedisResult::Status(s) => each + s.len(),
                _ => each,
            })
            .sum::<usize>()
}

fn connection<T>(
    acc: &Accessor<T, SpinApi>,
    c: &Resource<RedisConnection>,
) -> wasmtime::Result<RedisConnection> {
    acc.with(|mut a| Ok(RedisConnection::handle(a.get().table.get(c)?)))
}

/// Runs one command; `convert` turns its reply into the call's result.
async fn run<T, R>(
    acc: &Accessor<T, SpinApi>,
    c: &Resource<RedisConnection>,
    args: &[&[u8]],
    convert: impl FnOnce(Reply) -> Result<R, v3::Error>,
) -> wasmtime::Result<Result<R, v3::Error>> {
    let conn = connection(acc, c)?;
    Ok(conn.call(args).await?.and_then(convert))
}

fn count(reply: Reply) -> Result<u32, v3::Error> {
    match reply {
        Reply::Int(n) => Ok(n as u32),
        other => Err(type_mismatch(&other)),
    }
}

fn strings(reply: Reply) -> Result<Vec<String>, v3::Error> {
    match reply {
        Reply::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Reply::Bulk(b) => String::from_utf8(b)
                    .map_err(|_| v3::Error::Other("Invalid UTF-8 - TypeError".into())),
                Reply::Status(s) => Ok(s),
                other => Err(type_mismatch(&other)),
            })
            .collect(),
        other => Err(type_mismatch(&other)),
    }
}

/// Any reply but an error (which [`RedisConnection::call`] turned into one already).
fn ok(_: Reply) -> Result<(), v3::Error> {
    Ok(())
}

impl v3::Host for SpinView<'_> {}

impl v3::HostConnection for SpinView<'_> {
    fn drop(&mut self, rep: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl<T> v3::HostConnectionWithStore<T> for SpinApi {
    async fn open(
        acc: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConnection>, v3::Error>> {
        let access = acc.with(|mut a| a.get().env.redis.clone());
        if access.killed.load(Ordering::SeqCst) {
            return Err(wasmtime::format_err!("the host was killed"));
        }
        match access.open(&address).await {
            Ok(conn) => acc.with(|mut a| Ok(Ok(a.get().table.push(conn)?))),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn publish(
        acc: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        run(acc, &c, &[b"PUBLISH", channel.as_bytes(), &payload], ok).await
    }

    async fn get(
        acc: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, v3::Error>> {
        run(acc, &c, &[b"GET", key.as_bytes()], |r| match r {
            Reply::Nil => Ok(None),
            Reply::Bulk(b) if b.len() > MAX_HOST_BUFFERED_BYTES => Err(v3::Error::Other(format!(
                "query result exceeds limit of {MAX_HOST_BUFFERED_BYTES} bytes"
            ))),
            Reply::Bulk(b) => Ok(Some(b)),
            other => Err(type_mismatch(&other)),
        })
        .await
    }

    async fn set(
        acc: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        run(acc, &c, &[b"SET", key.as_bytes(), &value], ok).await
    }

    async fn incr(
        acc: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, v3::Error>> {
        run(acc, &c, &[b"INCRBY", key.as_bytes(), b"1"], |r| match r {
            Reply::Int(n) => Ok(n),
            other => Err(type_mismatch(&other)),
        })
        .await
    }

    async fn del(
        acc: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v3::Error>> {
        let mut args: Vec<&[u8]> = vec![b"DEL"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        run(acc, &c, &args, count).await
    }

    async fn sadd(
        acc: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v3::Error>> {
        let mut args: Vec<&[u8]> = vec![b"SADD", key.as_bytes()];
        args.extend(values.iter().map(|v| v.as_bytes()));
        run(acc, &c, &args, count).await
    }

    async fn smembers(
        acc: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, v3::Error>> {
        run(acc, &c, &[b"SMEMBERS", key.as_bytes()], strings).await
    }

    async fn srem(
        acc: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v3::Error>> {
        let mut args: Vec<&[u8]> = vec![b"SREM", key.as_bytes()];
        args.extend(values.iter().map(|v| v.as_bytes()));
        run(acc, &c, &args, count).await
    }

    async fn execute(
        acc: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v3::RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<v3::RedisResult>, v3::Error>> {
        let owned: Vec<Vec<u8>> = arguments
            .into_iter()
            .map(|a| match a {
                v3::RedisParameter::Int64(n) => n.to_string().into_bytes(),
                v3::RedisParameter::Binary(b) => b,
            })
            .collect();
        let mut args: Vec<&[u8]> = vec![command.as_bytes()];
        args.extend(owned.iter().map(Vec::as_slice));
        run(acc, &c, &args, |reply| {
            let mut out = Vec::new();
            flatten(reply, &mut out)?;
            if result_size(&out) > MAX_HOST_BUFFERED_BYTES {
                return Err(v3::Error::Other(format!(
                    "query result exceeds limit of {MAX_HOST_BUFFERED_BYTES} bytes"
                )));
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_redis_rs_reads_them() {
        let a = parse_address("redis://user:p%40ss%3Aw@Cache.example:6380/2").unwrap();
        assert_eq!(
            a,
            Address {
                scheme: "redis".into(),
                host: "cache.example".into(),
                port: Some(6380),
                username: Some("user".into()),
                password: Some("p@ss:w".into()),
                db: 2,
            }
        );
        let b = parse_address("redis://:secret@127.0.0.1").unwrap();
        assert_eq!(
            (b.username, b.password.as_deref(), b.port, b.db),
            (None, Some("secret"), None, 0)
        );
        let c = parse_address("rediss://[::1]:7000/").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", Some(7000)));
        for bad in [
            "127.0.0.1:6379",
            "http://127.0.0.1:6379",
            "redis://",
            "redis://h:port",
            "redis://h/notanumber",
        ] {
            assert!(parse_address(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn replies_convert_as_spin_converts_them() {
        let mut out = Vec::new();
        flatten(
            Reply::Array(vec![
                Reply::Bulk(b"a".to_vec()),
                Reply::Nil,
                Reply::Array(vec![]),
                Reply::Array(vec![Reply::Int(3), Reply::Status("OK".into())]),
            ]),
            &mut out,
        )
        .unwrap();
        // The generated type has no PartialEq; its Debug form says it all.
        assert_eq!(
            format!("{out:?}"),
            format!(
                "{:?}",
                vec![
                    v3::RedisResult::Binary(b"a".to_vec()),
                    v3::RedisResult::Nil,
                    v3::RedisResult::Int64(3),
                    v3::RedisResult::Status("OK".into()),
                ]
            )
        );
        assert_eq!(
            server_error("ERR", Some("unknown command 'X'")),
            "An error was signalled by the server - ResponseError: unknown command 'X'"
        );
        assert_eq!(
            server_error("WRONGTYPE", Some("Operation against a key")),
            "WRONGTYPE: Operation against a key"
        );
    }
}

//! `/healthz`, `/readyz` and `/version` natively: answered without credentials, liveness
//! without touching the store, readiness failing on a broken store or a bad variable,
//! and no secret in any answer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::platform::testing::{ManualClock, MapVariables, NoHttp};
use mdm_core::{Env, routes::admin};
use mdm_kv::{Backend, KvError, MemoryBackend, Store};
use serde_json::Value;

const KEY: &str = "probe-admin-key-0123456789";
const STORAGE: &str = "probe-storage-key-9f8e7d6c5b4a39281706";

/// A store that counts the operations reaching it and fails them all when told to.
#[derive(Default)]
struct Probed {
    inner: MemoryBackend,
    ops: AtomicUsize,
    down: AtomicBool,
}

impl Probed {
    fn op(&self) -> Result<(), KvError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(KvError::Backend("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

impl Backend for Probed {
    type Cas = <MemoryBackend as Backend>::Cas;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.op()?;
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.op()?;
        self.inner.set(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.op()?;
        self.inner.delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.op()?;
        self.inner.exists(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        self.op()?;
        self.inner.get_many(keys).await
    }
    async fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        self.op()?;
        self.inner.set_many(items).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        self.op()?;
        self.inner.delete_many(keys).await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.op()?;
        self.inner.increment(key, delta).await
    }
    async fn cas_begin(&self, key: &str) -> Result<Self::Cas, KvError> {
        self.op()?;
        self.inner.cas_begin(key).await
    }
    async fn cas_swap(&self, cas: Self::Cas, value: &[u8]) -> Result<bool, KvError> {
        self.op()?;
        self.inner.cas_swap(cas, value).await
    }
}

type E = Env<Probed, NoHttp, ManualClock, MapVariables>;

fn env(vars: &[(&str, &str)]) -> E {
    Env {
        store: Store::new(Probed::default()),
        http: NoHttp,
        clock: ManualClock::at_unix(1_790_000_000),
        vars: MapVariables::new(vars.iter().copied()),
    }
}

fn configured() -> E {
    env(&[
        ("admin_api_key", KEY),
        ("storage_key", STORAGE),
        ("server_url", "https://mdm.example.com"),
        (
            "apns_topic",
            "com.apple.mgmt.External.1b2c3d4e-0000-4000-8000-000000000000",
        ),
    ])
}

fn get(e: &E, method: Method, path: &str) -> (StatusCode, Value, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .body(Vec::new())
        .unwrap();
    let resp = block_on(admin::handle(e, req));
    let text = String::from_utf8_lossy(resp.body()).into_owned();
    (
        resp.status(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

fn ops(e: &E) -> usize {
    e.store.backend().ops.load(Ordering::SeqCst)
}

#[test]
fn liveness_answers_without_credentials_and_without_the_store() {
    let e = configured();
    let (s, v, _) = get(&e, Method::GET, "/healthz");
    assert_eq!((s, &v["status"]), (StatusCode::OK, &Value::from("ok")));
    assert_eq!(ops(&e), 0, "liveness touched the store");
    // A broken store does not make the instance look dead.
    e.store.backend().down.store(true, Ordering::SeqCst);
    assert_eq!(get(&e, Method::GET, "/healthz").0, StatusCode::OK);
    // Probes take GET only.
    assert_eq!(
        get(&e, Method::POST, "/healthz").0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Nothing else became public: the API still wants its key.
    assert_eq!(
        get(&e, Method::GET, "/api/v1/health").0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&e, Method::GET, "/healthz/api/v1/tokens").0,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn version_names_the_release_and_the_commit() {
    let (s, v, _) = get(&configured(), Method::GET, "/version");
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let commit = v["commit"].as_str().unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
}

#[test]
fn readiness_checks_the_store_and_the_variables_and_says_which_failed() {
    let e = configured();
    let (s, v, text) = get(&e, Method::GET, "/readyz");
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "ready");
    assert_eq!(v["checks"]["store"]["ok"], true);
    assert_eq!(v["checks"]["variables"]["ok"], true);
    assert_eq!(v["push_certificate"]["state"], "topic_only", "{v}");
    assert_eq!(v["tokens"]["count"], 0, "{v}");
    for secret in [KEY, STORAGE] {
        assert!(!text.contains(secret), "a secret in /readyz: {text}");
    }
    // Readiness reads; it never writes.
    let before = e.store.backend().inner.len();
    get(&e, Method::GET, "/readyz");
    assert_eq!(e.store.backend().inner.len(), before);

    e.store.backend().down.store(true, Ordering::SeqCst);
    let (s, v, _) = get(&e, Method::GET, "/readyz");
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], "not_ready");
    assert_eq!(v["checks"]["store"]["ok"], false);
    assert!(
        v["checks"]["store"]["error"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );

    // A weak storage key and a missing admin key are named, their values never shown.
    let weak = "short-key";
    let e = env(&[("storage_key", weak), ("server_url", "mdm.example.com")]);
    let (s, v, text) = get(&e, Method::GET, "/readyz");
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["checks"]["store"]["ok"], true);
    let problems = v["checks"]["variables"]["problems"].to_string();
    for name in ["admin_api_key", "storage_key", "server_url"] {
        assert!(problems.contains(name), "{name} not named: {problems}");
    }
    assert!(!text.contains(weak), "{text}");
    assert_eq!(v["push_certificate"]["state"], "missing", "{v}");
}

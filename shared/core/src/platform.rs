//! The I/O the core needs, one small trait per concern. Spin adapters live in
//! `shared/spin-adapter`; the test adapters are in [`testing`].

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mdm_kv::{Backend, Store};

/// Wall-clock time and waiting, injectable so expiry, scheduling and backoff logic is
/// testable without real waits.
pub trait Clock {
    fn now(&self) -> SystemTime;

    /// Waits `d` (a test clock just moves forward).
    fn sleep(&self, d: Duration) -> impl Future<Output = ()>;

    fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    }
}

/// Outbound HTTP failure below the HTTP layer (connection, TLS, denied host, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError(pub String);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "outbound HTTP failed: {}", self.0)
    }
}

impl std::error::Error for TransportError {}

/// Outbound HTTP (Apple's Device Assignment API, APNs). Bodies are buffered: every
/// exchange we make is small and bounded.
pub trait HttpClient {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>>;
}

/// Application configuration (Spin variables).
pub trait Variables {
    /// `Ok(None)` when the variable is not defined for this component.
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<String>, String>>;
}

/// Everything a request handler may touch.
pub trait Platform {
    type Kv: Backend;
    type Http: HttpClient;
    type Clock: Clock;
    type Vars: Variables;

    fn store(&self) -> &Store<Self::Kv>;
    fn http(&self) -> &Self::Http;
    fn clock(&self) -> &Self::Clock;
    fn vars(&self) -> &Self::Vars;
}

/// The plain bundle of adapters that implements [`Platform`].
pub struct Env<K, H, C, V> {
    pub store: Store<K>,
    pub http: H,
    pub clock: C,
    pub vars: V,
}

impl<K: Backend, H: HttpClient, C: Clock, V: Variables> Platform for Env<K, H, C, V> {
    type Kv = K;
    type Http = H;
    type Clock = C;
    type Vars = V;

    fn store(&self) -> &Store<K> {
        &self.store
    }
    fn http(&self) -> &H {
        &self.http
    }
    fn clock(&self) -> &C {
        &self.clock
    }
    fn vars(&self) -> &V {
        &self.vars
    }
}

/// Test adapters: a settable clock, variables from a map, and outbound HTTP answered by
/// a function (an in-process simulator).
pub mod testing {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that only moves when told to.
    #[derive(Debug)]
    pub struct ManualClock(AtomicU64);

    impl ManualClock {
        pub fn at_unix(secs: u64) -> Self {
            ManualClock(AtomicU64::new(secs))
        }
        /// Moves time forward, rounding up to whole seconds.
        pub fn advance(&self, by: Duration) {
            let secs = by.as_secs() + u64::from(by.subsec_nanos() > 0);
            self.0.fetch_add(secs, Ordering::SeqCst);
        }
        pub fn set_unix(&self, secs: u64) {
            self.0.store(secs, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
        }

        async fn sleep(&self, d: Duration) {
            self.advance(d);
        }
    }

    /// The real system clock, for native tools.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct SystemClock;

    impl Clock for SystemClock {
        fn now(&self) -> SystemTime {
            SystemTime::now()
        }

        /// Blocks the thread: for native tools and tests only.
        async fn sleep(&self, d: Duration) {
            std::thread::sleep(d);
        }
    }

    #[derive(Debug, Default)]
    pub struct MapVariables(Mutex<HashMap<String, String>>);

    impl MapVariables {
        pub fn new<I: IntoIterator<Item = (K, W)>, K: Into<String>, W: Into<String>>(
            vars: I,
        ) -> Self {
            MapVariables(Mutex::new(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ))
        }
        pub fn set(&self, name: &str, value: &str) {
            self.0.lock().unwrap().insert(name.into(), value.into());
        }
    }

    impl Variables for MapVariables {
        async fn get(&self, name: &str) -> Result<Option<String>, String> {
            Ok(self.0.lock().unwrap().get(name).cloned())
        }
    }

    /// Outbound HTTP served by a closure, e.g. an in-process simulator of Apple's API.
    pub struct FnHttp<F>(pub F);

    impl<F> HttpClient for FnHttp<F>
    where
        F: Fn(http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError>,
    {
        async fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            (self.0)(request)
        }
    }

    /// Outbound HTTP that is not expected in a test: every call fails.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct NoHttp;

    impl HttpClient for NoHttp {
        async fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            Err(TransportError(format!(
                "no outbound HTTP in this test ({})",
                request.uri()
            )))
        }
    }
}

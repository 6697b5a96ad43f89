//! Spin 4 implementations of the core's platform traits, and the glue each component's
//! `#[http_service]` function uses. Nothing here knows about MDM.

use futures::StreamExt;
use spin_sdk::http::body::IncomingBodyExt;

use mdm_core::platform::TransportError;
use mdm_core::{Clock, Env, HttpClient, Response, Variables, api, log};
use mdm_kv::{KvError, Store};

mod key_value;
mod redis;
mod store;

pub use key_value::{STORE_LABEL, SpinCas, SpinKv};
pub use redis::{RedisCas, RedisKv};
pub use store::{AppCas, AppKv};

/// Largest response body read from an outbound call (a Device Assignment page of 1,000
/// devices is about 1 MiB; APNs answers are tiny): a longer one is a transport error.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;

/// Component variables (spin:variables); an undefined one is `None`.
pub struct SpinVariables;

impl Variables for SpinVariables {
    async fn get(&self, name: &str) -> Result<Option<String>, String> {
        match spin_sdk::variables::get(name).await {
            Ok(v) => Ok(Some(v)),
            Err(spin_sdk::variables::Error::Undefined(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// wasi:clocks wall clock.
pub struct SpinClock;

impl Clock for SpinClock {
    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }

    async fn sleep(&self, d: std::time::Duration) {
        spin_sdk::time::sleep(d).await;
    }
}

/// Outbound HTTP through the host (wasi:http client); hosts must be allowed in spin.toml
/// and client certificates come from the runtime config's `[[client_tls]]`.
pub struct SpinHttp;

impl HttpClient for SpinHttp {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let (parts, body) = request.into_parts();
        let outgoing =
            http::Request::from_parts(parts, http_body_util::Full::new(bytes::Bytes::from(body)));
        let resp = spin_sdk::http::send(outgoing)
            .await
            .map_err(|e| TransportError(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let mut stream = body.stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| TransportError(format!("reading response body: {e:?}")))?;
            if buf.len() + chunk.len() > MAX_RESPONSE_BODY {
                return Err(TransportError(format!(
                    "response body exceeds {MAX_RESPONSE_BODY} bytes"
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(http::Response::from_parts(parts, buf))
    }
}

pub type SpinEnv = Env<AppKv, SpinHttp, SpinClock, SpinVariables>;

/// Opens the platform for one request: the store the variables choose (Redis when
/// `redis_url` is set, else the key-value label).
pub async fn env() -> Result<SpinEnv, KvError> {
    Ok(Env {
        store: Store::new(AppKv::open(&SpinVariables).await?),
        http: SpinHttp,
        clock: SpinClock,
        vars: SpinVariables,
    })
}

/// Buffers the request body into the core's type, refusing (413, before reading more)
/// a body longer than `limit`, the most its route takes.
pub async fn read_request(
    req: spin_sdk::http::Request,
    limit: usize,
) -> Result<api::Request, api::ApiError> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(api::ApiError::payload_too_large(limit));
    }
    let mut stream = body.stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| api::ApiError::bad_request(format!("reading request body: {e:?}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(api::ApiError::payload_too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(http::Request::from_parts(parts, buf))
}

/// The whole life of one request: read it (at most `body_limit(method, path)` bytes),
/// open the platform, run `handler`, write its log line. The answer carries
/// `Content-Length`, so Spin's HTTP trigger sends it in one piece (a chunked body's last
/// chunk waits for the client's delayed ACK on keep-alive connections: docs/platform.md),
/// and `x-request-id` (the client's when it sent a plain one), which the log line names.
pub async fn serve<F, Fut>(
    component: &'static str,
    req: spin_sdk::http::Request,
    body_limit: fn(&http::Method, &str) -> usize,
    handler: F,
) -> http::Response<http_body_util::Full<bytes::Bytes>>
where
    F: FnOnce(SpinEnv, api::Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let started = std::time::Instant::now();
    log::configure(component, &SpinVariables).await;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let request_id = log::request_id(req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()))
        .unwrap_or_else(|| mdm_core::random::hex_id(8));
    let limit = body_limit(req.method(), req.uri().path());
    let resp = match read_request(req, limit).await {
        Err(e) => e.into_response(),
        Ok(req) => match env().await {
            Ok(env) => handler(env, req).await,
            Err(e) => api::ApiError::store(e).into_response(),
        },
    };
    let (mut parts, body) = resp.into_parts();
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        parts.headers.insert(REQUEST_ID, v);
    }
    let level = if parts.status.is_server_error() {
        log::Level::Error
    } else {
        log::Level::Info
    };
    if log::enabled(level) {
        let mut fields = vec![
            ("method", method.as_str().into()),
            ("route", path.into()),
            ("status", parts.status.as_u16().into()),
            (
                "latency_ms",
                ((started.elapsed().as_micros() as f64) / 1000.0).into(),
            ),
            ("request_id", request_id.into()),
        ];
        if let Some(subject) = parts.extensions.get::<log::Subject>() {
            fields.push(subject.field());
        }
        log::event(level, "request", &fields);
    }
    http::Response::from_parts(parts, http_body_util::Full::new(bytes::Bytes::from(body)))
}

/// The header carrying a request's id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

//! [`HyperHttp`]: the core's [`HttpClient`] over hyper's HTTP/1.1 client, plain
//! `http://` only (the simulator, local test servers). Needs a tokio runtime (any
//! flavour); keeps a few idle connections per host for reuse.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use mdm_core::platform::{HttpClient, TransportError};
use tokio::net::TcpStream;

use crate::io::TokioIo;

const MAX_IDLE: usize = 8;

/// HTTP/1.1 client for [`mdm_core::dep::client::DepClient`] and friends.
#[derive(Default)]
pub struct HyperHttp {
    idle: Mutex<Vec<(String, SendRequest<Full<Bytes>>)>>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for HyperHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperHttp")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn transport(what: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError(format!("{what}: {e}"))
}

impl HyperHttp {
    pub fn new() -> Self {
        HyperHttp::default()
    }

    /// Fails a request (connect, send, body) that takes longer than `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(
        &self,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        match self.timeout {
            Some(t) => tokio::time::timeout(t, self.exchange(request))
                .await
                .map_err(|_| TransportError(format!("no answer within {t:?}")))?,
            None => self.exchange(request).await,
        }
    }

    fn checkout(&self, key: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(pos) = idle.iter().position(|(k, _)| k == key) {
            let (_, sender) = idle.swap_remove(pos);
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn checkin(&self, key: String, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((key, sender));
        }
    }

    async fn connect(&self, addr: &str) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| transport(&format!("connect {addr}"), e))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo(stream))
            .await
            .map_err(|e| transport("handshake", e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    async fn exchange(
        &self,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let (parts, body) = request.into_parts();
        let uri = parts.uri;
        if uri.scheme_str() != Some("http") {
            return Err(TransportError(format!(
                "only http:// URLs are supported, not {uri}"
            )));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| TransportError(format!("no host in {uri}")))?
            .clone();
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let target: Uri = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .parse()
            .map_err(|e| transport("request target", e))?;
        let mut headers = parts.headers;
        if !headers.contains_key(HOST) {
            let host = HeaderValue::from_str(authority.as_str())
                .map_err(|e| transport("Host header", e))?;
            headers.insert(HOST, host);
        }
        let body = Bytes::from(body);
        let build = |method: &Method, headers: &HeaderMap| {
            let mut r = Request::new(Full::new(body.clone()));
            *r.method_mut() = method.clone();
            *r.uri_mut() = target.clone();
            *r.headers_mut() = headers.clone();
            r
        };

        let (mut sender, mut reused) = match self.checkout(&addr) {
            Some(s) => (s, true),
            None => (self.connect(&addr).await?, false),
        };
        let response = loop {
            let ready = sender.ready().await;
            let result = match ready {
                Ok(()) => sender.send_request(build(&parts.method, &headers)).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(r) => break r,
                // A pooled connection the server closed meanwhile: the request never
                // left, so a fresh connection may carry it.
                Err(e) if reused && (e.is_canceled() || e.is_closed()) => {
                    sender = self.connect(&addr).await?;
                    reused = false;
                }
                Err(e) => return Err(transport("request", e)),
            }
        };
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| transport("response body", e))?
            .to_bytes();
        self.checkin(addr, sender);
        Ok(Response::from_parts(parts, body.to_vec()))
    }
}

impl HttpClient for HyperHttp {
    async fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> {
        self.request(request).await
    }
}

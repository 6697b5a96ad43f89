//! The device's transport: a small [`Http`] trait, so tests and benchmarks can drive a
//! server by URL, and [`HyperHttp`], plain HTTP/1.1 over TCP with hyper (one connection
//! per request, `Connection: close`, as devices mostly do).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A response as the device sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A transport failure (no HTTP answer at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError(pub String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

/// How the device reaches a server.
pub trait Http: Send + Sync {
    /// `method` (`GET`, `PUT`, `POST`) to an absolute `url`; `headers` as given.
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> impl Future<Output = Result<HttpResponse, HttpError>> + Send;
}

impl<T: Http> Http for &T {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> impl Future<Output = Result<HttpResponse, HttpError>> + Send {
        (**self).send(method, url, headers, body)
    }
}

/// Plain HTTP/1.1 over TCP with hyper's client: needs a tokio runtime.
///
/// [`HyperHttp::to`] sends every request to one address whatever the URL's host and
/// scheme, as through a TLS-terminating proxy: the app under test listens on a port
/// chosen after its `server_url` (`https://...`, as Apple requires for profile URLs) was
/// configured. [`HyperHttp::by_url`] connects to the URL's `host:port` (`http://` only).
#[derive(Debug, Clone)]
pub struct HyperHttp {
    target: Option<SocketAddr>,
    timeout: Duration,
}

impl HyperHttp {
    pub fn to(addr: SocketAddr) -> HyperHttp {
        HyperHttp {
            target: Some(addr),
            timeout: Duration::from_secs(60),
        }
    }

    pub fn by_url() -> HyperHttp {
        HyperHttp {
            target: None,
            timeout: Duration::from_secs(60),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> HyperHttp {
        self.timeout = timeout;
        self
    }
}

/// (authority, path-and-query) of an `http://` or `https://` URL.
pub fn split_url(url: &str) -> Result<(&str, &str), HttpError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| HttpError(format!("{url:?} is not an http(s) URL")))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

impl Http for HyperHttp {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> impl Future<Output = Result<HttpResponse, HttpError>> + Send {
        let target = self.target;
        let prepared = (|| {
            if target.is_none() && !url.starts_with("http://") {
                return Err(HttpError(format!(
                    "{url:?}: HyperHttp::by_url speaks plain http:// only"
                )));
            }
            let (authority, path) = split_url(url)?;
            let mut req = http::Request::builder()
                .method(method)
                .uri(path)
                .header("host", authority)
                .header("connection", "close");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| HttpError(format!("request: {e}")))?;
            Ok::<_, HttpError>((authority.to_owned(), req))
        })();
        let timeout = self.timeout;
        async move {
            let (authority, req) = prepared?;
            let exchange = async {
                let stream = match target {
                    Some(addr) => TcpStream::connect(addr).await,
                    None => TcpStream::connect(authority.as_str()).await,
                }
                .map_err(|e| HttpError(format!("connect {authority}: {e}")))?;
                stream.set_nodelay(true).ok();
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo(stream))
                    .await
                    .map_err(|e| HttpError(format!("handshake: {e}")))?;
                let conn = tokio::spawn(conn);
                let resp = sender
                    .send_request(req)
                    .await
                    .map_err(|e| HttpError(format!("request: {e}")))?;
                let (parts, body) = resp.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| HttpError(format!("response body: {e}")))?
                    .to_bytes();
                drop(sender);
                let _ = conn.await;
                Ok(HttpResponse::from_parts(&parts, &bytes))
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| HttpError(format!("no answer within {timeout:?}")))?
        }
    }
}

impl HttpResponse {
    fn from_parts(parts: &http::response::Parts, body: &[u8]) -> HttpResponse {
        HttpResponse {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// HTTP/1.1 with keep-alive to one address (whatever the URL's host, like
/// [`HyperHttp::to`]): connections are kept and reused, one request at a time each. For
/// load generators: a fresh TCP connection per request costs client and server more than
/// a small request itself, and thousands a second run out of ephemeral ports.
#[derive(Debug)]
pub struct KeepAliveHttp {
    target: SocketAddr,
    timeout: Duration,
    idle: std::sync::Mutex<Vec<Sender>>,
}

impl KeepAliveHttp {
    pub fn to(addr: SocketAddr) -> KeepAliveHttp {
        KeepAliveHttp {
            target: addr,
            timeout: Duration::from_secs(60),
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> KeepAliveHttp {
        self.timeout = timeout;
        self
    }

    /// Connections open and waiting for a request.
    pub fn idle_connections(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn pooled(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    async fn connect(target: SocketAddr) -> Result<Sender, HttpError> {
        let stream = TcpStream::connect(target)
            .await
            .map_err(|e| HttpError(format!("connect {target}: {e}")))?;
        stream.set_nodelay(true).ok();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo(stream))
            .await
            .map_err(|e| HttpError(format!("handshake: {e}")))?;
        tokio::spawn(conn);
        sender
            .ready()
            .await
            .map_err(|e| HttpError(format!("connection: {e}")))?;
        Ok(sender)
    }
}

impl Http for KeepAliveHttp {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> impl Future<Output = Result<HttpResponse, HttpError>> + Send {
        let build = move || {
            let (authority, path) = split_url(url)?;
            let mut req = http::Request::builder()
                .method(method)
                .uri(path)
                .header("host", authority);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.body(Full::new(Bytes::from(body.clone())))
                .map_err(|e| HttpError(format!("request: {e}")))
        };
        async move {
            let exchange = async {
                // A kept connection takes the next request once it has finished reading
                // the previous response (ready); one that closed meanwhile is dropped.
                let pooled = match self.pooled() {
                    Some(mut s) => s.ready().await.ok().map(|()| s),
                    None => None,
                };
                let reused = pooled.is_some();
                let mut sender = match pooled {
                    Some(s) => s,
                    None => Self::connect(self.target).await?,
                };
                let resp = match sender.send_request(build()?).await {
                    Ok(r) => r,
                    // The server closed the kept connection before our request went out
                    // (canceled: nothing was sent), so sending it again is safe.
                    Err(e) if reused && e.is_canceled() => {
                        sender = Self::connect(self.target).await?;
                        sender
                            .send_request(build()?)
                            .await
                            .map_err(|e| HttpError(format!("request: {e}")))?
                    }
                    Err(e) => return Err(HttpError(format!("request: {e}"))),
                };
                let (parts, body) = resp.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| HttpError(format!("response body: {e}")))?
                    .to_bytes();
                // Only a connection whose exchange completed goes back to the pool.
                self.idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(sender);
                Ok(HttpResponse::from_parts(&parts, &bytes))
            };
            tokio::time::timeout(self.timeout, exchange)
                .await
                .map_err(|_| HttpError(format!("no answer within {:?}", self.timeout)))?
        }
    }
}

/// tokio's socket as hyper's IO traits (what hyper-util's `TokioIo` does).
struct TokioIo(TcpStream);

impl hyper::rt::Read for TokioIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut tmp = vec![0u8; buf.remaining().min(64 * 1024)];
        let mut rb = ReadBuf::new(&mut tmp);
        match Pin::new(&mut self.get_mut().0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                buf.put_slice(rb.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl hyper::rt::Write for TokioIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

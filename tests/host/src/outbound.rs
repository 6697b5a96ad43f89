//! Outbound wasi:http for a component: only to its `allowed_outbound_hosts`, over TLS
//! with the runtime config's `[[client_tls]]` for that component and host (client
//! certificate, extra roots), offering HTTP/2 by ALPN as Spin does. Connections are
//! pooled across the app by scheme, host and port, as Spin pools them (a pooled
//! connection keeps the TLS settings of the request that opened it); the runtime
//! config's `[outbound_http] connection_pooling = false` opens one per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::{RequestOptions, WasiHttpHooks};

use crate::runtime_config::{ClientTls, RuntimeConfig};

/// One `allowed_outbound_hosts` entry: `scheme://host[:port]`, where scheme, the leading
/// label(s) of host and port may be `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Port(u16),
    /// No port written: the scheme's default.
    Default,
}

impl AllowedHost {
    pub fn parse(entry: &str) -> anyhow::Result<AllowedHost> {
        let (scheme, rest) = entry.split_once("://").with_context(|| {
            format!("allowed_outbound_hosts entry {entry:?} needs a scheme (https://...)")
        })?;
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(s.to_ascii_lowercase())
            }
            other => bail!("allowed_outbound_hosts entry {entry:?}: bad scheme {other:?}"),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            bail!("allowed_outbound_hosts entry {entry:?} has no host");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, Some(p)),
            _ => (authority, None),
        };
        let port = match (port, &scheme) {
            (None, None) => PortPattern::Default,
            // As Spin: no port means the scheme's well-known one, and a scheme without
            // one (rediss, valkey, ftp) needs the port written out.
            (None, Some(s)) => PortPattern::Port(well_known_port(s).with_context(|| {
                format!(
                    "allowed_outbound_hosts entry {entry:?}: no port, and scheme {s:?} has no default port"
                )
            })?),
            (Some("*"), _) => PortPattern::Any,
            (Some(p), _) => PortPattern::Port(
                p.parse()
                    .with_context(|| format!("allowed_outbound_hosts entry {entry:?}: bad port"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostPattern::Suffix(suffix.to_owned())
        } else if host.contains('*') {
            bail!(
                "allowed_outbound_hosts entry {entry:?}: '*' only as the whole host or its first label"
            );
        } else {
            HostPattern::Exact(host)
        };
        Ok(AllowedHost { scheme, host, port })
    }

    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => *h == host,
            HostPattern::Suffix(s) => host.len() > s.len() + 1 && host.ends_with(&format!(".{s}")),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Port(p) => p == port,
            PortPattern::Default => port == default_port(scheme),
        };
        scheme_ok && host_ok && port_ok
    }
}

fn default_port(scheme: &str) -> u16 {
    well_known_port(scheme).unwrap_or(80)
}

/// The ports Spin's allow-list assumes when an entry or address names none.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Everything a component's outbound requests need, shared by all its requests.
pub struct OutboundPolicy {
    pub component: String,
    pub allowed: Vec<AllowedHost>,
    runtime: Arc<RuntimeConfig>,
    default_tls: Arc<rustls::ClientConfig>,
    /// The component's `[[client_tls]]` settings, read once, by host.
    client_tls: HashMap<String, Arc<rustls::ClientConfig>>,
    pool: Arc<ConnectionPool>,
}

impl OutboundPolicy {
    pub fn new(
        component: &str,
        allowed: Vec<AllowedHost>,
        runtime: Arc<RuntimeConfig>,
        pool: Arc<ConnectionPool>,
    ) -> anyhow::Result<Self> {
        // Read every client_tls entry of this component now, not on the first request.
        let mut client_tls = HashMap::new();
        for tls in runtime
            .client_tls
            .iter()
            .filter(|t| t.component_ids.iter().any(|c| c == component))
        {
            let config = Arc::new(
                tls_config(Some(tls))
                    .with_context(|| format!("client_tls for component {component:?}"))?,
            );
            for host in &tls.hosts {
                client_tls
                    .entry(host.to_ascii_lowercase())
                    .or_insert_with(|| config.clone());
            }
        }
        Ok(OutboundPolicy {
            component: component.to_owned(),
            allowed,
            runtime,
            default_tls: Arc::new(tls_config(None)?),
            client_tls,
            pool,
        })
    }

    fn tls_for(&self, host: &str) -> Arc<rustls::ClientConfig> {
        match self.runtime.client_tls_for(&self.component, host) {
            None => self.default_tls.clone(),
            Some(_) => self
                .client_tls
                .get(&host.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| self.default_tls.clone()),
        }
    }
}

type OutBody = UnsyncBoxBody<Bytes, ErrorCode>;

/// An open connection that can carry requests.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<OutBody>),
    /// HTTP/2 multiplexes: one connection serves every request to its origin.
    H2(hyper::client::conn::http2::SendRequest<OutBody>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// Free for a request now (an HTTP/1 connection is not until the previous response
    /// was read to its end).
    fn is_ready(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }
}

/// Idle connections by origin (scheme, host, port), app-wide as Spin's pool is.
#[derive(Default)]
pub struct ConnectionPool {
    enabled: bool,
    idle: Mutex<HashMap<Origin, Vec<(Sender, Instant)>>>,
}

/// (TLS, host, port).
type Origin = (bool, String, u16);

/// How long a connection may sit unused in the pool (hyper-util's default).
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Connections kept per origin.
const POOL_PER_ORIGIN: usize = 32;

impl ConnectionPool {
    pub fn new(enabled: bool) -> ConnectionPool {
        ConnectionPool {
            enabled,
            idle: Mutex::default(),
        }
    }

    /// A live connection to the origin that is free now, if the pool has one.
    fn take(&self, origin: &(bool, String, u16)) -> Option<Sender> {
        if !self.enabled {
            return None;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(origin)?;
        list.retain(|(s, at)| !s.is_closed() && at.elapsed() < POOL_IDLE);
        let i = list.iter().position(|(s, _)| s.is_ready())?;
        let shared = match &list[i].0 {
            // Stays pooled for other requests.
            Sender::H2(s) => Some(Sender::H2(s.clone())),
            Sender::H1(_) => None,
        };
        match shared {
            Some(s) => {
                list[i].1 = Instant::now();
                Some(s)
            }
            None => Some(list.swap_remove(i).0),
        }
    }

    /// Keeps a connection for later requests (an HTTP/1 one becomes free once the
    /// response it carries now has been read).
    fn keep(&self, origin: (bool, String, u16), sender: Sender) {
        if !self.enabled {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(origin).or_default();
        if matches!(sender, Sender::H2(_)) && list.iter().any(|(s, _)| matches!(s, Sender::H2(_))) {
            return;
        }
        if list.len() < POOL_PER_ORIGIN {
            list.push((sender, Instant::now()));
        }
    }
}

fn tls_config(tls: Option<&ClientTls>) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let mut roots = rustls::RootCertStore::empty();
    if tls.is_none_or(|t| t.use_public_roots) {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = tls.and_then(|t| t.ca_roots_file.as_ref()) {
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading {}", path.display()))?
        {
            roots.add(cert.with_context(|| format!("parsing {}", path.display()))?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match tls.and_then(|t| {
        t.client_cert_file
            .as_ref()
            .zip(t.client_private_key_file.as_ref())
    }) {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("reading {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing {}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading the private key {}", key.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The hooks wasi:http calls for one request's store.
pub struct Hooks {
    pub policy: Arc<OutboundPolicy>,
}

type SendResult = wasmtime_wasi::TrappableError<ErrorCode>;
type BoxedIo = Box<dyn Future<Output = Result<(), ErrorCode>> + Send>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<UnsyncBoxBody<Bytes, ErrorCode>>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), ErrorCode>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (http::Response<UnsyncBoxBody<Bytes, ErrorCode>>, BoxedIo),
                    SendResult,
                >,
            > + Send,
    > {
        let policy = self.policy.clone();
        Box::new(async move {
            send(&policy, request, options)
                .await
                .map_err(SendResult::from)
        })
    }
}

#[derive(Clone, Copy)]
struct TokioExec;

impl<F> hyper::rt::Executor<F> for TokioExec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

async fn send(
    policy: &OutboundPolicy,
    mut request: http::Request<UnsyncBoxBody<Bytes, ErrorCode>>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<UnsyncBoxBody<Bytes, ErrorCode>>, BoxedIo), ErrorCode> {
    let uri = request.uri().clone();
    let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTPS);
    let tls = scheme == Scheme::HTTPS;
    let host = uri
        .host()
        .ok_or(ErrorCode::HttpRequestUriInvalid)?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host_for_match = host.trim_start_matches('[').trim_end_matches(']');
    if !policy
        .allowed
        .iter()
        .any(|a| a.allows(scheme.as_str(), host_for_match, port))
    {
        eprintln!(
            "mdm-host: component {:?} may not reach {}://{}:{} (allowed_outbound_hosts)",
            policy.component, scheme, host, port
        );
        return Err(ErrorCode::HttpRequestDenied);
    }
    let timeout = |f: fn(&RequestOptions) -> Option<Duration>| {
        options
            .as_ref()
            .and_then(f)
            .unwrap_or(Duration::from_secs(600))
    };
    let connect_timeout = timeout(|o| o.connect_timeout);
    let first_byte_timeout = timeout(|o| o.first_byte_timeout);

    let origin = (tls, host_for_match.to_ascii_lowercase(), port);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    *request.uri_mut() = if tls {
        // HTTP/2 carries the authority in the URI, not a Host header; HTTP/1 takes the
        // path alone (hyper writes what the URI holds).
        http::Uri::builder()
            .scheme("https")
            .authority(format!("{host}:{port}"))
            .path_and_query(path)
            .build()
    } else {
        http::Uri::builder().path_and_query(path).build()
    }
    .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;

    // A pooled connection the server closed meanwhile gives the request back unsent:
    // it then goes out once more on a new connection, as Spin's pooled client does.
    if let Some(sender) = policy.pool.take(&origin) {
        match exchange(sender, request, first_byte_timeout).await {
            Ok((response, sender)) => {
                policy.pool.keep(origin, sender);
                return Ok((response, Box::new(async { Ok(()) }) as BoxedIo));
            }
            Err(Unsent::Request(r)) => request = r,
            Err(Unsent::Failed(e)) => return Err(e),
        }
    }
    let sender = connect(policy, tls, &host, host_for_match, port, connect_timeout).await?;
    match exchange(sender, request, first_byte_timeout).await {
        Ok((response, sender)) => {
            policy.pool.keep(origin, sender);
            Ok((response, Box::new(async { Ok(()) }) as BoxedIo))
        }
        Err(Unsent::Request(_)) => Err(ErrorCode::ConnectionTerminated),
        Err(Unsent::Failed(e)) => Err(e),
    }
}

/// Opens a connection (TLS with the component's settings for `host`, HTTP/2 when the
/// server picks it by ALPN).
async fn connect(
    policy: &OutboundPolicy,
    tls: bool,
    host: &str,
    host_for_match: &str,
    port: u16,
    connect_timeout: Duration,
) -> Result<Sender, ErrorCode> {
    let tcp = tokio::time::timeout(
        connect_timeout,
        tokio::net::TcpStream::connect((host_for_match, port)),
    )
    .await
    .map_err(|_| ErrorCode::ConnectionTimeout)?
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            ErrorCode::ConnectionRefused
        } else {
            ErrorCode::InternalError(Some(format!("connect: {e}")))
        }
    })?;
    let _ = tcp.set_nodelay(true);
    if !tls {
        return handshake(TokioIo::new(tcp), false).await;
    }
    let name = rustls_pki_types::ServerName::try_from(host_for_match.to_owned())
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    let stream = tokio_rustls::TlsConnector::from(policy.tls_for(host_for_match))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            eprintln!("mdm-host: TLS to {host}:{port} failed: {e}");
            ErrorCode::TlsProtocolError
        })?;
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    handshake(TokioIo::new(stream), h2).await
}

async fn handshake<IO>(io: IO, h2: bool) -> Result<Sender, ErrorCode>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    if h2 {
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExec)
            .handshake(io)
            .await
            .map_err(ErrorCode::from_hyper_request_error)?;
        tokio::spawn(conn);
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(io)
            .await
            .map_err(ErrorCode::from_hyper_request_error)?;
        tokio::spawn(conn);
        Ok(Sender::H1(sender))
    }
}

/// A request that could not be sent: given back when the connection took none of it.
enum Unsent {
    Request(http::Request<OutBody>),
    Failed(ErrorCode),
}

type Exchanged = (http::Response<OutBody>, Sender);

async fn exchange(
    sender: Sender,
    mut request: http::Request<OutBody>,
    first_byte_timeout: Duration,
) -> Result<Exchanged, Unsent> {
    let sent = match sender {
        Sender::H2(mut s) => {
            request.headers_mut().remove(http::header::HOST);
            let r = tokio::time::timeout(first_byte_timeout, s.try_send_request(request)).await;
            (r, Sender::H2(s))
        }
        Sender::H1(mut s) => {
            if request.uri().scheme().is_some() {
                // HTTP/1 over TLS: the path alone on the request line.
                let path = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/".into());
                *request.uri_mut() = http::Uri::builder()
                    .path_and_query(path)
                    .build()
                    .map_err(|_| Unsent::Failed(ErrorCode::HttpRequestUriInvalid))?;
            }
            let r = tokio::time::timeout(first_byte_timeout, s.try_send_request(request)).await;
            (r, Sender::H1(s))
        }
    };
    match sent {
        (Err(_), _) => Err(Unsent::Failed(ErrorCode::ConnectionReadTimeout)),
        (Ok(Ok(response)), sender) => Ok((
            response.map(|body| {
                body.map_err(|e| ErrorCode::InternalError(Some(format!("response body: {e}"))))
                    .boxed_unsync()
            }),
            sender,
        )),
        (Ok(Err(mut e)), _) => match e.take_message() {
            Some(request) => Err(Unsent::Request(request)),
            None => Err(Unsent::Failed(ErrorCode::from_hyper_request_error(
                e.into_error(),
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_match_like_spin() {
        let a = AllowedHost::parse("https://mdmenrollment.apple.com").unwrap();
        assert!(a.allows("https", "mdmenrollment.apple.com", 443));
        assert!(a.allows("https", "MDMENROLLMENT.apple.com", 443));
        assert!(!a.allows("http", "mdmenrollment.apple.com", 80));
        assert!(!a.allows("https", "mdmenrollment.apple.com", 8443));
        assert!(!a.allows("https", "evil.com", 443));

        let b = AllowedHost::parse("http://127.0.0.1:9000").unwrap();
        assert!(b.allows("http", "127.0.0.1", 9000));
        assert!(!b.allows("http", "127.0.0.1", 9001));

        let c = AllowedHost::parse("*://*.push.apple.com:*").unwrap();
        assert!(c.allows("https", "api.push.apple.com", 2197));
        assert!(!c.allows("https", "push.apple.com", 443));
        assert!(!c.allows("https", "api.push.apple.com.evil", 443));

        let d = AllowedHost::parse("https://api.example.com/some/path").unwrap();
        assert!(d.allows("https", "api.example.com", 443));

        let r = AllowedHost::parse("redis://127.0.0.1").unwrap();
        assert!(r.allows("redis", "127.0.0.1", 6379));
        assert!(!r.allows("rediss", "127.0.0.1", 6379));
        assert!(!r.allows("http", "127.0.0.1", 6379));
        let t = AllowedHost::parse("rediss://cache.example.com:6380").unwrap();
        assert!(t.allows("rediss", "cache.example.com", 6380));

        for bad in [
            "rediss://cache.example.com",
            "valkey://cache",
            "re2is://x:1",
            "api.example.com",
            "ftp://x",
            "https://",
            "https://a*b.com",
            "https://x:port",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }
}

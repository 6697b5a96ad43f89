//! [`H2Client`]: the core's [`HttpClient`] over rustls and hyper's HTTP/2 client,
//! presenting a client certificate, as Spin's outbound HTTP does with a runtime-config
//! `[[client_tls]]`. One connection per request (Spin with `connection_pooling = false`).
//! Needs a tokio runtime with I/O and time enabled (any flavour).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mdm_core::platform::{HttpClient, TransportError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use crate::ApnsSim;
use crate::io::{Io, TokioExec};

/// HTTPS over HTTP/2 only, trusting the given CA, with an optional client identity.
#[derive(Clone)]
pub struct H2Client {
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl std::fmt::Debug for H2Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Client")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The message of an error and of everything that caused it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

impl H2Client {
    /// `identity`: client certificate chain PEM and PKCS#8 key PEM.
    pub fn new(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<H2Client, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("client certificate: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| format!("client key: {e}"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| e.to_string())?
            }
            None => builder.with_no_client_auth(),
        };
        // What Spin offers; the server must pick h2.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(H2Client {
            config: Arc::new(config),
            timeout: Duration::from_secs(10),
        })
    }

    /// Trusts `sim` and presents its accepted push identity.
    pub fn for_sim(sim: &ApnsSim) -> H2Client {
        Self::new(
            sim.server_ca_pem(),
            Some((sim.client_cert_pem(), sim.client_key_pem())),
        )
        .expect("simulator PKI")
    }

    /// Trusts `sim` but presents no client certificate.
    pub fn without_identity(sim: &ApnsSim) -> H2Client {
        Self::new(sim.server_ca_pem(), None).expect("simulator PKI")
    }

    /// Trusts `sim` and presents an identity from a CA it does not trust.
    pub fn with_untrusted_identity(sim: &ApnsSim) -> H2Client {
        Self::new(
            sim.server_ca_pem(),
            Some((
                sim.untrusted_client_cert_pem(),
                sim.untrusted_client_key_pem(),
            )),
        )
        .expect("simulator PKI")
    }

    /// Fails an exchange (connect, handshake, answer) that takes longer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn exchange(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, String> {
        let uri = request.uri().clone();
        if uri.scheme_str() != Some("https") {
            return Err(format!("only https:// URLs are supported, not {uri}"));
        }
        let host = uri.host().ok_or_else(|| format!("no host in {uri}"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port}: {}", chain(&e)))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(format!("{host}:{port} did not negotiate HTTP/2"));
        }
        let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExec)
            .handshake(Io(tls))
            .await
            .map_err(|e| format!("HTTP/2 handshake with {host}:{port}: {}", chain(&e)))?;
        // Under TLS 1.3 the server judges the client certificate after the client's
        // handshake is done: its alert ends the connection task, not the handshake. Keep
        // that error to explain a failed request.
        let (conn_error_tx, conn_error) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = conn_error_tx.send(conn.await.err().map(|e| chain(&e)));
        });
        let (mut parts, body) = request.into_parts();
        parts.headers.remove(http::header::HOST);
        let request = Request::from_parts(parts, Full::new(Bytes::from(body)));
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                let mut msg = format!("HTTP/2 request to {host}:{port}: {}", chain(&e));
                if let Ok(Ok(Some(cause))) =
                    tokio::time::timeout(Duration::from_secs(1), conn_error).await
                {
                    msg.push_str(&format!(" (connection: {cause})"));
                }
                return Err(msg);
            }
        };
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("response body: {}", chain(&e)))?
            .to_bytes();
        Ok(Response::from_parts(parts, body.to_vec()))
    }
}

impl HttpClient for H2Client {
    async fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> {
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(r) => r.map_err(TransportError),
            Err(_) => Err(TransportError(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        }
    }
}

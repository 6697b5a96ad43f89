//! The TLS + HTTP/2 server and the APNs request checks.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::io::{Io, TokioExec};
use crate::{Pki, RecordedPush, Shared};

/// APNs' payload limit for everything but VoIP.
pub const MAX_PAYLOAD: usize = 4096;

pub(crate) fn tls_config(pki: &Pki, tls12_only: bool) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.push_ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    // Client certificates are required (no `allow_unauthenticated`).
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let chain = vec![CertificateDer::from(pki.server.cert_der.clone())];
    let key =
        PrivateKeyDer::from_pem_slice(pki.server.key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    // HTTP/2 only: a client offering only other protocols fails the handshake.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    shared.tls_failure(format!("{peer}: {e}"));
                    return;
                }
            };
            let conn = stream.get_ref().1;
            if conn.alpn_protocol() != Some(b"h2") {
                shared.tls_failure(format!("{peer}: client did not negotiate h2"));
                return;
            }
            let identity = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec())
                .unwrap_or_default();
            let topic = shared.topic_of(&identity).unwrap_or_default();
            shared.connected();
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                let topic = topic.clone();
                async move { Ok::<_, Infallible>(handle(&shared, &topic, req).await) }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExec)
                .serve_connection(Io(stream), svc)
                .await;
        });
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn new_apns_id() -> String {
    mdm_core::push::apns::new_apns_id().to_ascii_uppercase()
}

/// What a request is answered with.
struct Answer {
    status: u16,
    reason: Option<String>,
    retry_after: Option<String>,
    timestamp: bool,
}

impl Answer {
    fn ok() -> Self {
        Answer {
            status: 200,
            reason: None,
            retry_after: None,
            timestamp: false,
        }
    }
    fn error(status: u16, reason: &str) -> Self {
        Answer {
            status,
            reason: Some(reason.to_owned()),
            retry_after: None,
            timestamp: false,
        }
    }
}

/// The checks APNs makes of an MDM push; `None` when the request is well-formed.
fn check(
    method: &Method,
    path: &str,
    headers: &http::HeaderMap,
    body: Option<&[u8]>,
    identity_topic: &str,
) -> Option<Answer> {
    if method != Method::POST {
        return Some(Answer::error(405, "MethodNotAllowed"));
    }
    let Some(token) = path.strip_prefix("/3/device/") else {
        return Some(Answer::error(404, "BadPath"));
    };
    if token.is_empty() {
        return Some(Answer::error(400, "MissingDeviceToken"));
    }
    if token.len() < 16
        || token.len() > 200
        || !token.len().is_multiple_of(2)
        || !token.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Some(Answer::error(400, "BadDeviceToken"));
    }
    for name in headers.keys() {
        if name.as_str().starts_with("apns-") && headers.get_all(name).iter().count() > 1 {
            return Some(Answer::error(400, "DuplicateHeaders"));
        }
    }
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    match h("apns-topic") {
        None => return Some(Answer::error(400, "MissingTopic")),
        Some(t) if !t.starts_with("com.apple.mgmt.") => {
            return Some(Answer::error(400, "BadTopic"));
        }
        Some(t) if t != identity_topic => return Some(Answer::error(400, "TopicDisallowed")),
        Some(_) => {}
    }
    if h("apns-push-type") != Some("mdm") {
        return Some(Answer::error(400, "InvalidPushType"));
    }
    if h("apns-priority") != Some("10") {
        return Some(Answer::error(400, "BadPriority"));
    }
    if h("apns-expiration").is_none_or(|e| e.parse::<u64>().is_err()) {
        return Some(Answer::error(400, "BadExpirationDate"));
    }
    if let Some(id) = headers.get("apns-id")
        && !id.to_str().is_ok_and(is_uuid)
    {
        return Some(Answer::error(400, "BadMessageId"));
    }
    let Some(body) = body else {
        return Some(Answer::error(413, "PayloadTooLarge"));
    };
    if body.is_empty() {
        return Some(Answer::error(400, "PayloadEmpty"));
    }
    if body.len() > MAX_PAYLOAD {
        return Some(Answer::error(413, "PayloadTooLarge"));
    }
    if push_magic(body).is_none() {
        return Some(Answer::error(400, "BadPayload"));
    }
    None
}

/// The PushMagic of a body that is exactly `{"mdm": "<non-empty string>"}`.
fn push_magic(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(m) if m.len() == 1 => m
            .get("mdm")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        _ => None,
    }
}

async fn handle(
    shared: &Shared,
    identity_topic: &str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    // Read a little past the limit to tell "too large" apart.
    let body = Limited::new(body, 4 * MAX_PAYLOAD)
        .collect()
        .await
        .ok()
        .map(|b| b.to_bytes().to_vec());
    let path = parts.uri.path().to_owned();
    let token = path
        .strip_prefix("/3/device/")
        .unwrap_or_default()
        .to_owned();
    let mut answer = check(
        &parts.method,
        &path,
        &parts.headers,
        body.as_deref(),
        identity_topic,
    )
    .unwrap_or_else(
        || match shared.lock().scripted(&token.to_ascii_lowercase()) {
            Some(s) => Answer {
                status: s.status,
                reason: Some(s.reason),
                retry_after: s.retry_after,
                timestamp: s.timestamp,
            },
            None => Answer::ok(),
        },
    );
    if answer.status == 200 {
        answer.reason = None;
    }
    let h = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let apns_id = h("apns-id")
        .filter(|id| is_uuid(id))
        .unwrap_or_else(new_apns_id);
    let body = body.unwrap_or_default();
    shared.record(RecordedPush {
        at: SystemTime::now(),
        method: parts.method.to_string(),
        path: path.clone(),
        token,
        topic: h("apns-topic"),
        push_type: h("apns-push-type"),
        priority: h("apns-priority"),
        expiration: h("apns-expiration"),
        apns_id: h("apns-id"),
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
        push_magic: push_magic(&body),
        body,
        identity_topic: identity_topic.to_owned(),
        http2: parts.version == Version::HTTP_2,
        status: answer.status,
        reason: answer.reason.clone(),
        answered_apns_id: apns_id.clone(),
    });
    let mut resp = Response::builder()
        .status(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("apns-id", &apns_id);
    if let Some(ra) = &answer.retry_after {
        resp = resp.header("retry-after", ra);
    }
    let body = match &answer.reason {
        None => Bytes::new(),
        Some(reason) => {
            resp = resp.header("content-type", "application/json; charset=utf-8");
            let v = if answer.timestamp {
                json!({ "reason": reason, "timestamp": unix_ms() })
            } else {
                json!({ "reason": reason })
            };
            Bytes::from(serde_json::to_vec(&v).expect("serialises"))
        }
    };
    resp.body(Full::new(body)).expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "com.apple.mgmt.External.1";

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("apns-topic", TOPIC),
            ("apns-push-type", "mdm"),
            ("apns-priority", "10"),
            ("apns-expiration", "1800000000"),
        ]
    }

    fn reason(
        method: Method,
        path: &str,
        pairs: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Option<(u16, String)> {
        check(&method, path, &headers(pairs), body, TOPIC).map(|a| (a.status, a.reason.unwrap()))
    }

    #[test]
    fn checks_like_apns() {
        let path = format!("/3/device/{}", "ab".repeat(32));
        let body: &[u8] = br#"{"mdm":"magic"}"#;
        assert_eq!(reason(Method::POST, &path, &good(), Some(body)), None);
        let r = |m: Method, p: &str, h: &[(&str, &str)], b: Option<&[u8]>| {
            reason(m, p, h, b).map(|(_, r)| r).unwrap_or_default()
        };
        assert_eq!(
            r(Method::GET, &path, &good(), Some(body)),
            "MethodNotAllowed"
        );
        assert_eq!(r(Method::POST, "/3/other", &good(), Some(body)), "BadPath");
        assert_eq!(
            r(Method::POST, "/3/device/", &good(), Some(body)),
            "MissingDeviceToken"
        );
        assert_eq!(
            r(Method::POST, "/3/device/xyz", &good(), Some(body)),
            "BadDeviceToken"
        );
        let mut h = good();
        h.push(("apns-priority", "5"));
        assert_eq!(r(Method::POST, &path, &h, Some(body)), "DuplicateHeaders");
        let without = |name: &str| -> Vec<(&str, &str)> {
            good().into_iter().filter(|(k, _)| *k != name).collect()
        };
        assert_eq!(
            r(Method::POST, &path, &without("apns-topic"), Some(body)),
            "MissingTopic"
        );
        let mut h = without("apns-topic");
        h.push(("apns-topic", "com.example.app"));
        assert_eq!(r(Method::POST, &path, &h, Some(body)), "BadTopic");
        let mut h = without("apns-topic");
        h.push(("apns-topic", "com.apple.mgmt.External.2"));
        assert_eq!(r(Method::POST, &path, &h, Some(body)), "TopicDisallowed");
        let mut h = without("apns-push-type");
        h.push(("apns-push-type", "alert"));
        assert_eq!(r(Method::POST, &path, &h, Some(body)), "InvalidPushType");
        assert_eq!(
            r(Method::POST, &path, &without("apns-priority"), Some(body)),
            "BadPriority"
        );
        let mut h = without("apns-expiration");
        h.push(("apns-expiration", "tomorrow"));
        assert_eq!(r(Method::POST, &path, &h, Some(body)), "BadExpirationDate");
        let mut h = good();
        h.push(("apns-id", "not-a-uuid"));
        assert_eq!(r(Method::POST, &path, &h, Some(body)), "BadMessageId");
        assert_eq!(r(Method::POST, &path, &good(), Some(b"")), "PayloadEmpty");
        assert_eq!(
            r(Method::POST, &path, &good(), Some(&vec![b' '; 5000])),
            "PayloadTooLarge"
        );
        for bad in [
            &br#"{"aps":{}}"#[..],
            br#"{"mdm":""}"#,
            br#"{"mdm":"m","x":1}"#,
            b"mdm",
        ] {
            assert_eq!(r(Method::POST, &path, &good(), Some(bad)), "BadPayload");
        }
    }

    #[test]
    fn uuid_syntax() {
        assert!(is_uuid("0F2B6E6A-0000-4000-8000-000000000001"));
        assert!(!is_uuid("0F2B6E6A00004000800000000000001"));
    }
}

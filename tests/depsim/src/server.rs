//! The HTTP/1.1 server: accepts connections, reads bodies, finds the organisation a
//! request is for, applies its scripted faults, and hands the request to the API under
//! that organisation's lock; the `/_depsim/…` control routes are answered here.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::api::{Reply, Req, error_reply};
use crate::config::ServerConfig;
use crate::control::SimControl;
use crate::io::TokioIo;
use crate::servers::Orgs;
use crate::state::{Fault, FaultAction};

/// Largest request body accepted.
const MAX_BODY: usize = 8 << 20;
/// Prefix of the control routes.
pub const CONTROL_PREFIX: &str = "/_depsim/";

/// A scripted dropped connection: hyper closes the connection when the service fails.
#[derive(Debug)]
struct Disconnect;

impl std::fmt::Display for Disconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted disconnect")
    }
}

impl std::error::Error for Disconnect {}

pub(crate) async fn serve(
    listener: TcpListener,
    orgs: Arc<Orgs>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of descriptors and the like: back off a little.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let orgs = orgs.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(orgs.clone(), req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        }
    }
    connections.abort_all();
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Some(ct) = reply.content_type {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(name, v);
        }
    }
    response
}

async fn handle(
    orgs: Arc<Orgs>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Disconnect> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let control = orgs.route(&path, &parts.headers);
    let style = control.lock().cfg.error_style;
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(to_response(error_reply(style, 413, "REQUEST_TOO_LARGE"))),
    };
    if let Some(route) = path.strip_prefix(CONTROL_PREFIX)
        && orgs.control_api()
    {
        return Ok(to_response(control_route(
            &orgs,
            &parts.method,
            route,
            parts.uri.query(),
            &body,
        )));
    }

    let fault = control.lock().take_fault(&parts.method, &path);
    let early = match fault {
        None => None,
        Some(FaultAction::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(FaultAction::Disconnect) => {
            control.lock().count_faulted(&path, None);
            return Err(Disconnect);
        }
        Some(FaultAction::Error { status, code }) => Some(error_reply(style, status, &code)),
        Some(FaultAction::Raw { status, body }) => Some(Reply {
            status,
            body: body.into_bytes(),
            content_type: Some("text/plain;charset=UTF8"),
            headers: Vec::new(),
        }),
        Some(FaultAction::RetryAfter { status, seconds }) => {
            let text = match status {
                429 => "TOO_MANY_REQUESTS",
                503 => "SERVICE_UNAVAILABLE",
                _ => "RETRY_LATER",
            };
            Some(error_reply(style, status, text).header("Retry-After", seconds.to_string()))
        }
    };
    if let Some(reply) = early {
        control.lock().count_faulted(&path, Some(reply.status));
        return Ok(to_response(reply));
    }

    let reply = control.lock().handle(&Req {
        method: &parts.method,
        path: &path,
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
    });
    Ok(to_response(reply))
}

/// `/_depsim/…`: the control handles over HTTP, for a simulator in another process.
/// `servers/<index>/…` addresses an organisation, anything else the default one.
fn control_route(
    orgs: &Orgs,
    method: &Method,
    route: &str,
    query: Option<&str>,
    body: &[u8],
) -> Reply {
    let (control, route) = match route.strip_prefix("servers/") {
        Some(rest) => {
            let (index, rest) = rest.split_once('/').unwrap_or((rest, ""));
            match index.parse().ok().and_then(|i| orgs.get(i)) {
                Some(control) => (control, rest),
                None => return Reply::json(404, &json!({ "error": "unknown server" })),
            }
        }
        None => (orgs.default_org(), route),
    };
    let control = &control;
    if let Some(reply) = apple_side_route(control, method, route, query, body) {
        return reply;
    }
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return Reply::json(400, &json!({ "error": e.to_string() })),
        }
    };
    let u64_of = |k: &str| input.get(k).and_then(Value::as_u64);
    let str_of = |k: &str| input.get(k).and_then(Value::as_str);
    let serials = || -> Vec<String> {
        input
            .get("serials")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    match (method.as_str(), route) {
        ("GET", "servers") => {
            let list: Vec<Value> = orgs
                .all()
                .iter()
                .map(|c| {
                    json!({
                        "index": c.index(),
                        "consumer_key": c.credentials().consumer_key,
                        "devices": c.device_count(),
                    })
                })
                .collect();
            Reply::json(200, &json!({ "servers": list }))
        }
        ("POST", "servers") => {
            let index = orgs.len() as u64;
            let seed = u64_of("seed").unwrap_or_else(|| control.lock().cfg.seed + index);
            let config = ServerConfig::new(u64_of("devices").unwrap_or(100), seed);
            let added = match orgs.add(config) {
                Ok(added) => added,
                Err(e) => return Reply::json(409, &json!({ "error": e })),
            };
            let c = added.credentials();
            Reply::json(
                200,
                &json!({
                    "index": added.index(),
                    "consumer_key": c.consumer_key,
                    "consumer_secret": c.consumer_secret,
                    "access_token": c.access_token,
                    "access_secret": c.access_secret,
                }),
            )
        }
        ("GET", "stats") => Reply::json(200, &control.stats()),
        ("POST", "stats/reset") => {
            control.reset_stats();
            Reply::json(200, &json!({}))
        }
        ("GET", "account") => Reply::json(200, &control.lock().account_json()),
        ("POST", "devices/add") => {
            let n = u64_of("count").unwrap_or(1);
            let serials = match str_of("op") {
                Some("modified") => control.move_in_devices(n),
                _ => control.add_devices(n),
            };
            Reply::json(200, &json!({ "serials": serials }))
        }
        ("POST", "devices/delete") => {
            let n = serials()
                .iter()
                .filter(|s| control.delete_device(s))
                .count();
            Reply::json(200, &json!({ "deleted": n }))
        }
        ("POST", "devices/profile_status") => {
            let status = str_of("status").unwrap_or("removed");
            let n = serials()
                .iter()
                .filter(|s| control.set_profile_status(s, status))
                .count();
            Reply::json(200, &json!({ "changed": n }))
        }
        ("POST", "faults") => {
            let times = u64_of("count").unwrap_or(1) as u32;
            let status = u64_of("status").unwrap_or(500) as u16;
            let action = if input.get("disconnect").and_then(Value::as_bool) == Some(true) {
                FaultAction::Disconnect
            } else if let Some(ms) = u64_of("delay_ms") {
                FaultAction::Delay(Duration::from_millis(ms))
            } else if let Some(seconds) = u64_of("retry_after") {
                FaultAction::RetryAfter { status, seconds }
            } else {
                FaultAction::Error {
                    status,
                    code: str_of("code").unwrap_or_default().to_owned(),
                }
            };
            let mut fault = Fault::new(action, times);
            fault.path = str_of("path").map(str::to_owned);
            fault.method = str_of("method").and_then(|m| m.parse().ok());
            control.inject(fault);
            Reply::json(200, &json!({ "pending": control.pending_faults() }))
        }
        ("DELETE", "faults") => {
            control.clear_faults();
            Reply::json(200, &json!({}))
        }
        ("POST", "time/advance") => {
            control.advance_time(Duration::from_secs(u64_of("seconds").unwrap_or(0)));
            Reply::json(200, &json!({}))
        }
        ("POST", "sessions/expire") => {
            control.expire_sessions();
            Reply::json(200, &json!({}))
        }
        _ => Reply::json(404, &json!({ "error": "unknown control route" })),
    }
}

/// What Apple does outside the Device Assignment API, for demos and out-of-process
/// tests: Apple Business Manager's server-token download (`POST server-token`, the MDM
/// server's public key as a PEM body, a `.p7m` back), the organisation's devices
/// (`GET devices?limit=N`, default 1000) and the cloud configuration Setup Assistant
/// fetches when a device is turned on (`POST devices/<serial>/cloud-configuration`).
/// `None` for the other control routes.
fn apple_side_route(
    control: &SimControl,
    method: &Method,
    route: &str,
    query: Option<&str>,
    body: &[u8],
) -> Option<Reply> {
    let reply = match (method.as_str(), route) {
        ("POST", "server-token") => {
            let pem = String::from_utf8_lossy(body);
            match control.server_token(&pem) {
                Ok(p7m) => Reply {
                    status: 200,
                    body: p7m,
                    content_type: Some("application/pkcs7-mime"),
                    headers: vec![(
                        "Content-Disposition",
                        "attachment; filename=\"server_token.p7m\"".to_owned(),
                    )],
                },
                Err(e) => Reply::json(400, &json!({ "error": e })),
            }
        }
        ("GET", "devices") => {
            let limit = crate::api::query_param(query, "limit")
                .map(|l| l.parse::<usize>())
                .unwrap_or(Ok(1000));
            match limit {
                Ok(limit) => Reply::json(200, &json!({ "devices": control.devices(limit) })),
                Err(_) => Reply::json(400, &json!({ "error": "limit: not a number" })),
            }
        }
        ("POST", r) => {
            let serial = r
                .strip_prefix("devices/")?
                .strip_suffix("/cloud-configuration")?;
            match control.cloud_configuration(serial) {
                Some(profile) => Reply::json(200, &Value::Object(profile)),
                None => Reply::json(
                    404,
                    &json!({ "error": "no such device, or no profile assigned to it" }),
                ),
            }
        }
        _ => return None,
    };
    Some(reply)
}

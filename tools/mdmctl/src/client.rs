//! The admin API over HTTP: one blocking agent (rustls for https, plain http for a local
//! server), the bearer token on every request, routes named by their pattern in the
//! server's route table, and error answers turned into [`CliError::Api`].

use std::time::Duration;

use serde_json::Value;

use crate::config::Target;
use crate::error::CliError;
use crate::routes;

/// Larger answers are refused rather than read into memory.
const MAX_ANSWER: u64 = 256 * 1024 * 1024;

#[derive(Clone)]
pub struct Api {
    agent: ureq::Agent,
    target: Target,
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(&'a Value),
    Raw {
        content_type: &'a str,
        bytes: &'a [u8],
    },
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub bytes: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`null` when empty).
    pub fn json(&self) -> Result<Value, CliError> {
        if self.bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.bytes)
            .map_err(|e| CliError::BadAnswer(format!("HTTP {}: not JSON: {e}", self.status)))
    }
}

/// Percent-encodes a path segment or query value (unreserved characters stay).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A route pattern with its `{name}` segments replaced, in order, by `params`.
pub fn fill(pattern: &str, params: &[&str]) -> String {
    let mut values = params.iter();
    pattern
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                encode(values.next().expect("a value for every path parameter"))
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl Api {
    pub fn new(target: Target, timeout: Duration) -> Result<Api, CliError> {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("mdmctl/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &target.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| CliError::local(format!("CA file {}: {e}", path.display())))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(CliError::local(format!(
                    "CA file {} holds no PEM certificate",
                    path.display()
                )));
            }
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build();
            config = config.tls_config(tls);
        }
        Ok(Api {
            agent: config.build().new_agent(),
            target,
        })
    }

    pub fn server(&self) -> &str {
        &self.target.server
    }

    /// One request to a route of the server's table (`pattern` as written there).
    pub fn call(
        &self,
        method: &'static str,
        pattern: &'static str,
        params: &[&str],
        query: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Answer, CliError> {
        debug_assert!(
            routes::is_covered(method, pattern),
            "{method} {pattern} is not in routes::COVERED"
        );
        let path = fill(pattern, params);
        let mut url = format!("{}{path}", self.target.server);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{}={}", encode(k), encode(v)));
        }
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header(
                "authorization",
                format!("Bearer {}", self.target.token.expose()),
            )
            .header("accept", "application/json");
        let bad = |e: ureq::http::Error| CliError::local(format!("{method} {path}: {e}"));
        let sent = match body {
            Body::None if method == "GET" || method == "DELETE" => {
                self.agent.run(builder.body(()).map_err(bad)?)
            }
            Body::None => self.agent.run(builder.body(Vec::new()).map_err(bad)?),
            Body::Json(v) => {
                let bytes = serde_json::to_vec(v).expect("JSON to memory");
                let req = builder.header("content-type", "application/json");
                self.agent.run(req.body(bytes).map_err(bad)?)
            }
            Body::Raw {
                content_type,
                bytes,
            } => {
                let req = builder.header("content-type", content_type);
                self.agent.run(req.body(bytes.to_vec()).map_err(bad)?)
            }
        };
        let mut resp = sent.map_err(|e| CliError::Transport(format!("{method} {url}: {e}")))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| {
                CliError::Transport(format!("{method} {path}: reading the answer: {e}"))
            })?;
        if status >= 400 {
            return Err(api_error(method, &path, status, &bytes));
        }
        Ok(Answer { status, bytes })
    }

    pub fn get(&self, pattern: &'static str, params: &[&str]) -> Result<Value, CliError> {
        self.call("GET", pattern, params, &[], Body::None)?.json()
    }

    pub fn get_query(
        &self,
        pattern: &'static str,
        params: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, CliError> {
        self.call("GET", pattern, params, query, Body::None)?.json()
    }

    /// A request with a JSON body (or none) whose answer is JSON.
    pub fn send(
        &self,
        method: &'static str,
        pattern: &'static str,
        params: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let body = body.map_or(Body::None, Body::Json);
        self.call(method, pattern, params, &[], body)?.json()
    }
}

/// The server's error (`{"error": "<code>", "message", ...}`), or what the body says
/// when it is not one.
fn api_error(method: &str, path: &str, status: u16, bytes: &[u8]) -> CliError {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let (code, message, body) = match parsed {
        Some(v) if v.get("error").is_some_and(Value::is_string) => (
            text(v.get("error")).unwrap_or_default(),
            text(v.get("message")).unwrap_or_default(),
            v,
        ),
        // Health answers 503 with its own shape.
        Some(other) => (String::from("error"), other.to_string(), Value::Null),
        None => {
            let text = String::from_utf8_lossy(bytes);
            let text: String = text.trim().chars().take(500).collect();
            (String::from("error"), text, Value::Null)
        }
    };
    CliError::Api {
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        code,
        message,
        body: Box::new(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_filled_and_encoded() {
        assert_eq!(
            fill(
                "/api/v1/devices/{device}/commands/{uuid}",
                &["ue:A B/C", "x"]
            ),
            "/api/v1/devices/ue%3AA%20B%2FC/commands/x"
        );
        assert_eq!(fill("/api/v1/tokens", &[]), "/api/v1/tokens");
    }

    #[test]
    fn error_bodies() {
        let e = api_error(
            "POST",
            "/p",
            422,
            br#"{"error":"validation_failed","message":"invalid input: x","fields":[{"field":"x","rule":"y"}]}"#,
        );
        assert!(
            matches!(e, CliError::Api { status: 422, ref code, .. } if code == "validation_failed")
        );
        assert!(e.render().contains("  x: y\n"), "{}", e.render());
        let e = api_error("GET", "/p", 502, b"Bad Gateway\n");
        assert!(e.render().contains("Bad Gateway"));
    }
}

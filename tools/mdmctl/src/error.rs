//! What can go wrong in a command, the exit code each kind of failure maps to, and how
//! an API error (`{"error": "<code>", "message", "fields": [{"field", "rule"}], ...facts}`)
//! is told: the HTTP status, the server's message, for a refused input each field with
//! the rule it breaks, then any other facts.

use serde_json::Value;

/// The exit codes (listed in `--help` and the README).
pub mod exit {
    /// Done.
    pub const OK: i32 = 0;
    /// Bad arguments, an unreadable or invalid local file, no server configured.
    pub const USAGE: i32 = 1;
    /// The API refused the request (a 4xx status other than 404).
    pub const CLIENT: i32 = 2;
    /// The server failed (5xx), could not be reached, or gave an answer that makes no sense.
    pub const SERVER: i32 = 3;
    /// The resource does not exist (404).
    pub const NOT_FOUND: i32 = 4;
    /// Done, with failures reported: a bulk command refused for some devices, a sync
    /// that ended failed, a key-value check that did not pass.
    pub const PARTIAL: i32 = 5;
}

/// The `--help` text of the exit codes.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  usage or local error (arguments, files, configuration)
  2  the API refused the request (HTTP 4xx other than 404)
  3  server error (HTTP 5xx), server unreachable, or an unreadable answer
  4  not found (HTTP 404)
  5  done with failures (bulk command failed for some devices, sync failed, checks failed)";

#[derive(Debug)]
pub enum CliError {
    /// A problem on this side: usage, files, configuration.
    Local(String),
    /// The server answered with an error status: its error `code` and `message`, and the
    /// whole error body (fields, facts).
    Api {
        method: String,
        path: String,
        status: u16,
        code: String,
        message: String,
        body: Box<Value>,
    },
    /// No answer: connection refused, TLS failure, timeout.
    Transport(String),
    /// An answer that cannot be read.
    BadAnswer(String),
    /// The command ran and printed its result, which holds failures.
    Partial(String),
}

impl CliError {
    pub fn local(msg: impl Into<String>) -> CliError {
        CliError::Local(msg.into())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Local(_) => exit::USAGE,
            CliError::Api { status: 404, .. } => exit::NOT_FOUND,
            CliError::Api { status, .. } if *status < 500 => exit::CLIENT,
            CliError::Api { .. } | CliError::Transport(_) | CliError::BadAnswer(_) => exit::SERVER,
            CliError::Partial(_) => exit::PARTIAL,
        }
    }

    /// The status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CliError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Lines for a person: `error: ...`, then the detail indented.
    pub fn render(&self) -> String {
        match self {
            CliError::Local(m) => format!("error: {m}\n"),
            CliError::Transport(m) => format!("error: no answer from the server: {m}\n"),
            CliError::BadAnswer(m) => format!("error: unreadable answer from the server: {m}\n"),
            CliError::Partial(m) => format!("error: {m}\n"),
            CliError::Api {
                method,
                path,
                status,
                code,
                message,
                body,
            } => {
                let phrase = ureq::http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                let mut out =
                    format!("error: {method} {path}: HTTP {status} {phrase}: {message} ({code})\n");
                for line in detail_lines(body) {
                    out.push_str(&format!("  {line}\n"));
                }
                if *status == 401 {
                    out.push_str(
                        "hint: the server refused the API token: check --token, --token-file, \
                         MDM_TOKEN or the context's token (mdmctl config get-contexts)\n",
                    );
                }
                out
            }
        }
    }

    /// The error as JSON, for `-o json` and `-o yaml` runs.
    pub fn to_json(&self) -> Value {
        match self {
            CliError::Api { status, body, .. } => {
                let mut v = serde_json::json!({ "status": status });
                if let (Value::Object(out), Value::Object(b)) = (&mut v, &**body) {
                    out.extend(b.clone());
                }
                v
            }
            other => serde_json::json!({
                "error": other.render().trim_start_matches("error: ").trim_end(),
            }),
        }
    }
}

/// A value on one line: strings bare, objects as `key=value` pairs.
fn inline(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", inline(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// The lines under an error's message: each field with its rule (`fields`), then the
/// other facts (`blocked_by`, `next_allowed_at`, ...), lists one item a line.
pub fn detail_lines(body: &Value) -> Vec<String> {
    let Value::Object(m) = body else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    if let Some(Value::Array(fields)) = m.get("fields") {
        lines.extend(fields.iter().map(field_line));
    }
    for (k, v) in m
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "error" | "message" | "fields"))
    {
        match v {
            Value::Array(items) => {
                lines.push(format!("{k}:"));
                lines.extend(items.iter().map(|i| format!("  - {}", inline(i))));
            }
            other => lines.push(format!("{k}: {}", inline(other))),
        }
    }
    lines
}

fn field_line(item: &Value) -> String {
    match (item.get("field"), item.get("rule")) {
        (Some(f), Some(r)) => format!("{}: {}", inline(f), inline(r)),
        _ => inline(item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_errors_one_per_line() {
        let e = CliError::Api {
            method: "POST".into(),
            path: "/api/v1/users".into(),
            status: 422,
            code: "validation_failed".into(),
            message: "invalid input: username, Identifier".into(),
            body: Box::new(json!({
                "error": "validation_failed",
                "message": "invalid input: username, Identifier",
                "fields": [
                    { "field": "username", "rule": "1 to 64 characters" },
                    { "field": "Identifier", "rule": "missing required key" },
                ],
            })),
        };
        assert_eq!(e.exit_code(), exit::CLIENT);
        let text = e.render();
        assert!(text.starts_with(
            "error: POST /api/v1/users: HTTP 422 Unprocessable Entity: invalid input: username, Identifier (validation_failed)\n"
        ), "{text}");
        assert!(text.contains("  username: 1 to 64 characters\n"));
        assert!(text.contains("  Identifier: missing required key\n"));
        assert_eq!(e.to_json()["fields"][0]["field"], "username");
        assert_eq!(e.to_json()["status"], 422);
    }

    #[test]
    fn facts_and_codes() {
        let lines = detail_lines(&json!({
            "error": "conflict",
            "message": "the token still holds these",
            "blocked_by": [{ "what": "devices", "count": 3 }],
        }));
        assert_eq!(lines, vec!["blocked_by:", "  - count=3 what=devices"]);
        let api = |status| CliError::Api {
            method: "GET".into(),
            path: "/".into(),
            status,
            code: String::new(),
            message: String::new(),
            body: Box::new(Value::Null),
        };
        assert_eq!(api(404).exit_code(), exit::NOT_FOUND);
        assert_eq!(api(409).exit_code(), exit::CLIENT);
        assert_eq!(api(503).exit_code(), exit::SERVER);
        assert_eq!(CliError::Transport("x".into()).exit_code(), exit::SERVER);
        assert!(api(401).render().contains("hint:"));
    }
}

//! What can go wrong in a command, the exit code each kind of failure maps to, and how
//! an API error is told: the HTTP status, the server's reason, and for a refused input
//! each field with the rule it breaks.

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
    /// The server answered with an error status.
    Api {
        method: String,
        path: String,
        status: u16,
        reason: String,
        detail: Value,
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
                reason,
                detail,
            } => {
                let phrase = ureq::http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                let mut out = format!("error: {method} {path}: HTTP {status} {phrase}: {reason}\n");
                for line in detail_lines(detail) {
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
            CliError::Api {
                status,
                reason,
                detail,
                ..
            } => serde_json::json!({ "status": status, "error": reason, "detail": detail }),
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

/// The lines of an error's `detail`: a string; a list of `{field, rule}` (or `{key,
/// problem}`) items, one per line; or an object with a `message` and more facts.
pub fn detail_lines(detail: &Value) -> Vec<String> {
    match detail {
        Value::Null => Vec::new(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().map(item_line).collect(),
        Value::Object(m) => {
            let mut lines = Vec::new();
            if let Some(Value::String(msg)) = m.get("message") {
                lines.push(msg.clone());
            }
            for (k, v) in m.iter().filter(|(k, _)| *k != "message") {
                match v {
                    Value::Array(items) => {
                        lines.push(format!("{k}:"));
                        lines.extend(items.iter().map(|i| format!("  - {}", item_line(i))));
                    }
                    other => lines.push(format!("{k}: {}", inline(other))),
                }
            }
            lines
        }
        other => vec![other.to_string()],
    }
}

fn item_line(item: &Value) -> String {
    let Value::Object(m) = item else {
        return inline(item);
    };
    let name = m.get("field").or_else(|| m.get("key"));
    let rule = m.get("rule").or_else(|| m.get("problem"));
    match (name, rule) {
        (Some(n), Some(r)) => format!("{}: {}", inline(n), inline(r)),
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
            reason: "validation failed".into(),
            detail: json!([
                { "field": "username", "rule": "1 to 64 characters" },
                { "key": "Identifier", "problem": "missing required key" },
                "purpose: a-z only",
            ]),
        };
        assert_eq!(e.exit_code(), exit::CLIENT);
        let text = e.render();
        assert!(text.starts_with(
            "error: POST /api/v1/users: HTTP 422 Unprocessable Entity: validation failed\n"
        ));
        assert!(text.contains("  username: 1 to 64 characters\n"));
        assert!(text.contains("  Identifier: missing required key\n"));
        assert!(text.contains("  purpose: a-z only\n"));
    }

    #[test]
    fn structured_detail_and_codes() {
        let lines = detail_lines(&json!({
            "message": "the token still holds these",
            "blocked_by": [{ "what": "devices", "count": 3 }],
        }));
        assert_eq!(
            lines,
            vec![
                "the token still holds these",
                "blocked_by:",
                "  - count=3 what=devices"
            ]
        );
        let api = |status| CliError::Api {
            method: "GET".into(),
            path: "/".into(),
            status,
            reason: String::new(),
            detail: Value::Null,
        };
        assert_eq!(api(404).exit_code(), exit::NOT_FOUND);
        assert_eq!(api(409).exit_code(), exit::CLIENT);
        assert_eq!(api(503).exit_code(), exit::SERVER);
        assert_eq!(CliError::Transport("x".into()).exit_code(), exit::SERVER);
        assert!(api(401).render().contains("hint:"));
    }
}

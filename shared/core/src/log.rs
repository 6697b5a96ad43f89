//! Structured logs: one JSON object per line on stderr (Spin keeps each component's
//! stderr in its log directory and shows it), filtered by the `log_level` variable.
//! Nothing secret goes in: callers pass names, identifiers and reasons, never keys,
//! passwords, tokens or message bodies.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use serde_json::Value;

use crate::Variables;

/// The variable naming the least severe level written: `error`, `warn`, `info` (default)
/// or `debug`.
pub const LOG_LEVEL: &str = "log_level";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" | "" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

// One per instance: a Spin instance serves one component, and variables do not change
// while it lives, so the level is read once.
static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Info as u8);
static CONFIGURED: AtomicBool = AtomicBool::new(false);
static COMPONENT: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Reads `log_level` once per instance and names the component in every line after.
pub async fn configure(component: &'static str, vars: &impl Variables) {
    let _ = COMPONENT.set(component);
    if CONFIGURED.swap(true, Ordering::Relaxed) {
        return;
    }
    let raw = vars.get(LOG_LEVEL).await.ok().flatten().unwrap_or_default();
    match Level::parse(&raw) {
        Some(l) => set_level(l),
        None => {
            set_level(Level::Info);
            warn(
                "log_level not understood: error, warn, info or debug; using info",
                &[(
                    "value",
                    Value::from(raw.chars().take(32).collect::<String>()),
                )],
            );
        }
    }
}

pub fn set_level(l: Level) {
    THRESHOLD.store(l as u8, Ordering::Relaxed);
}

pub fn enabled(l: Level) -> bool {
    l as u8 <= THRESHOLD.load(Ordering::Relaxed)
}

/// Text a device or client chose, made fit for a log line or an error reason: printable
/// ASCII (anything else becomes `?`), at most 64 characters.
pub fn loggable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The line for an event, without writing it: `time`, `level`, `component` (when known),
/// `msg`, then `fields` in order (whose names are not those four). Written straight
/// into one string: every request writes one.
pub fn line(level: Level, msg: &str, fields: &[(&str, Value)]) -> String {
    let mut s = String::with_capacity(256);
    s.push_str("{\"time\":\"");
    push_rfc3339(&mut s);
    let _ = write!(s, "\",\"level\":\"{}\"", level.name());
    if let Some(c) = COMPONENT.get() {
        push_field(&mut s, "component", &Value::from(*c));
    }
    push_field(&mut s, "msg", &Value::from(msg));
    for (k, v) in fields {
        debug_assert!(!matches!(*k, "time" | "level" | "component" | "msg"), "{k}");
        push_field(&mut s, k, v);
    }
    s.push_str("}\n");
    s
}

/// `,"name":value`, both escaped as JSON (`Value`'s Display writes compact JSON).
fn push_field(s: &mut String, name: &str, value: &Value) {
    let _ = write!(s, ",{}:{value}", Value::String(name.to_owned()));
}

/// Writes the event if its level is enabled. One write per line, so lines from
/// concurrent requests never interleave in an append-mode log file.
pub fn event(level: Level, msg: &str, fields: &[(&str, Value)]) {
    if enabled(level) {
        eprint!("{}", line(level, msg, fields));
    }
}

pub fn error(msg: &str, fields: &[(&str, Value)]) {
    event(Level::Error, msg, fields)
}

pub fn warn(msg: &str, fields: &[(&str, Value)]) {
    event(Level::Warn, msg, fields)
}

pub fn info(msg: &str, fields: &[(&str, Value)]) {
    event(Level::Info, msg, fields)
}

/// Who a request acted for, set by the route that authenticated it and read by the
/// request log line (a response extension, so handlers need no logging parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A device channel: its UDID, or EnrollmentID under User Enrollment.
    Device(String),
    /// The holder of a configured key, by the variable's name (never the key).
    Key(&'static str),
}

impl Subject {
    pub fn field(&self) -> (&'static str, Value) {
        match self {
            Subject::Device(id) => ("device", Value::from(id.as_str())),
            Subject::Key(name) => ("credential", Value::from(*name)),
        }
    }
}

/// `resp`, marked as done for `subject`.
pub fn tag(mut resp: crate::api::Response, subject: Subject) -> crate::api::Response {
    resp.extensions_mut().insert(subject);
    resp
}

/// A request id from the client's `x-request-id` when it is a plain token, else `None`
/// (the caller makes one): ids end up in log lines and must not carry anything else.
pub fn request_id(header: Option<&str>) -> Option<String> {
    header
        .filter(|h| (1..=64).contains(&h.len()))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_owned)
}

fn push_rfc3339(s: &mut String) {
    let now = time::OffsetDateTime::now_utc();
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_the_fields_in_order() {
        let fields = [
            ("n", Value::from(3)),
            ("a\"b", Value::from("v\u{7}")),
            ("m", serde_json::json!({"k": [1.5, null]})),
        ];
        let l = line(Level::Warn, "x \"quoted\"\nnext", &fields);
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1, "{l}");
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "x \"quoted\"\nnext");
        assert_eq!(v["n"], 3);
        assert_eq!(v["a\"b"], "v\u{7}");
        assert_eq!(v["m"]["k"][0], 1.5);
        let keys = [
            "\"time\"",
            "\"level\"",
            "\"msg\"",
            "\"n\"",
            "\"a\\\"b\"",
            "\"m\"",
        ];
        let at: Vec<usize> = keys.iter().map(|k| l.find(k).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{l}");
        let t = v["time"].as_str().unwrap();
        assert!(crate::time::parse_rfc3339(t).is_some(), "{t}");
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse(" DEBUG "), Some(Level::Debug));
        assert_eq!(Level::parse(""), Some(Level::Info));
        assert_eq!(Level::parse("verbose"), None);
        assert!(Level::Error < Level::Info);
    }

    #[test]
    fn request_ids_are_plain_tokens_only() {
        assert_eq!(
            request_id(Some("abc-123_x.y")).as_deref(),
            Some("abc-123_x.y")
        );
        for bad in ["", "a b", "x\n{\"level\":\"error\"}", &"a".repeat(65)] {
            assert_eq!(request_id(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(request_id(None), None);
    }
}

//! Key syntax shared by every backend.
//!
//! Keys are `:`-separated segments. The character set is the intersection of what the
//! Spin backends accept: Azure Cosmos DB uses the key as the document id, which may not
//! contain `/`, `\`, `?` or `#` and is limited to 255 characters. Values that come from
//! outside (serial numbers, user names, ...) go through [`segment`] first so they can
//! neither break those rules nor forge a `:` separator.

use crate::KvError;

/// Longest key accepted (Cosmos DB's id limit is 255; keep a margin).
pub const MAX_KEY_LEN: usize = 250;

/// Keys under this prefix are counters: only ever touched by `increment`, because the
/// stored encoding differs by backend (8-byte LE on SQLite, ASCII decimal on Redis).
pub const COUNTER_PREFIX: &str = "ctr:";

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~' | ':' | '@' | '=' | '+' | '%')
}

/// Checks a full key against the portable syntax.
pub fn validate(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::InvalidKey("empty key".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KvError::InvalidKey(format!(
            "key of {} bytes exceeds {MAX_KEY_LEN}",
            key.len()
        )));
    }
    if let Some(c) = key.chars().find(|c| !allowed(*c)) {
        return Err(KvError::InvalidKey(format!(
            "character {c:?} not allowed in {key:?}"
        )));
    }
    Ok(())
}

pub fn is_counter(key: &str) -> bool {
    key.starts_with(COUNTER_PREFIX)
}

/// Percent-encodes everything but `[A-Za-z0-9._~-]`, so any string becomes one safe
/// key segment (and distinct inputs stay distinct).
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name of a counter; the only kind of key [`crate::Store::increment`] accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey(String);

impl CounterKey {
    /// `name` is the part after the counter prefix, already made of safe segments.
    pub fn new(name: &str) -> Result<Self, KvError> {
        let key = format!("{COUNTER_PREFIX}{name}");
        validate(&key)?;
        Ok(CounterKey(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_cosmos_forbidden_characters() {
        for bad in ["a/b", "a\\b", "a?b", "a#b", "a b", ""] {
            assert!(validate(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate("dev:ABC123:q:00000001").is_ok());
        assert!(validate(&"x".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn segment_encodes_separators_and_is_injective() {
        assert_eq!(segment("C02X/1:2"), "C02X%2F1%3A2");
        assert_ne!(segment("a:b"), segment("a%3Ab"));
        assert!(validate(&format!("dev:{}", segment("any thing/?#\\é"))).is_ok());
    }

    #[test]
    fn counter_keys_carry_the_prefix() {
        let c = CounterKey::new("queue:tail").unwrap();
        assert!(is_counter(c.as_str()));
        assert!(CounterKey::new("bad/name").is_err());
    }
}

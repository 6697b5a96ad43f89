//! Opaque cursors: base64url of `kind:position:event:issued_ms:exhausted:mac`, with a
//! keyed check value so garbage and edits are `INVALID_CURSOR`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::devgen::mix;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// From fetch (`/server/devices`).
    Fetch,
    /// From sync (`/devices/sync`); always exhausted for fetch.
    Sync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub kind: Kind,
    /// Fetch: index of the next device to consider.
    pub position: u64,
    /// Number of events before this cursor (sync resumes there; for a fetch cursor,
    /// the event log length when the fetch started).
    pub event: u64,
    /// Simulator time of issue, Unix milliseconds.
    pub issued_ms: u64,
    /// Fetch is done: fetching with it again is `EXHAUSTED_CURSOR`.
    pub exhausted: bool,
}

fn check(key: u64, text: &str) -> u64 {
    let mut h = mix(key);
    for chunk in text.as_bytes().chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(b));
    }
    h
}

impl Cursor {
    pub fn encode(&self, key: u64) -> String {
        let kind = match self.kind {
            Kind::Fetch => "f",
            Kind::Sync => "s",
        };
        let text = format!(
            "{kind}:{}:{}:{}:{}",
            self.position, self.event, self.issued_ms, self.exhausted
        );
        let mac = check(key, &text);
        URL_SAFE_NO_PAD.encode(format!("{text}:{mac:016x}"))
    }

    /// `None` for anything this simulator (with this key) did not issue.
    pub fn decode(key: u64, s: &str) -> Option<Cursor> {
        if s.len() > 1000 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(s.trim()).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (text, mac) = raw.rsplit_once(':')?;
        if mac.len() != 16 || u64::from_str_radix(mac, 16).ok()? != check(key, text) {
            return None;
        }
        let mut parts = text.split(':');
        let kind = match parts.next()? {
            "f" => Kind::Fetch,
            "s" => Kind::Sync,
            _ => return None,
        };
        let cursor = Cursor {
            kind,
            position: parts.next()?.parse().ok()?,
            event: parts.next()?.parse().ok()?,
            issued_ms: parts.next()?.parse().ok()?,
            exhausted: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let c = Cursor {
            kind: Kind::Fetch,
            position: 1000,
            event: 3,
            issued_ms: 1_700_000_000_000,
            exhausted: false,
        };
        let s = c.encode(9);
        assert_eq!(Cursor::decode(9, &s), Some(c));
        assert_eq!(Cursor::decode(10, &s), None);
        assert_eq!(Cursor::decode(9, "garbage"), None);
        assert_eq!(Cursor::decode(9, ""), None);
        let forged = URL_SAFE_NO_PAD.encode("f:0:0:0:false:0000000000000000");
        assert_eq!(Cursor::decode(9, &forged), None);
    }
}

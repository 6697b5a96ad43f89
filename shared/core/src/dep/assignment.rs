//! What Apple last answered to our profile assignment calls, per serial (`asg:<t>:<s>`),
//! and how that answer combines with the synced record into the assignment an admin and
//! an enrolling device see.
//!
//! The synced record ([`super::inventory::DeviceRecord`]) is written only by syncs, the
//! assignment result only by assignment calls, so neither writer can undo the other. A
//! device's effective profile is whichever of the two is newer: Apple's fields as of the
//! page that brought them, or our accepted assignment (or removal).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use mdm_kv::key::segment;

use super::TokenId;
use crate::record::Record;

/// Apple's answer for one serial of an assign or remove call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentResult {
    /// SUCCESS, NOT_ACCESSIBLE, FAILED, THROTTLED, or REMOVED after a removal.
    pub status: String,
    pub at: u64,
    /// Our profile id and the Apple UUID it was defined as.
    pub profile: Option<u64>,
    pub apple_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// Consecutive FAILED/THROTTLED answers.
    #[serde(default)]
    pub failures: u32,
}

impl Record for AssignmentResult {
    /// (token, serial)
    type Id<'a> = (TokenId, &'a str);
    const NAME: &'static str = "assignment result";
    fn key((token, serial): (TokenId, &str)) -> String {
        format!("asg:{token}:{}", segment(serial))
    }
}

impl AssignmentResult {
    /// Apple's profile fields as this answer left them: `Some` for an accepted
    /// assignment or removal, `None` when it changed nothing (failed, throttled, ...).
    fn profile_fields(&self) -> Option<[(&'static str, Option<Value>); 3]> {
        match (self.status.as_str(), self.apple_uuid.as_deref()) {
            ("SUCCESS", Some(uuid)) => Some([
                ("profile_uuid", Some(Value::String(uuid.to_owned()))),
                ("profile_status", Some(Value::String("assigned".into()))),
                (
                    "profile_assign_time",
                    Some(Value::String(crate::time::format_rfc3339(self.at as i64))),
                ),
            ]),
            ("REMOVED", _) => Some([
                ("profile_uuid", None),
                ("profile_status", Some(Value::String("empty".into()))),
                ("profile_assign_time", None),
            ]),
            _ => None,
        }
    }

    /// Lays this answer over Apple's fields (`apple`, as of `apple_at`) when it is the
    /// newer of the two. An answer from the same second as the page wins: the page was
    /// requested before its devices were auto-assigned.
    pub fn overlay(&self, apple: &mut serde_json::Map<String, Value>, apple_at: u64) -> bool {
        if self.at < apple_at {
            return false;
        }
        let Some(fields) = self.profile_fields() else {
            return false;
        };
        for (k, v) in fields {
            match v {
                Some(v) => {
                    apple.insert(k.to_owned(), v);
                }
                None => {
                    apple.remove(k);
                }
            }
        }
        true
    }
}

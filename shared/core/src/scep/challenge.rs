//! One-time SCEP challenges. A challenge is handed out with an enrollment profile (or by
//! an admin for a manual enrollment), says who it was made for ([`ChallengeGrant`]) and
//! can be redeemed once, within [`CHALLENGE_TTL`] seconds.
//!
//! At rest only the SHA-256 of a challenge is kept (as the key `scepchal:<hex>`), so a dump
//! of the store holds nothing that enrolls a device. Lookups go by that hash, so no
//! comparison of secrets happens in our code. Redemption marks the record used with a
//! compare-and-swap on the existing record (created by [`issue`], so the key exists when
//! the CAS runs, which is safe on every Spin backend): of two concurrent redemptions
//! exactly one wins. Used and expired records are kept for a day after they expire
//! ([`KEEP_AFTER_EXPIRY`]), so a replay is told apart from a typo in the logs, then the
//! scheduled tick deletes them ([`crate::expiry`]).
//!
//! Challenges never appear in logs, errors or `Debug` output.

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use mdm_kv::{Backend, KvError, Store};

use crate::random;
use crate::record::{Record, Stored};

/// Lifetime of a challenge: 15 minutes.
pub const CHALLENGE_TTL: u64 = 900;
/// How long a used or expired challenge record stays (to name replays), then goes.
pub const KEEP_AFTER_EXPIRY: u64 = 86_400;
/// Random bytes in a challenge (256 bits; URL-safe base64 without padding: 43 characters).
const CHALLENGE_BYTES: usize = 32;
/// Anything longer is not one of ours; refused before hashing.
const MAX_CHALLENGE_LEN: usize = 256;

/// Who a challenge was made for; handed back by [`redeem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeGrant {
    /// The enrollment the certificate is for (UDID, EnrollmentID, or an admin's label).
    pub device_id: String,
    /// Hardware serial number, when known (ADE).
    pub serial: Option<String>,
    /// Why it was made: "ade", "web", "byod", "renewal", "manual", ...
    pub purpose: String,
    /// The user (account-driven enrollment), when there is one.
    pub user: Option<String>,
}

/// Why a challenge was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeError {
    /// Never issued (or not by this server).
    Unknown,
    /// Issued, but more than [`CHALLENGE_TTL`] seconds ago.
    Expired,
    /// Already redeemed once.
    Used,
    Store(KvError),
}

impl fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChallengeError::Unknown => f.write_str("unknown challenge"),
            ChallengeError::Expired => f.write_str("challenge expired"),
            ChallengeError::Used => f.write_str("challenge already used"),
            ChallengeError::Store(e) => write!(f, "challenge store: {e}"),
        }
    }
}

impl std::error::Error for ChallengeError {}

impl From<KvError> for ChallengeError {
    fn from(e: KvError) -> Self {
        ChallengeError::Store(e)
    }
}

/// What is stored under `scepchal:<sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChallengeRecord {
    grant: ChallengeGrant,
    issued_at: u64,
    expires_at: u64,
    #[serde(default)]
    used_at: Option<u64>,
}

impl Record for ChallengeRecord {
    /// The challenge itself; only its hash is in the key.
    type Id<'a> = &'a str;
    const NAME: &'static str = "SCEP challenge";
    /// Compare-and-swap attempts when another writer touched the record meanwhile.
    const ATTEMPTS: usize = 8;
    fn key(challenge: &str) -> String {
        format!(
            "scepchal:{}",
            hex::encode(Sha256::digest(challenge.as_bytes()))
        )
    }
}

/// Creates a challenge for `grant`, valid for [`CHALLENGE_TTL`] seconds from `now`.
/// Returns the challenge (URL-safe base64, 256 random bits) — the only copy of it.
pub async fn issue<B: Backend>(
    store: &Store<B>,
    now: u64,
    grant: &ChallengeGrant,
) -> Result<String, KvError> {
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::bytes(CHALLENGE_BYTES));
    let record = ChallengeRecord {
        grant: grant.clone(),
        issued_at: now,
        expires_at: now.saturating_add(CHALLENGE_TTL),
        used_at: None,
    };
    // A fresh random key: nobody else can be creating it, so a plain set is safe.
    let key = ChallengeRecord::key(&challenge);
    record.save(store, &challenge).await?;
    crate::expiry::register(store, &key, record.expires_at + KEEP_AFTER_EXPIRY).await?;
    Ok(challenge)
}

/// Redeems `challenge` once: the grant it was issued for, or why not. Exactly one of
/// several concurrent redemptions of the same challenge succeeds.
pub async fn redeem<B: Backend>(
    store: &Store<B>,
    now: u64,
    challenge: &str,
) -> Result<ChallengeGrant, ChallengeError> {
    if challenge.is_empty() || challenge.len() > MAX_CHALLENGE_LEN {
        return Err(ChallengeError::Unknown);
    }
    // A record we cannot read was not written by us: as unknown as one never issued.
    let redeemed = ChallengeRecord::modify_valid(store, challenge, |record| {
        if record.used_at.is_some() {
            return Err(ChallengeError::Used);
        }
        if now >= record.expires_at {
            return Err(ChallengeError::Expired);
        }
        record.used_at = Some(now);
        Ok(true)
    })
    .await?;
    redeemed.map(|r| r.grant).ok_or(ChallengeError::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use mdm_kv::{Defects, MemoryBackend};

    fn grant() -> ChallengeGrant {
        ChallengeGrant {
            device_id: "UDID-1".into(),
            serial: Some("C02X".into()),
            purpose: "ade".into(),
            user: None,
        }
    }

    #[test]
    fn one_time_expiring_and_hashed_at_rest() {
        let store = Store::new(MemoryBackend::with_defects(Defects::spin_sqlite()));
        let c = block_on(issue(&store, 1000, &grant())).unwrap();
        assert!(c.len() >= 43, "at least 256 bits");
        assert!(
            c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let dump = store.backend().dump();
        assert!(
            !dump
                .iter()
                .any(|(k, v)| k.contains(&c) || v.windows(c.len()).any(|w| w == c.as_bytes()))
        );
        assert_eq!(block_on(redeem(&store, 1000 + 899, &c)), Ok(grant()));
        assert_eq!(
            block_on(redeem(&store, 1000 + 899, &c)),
            Err(ChallengeError::Used)
        );
        assert_eq!(
            block_on(redeem(&store, 1001, "nope")),
            Err(ChallengeError::Unknown)
        );
        assert_eq!(
            block_on(redeem(&store, 1001, "")),
            Err(ChallengeError::Unknown)
        );

        let c2 = block_on(issue(&store, 1000, &grant())).unwrap();
        assert_ne!(c, c2);
        assert_eq!(
            block_on(redeem(&store, 1000 + CHALLENGE_TTL, &c2)),
            Err(ChallengeError::Expired)
        );
        assert!(!format!("{:?}", ChallengeError::Used).contains(&c));
    }
}

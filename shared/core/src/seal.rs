//! Secrets at rest (DEP OAuth secrets, private keys, unlock and bootstrap tokens) are
//! sealed with AES-256-GCM under a key derived from the `storage_key` variable with
//! HKDF-SHA256, one key per purpose. The associated data binds a ciphertext to the
//! record it belongs to, so a sealed value copied into another record does not open.
//!
//! Format: version byte (1) | 96-bit random nonce | ciphertext and tag.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::config::Secret;
use crate::random;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const SALT: &[u8] = b"mdm-server seal v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// Too short or an unknown format version.
    Malformed,
    /// Wrong key, wrong record, or tampered with.
    Rejected,
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::Malformed => f.write_str("sealed value is malformed"),
            SealError::Rejected => {
                f.write_str("sealed value does not open with this storage_key (or was altered)")
            }
        }
    }
}

impl std::error::Error for SealError {}

pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([key redacted])")
    }
}

impl Sealer {
    /// `purpose` names what is sealed (e.g. "dep-token-oauth-secrets"): each purpose
    /// gets its own key.
    pub fn new(storage_key: &Secret, purpose: &str) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(SALT), storage_key.expose().as_bytes());
        let mut key = [0u8; 32];
        hk.expand(purpose.as_bytes(), &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Sealer {
            cipher: Aes256Gcm::new(&key.into()),
        }
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce = random::bytes(NONCE_LEN);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| SealError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Secret {
        Secret::new(k.into())
    }

    #[test]
    fn round_trip_and_no_plaintext_at_rest() {
        let s = Sealer::new(&key("storage-key-1"), "dep-token-oauth-secrets");
        let secret = b"AS_this-is-an-oauth-access-secret";
        let sealed = s.seal(secret, b"tok:1");
        assert!(!sealed.windows(secret.len()).any(|w| w == secret));
        assert_eq!(s.open(&sealed, b"tok:1").unwrap(), secret);
        assert_ne!(s.seal(secret, b"tok:1"), sealed, "fresh nonce every time");
    }

    #[test]
    fn wrong_key_purpose_record_or_tampering_is_rejected() {
        let s = Sealer::new(&key("storage-key-1"), "p");
        let sealed = s.seal(b"x", b"tok:1");
        assert_eq!(
            Sealer::new(&key("storage-key-2"), "p").open(&sealed, b"tok:1"),
            Err(SealError::Rejected)
        );
        assert_eq!(
            Sealer::new(&key("storage-key-1"), "q").open(&sealed, b"tok:1"),
            Err(SealError::Rejected)
        );
        assert_eq!(s.open(&sealed, b"tok:2"), Err(SealError::Rejected));
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(s.open(&t, b"tok:1").is_err(), "flip at {i} accepted");
        }
        for cut in 0..sealed.len() {
            assert!(s.open(&sealed[..cut], b"tok:1").is_err());
        }
    }

    #[test]
    fn debug_shows_no_key() {
        assert_eq!(
            format!("{:?}", Sealer::new(&key("k"), "p")),
            "Sealer([key redacted])"
        );
    }
}

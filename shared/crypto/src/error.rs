//! The crypto crate's one error type.

use std::fmt;

/// Failure of a key or certificate operation. Messages name what was wrong, never key
/// material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// Private key bytes/PEM that do not decode, or a key we refuse (size).
    InvalidKey(String),
    /// Certificate bytes/PEM that do not decode.
    InvalidCertificate(String),
    /// Caller-supplied parameter out of range (common name, validity).
    InvalidInput(String),
    /// Key generation, signing or encoding failed.
    Failed(String),
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::InvalidKey(d) => write!(f, "invalid private key: {d}"),
            CryptoError::InvalidCertificate(d) => write!(f, "invalid certificate: {d}"),
            CryptoError::InvalidInput(d) => write!(f, "invalid input: {d}"),
            CryptoError::Failed(d) => write!(f, "cryptographic operation failed: {d}"),
        }
    }
}

impl std::error::Error for CryptoError {}

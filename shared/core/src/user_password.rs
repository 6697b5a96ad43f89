//! Passwords of local users: the length rule, and hashing and verifying them.
//!
//! Passwords are hashed with Argon2id (RFC 9106) — memory-hard, so a stolen store costs
//! an attacker memory as well as time per guess — at m = 19 MiB, t = 2, p = 1: OWASP's
//! recommended minimum, and a size a WebAssembly component handles without strain (one
//! hash allocates 19 MiB once and takes tens of milliseconds natively, a few times more
//! under wasm; p = 1 because a component has a single thread). The PHC string keeps
//! salt and parameters, so they can be raised later without invalidating old hashes.
//! Verification compares in constant time (argon2's `Output`); an unknown username
//! costs the same hash as a wrong password (see `user_sign_in.rs`).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::api::FieldError;
use crate::random;

/// Argon2id memory cost in KiB (19 MiB), time cost and parallelism.
pub const ARGON2_M_KIB: u32 = 19_456;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 256;

fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).expect("valid Argon2 parameters"),
    )
}

/// Argon2id PHC string of `password` with a fresh 128-bit salt.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&random::bytes(16)).expect("16-byte salt encodes");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 hashing of a bounded password cannot fail")
        .to_string()
}

/// Whether `password` matches `phc` (constant-time comparison of the outputs).
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    argon2().verify_password(password.as_bytes(), &hash).is_ok()
}

/// A hash nobody's password matches, verified against when the user does not exist so
/// that an unknown name costs as much as a wrong password.
pub(crate) fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&crate::random::hex_id(16)))
}

pub(crate) fn check_password(p: &str, errors: &mut Vec<FieldError>) {
    let n = p.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        errors.push(FieldError {
            field: "password".into(),
            rule: format!("{MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        });
    }
}

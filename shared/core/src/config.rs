//! Configuration read from Spin variables. Names are the `[variables]` of spin.toml.

use std::fmt;

use crate::Variables;
use crate::api::{self, ApiError, Request};

/// Public base URL devices and admins reach, e.g. `https://mdm.example.com`.
pub const SERVER_URL: &str = "server_url";
/// Bearer key of the admin API.
pub const ADMIN_API_KEY: &str = "admin_api_key";
/// Bearer key of the scheduler routes under `/internal/`.
pub const SYNC_API_KEY: &str = "sync_api_key";
/// Master secret from which the keys encrypting secrets at rest are derived.
pub const STORAGE_KEY: &str = "storage_key";

/// A configured secret. Its `Debug`/`Display` never show the value, so it cannot end up
/// in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A variable that must be set; a missing one is a deployment error (500 naming it).
pub async fn required(vars: &impl Variables, name: &str) -> Result<String, ApiError> {
    match vars.get(name).await {
        Ok(Some(v)) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(ApiError::misconfigured(format!(
            "variable {name} is not set"
        ))),
        Err(e) => Err(ApiError::misconfigured(format!("variable {name}: {e}"))),
    }
}

pub async fn secret(vars: &impl Variables, name: &str) -> Result<Secret, ApiError> {
    required(vars, name).await.map(Secret::new)
}

/// Least length of `storage_key`: every key sealing secrets at rest is derived from it,
/// so it must carry at least 128 bits of entropy even as hex (32 characters; e.g.
/// `openssl rand -hex 32` gives 64).
pub const MIN_STORAGE_KEY_LEN: usize = 32;

/// `storage_key`, refused (500 naming why, on every request that needs it: a Spin
/// component cannot stop the app from starting) when it is too short or made of one
/// repeated character.
pub async fn storage_key(vars: &impl Variables) -> Result<Secret, ApiError> {
    let key = secret(vars, STORAGE_KEY).await?;
    let v = key.expose();
    let one_char = v.chars().all(|c| v.starts_with(c));
    if v.chars().count() < MIN_STORAGE_KEY_LEN || one_char {
        return Err(ApiError::misconfigured(format!(
            "variable {STORAGE_KEY} is too weak: at least {MIN_STORAGE_KEY_LEN} random characters (e.g. `openssl rand -hex 32`)"
        )));
    }
    Ok(key)
}

/// Authenticates a request against the bearer key held in variable `key_var`.
/// A key that is not configured is a deployment error, never an open door.
pub async fn authorize(
    vars: &impl crate::Variables,
    key_var: &str,
    realm: &str,
    req: &Request,
) -> Result<(), ApiError> {
    let key = secret(vars, key_var).await?;
    if api::bearer_matches(req, key.expose()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(realm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short (or one-character) `storage_key` is refused with the reason, never echoed.
    #[test]
    fn a_weak_storage_key_is_refused() {
        use crate::platform::testing::MapVariables;
        use futures::executor::block_on;
        for weak in ["short-key", &"a".repeat(40)] {
            let vars = MapVariables::new([(STORAGE_KEY, weak)]);
            let e = block_on(storage_key(&vars)).unwrap_err();
            let text = format!("{e:?}");
            assert!(text.contains("too weak") && !text.contains(weak), "{text}");
        }
        let vars = MapVariables::new([(STORAGE_KEY, "0123456789abcdef0123456789abcdef")]);
        assert!(block_on(storage_key(&vars)).is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }
}

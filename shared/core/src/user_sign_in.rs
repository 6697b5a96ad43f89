//! Signing a local user in (web and account-driven enrollment), with its limits.
//!
//! Sign-ins are limited per name, existing or not: [`MAX_FAILURES`] failed attempts
//! within a [`FAILURE_WINDOW`]-second window, then 429 until the window ends; and all
//! together to [`SIGN_INS_PER_MINUTE`] password checks a minute.
//!
//! Key layout (besides the user records of `users.rs`):
//! - `ctr:signin:<h>:<w>` sign-in attempts (successes given back) for the name whose
//!   hashed lowercase form is `h`, in window `w`; deleted after the window ([`crate::expiry`])
//! - `ctr:signin:all:<m>` password checks of all names in minute `m`; deleted after it

use mdm_kv::{Backend, CounterKey, KvError, Store};

use crate::user_password::{MAX_PASSWORD, decoy_hash, verify_password};
use crate::users::{MAX_USERNAME, UserRecord, get, modify};

/// Sign-in attempts (not counting successful ones) allowed per name and window.
pub const MAX_FAILURES: i64 = 10;
pub const FAILURE_WINDOW: u64 = 15 * 60;
/// Password checks (Argon2, about 20 MiB and tens of milliseconds each) made for anyone
/// who is not signed in, all names together, per minute: more are refused before the
/// work (429), so unauthenticated clients cannot exhaust the CPU.
pub const SIGN_INS_PER_MINUTE: i64 = 300;

/// Attempts for a name in a window. Keyed by a hash of the lowercased name, whether or
/// not such a user exists (an unknown name is limited exactly like a known one, so the
/// limit tells nothing), and of bounded length whatever was typed.
fn attempt_counter(name: &str, window: u64) -> CounterKey {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(name.trim().to_lowercase().as_bytes());
    CounterKey::new(&format!("signin:{}:{window}", hex::encode(&h[..16]))).expect("hex is key-safe")
}

/// Password checks of all names in a minute.
fn global_counter(minute: u64) -> CounterKey {
    CounterKey::new(&format!("signin:all:{minute}")).expect("static")
}

/// Where the failure count of the current window starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// Unknown user, wrong password, no password set or disabled: not told apart.
    Invalid,
    /// Too many attempts for this name, or too many sign-ins at all right now; retry
    /// after this many seconds.
    RateLimited {
        retry_after: u64,
    },
    Store(KvError),
}

impl From<KvError> for SignInError {
    fn from(e: KvError) -> Self {
        SignInError::Store(e)
    }
}

/// Checks a sign-in. Unknown names and wrong passwords cost the same Argon2 work, are
/// limited the same way and get the same answer. Attempts are counted atomically before
/// the work ([`MAX_FAILURES`] per name and window; a success gives its attempt back), and
/// all names together get [`SIGN_INS_PER_MINUTE`] checks.
pub async fn sign_in<B: Backend>(
    store: &Store<B>,
    username: &str,
    password: &str,
    now: u64,
) -> Result<UserRecord, SignInError> {
    let minute = now / 60;
    let all = store.increment(&global_counter(minute), 1).await?;
    if all == 1 {
        crate::expiry::register(store, global_counter(minute).as_str(), (minute + 2) * 60).await?;
    }
    if all > SIGN_INS_PER_MINUTE {
        return Err(SignInError::RateLimited {
            retry_after: (minute + 1) * 60 - now,
        });
    }
    let window = now / FAILURE_WINDOW;
    let attempts = attempt_counter(username, window);
    let n = store.increment(&attempts, 1).await?;
    if n == 1 {
        crate::expiry::register(store, attempts.as_str(), (window + 1) * FAILURE_WINDOW).await?;
    }
    if n > MAX_FAILURES {
        return Err(SignInError::RateLimited {
            retry_after: (window + 1) * FAILURE_WINDOW - now,
        });
    }
    let user = if username.len() <= MAX_USERNAME * 4 {
        get(store, username).await?
    } else {
        None
    };
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.as_deref())
        .filter(|_| password.len() <= MAX_PASSWORD * 4);
    // One Argon2 verification whatever the case: the answer's timing tells nothing.
    let ok = verify_password(password, hash.unwrap_or_else(|| decoy_hash())) && hash.is_some();
    let Some(user) = user.filter(|u| ok && !u.disabled) else {
        return Err(SignInError::Invalid);
    };
    store.increment(&attempts, -1).await?;
    let u = user.username.clone();
    let signed_in = modify(store, &u, |r| {
        r.last_sign_in_at = Some(now);
        Ok(())
    })
    .await
    .unwrap_or(user);
    Ok(signed_in)
}

//! Local sign-in (web and account-driven enrollment) played by an attacker: concurrent
//! guesses cannot exceed the per-name limit, an unknown name is answered and limited
//! exactly like a known one, and unauthenticated password checks have a global cap.

use std::sync::Arc;

use futures::executor::block_on;
use mdm_core::user_input::NewUser;
use mdm_core::user_sign_in::{self, MAX_FAILURES, SIGN_INS_PER_MINUTE, SignInError};
use mdm_core::users;
use mdm_kv::{CounterKey, Defects, MemoryBackend, Store};

const NOW: u64 = 1_800_000_000;

fn store_with_ann() -> Arc<Store<MemoryBackend>> {
    let s = Store::new(MemoryBackend::with_defects(Defects::spin_sqlite()));
    let new: NewUser = serde_json::from_value(serde_json::json!({
        "username": "ann", "password": "correct horse battery",
    }))
    .unwrap();
    block_on(users::create(&s, new, NOW)).unwrap();
    Arc::new(s)
}

fn outcome(r: &Result<users::UserRecord, SignInError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(SignInError::Invalid) => "invalid",
        Err(SignInError::RateLimited { .. }) => "limited",
        Err(SignInError::Store(_)) => "store",
    }
}

/// Guesses sent at once (threads, each one Argon2 check) are counted before the work:
/// no more than the limit are checked, whatever the interleaving.
#[test]
fn concurrent_guesses_do_not_exceed_the_limit() {
    let s = store_with_ann();
    let guesses = (MAX_FAILURES as usize) * 2;
    let handles: Vec<_> = (0..guesses)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                outcome(&block_on(user_sign_in::sign_in(
                    &s,
                    "ann",
                    &format!("guess {i}"),
                    NOW,
                )))
            })
        })
        .collect();
    let results: Vec<&str> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let checked = results.iter().filter(|r| **r == "invalid").count();
    assert_eq!(checked, MAX_FAILURES as usize, "{results:?}");
    assert_eq!(
        results.iter().filter(|r| **r == "limited").count(),
        guesses - MAX_FAILURES as usize
    );
    // Even the right password waits for the window.
    let r = block_on(user_sign_in::sign_in(
        &s,
        "ann",
        "correct horse battery",
        NOW,
    ));
    assert!(matches!(r, Err(SignInError::RateLimited { retry_after }) if retry_after > 0));
    let later = NOW + user_sign_in::FAILURE_WINDOW;
    assert_eq!(
        outcome(&block_on(user_sign_in::sign_in(
            &s,
            "ann",
            "correct horse battery",
            later
        ))),
        "ok"
    );
}

/// Whether a user exists cannot be told: an unknown name gets the same answers, at the
/// same point, as a known one with wrong passwords.
#[test]
fn an_unknown_name_is_answered_like_a_known_one() {
    let s = store_with_ann();
    for name in ["ann", "nobody"] {
        let mut seen = Vec::new();
        for i in 0..=MAX_FAILURES {
            seen.push(outcome(&block_on(user_sign_in::sign_in(
                &s,
                name,
                &format!("wrong {i}"),
                NOW,
            ))));
        }
        let mut want = vec!["invalid"; MAX_FAILURES as usize];
        want.push("limited");
        assert_eq!(seen, want, "{name}");
    }
    // The limit is per name: case and spaces do not make a new one.
    assert_eq!(
        outcome(&block_on(user_sign_in::sign_in(&s, " ANN ", "wrong", NOW))),
        "limited"
    );
}

/// Unauthenticated password checks have a global cap per minute: past it, any name is
/// refused before Argon2 runs (a success gives its check back, not a refusal).
#[test]
fn password_checks_have_a_global_cap() {
    let s = store_with_ann();
    let minute = NOW / 60;
    let all = CounterKey::new(&format!("signin:all:{minute}")).unwrap();
    block_on(s.increment(&all, SIGN_INS_PER_MINUTE)).unwrap();
    let r = block_on(user_sign_in::sign_in(
        &s,
        "ann",
        "correct horse battery",
        NOW,
    ));
    assert!(
        matches!(r, Err(SignInError::RateLimited { retry_after }) if (1..=60).contains(&retry_after)),
        "{r:?}"
    );
    // The next minute has its own budget.
    assert_eq!(
        outcome(&block_on(user_sign_in::sign_in(
            &s,
            "ann",
            "correct horse battery",
            (minute + 1) * 60
        ))),
        "ok"
    );
}

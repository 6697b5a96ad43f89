//! Sessions: the first signed session, an explicit session and base URL, rotation,
//! re-authentication once on expiry, and refusals.

use super::*;

#[test]
fn first_call_creates_a_signed_session_and_sends_it() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock);
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("account_response.json")));

    let account = block_on(c.account()).unwrap();
    assert_eq!(account.server_uuid, "6666ED66666666666666666666666666");
    let f = fake.borrow();
    assert!(f.oauth_failures.is_empty(), "{:?}", f.oauth_failures);
    let paths: Vec<_> = f
        .seen
        .iter()
        .map(|s| (s.method.clone(), s.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [(Method::GET, "/session"), (Method::GET, "/account")]
    );
    assert_eq!(f.seen[1].session.as_deref(), Some("sess-1"));
    assert_eq!(c.session_token(), Some("sess-1"));
}

#[test]
fn explicit_session_and_simulator_base_url() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = DepClient::new(&http, &clock, "http://127.0.0.1:8080/dep/", creds());
    block_on(c.session()).unwrap();
    clock.advance(Duration::from_secs(5));
    block_on(c.session()).unwrap();
    let f = fake.borrow();
    assert!(f.oauth_failures.is_empty(), "{:?}", f.oauth_failures);
    assert_eq!(f.nonces.len(), 2, "a fresh nonce per session request");
    assert_eq!(c.session_token(), Some("sess-2"));
    assert_eq!(c.base_url(), "http://127.0.0.1:8080/dep");
}

#[test]
fn rotated_session_token_is_adopted() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut().push(
        Reply::raw(200, &vector("device_response.json")).header("X-ADM-Auth-Session", "rotated-1"),
    );
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("empty_sync_response.json")));

    block_on(c.fetch_devices(None, None)).unwrap();
    assert_eq!(c.session_token(), Some("rotated-1"));
    block_on(c.sync_devices("MDowOjE1", None)).unwrap();
    let f = fake.borrow();
    let sessions: Vec<_> = f.seen.iter().map(|s| s.session.as_deref()).collect();
    assert_eq!(sessions, [Some("sess-1"), Some("rotated-1")]);
    assert_eq!(f.sessions_created(), 0);
}

#[test]
fn expired_session_is_recreated_once_and_the_call_retried() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(Some("stale".into()));
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("account_response.json")));

    block_on(c.account()).unwrap();
    let f = fake.borrow();
    let seen: Vec<_> = f
        .seen
        .iter()
        .map(|s| (s.path.as_str(), s.session.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("/account", Some("stale")),
            ("/session", None),
            ("/account", Some("sess-1"))
        ]
    );
    assert!(f.oauth_failures.is_empty());
    assert_eq!(c.session_token(), Some("sess-1"));
}

#[test]
fn second_401_is_an_error_and_drops_the_session() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut().refuse_all = true;

    let err = block_on(c.account()).unwrap_err();
    assert!(matches!(err, DepError::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        err.to_feed_error(),
        FeedError::TokenRejected(err.to_string())
    );
    assert_eq!(c.session_token(), None);
    {
        let f = fake.borrow();
        assert_eq!(f.sessions_created(), 1);
        assert_eq!(f.api_calls().len(), 2);
    }

    // Without a session to begin with, the fresh one is the only attempt.
    fake.borrow_mut().seen.clear();
    let err = block_on(c.account()).unwrap_err();
    assert!(matches!(err, DepError::Unauthorized { .. }));
    let f = fake.borrow();
    assert_eq!(f.sessions_created(), 1);
    assert_eq!(f.api_calls().len(), 1);
}

#[test]
fn session_refused_by_apple() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock);
    fake.borrow_mut()
        .session_script
        .push_back(Reply::text(401, "UNAUTHORIZED"));
    let err = block_on(c.account()).unwrap_err();
    assert!(matches!(err, DepError::Unauthorized { ref excerpt } if excerpt == "UNAUTHORIZED"));
    assert!(fake.borrow().api_calls().is_empty());

    fake.borrow_mut()
        .session_script
        .push_back(Reply::text(403, "T_C_NOT_SIGNED"));
    let err = block_on(c.session()).unwrap_err();
    assert_eq!(
        err,
        DepError::Api {
            status: 403,
            code: ApiError::TermsNotSigned
        }
    );
    assert_eq!(err.to_feed_error(), FeedError::TermsNotSigned);

    // A bad signature (wrong secret) is a 401 from the fake's independent check.
    let mut wrong = creds();
    wrong.access_secret = "AS_wrong".into();
    let mut c = DepClient::new(&http, &clock, BASE, wrong);
    let err = block_on(c.session()).unwrap_err();
    assert!(matches!(err, DepError::Unauthorized { .. }));
    assert_eq!(fake.borrow().oauth_failures, ["bad signature"]);
}

#[test]
fn forbidden_body_means_a_new_session_but_terms_do_not() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut().push(Reply::text(403, "FORBIDDEN"));
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("account_response.json")));
    block_on(c.account()).unwrap();
    assert_eq!(fake.borrow().sessions_created(), 1);
    assert_eq!(c.session_token(), Some("sess-2"));

    fake.borrow_mut()
        .push(Reply::text(403, "\"T_C_NOT_SIGNED\""));
    let err = block_on(c.account()).unwrap_err();
    assert_eq!(err.code(), Some(ApiError::TermsNotSigned));
    fake.borrow_mut().push(Reply::text(403, "ACCESS_DENIED"));
    let err = block_on(c.account()).unwrap_err();
    assert_eq!(err.code(), Some(ApiError::AccessDenied));
    assert!(matches!(err.to_feed_error(), FeedError::TokenRejected(_)));
    assert_eq!(fake.borrow().sessions_created(), 1, "no re-session loop");
    assert_eq!(c.session_token(), Some("sess-2"));
}

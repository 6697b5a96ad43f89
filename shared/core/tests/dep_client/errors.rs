//! Errors: every documented code in every body form, whole-word matching, cursor errors,
//! undocumented answers, and no secret in any error.

use super::*;

#[test]
fn every_documented_code_maps_in_every_body_form() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    for code in ApiError::ALL {
        if code == ApiError::NotFound {
            continue;
        }
        let status = match code {
            ApiError::TermsNotSigned | ApiError::AccessDenied => 403,
            _ => 400,
        };
        let s = code.as_str();
        for body in [
            s.to_owned(),
            format!("\"{s}\""),
            format!("{s}\n"),
            json!({ "code": s, "message": "details" }).to_string(),
            format!("error: {s} (see docs)"),
        ] {
            fake.borrow_mut().push(Reply::text(status, &body));
            let err = block_on(c.sync_devices("cursor", Some(100))).unwrap_err();
            assert_eq!(err, DepError::Api { status, code }, "{body}");
            assert!(err.to_string().contains(s));
        }
    }
    assert_eq!(fake.borrow().sessions_created(), 0);
}

#[test]
fn code_matching_needs_whole_words() {
    assert_eq!(
        ApiError::find("INVALID_CURSOR"),
        Some(ApiError::InvalidCursor)
    );
    assert_eq!(ApiError::find("NOT_INVALID_CURSOR_X"), None);
    assert_eq!(ApiError::find("invalid_cursor"), None);
    assert_eq!(
        ApiError::find("CONFIG_URL_INVALID then CONFIG_NAME_REQUIRED"),
        Some(ApiError::ConfigUrlInvalid)
    );
    assert_eq!(
        ApiError::find("MDM_SERVICE_DISCOVERY_URL_NOT_VALID"),
        Some(ApiError::MdmServiceDiscoveryUrlNotValid)
    );
    assert_eq!(ApiError::find(""), None);
}

#[test]
fn cursor_errors_become_feed_errors() {
    let api = |code| DepError::Api { status: 400, code };
    assert_eq!(
        api(ApiError::ExhaustedCursor).to_feed_error(),
        FeedError::ExhaustedCursor
    );
    for code in [
        ApiError::ExpiredCursor,
        ApiError::InvalidCursor,
        ApiError::CursorRequired,
    ] {
        assert!(code.is_cursor_error());
        assert_eq!(
            api(code).to_feed_error(),
            FeedError::CursorRejected(code.as_str().into())
        );
    }
    assert_eq!(
        DepError::RetryLater {
            status: 429,
            after: Duration::from_secs(90)
        }
        .to_feed_error(),
        FeedError::Throttled { retry_after: 90 }
    );
    assert!(matches!(
        api(ApiError::MalformedRequestBody).to_feed_error(),
        FeedError::Other(_)
    ));
}

#[test]
fn undocumented_answers() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));

    fake.borrow_mut().push(Reply::text(404, "Not Found"));
    let err = block_on(c.get_profile("C1F1 2309/8EB5")).unwrap_err();
    assert_eq!(
        err,
        DepError::Api {
            status: 404,
            code: ApiError::NotFound
        }
    );
    assert_eq!(
        fake.borrow().seen.last().unwrap().path,
        "/profile?profile_uuid=C1F1%202309%2F8EB5"
    );

    fake.borrow_mut()
        .push(Reply::text(400, "SOMETHING_NEW\r\nwith detail"));
    let err = block_on(c.account()).unwrap_err();
    assert_eq!(
        err,
        DepError::Unexpected {
            status: 400,
            excerpt: "SOMETHING_NEW  with detail".into()
        }
    );

    fake.borrow_mut().push(Reply::text(418, &"x".repeat(5000)));
    let DepError::Unexpected { status, excerpt } = block_on(c.account()).unwrap_err() else {
        panic!()
    };
    assert_eq!(status, 418);
    assert!(excerpt.chars().count() <= 201, "excerpt is bounded");

    fake.borrow_mut()
        .push(Reply::transport("connection reset by peer"));
    let err = block_on(c.account()).unwrap_err();
    assert_eq!(err, DepError::Transport("connection reset by peer".into()));
}

#[test]
fn secrets_never_appear_in_errors() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    let k = creds();
    let secrets = [
        k.consumer_secret.as_str(),
        k.access_secret.as_str(),
        k.access_token.as_str(),
        "sess-1",
    ];
    let echo = format!(
        "bad request: {} {} {} {} {}",
        k.consumer_secret,
        k.access_secret,
        oauth::percent_encode(&k.access_token),
        "sess-1",
        k.consumer_key
    );
    fake.borrow_mut().push(Reply::text(400, &echo));
    let err = block_on(c.account()).unwrap_err();
    fake.borrow_mut().push(Reply::transport(&echo));
    let err2 = block_on(c.account()).unwrap_err();
    fake.borrow_mut().push(Reply::text(
        200,
        &format!("{{\"server_uuid\": {}", k.access_secret),
    ));
    let err3 = block_on(c.account()).unwrap_err();
    assert!(matches!(err3, DepError::BadJson { .. }));
    for text in [
        err.to_string(),
        format!("{err:?}"),
        err2.to_string(),
        err3.to_string(),
        format!("{:?}", creds()),
        format!("{c:?}"),
    ] {
        for s in secrets {
            assert!(!text.contains(s), "{s} leaked in {text}");
        }
    }
    assert!(err.to_string().contains("<redacted>"));
    assert!(format!("{:?}", creds()).contains(&k.consumer_key));
}

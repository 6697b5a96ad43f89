//! `Retry-After` and backoff on the manual clock: seconds and HTTP dates, long waits handed
//! to the caller, server errors backed off then given up.

use super::*;

#[test]
fn retry_after_seconds_is_slept_on_the_clock() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut()
        .push(Reply::text(429, "").header("Retry-After", "7"));
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("device_response.json")));
    let page = block_on(c.fetch_devices(None, Some(500))).unwrap();
    assert_eq!(page.devices.len(), 1);
    assert_eq!(clock.unix_seconds(), T0 + 7);
    let f = fake.borrow();
    assert_eq!(f.api_calls().len(), 2);
    assert_eq!(
        f.api_calls()[1].body,
        f.api_calls()[0].body,
        "same request again"
    );
}

#[test]
fn retry_after_http_date_and_session_requests() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock);
    // 1_800_000_020 = Fri, 15 Jan 2027 08:00:20 GMT
    let date = "Fri, 15 Jan 2027 08:00:20 GMT";
    assert_eq!(
        parse_http_date(date),
        Some(UNIX_EPOCH + Duration::from_secs(T0 + 20))
    );
    fake.borrow_mut()
        .session_script
        .push_back(Reply::text(503, "").header("Retry-After", date));
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("account_response.json")));
    block_on(c.account()).unwrap();
    assert_eq!(clock.unix_seconds(), T0 + 20);
    let f = fake.borrow();
    assert_eq!(f.sessions_created(), 2);
    assert!(
        f.oauth_failures.is_empty(),
        "retried with a fresh nonce and timestamp"
    );
}

#[test]
fn long_waits_are_handed_to_the_caller() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut()
        .push(Reply::text(429, "").header("Retry-After", "3600"));
    let err = block_on(c.sync_devices("c", None)).unwrap_err();
    assert_eq!(
        err,
        DepError::RetryLater {
            status: 429,
            after: Duration::from_secs(3600)
        }
    );
    assert_eq!(clock.unix_seconds(), T0, "no sleep beyond the cap");
    assert_eq!(
        err.to_feed_error(),
        FeedError::Throttled { retry_after: 3600 }
    );

    // The cap is on the total: 40 s slept, the next 40 s would pass 60 s.
    fake.borrow_mut()
        .push(Reply::text(429, "").header("Retry-After", "40"));
    fake.borrow_mut()
        .push(Reply::text(429, "").header("Retry-After", "40"));
    let err = block_on(c.sync_devices("c", None)).unwrap_err();
    assert_eq!(
        err,
        DepError::RetryLater {
            status: 429,
            after: Duration::from_secs(40)
        }
    );
    assert_eq!(clock.unix_seconds(), T0 + 40);
}

#[test]
fn server_errors_back_off_then_give_up() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    for _ in 0..4 {
        fake.borrow_mut()
            .push(Reply::text(503, "Service Unavailable"));
    }
    let err = block_on(c.account()).unwrap_err();
    assert_eq!(
        err,
        DepError::RetryLater {
            status: 503,
            after: Duration::from_secs(8)
        }
    );
    assert_eq!(clock.unix_seconds(), T0 + 1 + 2 + 4);
    assert_eq!(fake.borrow().api_calls().len(), 4);

    // A recovered 500 within the policy.
    let mut c = c.with_retry(RetryPolicy {
        max_retries: 1,
        max_wait: Duration::from_secs(10),
        initial_backoff: Duration::from_secs(3),
    });
    fake.borrow_mut().push(Reply::text(500, "oops"));
    fake.borrow_mut()
        .push(Reply::raw(200, &vector("account_response.json")));
    block_on(c.account()).unwrap();
    assert_eq!(clock.unix_seconds(), T0 + 7 + 3);
}

#[test]
fn retry_after_forms() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
    assert_eq!(
        parse_retry_after(" 120 ", now),
        Some(Duration::from_secs(120))
    );
    for date in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(
            parse_http_date(date),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "{date}"
        );
        assert_eq!(parse_retry_after(date, now), Some(Duration::from_secs(30)));
    }
    assert_eq!(
        parse_retry_after(
            "Sun, 06 Nov 1994 08:49:37 GMT",
            now + Duration::from_secs(99)
        ),
        Some(Duration::ZERO)
    );
    for bad in [
        "soon",
        "-5",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994",
        "",
    ] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad}");
    }
}

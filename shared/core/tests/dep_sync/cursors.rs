//! Cursors and Apple's refusals: a stale or rejected cursor and a failed delta force a full
//! sync, an exhausted cursor completes it, throttling defers, unsigned terms are recorded.

use super::*;

#[test]
fn stale_or_rejected_cursor_and_failed_delta_force_full() {
    let (s, clock) = setup();
    let p = Policy::default();
    let mut feed = Feed::new(10, 10);
    block_on(sync::run(&s, &clock, T, &mut feed, full(), &p)).unwrap();
    // Cursor older than 7 days.
    clock.advance(Duration::from_secs(7 * DAY));
    assert_eq!(
        state(&s)
            .scheduled_plan(clock.unix_seconds(), &p)
            .unwrap()
            .kind,
        SyncKind::Full
    );
    block_on(sync::run(&s, &clock, T, &mut feed, full(), &p)).unwrap();
    // Apple rejects the cursor during a delta.
    clock.advance(Duration::from_secs(13 * 3600));
    feed.sync_script
        .push_back(Err(FeedError::CursorRejected("EXPIRED_CURSOR".into())));
    let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
    assert_eq!(plan.kind, SyncKind::Delta);
    let r = block_on(sync::run(&s, &clock, T, &mut feed, plan, &p)).unwrap();
    assert!(matches!(r.outcome, Outcome::Failed(_)));
    let st = state(&s);
    assert!(st.full_required && st.cursor.is_none());
    assert!(st.last_error.as_deref().unwrap().contains("EXPIRED_CURSOR"));
    // A lost cursor is routine: the recovery full sync is due at once.
    assert!(st.backoff.is_none());
    assert_eq!(
        state(&s)
            .scheduled_plan(clock.unix_seconds(), &p)
            .unwrap()
            .kind,
        SyncKind::Full
    );
    // Any other failed delta also makes the next sync full, but keeps the cursor.
    block_on(sync::run(&s, &clock, T, &mut feed, full(), &p)).unwrap();
    clock.advance(Duration::from_secs(13 * 3600));
    feed.sync_script
        .push_back(Err(FeedError::Other("HTTP 500".into())));
    let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
    block_on(sync::run(&s, &clock, T, &mut feed, plan, &p)).unwrap();
    // Any other failure backs the token off before the next scheduled try.
    let st = state(&s);
    assert_eq!(st.backoff.as_ref().unwrap().failures, 1, "{st:?}");
    assert!(st.scheduled_plan(clock.unix_seconds(), &p).is_none());
    clock.advance(Duration::from_secs(sync_state::Backoff::delay(1)));
    assert_eq!(
        state(&s)
            .scheduled_plan(clock.unix_seconds(), &p)
            .unwrap()
            .kind,
        SyncKind::Full
    );
}

#[test]
fn exhausted_cursor_completes_a_full_fetch_and_throttling_defers() {
    let (s, clock) = setup();
    let p = Policy::default();
    let mut feed = Feed::new(10, 10);
    // Interrupted exactly at the end: resuming fetches with an exhausted cursor.
    block_on(sync::run(&s, &clock, T, &mut feed, full(), &p)).unwrap();
    let mut st = state(&s);
    st.run = Some(sync_state::Run {
        id: "x".into(),
        kind: SyncKind::Full,
        add_only: false,
        manual: false,
        started_at: clock.unix_seconds(),
        pages: 1,
        devices_seen: 10,
        cursor: Some("10".into()),
        listing: None,
    });
    block_on(st.save(&s, T)).unwrap();
    let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
    let r = block_on(sync::run(&s, &clock, T, &mut feed, plan, &p)).unwrap();
    assert_eq!(r.outcome, Outcome::Completed);

    clock.advance(Duration::from_secs(13 * 3600));
    feed.sync_script
        .push_back(Err(FeedError::Throttled { retry_after: 120 }));
    let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
    let r = block_on(sync::run(&s, &clock, T, &mut feed, plan, &p)).unwrap();
    assert!(matches!(r.outcome, Outcome::Throttled { .. }));
    assert!(
        state(&s).scheduled_plan(clock.unix_seconds(), &p).is_none(),
        "waits for Retry-After"
    );
    clock.advance(Duration::from_secs(121));
    assert_eq!(
        state(&s)
            .scheduled_plan(clock.unix_seconds(), &p)
            .unwrap()
            .kind,
        SyncKind::Delta
    );
}

#[test]
fn terms_not_signed_is_recorded_for_the_admin() {
    let (s, clock) = setup();
    let mut feed = Feed::new(10, 10);
    feed.fetch_error = Some(FeedError::TermsNotSigned);
    let r = block_on(sync::run(
        &s,
        &clock,
        T,
        &mut feed,
        full(),
        &Policy::default(),
    ))
    .unwrap();
    assert!(matches!(r.outcome, Outcome::Failed(_)));
    assert!(state(&s).last_error.unwrap().contains("T_C_NOT_SIGNED"));
    assert!(state(&s).lease.is_none());
}

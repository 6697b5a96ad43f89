//! When syncs run and how far: full then delta every 12 hours, a budget that pauses a run,
//! manual sync limits, backoff of a failing token, and the 15-minute limit of a run.

use super::*;

#[test]
fn first_sync_is_full_then_delta_every_12_hours() {
    let (s, clock) = setup();
    let p = Policy::default();
    let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
    assert_eq!(plan.kind, SyncKind::Full);
    let mut feed = Feed::new(2500, 1000);
    let r = block_on(sync::run(&s, &clock, T, &mut feed, plan, &p)).unwrap();
    assert_eq!(
        (r.outcome, r.pages, r.stats.added),
        (Outcome::Completed, 3, 2500)
    );
    assert_eq!(serials(&s).len(), 2500);
    let st = state(&s);
    assert_eq!(st.cursor.as_deref(), Some("2500"));
    assert!(
        st.scheduled_plan(clock.unix_seconds(), &p).is_none(),
        "nothing due right after a sync"
    );
    clock.advance(Duration::from_secs(12 * 3600));
    let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
    assert_eq!(plan.kind, SyncKind::Delta);
    let r = block_on(sync::run(&s, &clock, T, &mut feed, plan, &p)).unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(feed.calls.last().unwrap().as_deref(), Some("sync:2500"));
}

#[test]
fn budget_pauses_a_run_which_the_next_trigger_continues() {
    let (s, clock) = setup();
    let p = Policy {
        slice: 0,
        ..Policy::default()
    };
    let mut feed = Feed::new(100, 10);
    let r = block_on(sync::run(&s, &clock, T, &mut feed, full(), &p)).unwrap();
    assert_eq!((r.outcome, r.pages), (Outcome::Paused, 0));
    let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
    let r = block_on(sync::run(
        &s,
        &clock,
        T,
        &mut feed,
        plan,
        &Policy::default(),
    ))
    .unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(serials(&s).len(), 100);
}

#[test]
fn manual_sync_limits() {
    let (s, clock) = setup();
    let p = Policy::default();
    let now = clock.unix_seconds();
    // No cursor yet: a requested delta becomes full.
    let plan = state(&s).manual_plan(SyncKind::Delta, now, &p).unwrap();
    assert_eq!((plan.kind, plan.add_only), (SyncKind::Full, false));
    let mut feed = Feed::new(10, 10);
    block_on(sync::run(&s, &clock, T, &mut feed, plan, &p)).unwrap();
    clock.advance(Duration::from_secs(60));
    let refused = state(&s).manual_plan(SyncKind::Delta, clock.unix_seconds(), &p);
    assert_eq!(
        refused,
        Err(ManualRefusal::TooSoon {
            next_allowed_at: now + 15 * 60
        })
    );
    clock.advance(Duration::from_secs(15 * 60));
    let plan = state(&s)
        .manual_plan(SyncKind::Delta, clock.unix_seconds(), &p)
        .unwrap();
    assert_eq!(plan.kind, SyncKind::Delta);
    // A full sync within 7 days of the last only adds serials we do not know.
    let plan = state(&s)
        .manual_plan(SyncKind::Full, clock.unix_seconds(), &p)
        .unwrap();
    assert_eq!((plan.kind, plan.add_only), (SyncKind::Full, true));
    clock.advance(Duration::from_secs(7 * DAY));
    let plan = state(&s)
        .manual_plan(SyncKind::Full, clock.unix_seconds(), &p)
        .unwrap();
    assert!(!plan.add_only);
}

#[test]
fn a_failing_token_backs_off_exponentially_up_to_12_hours() {
    assert_eq!(sync_state::Backoff::delay(1), 300);
    assert_eq!(sync_state::Backoff::delay(2), 600);
    assert_eq!(sync_state::Backoff::delay(5), 4_800);
    assert_eq!(sync_state::Backoff::delay(9), 12 * 3600);
    assert_eq!(sync_state::Backoff::delay(60), 12 * 3600);
    let (s, clock) = setup();
    let p = Policy::default();
    let mut feed = Feed::new(10, 10);
    feed.fetch_error = Some(FeedError::TermsNotSigned);
    for failures in 1..=4u32 {
        let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
        let r = block_on(sync::run(&s, &clock, T, &mut feed, plan, &p)).unwrap();
        assert!(matches!(r.outcome, Outcome::Failed(_)));
        let b = state(&s).backoff.unwrap();
        assert_eq!(b.failures, failures);
        assert!(b.reason.contains("T_C_NOT_SIGNED"), "{b:?}");
        assert_eq!(
            b.next_try_at,
            clock.unix_seconds() + sync_state::Backoff::delay(failures)
        );
        clock.advance(Duration::from_secs(
            sync_state::Backoff::delay(failures) - 1,
        ));
        assert!(state(&s).scheduled_plan(clock.unix_seconds(), &p).is_none());
        clock.advance(Duration::from_secs(1));
    }
    // The terms are accepted: the next try succeeds and the backoff is gone.
    feed.fetch_error = None;
    let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
    let r = block_on(sync::run(&s, &clock, T, &mut feed, plan, &p)).unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert!(state(&s).backoff.is_none());
}

/// Feed whose every fetch takes a minute of the clock (a slow Apple).
struct SlowFeed<'a> {
    inner: Feed,
    clock: &'a ManualClock,
}

impl DeviceFeed for SlowFeed<'_> {
    async fn fetch(&mut self, cursor: Option<&str>) -> Result<FeedPage, FeedError> {
        self.clock.advance(Duration::from_secs(60));
        self.inner.fetch(cursor).await
    }

    async fn sync(&mut self, cursor: &str) -> Result<FeedPage, FeedError> {
        self.inner.sync(cursor).await
    }
}

/// A whole run gets 15 minutes (not each slice): past that it ends as timed out, the
/// status says so, and the next sync continues the listing where it stopped; progress is
/// visible as devices fetched out of the last completed listing's count.
#[test]
fn a_run_past_15_minutes_times_out_and_the_next_continues() {
    let (s, clock) = setup();
    let p = Policy::default();
    let mut quick = Feed::new(3_000, 100);
    until_idle(&s, &clock, &mut quick, &p);
    clock.advance(Duration::from_secs(7 * DAY));
    let mut slow = SlowFeed {
        inner: Feed::new(3_000, 100),
        clock: &clock,
    };
    let mut slices = 0;
    let outcome = loop {
        let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
        let r = block_on(sync::run(&s, &clock, T, &mut slow, plan, &p)).unwrap();
        slices += 1;
        if r.outcome != Outcome::Paused {
            break r.outcome;
        }
        let view = mdm_core::routes::admin::dep::sync_view(&state(&s), clock.unix_seconds(), &p);
        let fetched = view["progress"]["devices_fetched"].as_u64().unwrap();
        assert_eq!(view["progress"]["devices_expected"], 3_000, "{view:#}");
        let fraction = view["progress"]["fraction"].as_f64().unwrap();
        assert!(
            (fraction - fetched as f64 / 3_000.0).abs() < 1e-9,
            "{view:#}"
        );
    };
    assert_eq!(outcome, Outcome::TimedOut);
    assert!(slices > 1);
    let st = state(&s);
    assert_eq!(st.last_run.as_ref().unwrap().outcome, "timed_out");
    assert!(st.last_error.as_deref().unwrap().contains("15 minutes"));
    let listing = st.listing.clone().expect("the listing goes on");
    assert!(
        listing.fetched >= 1_400 && listing.fetched < 3_000,
        "{listing:?}"
    );
    let view = mdm_core::routes::admin::dep::sync_view(&st, clock.unix_seconds(), &p);
    assert_eq!(view["state"], "failed", "{view:#}");
    assert_eq!(view["next_sync_is_full"], true, "{view:#}");

    // The next run continues from the listing's cursor, not from the start.
    let calls_before = slow.inner.calls.len();
    until_idle(&s, &clock, &mut slow, &p);
    let resumed_at = slow.inner.calls[calls_before]
        .as_deref()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert_eq!(resumed_at, listing.fetched);
    assert_eq!(state(&s).last_run.unwrap().outcome, "completed");
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 3_000);
}

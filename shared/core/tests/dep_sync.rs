//! The sync engine with a scripted device feed: policy, leases, kill-and-resume, errors.

use std::collections::VecDeque;
use std::time::Duration;

use futures::FutureExt;
use futures::executor::block_on;
use mdm_core::Clock;
use mdm_core::dep::TokenId;
use mdm_core::dep::inventory;
use mdm_core::dep::inventory_list::{self, ListQuery};
use mdm_core::dep::sync::{
    self, DeviceFeed, FeedError, FeedPage, ManualRefusal, Outcome, Plan, Policy, SyncKind,
};
use mdm_core::platform::testing::ManualClock;
use mdm_core::record::Stored;
use mdm_kv::{Defects, MemoryBackend, Store};
use serde_json::{Map, Value, json};

const T: TokenId = TokenId(1);
const DAY: u64 = 86400;

fn dev(serial: &str) -> Map<String, Value> {
    json!({ "serial_number": serial, "model": "iPhone" })
        .as_object()
        .unwrap()
        .clone()
}

/// Apple's full fetch over `devices`, `page` at a time; cursors are offsets. Records the
/// cursors it was called with. `stall_after` makes the call after that many pages hang
/// forever (the process is killed while waiting for Apple).
struct Feed {
    devices: Vec<String>,
    page: usize,
    calls: Vec<Option<String>>,
    stall_after: Option<usize>,
    sync_script: VecDeque<Result<FeedPage, FeedError>>,
    fetch_error: Option<FeedError>,
}

impl Feed {
    fn new(n: usize, page: usize) -> Self {
        Feed {
            devices: (0..n).map(|i| format!("SER{i:06}")).collect(),
            page,
            calls: vec![],
            stall_after: None,
            sync_script: VecDeque::new(),
            fetch_error: None,
        }
    }
}

impl DeviceFeed for Feed {
    async fn fetch(&mut self, cursor: Option<&str>) -> Result<FeedPage, FeedError> {
        self.calls.push(cursor.map(str::to_owned));
        if let Some(e) = self.fetch_error.clone() {
            return Err(e);
        }
        if self.stall_after == Some(self.calls.len() - 1) {
            std::future::pending::<()>().await;
        }
        let from: usize = cursor.map_or(0, |c| c.parse().unwrap());
        if from >= self.devices.len() && cursor.is_some() {
            return Err(FeedError::ExhaustedCursor);
        }
        let to = (from + self.page).min(self.devices.len());
        Ok(FeedPage {
            devices: self.devices[from..to].iter().map(|s| dev(s)).collect(),
            cursor: Some(to.to_string()),
            more_to_follow: to < self.devices.len(),
        })
    }

    async fn sync(&mut self, cursor: &str) -> Result<FeedPage, FeedError> {
        self.calls.push(Some(format!("sync:{cursor}")));
        self.sync_script.pop_front().unwrap_or(Ok(FeedPage {
            devices: vec![],
            cursor: Some(cursor.to_owned()),
            more_to_follow: false,
        }))
    }
}

fn setup() -> (Store<MemoryBackend>, ManualClock) {
    let s = Store::new(MemoryBackend::with_defects(Defects::spin_sqlite()));
    block_on(sync::init(&s, T)).unwrap();
    (s, ManualClock::at_unix(1_800_000_000))
}

fn state(s: &Store<MemoryBackend>) -> sync::SyncState {
    block_on(sync::load(s, T)).unwrap().unwrap()
}

fn serials(s: &Store<MemoryBackend>) -> Vec<String> {
    let mut q = ListQuery {
        limit: 1000,
        ..Default::default()
    };
    let mut out = vec![];
    loop {
        let p = block_on(inventory_list::list(s, T, &q)).unwrap();
        out.extend(p.devices.into_iter().map(|d| d.serial_number));
        match p.next {
            Some(n) => q.after = n,
            None => return out,
        }
    }
}

fn full() -> Plan {
    Plan {
        kind: SyncKind::Full,
        add_only: false,
        manual: false,
    }
}

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
fn killed_run_resumes_from_the_stored_cursor_without_loss_or_duplicates() {
    let (s, clock) = setup();
    let p = Policy::default();
    let mut feed = Feed::new(5000, 1000);
    feed.stall_after = Some(3);
    // The process dies while waiting for page 4: the future is dropped mid-run.
    let fut = sync::run(&s, &clock, T, &mut feed, full(), &p);
    assert!(fut.now_or_never().is_none());
    assert_eq!(serials(&s).len(), 3000);
    let st = state(&s);
    assert!(
        st.running(clock.unix_seconds()),
        "lease still held by the dead run"
    );
    assert!(st.scheduled_plan(clock.unix_seconds(), &p).is_none());
    // A second trigger while the lease is valid does nothing.
    let mut other = Feed::new(5000, 1000);
    let r = block_on(sync::run(&s, &clock, T, &mut other, full(), &p)).unwrap();
    assert_eq!(r.outcome, Outcome::Busy);
    assert!(other.calls.is_empty());

    clock.advance(Duration::from_secs(p.lease_ttl + 1));
    let plan = state(&s)
        .scheduled_plan(clock.unix_seconds(), &p)
        .expect("interrupted run is due");
    let mut feed = Feed::new(5000, 1000);
    let r = block_on(sync::run(&s, &clock, T, &mut feed, plan, &p)).unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(
        feed.calls.first().unwrap().as_deref(),
        Some("3000"),
        "resumed at the stored cursor"
    );
    let got = serials(&s);
    assert_eq!(got.len(), 5000);
    assert_eq!(
        got,
        (0..5000).map(|i| format!("SER{i:06}")).collect::<Vec<_>>()
    );
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 5000);
    assert_eq!(state(&s).last_run.unwrap().pages, 5);
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
    clock.advance(Duration::from_secs(sync::Backoff::delay(1)));
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
    st.run = Some(sync::Run {
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

fn record(s: &Store<MemoryBackend>, serial: &str) -> inventory::DeviceRecord {
    block_on(inventory::get(s, T, serial)).unwrap().unwrap()
}

/// Runs scheduled syncs (as the scheduler's ticks would) until the state is idle.
fn until_idle(
    s: &Store<MemoryBackend>,
    clock: &ManualClock,
    feed: &mut impl DeviceFeed,
    p: &Policy,
) {
    for _ in 0..1000 {
        let Some(plan) = state(s).scheduled_plan(clock.unix_seconds(), p) else {
            assert!(state(s).run.is_none(), "{:?}", state(s));
            return;
        };
        block_on(sync::run(s, clock, T, feed, plan, p)).unwrap();
    }
    panic!("never idle: {:?}", state(s));
}

#[test]
fn a_completed_full_listing_flags_what_apple_no_longer_lists() {
    let (s, clock) = setup();
    let p = Policy::default();
    let mut feed = Feed::new(12_000, 1000);
    until_idle(&s, &clock, &mut feed, &p);
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 12_000);
    assert_eq!(state(&s).listed_devices, Some(12_000));

    // Moved to another MDM server or released: Apple just stops listing them.
    let gone = ["SER000005", "SER006000", "SER011999"];
    feed.devices.retain(|d| !gone.contains(&d.as_str()));
    // A full listing interrupted before its end flags nothing.
    clock.advance(Duration::from_secs(7 * DAY));
    feed.stall_after = Some(feed.calls.len() + 5);
    let plan = state(&s).scheduled_plan(clock.unix_seconds(), &p).unwrap();
    assert_eq!(plan.kind, SyncKind::Full);
    assert!(
        sync::run(&s, &clock, T, &mut feed, plan, &p)
            .now_or_never()
            .is_none(),
        "stalls at Apple"
    );
    for g in gone {
        assert_eq!(record(&s, g).removed_at, None, "{g} flagged mid-listing");
    }
    feed.stall_after = None;
    clock.advance(Duration::from_secs(p.lease_ttl + 1));
    until_idle(&s, &clock, &mut feed, &p);
    let now = clock.unix_seconds();
    for g in gone {
        let r = record(&s, g);
        assert!(r.removed_at.is_some_and(|t| t <= now), "{r:?}");
        assert_eq!(r.removed_by, Some(inventory::Removal::Absent));
    }
    assert_eq!(record(&s, "SER000006").removed_at, None);
    let st = state(&s);
    let last = st.last_run.as_ref().unwrap();
    assert_eq!(
        (last.outcome.as_str(), last.flagged_absent),
        ("completed", 3)
    );
    assert!(st.listing.is_none());
    // Flagged devices stay counted until they are purged, like deleted ones.
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 12_000);
    let removed = block_on(inventory_list::list(
        &s,
        T,
        &ListQuery {
            limit: 100,
            removed: Some(true),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(removed.devices.len(), 3);

    // One comes back: the next full listing unflags it.
    feed.devices.push("SER006000".into());
    clock.advance(Duration::from_secs(7 * DAY));
    until_idle(&s, &clock, &mut feed, &p);
    assert_eq!(record(&s, "SER006000").removed_at, None);
    assert_eq!(record(&s, "SER006000").removed_by, None);
    assert!(record(&s, "SER000005").removed_at.is_some());
    assert_eq!(state(&s).last_run.unwrap().flagged_absent, 0);
}

/// A small deterministic generator for kill points.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The process dies at random points (between any two store operations) during full
/// syncs; each time the lease expires and the scheduler resumes. The inventory ends with
/// exactly Apple's devices and the token's device count is exact.
#[test]
fn killed_at_random_points_a_full_sync_ends_exact() {
    for seed in 1..=6 {
        killed_at_random_points(seed);
    }
}

fn killed_at_random_points(seed: u64) {
    let (s, clock) = setup();
    let p = Policy::default();
    let mut feed = Feed::new(3_000, 100);
    let mut rng = Lcg(seed);
    let mut kills = 0;
    let mut sync_with_kills = |feed: &mut Feed, kills: &mut u32| {
        for _ in 0..500 {
            let Some(plan) = state(&s).scheduled_plan(clock.unix_seconds(), &p) else {
                if state(&s).run.is_none() {
                    return;
                }
                clock.advance(Duration::from_secs(p.lease_ttl + 1));
                continue;
            };
            s.backend().crash_after(1 + rng.below(150));
            let r = block_on(sync::run(&s, &clock, T, feed, plan, &p));
            let crashed = s.backend().crashed();
            s.backend().recover();
            if crashed {
                *kills += 1;
                assert!(r.is_err(), "a killed run reports nothing: {r:?}");
                // The dead worker's lease runs out before anyone resumes.
                clock.advance(Duration::from_secs(p.lease_ttl + 1));
            } else {
                r.unwrap();
            }
        }
        panic!("never idle: {:?}", state(&s));
    };
    sync_with_kills(&mut feed, &mut kills);
    assert!(kills >= 3, "only {kills} kills");
    assert_eq!(serials(&s), feed.devices);
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 3_000);

    // Some devices leave, some arrive; the next full sync is killed too.
    feed.devices.retain(|d| !d.ends_with('7'));
    feed.devices
        .extend((3_000..3_050).map(|i| format!("SER{i:06}")));
    clock.advance(Duration::from_secs(7 * DAY));
    let before = kills;
    sync_with_kills(&mut feed, &mut kills);
    assert!(kills > before);
    let present: Vec<String> = block_on(inventory_list::list(
        &s,
        T,
        &ListQuery {
            limit: 5_000,
            removed: Some(false),
            ..Default::default()
        },
    ))
    .unwrap()
    .devices
    .into_iter()
    .map(|d| d.serial_number)
    .collect();
    let mut want = feed.devices.clone();
    want.sort();
    assert_eq!(present, want);
    // Removed (not yet purged) devices still count: 3,000 + 50.
    assert_eq!(block_on(inventory::live_count(&s, T)).unwrap(), 3_050);
}

#[test]
fn a_failing_token_backs_off_exponentially_up_to_12_hours() {
    assert_eq!(sync::Backoff::delay(1), 300);
    assert_eq!(sync::Backoff::delay(2), 600);
    assert_eq!(sync::Backoff::delay(5), 4_800);
    assert_eq!(sync::Backoff::delay(9), 12 * 3600);
    assert_eq!(sync::Backoff::delay(60), 12 * 3600);
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
            clock.unix_seconds() + sync::Backoff::delay(failures)
        );
        clock.advance(Duration::from_secs(sync::Backoff::delay(failures) - 1));
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
        let view = mdm_core::admin::dep::sync_view(&state(&s), clock.unix_seconds(), &p);
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
    let view = mdm_core::admin::dep::sync_view(&st, clock.unix_seconds(), &p);
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

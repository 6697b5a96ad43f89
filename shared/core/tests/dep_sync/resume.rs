//! Kills and the end of a listing: a killed run resumes from the stored cursor, a full sync
//! killed at random points ends exact, and a completed listing flags what Apple no longer
//! lists.

use super::*;

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

//! Fetch, sync and cursors, driven by our `DepClient`.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use mdm_core::dep::error::ApiError;
use mdm_core::platform::testing::SystemClock;
use mdm_depsim::client::HyperHttp;
use mdm_depsim::{PageLimit, SimConfig};

#[tokio::test]
async fn full_fetch_yields_exactly_the_generated_set() {
    let sim = start(SimConfig::new(2_500, 7));
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);

    let account = c.account().await.unwrap();
    assert_eq!(account.page_size("/server/devices", None), 100);
    assert_eq!(account.page_size("/server/devices", Some(5000)), 1000);
    assert_eq!(account.server_uuid.len(), 32);
    assert!(
        account
            .urls
            .iter()
            .any(|u| u.uri == "/profile/devices" && u.http_method.len() == 3)
    );

    let (devices, cursor, pages) = fetch_all(&mut c, Some(1000)).await;
    assert_eq!(pages, 3);
    let serials: Vec<String> = devices.iter().map(|d| serial(d).to_owned()).collect();
    assert_eq!(serials, sim.control().serials());
    assert_eq!(serials.iter().collect::<HashSet<_>>().len(), 2_500);
    let mut families = HashMap::new();
    for d in &devices {
        let s = serial(d);
        assert_eq!(s.len(), 12, "{s}");
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        for field in [
            "model",
            "description",
            "color",
            "device_family",
            "os",
            "profile_status",
            "device_assigned_by",
            "device_assigned_date",
        ] {
            assert!(d[field].as_str().is_some_and(|v| !v.is_empty()), "{field}");
        }
        assert!(d.get("op_type").is_none() && d.get("op_date").is_none());
        assert!(
            mdm_core::time::parse_rfc3339(d["device_assigned_date"].as_str().unwrap()).is_some()
        );
        if d["profile_status"] != "empty" {
            assert!(d["profile_uuid"].is_string() && d["profile_assign_time"].is_string());
        }
        *families
            .entry(d["device_family"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert!(families.len() >= 4, "{families:?}");
    // The profile the generated devices already carry exists.
    let assigned = devices
        .iter()
        .find(|d| d["profile_status"] == "assigned")
        .expect("some devices start assigned");
    c.get_profile(assigned["profile_uuid"].as_str().unwrap())
        .await
        .unwrap();

    // The final cursor is exhausted for fetch.
    let err = c.fetch_devices(Some(&cursor), None).await.unwrap_err();
    assert_eq!(err.code(), Some(ApiError::ExhaustedCursor), "{err}");

    // Default and clamped page sizes.
    let page = c.fetch_devices(None, None).await.unwrap();
    assert_eq!(page.devices.len(), 100);
    assert!(page.more_to_follow);
    let page = c.fetch_devices(None, Some(5000)).await.unwrap();
    assert_eq!(page.devices.len(), 1000);

    let stats = sim.control().stats();
    assert_eq!(stats.devices_fetched, 2_500 + 100 + 1000);
    assert_eq!(stats.requests_by_path["/server/devices"], 6);
    assert_eq!(stats.sessions_issued, 1);
}

#[tokio::test]
async fn devices_follow_from_the_seed() {
    let a = start(SimConfig::new(300, 11));
    let b = start(SimConfig::new(300, 11));
    let other = start(SimConfig::new(300, 12));
    let http = HyperHttp::new();
    let page = |sim| {
        let http = &http;
        async move {
            let mut c = client(http, &SystemClock, sim);
            c.fetch_devices(None, Some(300)).await.unwrap().devices
        }
    };
    let (da, db, dother) = (page(&a).await, page(&b).await, page(&other).await);
    assert_eq!(da, db);
    let sa: HashSet<_> = da.iter().map(|d| serial(d).to_owned()).collect();
    assert!(dother.iter().all(|d| !sa.contains(serial(d))));
}

#[tokio::test]
async fn sync_reports_scripted_events() {
    let sim = start(SimConfig::new(50, 3));
    let ctl = sim.control();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    let (devices, cursor, _) = fetch_all(&mut c, None).await;
    let s: Vec<String> = devices.iter().map(|d| serial(d).to_owned()).collect();

    // Nothing happened yet.
    let (none, cursor) = sync_all(&mut c, &cursor, None).await;
    assert!(none.is_empty());

    let added = ctl.add_devices(3);
    let moved = ctl.move_in_devices(1);
    assert!(ctl.modify_device(&s[0], |d| d.asset_tag = Some("TAG-0".into())));
    assert!(ctl.delete_device(&s[1]));
    assert!(ctl.set_profile_status(&s[2], "removed"));
    assert!(!ctl.delete_device(&s[1]), "already gone");
    assert!(!ctl.modify_device("NOPE00000000", |_| {}));

    let page = c.sync_devices(&cursor, None).await.unwrap();
    assert!(!page.more_to_follow);
    let ops: Vec<(String, String)> = page
        .devices
        .iter()
        .map(|d| {
            assert!(
                mdm_core::time::parse_rfc3339(d["op_date"].as_str().unwrap()).is_some(),
                "op_date"
            );
            (
                serial(d).to_owned(),
                d["op_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut want: Vec<(String, String)> = added
        .iter()
        .map(|s| (s.clone(), "added".to_owned()))
        .collect();
    want.push((moved[0].clone(), "modified".into()));
    want.push((s[0].clone(), "modified".into()));
    want.push((s[1].clone(), "deleted".into()));
    want.push((s[2].clone(), "modified".into()));
    assert_eq!(ops, want);
    let by_serial: HashMap<&str, _> = page.devices.iter().map(|d| (serial(d), d)).collect();
    assert_eq!(by_serial[s[0].as_str()]["asset_tag"], "TAG-0");
    assert_eq!(by_serial[s[2].as_str()]["profile_status"], "removed");
    assert!(by_serial[s[2].as_str()].get("profile_uuid").is_none());
    assert_eq!(by_serial[added[0].as_str()]["profile_status"], "empty");

    // The cursor moved past them.
    let cursor = page.cursor.unwrap();
    let page = c.sync_devices(&cursor, None).await.unwrap();
    assert!(page.devices.is_empty() && !page.more_to_follow);
    let cursor = page.cursor.unwrap();

    // A sync cursor is exhausted for fetch.
    let err = c.fetch_devices(Some(&cursor), None).await.unwrap_err();
    assert_eq!(err.code(), Some(ApiError::ExhaustedCursor));

    // Sync pages.
    ctl.add_devices(5);
    let mut sizes = Vec::new();
    let mut cur = cursor;
    loop {
        let page = c.sync_devices(&cur, Some(2)).await.unwrap();
        sizes.push((page.devices.len(), page.more_to_follow));
        cur = page.cursor.unwrap();
        if !page.more_to_follow {
            break;
        }
    }
    assert_eq!(sizes, vec![(2, true), (2, true), (1, false)]);

    // A fresh fetch: the deleted device is gone, the new ones are there.
    let (devices, _, _) = fetch_all(&mut c, Some(1000)).await;
    let now: HashSet<&str> = devices.iter().map(serial).collect();
    assert_eq!(now.len(), 50 - 1 + 3 + 1 + 5);
    assert!(!now.contains(s[1].as_str()));
    assert!(added.iter().all(|a| now.contains(a.as_str())));
    assert_eq!(ctl.device_count(), 58);
}

#[tokio::test]
async fn events_during_a_fetch_show_up_in_the_following_sync() {
    let sim = start(SimConfig::new(30, 5));
    let ctl = sim.control();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    let first = c.fetch_devices(None, Some(10)).await.unwrap();
    let added = ctl.add_devices(1);
    let mut cursor = first.cursor.unwrap();
    loop {
        let p = c.fetch_devices(Some(&cursor), Some(10)).await.unwrap();
        cursor = p.cursor.unwrap();
        if !p.more_to_follow {
            break;
        }
    }
    let (events, _) = sync_all(&mut c, &cursor, None).await;
    assert_eq!(events.len(), 1);
    assert_eq!(serial(&events[0]), added[0]);
    assert_eq!(events[0]["op_type"], "added");
}

#[tokio::test]
async fn cursor_errors() {
    let sim = start(SimConfig {
        sync_limit: PageLimit {
            default: 1000,
            maximum: 5000,
        },
        ..SimConfig::new(20, 9)
    });
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    let (_, cursor, _) = fetch_all(&mut c, None).await;

    let code = |r: Result<_, mdm_core::dep::error::DepError>| r.unwrap_err().code();
    assert_eq!(
        code(c.sync_devices("", None).await),
        Some(ApiError::CursorRequired)
    );
    assert_eq!(
        code(c.sync_devices("not-a-cursor", None).await),
        Some(ApiError::InvalidCursor)
    );
    assert_eq!(
        code(c.fetch_devices(Some("not-a-cursor"), None).await),
        Some(ApiError::InvalidCursor)
    );
    // One character changed.
    let mut bytes = cursor.clone().into_bytes();
    bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(
        code(c.sync_devices(&tampered, None).await),
        Some(ApiError::InvalidCursor)
    );
    // A cursor from another simulator.
    let other = start(SimConfig::new(20, 10));
    let mut oc = client(&http, &SystemClock, &other);
    let (_, foreign, _) = fetch_all(&mut oc, None).await;
    assert_eq!(
        code(c.sync_devices(&foreign, None).await),
        Some(ApiError::InvalidCursor)
    );

    // Still fine after 6 days, expired after 8 (sessions expire too: the client
    // re-authenticates on its own).
    sim.control().advance_time(Duration::from_secs(6 * 86_400));
    c.sync_devices(&cursor, None).await.unwrap();
    sim.control().advance_time(Duration::from_secs(2 * 86_400));
    assert_eq!(
        code(c.sync_devices(&cursor, None).await),
        Some(ApiError::ExpiredCursor)
    );
    assert_eq!(sim.control().stats().sessions_issued, 3);
}

#[tokio::test]
async fn holds_250k_devices_and_serves_1000_device_pages_quickly() {
    let started = Instant::now();
    let sim = start(SimConfig::new(250_000, 42));
    assert!(started.elapsed() < Duration::from_secs(1));
    let ctl = sim.control();
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    c.session().await.unwrap();

    let t = Instant::now();
    let first = c.fetch_devices(None, Some(1000)).await.unwrap();
    let first_page = t.elapsed();
    assert_eq!(first.devices.len(), 1000);
    assert!(first.more_to_follow);

    // Jump near the end without walking the set.
    let t = Instant::now();
    let page = c
        .fetch_devices(Some(&ctl.fetch_cursor_at(249_000)), Some(1000))
        .await
        .unwrap();
    let last_page = t.elapsed();
    assert_eq!(page.devices.len(), 1000);
    assert!(!page.more_to_follow);
    let last = ctl.serial_at(249_999).unwrap();
    assert_eq!(serial(page.devices.last().unwrap()), last);
    eprintln!("1000-device pages: first {first_page:?}, last {last_page:?}");
    assert!(first_page < Duration::from_secs(2) && last_page < Duration::from_secs(2));

    // Lookups by serial work anywhere in the set.
    let details = c
        .device_details(&[last.as_str(), ctl.serial_at(123_456).unwrap().as_str()])
        .await
        .unwrap();
    assert!(details.values().all(|d| d["response_status"] == "SUCCESS"));

    // Assigning a profile to many devices stays cheap (compact overlays).
    let uuid = c
        .define_profile(
            &serde_json::json!({"profile_name": "bulk", "url": "https://mdm.example/enroll"}),
        )
        .await
        .unwrap()
        .profile_uuid;
    let serials: Vec<String> = (0..5_000).map(|i| ctl.serial_at(i).unwrap()).collect();
    for chunk in serials.chunks(1000) {
        let r = c.assign_profile(&uuid, chunk).await.unwrap();
        assert_eq!(r.devices.len(), 1000);
    }
    assert_eq!(ctl.event_count(), 5_000);
    assert_eq!(
        ctl.device(&serials[4_999]).unwrap().profile_status,
        "assigned"
    );
}

/// The whole 200,000-device walk through our client (about 200 pages).
#[tokio::test]
async fn full_fetch_of_200k_devices() {
    let sim = start(SimConfig::new(200_000, 1));
    let http = HyperHttp::new();
    let mut c = client(&http, &SystemClock, &sim);
    let t = Instant::now();
    let (devices, _, pages) = fetch_all(&mut c, Some(1000)).await;
    eprintln!("200k devices in {pages} pages: {:?}", t.elapsed());
    assert_eq!(pages, 200);
    assert_eq!(devices.len(), 200_000);
    assert_eq!(
        devices.iter().map(serial).collect::<HashSet<_>>().len(),
        200_000
    );
    assert_eq!(sim.control().stats().devices_fetched, 200_000);
}

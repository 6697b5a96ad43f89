//! Bodies: malformed JSON, every recorded DEP response of the test vectors, paging
//! requests and their fields, and the profile calls.

use super::*;

#[test]
fn malformed_json_answers() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    for (body, path) in [
        ("{not json", "/server/devices"),
        ("[]", "/server/devices"),
        (r#"{"devices": 5}"#, "/server/devices"),
        (r#"{"devices": [1]}"#, "/server/devices"),
        (r#"{"devices": [], "more_to_follow": 3}"#, "/server/devices"),
        (r#"{"devices": [], "cursor": 3}"#, "/server/devices"),
    ] {
        fake.borrow_mut().push(Reply::text(200, body));
        let err = block_on(c.fetch_devices(None, None)).unwrap_err();
        assert!(
            matches!(&err, DepError::BadJson { path: p, .. } if p == path),
            "{body}: {err:?}"
        );
    }
    fake.borrow_mut()
        .push(Reply::text(200, r#"{"devices": {"X": 1}}"#));
    assert!(matches!(
        block_on(c.assign_profile("P", &["X"])),
        Err(DepError::BadJson { .. })
    ));
    fake.borrow_mut()
        .push(Reply::text(200, r#"{"devices": {}}"#));
    assert!(matches!(
        block_on(c.define_profile(&json!({"profile_name": "x"}))),
        Err(DepError::BadJson { .. })
    ));

    for body in [
        json!({ "auth_session_token": "" }).to_string(),
        json!({ "auth_session_token": 5 }).to_string(),
        "<html>".into(),
        json!({ "auth_session_token": "bad\ntoken" }).to_string(),
    ] {
        fake.borrow_mut()
            .session_script
            .push_back(Reply::text(200, &body));
        let err = block_on(c.session()).unwrap_err();
        assert!(
            matches!(&err, DepError::BadJson { path, .. } if path == "/session"),
            "{body}: {err:?}"
        );
    }
    assert_eq!(
        c.session_token(),
        Some("sess-1"),
        "a failed renewal keeps nothing new"
    );
}

#[test]
fn every_recorded_response_parses() {
    let dir = format!(
        "{}/../../tests/vectors/micromdm-dep",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 5);

    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    for name in &names {
        fake.borrow_mut().push(Reply::raw(200, &vector(name)));
        match name.as_str() {
            "account_response.json" => {
                let a = block_on(c.account()).unwrap();
                assert_eq!(a, Account::parse(&vector(name)).unwrap());
                assert_eq!(a.server_name, "dev");
                assert_eq!(a.admin_id, "apple-dep@acme.co");
                assert_eq!(a.facilitator_id.as_deref(), Some("apple-dep@acme.co"));
                assert_eq!(a.org_name, "Acme, Inc");
                assert_eq!(a.org_email, "apple-dep@acme.co");
                assert_eq!(a.org_phone, "8775277454");
                assert!(a.org_address.starts_with("1600 Pennsylvania"));
                assert_eq!(a.org_id.as_deref(), Some("6666666"));
                assert!(a.org_id_hash.is_some());
                assert_eq!(a.org_type.as_deref(), Some("org"));
                assert_eq!(a.org_version.as_deref(), Some("v2"));
                assert_eq!(a.urls.len(), 18);
                assert!(a.extra.is_empty(), "{:?}", a.extra);
                let pd = a.urls.iter().find(|u| u.uri == "/profile/devices").unwrap();
                assert_eq!(pd.http_method, ["DELETE", "POST", "PUT"]);
                assert_eq!(pd.limit, None);
                let fetch = a.limit("/server/devices").unwrap();
                assert_eq!((fetch.default, fetch.maximum), (Some(1000), Some(5000)));
                assert_eq!(a.page_size("/server/devices", None), 1000);
                assert_eq!(a.page_size("/devices/sync", Some(9000)), 5000);
                assert_eq!(a.page_size("/devices/sync", Some(0)), 1);
                assert_eq!(a.page_size("/devices", None), 100);
                assert_eq!(a.page_size("/devices", Some(5000)), 1000);
                // Round trip keeps what Apple sent.
                let back = serde_json::to_value(&a).unwrap();
                let orig: Value = serde_json::from_slice(&vector(name)).unwrap();
                assert_eq!(back, orig);
            }
            "device_response.json" => {
                let p = block_on(c.fetch_devices(None, Some(1000))).unwrap();
                assert_eq!(p, DevicePage::parse(&vector(name)).unwrap());
                assert_eq!(p.devices.len(), 1);
                assert_eq!(p.devices[0]["serial_number"], "C02T0HL0GGC0");
                assert_eq!(p.devices[0]["profile_status"], "assigned");
                assert_eq!(p.devices[0]["device_family"], "Mac");
                assert_eq!(
                    p.cursor.as_deref(),
                    Some("MDowOjE1MzY0Mjc2OTg5MTQ6MTUzNjQyNzY5ODkxNDp0cnVlOjE1MzY0Mjc2OTg5MTQ")
                );
                assert!(!p.more_to_follow);
                assert_eq!(p.fetched_until.as_deref(), Some("2018-09-08T17:28:18Z"));
                let feed = p.into_feed_page();
                assert_eq!(feed.devices.len(), 1);
                assert!(feed.cursor.is_some());
            }
            "empty_sync_response.json" => {
                let p = block_on(c.sync_devices("MDowOjE1MzY0", None)).unwrap();
                assert!(p.devices.is_empty());
                assert!(!p.more_to_follow);
                assert_eq!(
                    p.cursor.as_deref(),
                    Some("MDowOjE1MzY0Mjg0ODkzMDc6MTUzNjQyODQ4OTMwNzp0cnVlOjE1MzY0Mjg0ODkzMDc")
                );
                assert_eq!(p.fetched_until.as_deref(), Some("2018-09-08T17:41:29Z"));
            }
            "device_details_response.json" => {
                let d = block_on(c.device_details(&["C02T0HL0GGC0"])).unwrap();
                assert_eq!(d.len(), 1);
                let mac = &d["C02T0HL0GGC0"];
                assert_eq!(mac["response_status"], "SUCCESS");
                assert_eq!(mac["profile_uuid"], "C1F123098EB5074580041E69883004C3");
                assert_eq!(
                    fake.borrow().seen.last().unwrap().body,
                    json!({ "devices": ["C02T0HL0GGC0"] })
                );
            }
            "fetch_profile_response.json" => {
                let p = block_on(c.get_profile("C1F123098EB5074580041E69883004C3")).unwrap();
                assert_eq!(p["profile_name"], "default");
                assert_eq!(p["url"], "https://mdm.acme.co/mdm/enroll");
                assert_eq!(p["skip_setup_items"], json!(["AppleID", "Android"]));
                assert_eq!(p["await_device_configured"], true);
                let seen = fake.borrow().seen.last().unwrap().clone();
                assert_eq!(seen.method, Method::GET);
                assert_eq!(
                    seen.path,
                    "/profile?profile_uuid=C1F123098EB5074580041E69883004C3"
                );
            }
            other => panic!("no test reads the recorded response {other}"),
        }
    }
}

#[test]
fn paging_requests_and_fields() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    fake.borrow_mut().push(Reply::json(
        200,
        json!({
            "devices": [{"serial_number": "A", "future_field": {"x": 1}}, {"serial_number": "B", "op_type": "added", "op_date": "2024-01-01T00:00:00Z"}],
            "cursor": "c1", "more_to_follow": "true", "fetched_until": "2024-01-01T00:00:00Z",
        }),
    ));
    fake.borrow_mut().push(Reply::json(
        200,
        json!({ "devices": null, "cursor": "c2", "more_to_follow": false }),
    ));
    fake.borrow_mut()
        .push(Reply::json(200, json!({ "cursor": "c3" })));

    let p1 = block_on(c.fetch_devices(None, Some(1000))).unwrap();
    assert!(p1.more_to_follow);
    assert_eq!(p1.devices.len(), 2);
    assert_eq!(p1.devices[0]["future_field"]["x"], 1);
    let p2 = block_on(c.fetch_devices(p1.cursor.as_deref(), None)).unwrap();
    assert_eq!(
        p2,
        DevicePage {
            devices: vec![],
            cursor: Some("c2".into()),
            more_to_follow: false,
            fetched_until: None
        }
    );
    let p3 = block_on(c.sync_devices("c2", Some(200))).unwrap();
    assert_eq!(p3.cursor.as_deref(), Some("c3"));

    let f = fake.borrow();
    let calls: Vec<_> = f
        .api_calls()
        .iter()
        .map(|s| (s.method.clone(), s.path.clone(), s.body.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            (
                Method::POST,
                "/server/devices".into(),
                json!({"limit": 1000})
            ),
            (
                Method::POST,
                "/server/devices".into(),
                json!({"cursor": "c1"})
            ),
            (
                Method::POST,
                "/devices/sync".into(),
                json!({"cursor": "c2", "limit": 200})
            ),
        ]
    );
}

#[test]
fn profile_calls() {
    let clock = ManualClock::at_unix(T0);
    let fake = RefCell::new(Fake::default());
    let http = http(&fake, &clock);
    let mut c = client(&http, &clock).with_session(with_session(&fake));
    let profile = json!({ "profile_name": "default", "url": "https://mdm.example/enroll", "devices": ["A", "B"] });
    fake.borrow_mut().push(Reply::json(
        200,
        json!({ "profile_uuid": "P1", "devices": { "A": "SUCCESS", "B": "NOT_ACCESSIBLE" } }),
    ));
    let defined = block_on(c.define_profile(&profile)).unwrap();
    assert_eq!(defined.profile_uuid, "P1");
    assert_eq!(defined.devices["A"], DeviceStatus::Success);
    assert_eq!(defined.devices["B"], DeviceStatus::NotAccessible);

    fake.borrow_mut().push(Reply::json(
        200,
        json!({
            "profile_uuid": "P1",
            "devices": { "A": "SUCCESS", "B": "FAILED", "C": "THROTTLED", "D": "SOMETHING_NEW" },
            "retry_after_seconds": 120,
        }),
    ));
    let assigned = block_on(c.assign_profile("P1", &["A", "B", "C", "D"])).unwrap();
    assert_eq!(assigned.profile_uuid.as_deref(), Some("P1"));
    assert_eq!(assigned.retry_after_seconds, Some(120));
    assert_eq!(assigned.devices["B"], DeviceStatus::Failed);
    assert_eq!(
        assigned.devices["D"],
        DeviceStatus::Other("SOMETHING_NEW".into())
    );
    assert_eq!(
        assigned
            .with_status(&DeviceStatus::Throttled)
            .collect::<Vec<_>>(),
        ["C"]
    );

    fake.borrow_mut()
        .push(Reply::json(200, json!({ "devices": { "A": "SUCCESS" } })));
    let serials = vec!["A".to_string()];
    let removed = block_on(c.remove_profile(&serials, Some("P1"))).unwrap();
    assert_eq!(removed.profile_uuid, None);
    assert_eq!(removed.devices["A"], DeviceStatus::Success);

    fake.borrow_mut().push(Reply::text(404, "\"NOT_FOUND\""));
    let err = block_on(c.assign_profile("nope", &["A"])).unwrap_err();
    assert_eq!(err.code(), Some(ApiError::NotFound));

    let f = fake.borrow();
    let calls: Vec<_> = f
        .api_calls()
        .iter()
        .map(|s| (s.method.clone(), s.path.clone(), s.body.clone()))
        .collect();
    assert_eq!(calls[0], (Method::POST, "/profile".into(), profile));
    assert_eq!(
        calls[1],
        (
            Method::POST,
            "/profile/devices".into(),
            json!({ "profile_uuid": "P1", "devices": ["A", "B", "C", "D"] })
        )
    );
    assert_eq!(
        calls[2],
        (
            Method::DELETE,
            "/profile/devices".into(),
            json!({ "devices": ["A"], "profile_uuid": "P1" })
        )
    );
    drop(f);

    // Refused locally: no request.
    let before = fake.borrow().seen.len();
    let many: Vec<String> = (0..=MAX_SERIALS).map(|i| format!("S{i}")).collect();
    assert!(matches!(
        block_on(c.assign_profile("P1", &many)),
        Err(DepError::InvalidRequest(_))
    ));
    assert!(matches!(
        block_on(c.define_profile(&json!(["not", "an", "object"]))),
        Err(DepError::InvalidRequest(_))
    ));
    assert_eq!(fake.borrow().seen.len(), before);
}

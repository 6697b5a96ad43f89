//! Retention: finished commands are purged after the configured days, a bounded amount
//! per tick.

use mdm_core::command;

use super::*;

fn tick(e: &E) -> Value {
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/internal/tick")
        .header("authorization", format!("Bearer {SYNC_KEY}"))
        .body(vec![])
        .unwrap();
    let resp = block_on(mdm_core::routes::sync::handle(e, req));
    assert_eq!(resp.status(), StatusCode::OK);
    serde_json::from_slice(resp.body()).unwrap()
}

#[test]
fn finished_commands_are_purged_after_the_retention_period() {
    let e = env();
    let d = iphone(&e);
    let old: Vec<String> = (0..5)
        .map(|_| queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#))
        .collect();
    let mut cur = d.idle().unwrap().0;
    for u in &old[..4] {
        assert_eq!(&cur, u);
        cur = d.ack(u).unwrap().0;
    }
    assert_eq!(cur, old[4]);
    d.not_now(&old[4]);
    let cancelled = queue(&e, IPHONE, r#"{"RequestType":"SecurityInfo"}"#);
    admin_call(
        &e,
        Method::DELETE,
        &format!("{}/{cancelled}", commands_path(IPHONE)),
        "",
    );

    // Not yet due.
    let b = tick(&e);
    assert_eq!(b["commands"]["purged"], 0, "{b}");
    e.clock.advance(Duration::from_secs(20 * 86400));
    let recent = queue(&e, IPHONE, r#"{"RequestType":"CertificateList"}"#);
    assert_eq!(d.idle().unwrap().0, old[4]);
    d.ack(&old[4]);
    assert_eq!(d.idle().unwrap().0, recent);
    d.ack(&recent);
    e.clock.advance(Duration::from_secs(11 * 86400));
    let b = tick(&e);
    assert_eq!(
        b["commands"]["purged"], 5,
        "4 answered + 1 cancelled, 31 days old: {b}"
    );
    assert_eq!(b["commands"]["behind"], 2);
    for u in old[..4].iter().chain([&cancelled]) {
        assert_eq!(
            get(&e, &format!("{}/{u}", commands_path(IPHONE))).0,
            StatusCode::NOT_FOUND
        );
    }
    for u in [&old[4], &recent] {
        assert_eq!(
            get(&e, &format!("{}/{u}", commands_path(IPHONE))).0,
            StatusCode::OK
        );
    }
    let (_, h) = get(&e, &commands_path(IPHONE));
    let listed: Vec<&str> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![recent.as_str(), old[4].as_str()]);
    // The floor moved over the purged slots: the history ends without a cursor.
    assert_eq!(h["next"], Value::Null);
    // Nothing of the purged ones is left in the store.
    let left: Vec<String> = e
        .store
        .backend()
        .dump()
        .into_iter()
        .filter(|(k, v)| k.contains(&old[0]) || String::from_utf8_lossy(v).contains(&old[0]))
        .map(|(k, _)| k)
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Configurable days; a bad value is reported, not fatal.
    e.vars.set("command_retention_days", "5");
    e.clock.advance(Duration::from_secs(6 * 86400));
    assert_eq!(tick(&e)["commands"]["purged"], 2);
    e.vars.set("command_retention_days", "0");
    assert!(
        tick(&e)["commands"]["error"]
            .as_str()
            .unwrap()
            .contains("command_retention_days")
    );
}

#[test]
fn purge_work_per_tick_is_bounded() {
    let e = env();
    let d = iphone(&e);
    for _ in 0..12 {
        let u = queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
        assert_eq!(d.idle().unwrap().0, u);
        d.ack(&u);
    }
    let now = mdmdevice::START + 100 * 86400;
    for (purged, behind) in [(5, 7), (5, 2), (2, 0), (0, 0)] {
        let r = block_on(command::retention::purge_expired(&e.store, now, 86400, 5)).unwrap();
        assert_eq!((r.purged, r.behind), (purged, behind));
    }
    let (_, h) = get(&e, &commands_path(IPHONE));
    assert_eq!(h["items"], json!([]));
    assert_eq!(h["next"], Value::Null);
}

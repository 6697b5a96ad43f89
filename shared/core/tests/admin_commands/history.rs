//! A channel's command history: newest first, filtered by status, request type and
//! date, paginated.

use mdm_core::Clock;

use super::*;

#[test]
fn history_is_newest_first_filtered_and_paginated() {
    let e = env();
    let d = iphone(&e);
    let t0 = e.clock.unix_seconds();
    let mut uuids = Vec::new();
    for i in 0..23 {
        let rt = ["ProfileList", "SecurityInfo", "CertificateList"][i % 3];
        uuids.push(queue(&e, IPHONE, &format!(r#"{{"RequestType":"{rt}"}}"#)));
        e.clock.advance(Duration::from_secs(60));
    }
    // Answer the first ten: acks, two errors, one NotNow; cancel one.
    let mut cur = d.idle().unwrap().0;
    for (i, u) in uuids.iter().enumerate().take(10) {
        assert_eq!(&cur, u);
        let next = match i {
            3 | 7 => d.report("Error", Some(&cur), ""),
            5 => d.not_now(&cur),
            _ => d.ack(&cur),
        };
        cur = next.unwrap().0;
    }
    let (s, _) = admin_call(
        &e,
        Method::DELETE,
        &format!("{}/{}", commands_path(IPHONE), uuids[20]),
        "",
    );
    assert_eq!(s, StatusCode::OK);

    // Everything, newest first, 7 at a time.
    let mut got = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &next {
            Some(n) => format!("?limit=7&cursor={n}"),
            None => "?limit=7".into(),
        };
        let (s, b) = get(&e, &format!("{}{q}", commands_path(IPHONE)));
        assert_eq!(s, StatusCode::OK, "{b}");
        pages += 1;
        got.extend(
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["command_uuid"].as_str().unwrap().to_owned()),
        );
        match b["next"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => break,
        }
    }
    let mut want = uuids.clone();
    want.reverse();
    assert_eq!(got, want);
    assert_eq!(pages, 4);

    let list = |q: &str| -> Vec<String> {
        let (s, b) = get(&e, &format!("{}?{q}", commands_path(IPHONE)));
        assert_eq!(s, StatusCode::OK, "{q}: {b}");
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["command_uuid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        list("status=error"),
        vec![uuids[7].clone(), uuids[3].clone()]
    );
    assert_eq!(list("status=not_now"), vec![uuids[5].clone()]);
    assert_eq!(list("status=cancelled"), vec![uuids[20].clone()]);
    assert_eq!(list("status=acknowledged").len(), 7);
    // In flight counts as queued (no answer yet).
    assert_eq!(list("status=queued").len(), 23 - 10 - 1);
    assert_eq!(list("request_type=SecurityInfo").len(), 8);
    assert_eq!(
        list("request_type=SecurityInfo&status=error"),
        vec![uuids[7].clone()]
    );
    // Date range on enqueue time: minutes 5 to 8.
    let from = t0 + 5 * 60;
    let to = t0 + 8 * 60;
    assert_eq!(
        list(&format!("from={from}&to={to}")),
        vec![
            uuids[8].clone(),
            uuids[7].clone(),
            uuids[6].clone(),
            uuids[5].clone()
        ]
    );
    let from_rfc = mdm_core::time::format_rfc3339(from as i64);
    assert_eq!(list(&format!("from={from_rfc}")).len(), 18);
    assert_eq!(
        list(&format!("from={from_rfc}&limit=3&request_type=ProfileList")).len(),
        3
    );
    for bad in [
        "status=done".to_string(),
        "limit=0".into(),
        "limit=5000".into(),
        "from=yesterday".into(),
        "cursor=x".into(),
        "colour=red".into(),
        format!("from={to}&to={from}"),
    ] {
        let (s, b) = get(&e, &format!("{}?{bad}", commands_path(IPHONE)));
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {b}");
    }
}

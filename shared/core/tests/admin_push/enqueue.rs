//! Pushes caused by queueing: a command pushes the device (a second one shares the push,
//! the follow-up goes out at the tick), a failed push never fails the enqueue (a
//! TokenUpdate makes an unreachable device pushable again), bulk enqueues leave the
//! pushes to the tick.

use super::*;

#[test]
fn queueing_a_command_pushes_the_device() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e, IPHONE);
    assert_eq!(apns.count(), 0, "enrolling pushes nothing");

    let b = enqueue(&e, IPHONE);
    assert_eq!(b["status"], "queued");
    assert_eq!(b["push"]["outcome"], "delivered", "{b}");
    assert_eq!(apns.count(), 1);
    let (uri, headers, body) = apns.last();
    assert_eq!(uri, format!("https://apns.test:2197/3/device/{TOKEN_HEX}"));
    assert_eq!(headers["apns-topic"], TOPIC);
    assert_eq!(headers["apns-push-type"], "mdm");
    assert_eq!(headers["apns-priority"], "10");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, json!({ "mdm": magic(IPHONE) }));

    // A second command right after shares that push; a follow-up is owed.
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "coalesced", "{b}");
    assert!(b["push"]["followup_at"].is_u64());
    assert_eq!(apns.count(), 1);

    // The push routes and the device view.
    let (s, st) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(
        (st["attempts"].as_u64(), st["delivered"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(st["reachable"], true);
    assert_eq!(st["last_reason"], "enqueued");
    let (_, dev) = admin_call(&e, Method::GET, &format!("/api/v1/devices/{IPHONE}"), None);
    assert_eq!(dev["push"]["delivered"], 1, "{dev}");
    let text = serde_json::to_string(&st).unwrap() + &dev.to_string();
    assert!(!text.contains(TOKEN_HEX) && !text.contains(&magic(IPHONE)));

    // The scheduler sends the follow-up once the window has passed.
    e.clock.advance(Duration::from_secs(61));
    let report = tick(&e);
    assert_eq!(report["push"]["delivered"], 1, "{report}");
    assert_eq!(apns.count(), 2);

    // On demand.
    let (s, b) = admin_call(
        &e,
        Method::POST,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["outcome"], "delivered");
    assert_eq!(b["push"]["last_reason"], "admin");
    assert_eq!(apns.count(), 3);
    let (s, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(
        (s, c["apns"]["state"].as_str()),
        (StatusCode::OK, Some("unknown"))
    );
}

#[test]
fn a_failed_push_never_fails_the_enqueue() {
    let apns = FakeApns::default();
    let e = env(&apns);
    let id = enroll(&e, IPHONE);

    // 503: queued anyway, retried by the scheduler.
    apns.then(503, "ServiceUnavailable");
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "retry_scheduled", "{b}");
    assert_eq!(b["push"]["status"], 503);
    let retry_at = b["push"]["retry_at"].as_u64().unwrap();
    // Enqueues wait for the retry.
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "retry_pending", "{b}");
    assert_eq!(apns.count(), 1);
    e.clock.set_unix(retry_at + 60);
    let report = tick(&e);
    assert_eq!(report["push"]["delivered"], 1, "{report}");
    assert_eq!(apns.count(), 2);

    // 403: the certificate is marked failing; the command is still queued.
    e.clock.advance(Duration::from_secs(60));
    apns.then(403, "BadCertificate");
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "certificate_rejected", "{b}");
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(c["apns"]["state"], "failing");
    assert_eq!(c["apns"]["last_failure_reason"], "BadCertificate");

    // 410: unreachable until the next TokenUpdate.
    e.clock.advance(Duration::from_secs(60));
    apns.then(410, "Unregistered");
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "unreachable", "{b}");
    e.clock.advance(Duration::from_secs(60));
    let b = enqueue(&e, IPHONE);
    assert_eq!(
        (b["push"]["outcome"].as_str(), b["push"]["why"].as_str()),
        (Some("skipped"), Some("unreachable")),
        "{b}"
    );
    let (_, st) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(st["reachable"], false, "{st}");
    let pushes = apns.count();
    // The same token again: the check-in clears the mark.
    token_update(&e, id, IPHONE);
    let (_, st) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(st["reachable"], true, "{st}");
    e.clock.advance(Duration::from_secs(60));
    let b = enqueue(&e, IPHONE);
    assert_eq!(b["push"]["outcome"], "delivered", "{b}");
    assert_eq!(apns.count(), pushes + 1);
    // Every command was queued.
    let (_, h) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/commands?status=queued"),
        None,
    );
    assert_eq!(h["items"].as_array().unwrap().len(), 6, "{h}");
    // A healthy push marks the certificate ok again.
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(c["apns"]["state"], "ok");
}

#[test]
fn bulk_enqueue_leaves_the_pushes_to_the_tick() {
    let apns = FakeApns::default();
    let e = env(&apns);
    enroll(&e, IPHONE);
    enroll(&e, IPAD);
    let (s, b) = admin_call(
        &e,
        Method::POST,
        "/api/v1/commands",
        Some(json!({
            "devices": [IPHONE, IPAD, "NOT-ENROLLED"],
            "command": {"RequestType": "SecurityInfo"},
        })),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["queued"], 2);
    assert_eq!(b["results"][0]["push"], "deferred");
    assert_eq!(b["results"][1]["push"], "deferred");
    assert!(b["results"][2].get("push").is_none());
    assert_eq!(apns.count(), 0, "nothing pushed inline");
    let report = tick(&e);
    assert_eq!(report["push"]["delivered"], 2, "{report}");
    assert_eq!(apns.count(), 2);
    // Nothing owed any more.
    e.clock.advance(Duration::from_secs(300));
    let report = tick(&e);
    assert_eq!(report["push"]["pushed"], 0, "{report}");
    assert_eq!(apns.count(), 2);
}

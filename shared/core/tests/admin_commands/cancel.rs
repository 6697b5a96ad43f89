//! The queue bound (409 `queue_full`) and cancelling a command: queued, deferred, in
//! flight, answered, unknown.

use super::*;

#[test]
fn queue_bound_is_409_queue_full_and_cancel_makes_room() {
    let e = env();
    let d = iphone(&e);
    e.vars.set("command_queue_limit", "3");
    let a = queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    let b = queue(&e, IPHONE, r#"{"RequestType":"SecurityInfo"}"#);
    queue(&e, IPHONE, r#"{"RequestType":"CertificateList"}"#);
    let (s, body) = post(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(body["error"], "queue_full");
    // Cancelling frees a slot at once, before the device passes the entry.
    let (s, _) = admin_call(
        &e,
        Method::DELETE,
        &format!("{}/{b}", commands_path(IPHONE)),
        "",
    );
    assert_eq!(s, StatusCode::OK);
    queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(
        post(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#).0,
        StatusCode::CONFLICT
    );
    // Answers free slots too.
    assert_eq!(d.idle().unwrap().0, a);
    d.ack(&a);
    queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(
        post(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#).0,
        StatusCode::CONFLICT
    );
    e.vars.set("command_queue_limit", "lots");
    let (s, body) = post(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("command_queue_limit")
    );
}

#[test]
fn cancel_queued_deferred_in_flight_answered_unknown() {
    let e = env();
    let d = iphone(&e);
    let path = |u: &str| format!("{}/{u}", commands_path(IPHONE));
    let a = queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    let b = queue(&e, IPHONE, r#"{"RequestType":"SecurityInfo"}"#);
    let c = queue(&e, IPHONE, r#"{"RequestType":"CertificateList"}"#);
    let x = queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    // Queued, never delivered: cancelled, never sent.
    let (s, v) = admin_call(&e, Method::DELETE, &path(&b), "");
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert_eq!(
        admin_call(&e, Method::DELETE, &path(&b), "").0,
        StatusCode::CONFLICT
    );
    // In flight: 409.
    assert_eq!(d.idle().unwrap().0, a);
    let (s, v) = admin_call(&e, Method::DELETE, &path(&a), "");
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(v["message"].as_str().unwrap().contains("awaiting"));
    // Deferred with NotNow: cancellable, and not sent after the next Idle.
    assert_eq!(d.not_now(&a).unwrap().0, c);
    assert_eq!(
        admin_call(&e, Method::DELETE, &path(&a), "").0,
        StatusCode::OK
    );
    assert_eq!(d.ack(&c).unwrap().0, x);
    // Answered: 409.
    assert_eq!(
        admin_call(&e, Method::DELETE, &path(&c), "").0,
        StatusCode::CONFLICT
    );
    assert_eq!(d.ack(&x), None);
    assert_eq!(d.idle(), None, "cancelled commands never come back");
    assert_eq!(
        admin_call(&e, Method::DELETE, &path("never"), "").0,
        StatusCode::NOT_FOUND
    );
    let (_, v) = get(&e, &path(&a));
    assert_eq!(v["status"], "cancelled");
    assert!(v["cancelled_at"].is_string());
}

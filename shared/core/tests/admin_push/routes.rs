//! The push routes refuse what they cannot serve: unknown devices, a device without a
//! push token yet, callers without the admin key.

use super::*;

#[test]
fn push_routes_refuse_unknown_and_unpushable_devices() {
    let apns = FakeApns::default();
    let e = env(&apns);
    for method in [Method::POST, Method::GET] {
        let (s, b) = admin_call(&e, method, "/api/v1/devices/NOPE/push", None);
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }
    // Authenticated, no TokenUpdate yet: known, but nothing to push to.
    pending(&e, IPHONE);
    authenticate(&e, identity(IPHONE), IPHONE);
    let (s, b) = admin_call(
        &e,
        Method::POST,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, b) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/push"),
        None,
    );
    assert_eq!(
        (s, &b["last_push_at"]),
        (StatusCode::OK, &Value::Null),
        "{b}"
    );
    assert_eq!(apns.count(), 0);
    // Without the admin key nothing is revealed.
    let req = http::Request::builder()
        .method(Method::GET)
        .uri("/api/v1/push/certificate")
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        block_on(admin::handle(&e, req)).status(),
        StatusCode::UNAUTHORIZED
    );
}

//! The check-in trust anchor the CA provides: a check-in needs an identity from our CA.

use super::*;

fn checkin_signed(e: &E, body: &[u8], key: &KeyPair, cert: &Certificate) -> Response {
    let sig = sign_data(
        body,
        key,
        cert,
        &[],
        &SignOptions {
            detached: true,
            ..SignOptions::default()
        },
    )
    .unwrap();
    let h = base64::engine::general_purpose::STANDARD.encode(sig);
    block_on(checkin::handle(
        e,
        mdmdevice::device_request(Method::PUT, "/mdm/checkin", body, Some(&h)),
    ))
}

#[test]
fn check_in_needs_an_identity_from_our_ca() {
    let e = env();
    let body = mdmdevice::xml(
        "<key>MessageType</key><string>Authenticate</string><key>UDID</key><string>SCEP-UDID</string>\
         <key>Topic</key><string>com.apple.mgmt.External.x</string><key>SerialNumber</key><string>SN-SCEP</string>\
         <key>ProductName</key><string>iPhone14,5</string><key>OSVersion</key><string>17.2</string>",
    );
    // No CA yet: nobody is enrolled.
    let stranger = mdmdevice::Identity::self_signed();
    let r = block_on(checkin::handle(
        &e,
        mdmdevice::device_request(
            Method::PUT,
            "/mdm/checkin",
            &body,
            Some(&stranger.sign(&body)),
        ),
    ));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        text(&r).contains("no enrollment has been made"),
        "{}",
        text(&r)
    );

    let (_, ra) = get_ca_cert(&e);
    // Identities not from our CA: the self-signed one, the fixture CA's one.
    for id in [
        mdmdevice::Identity::self_signed(),
        mdmdevice::Identity::ca_issued(),
    ] {
        let r = block_on(checkin::handle(
            &e,
            mdmdevice::device_request(Method::PUT, "/mdm/checkin", &body, Some(&id.sign(&body))),
        ));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(text(&r).contains("SCEP CA"), "{}", text(&r));
    }
    // The identity our SCEP issued enrolls (after the enrollment request Authenticate
    // must match, see enroll_checkin.rs).
    let cert = enroll(&e, &ra, "SCEP-UDID");
    let request = mdm_core::enroll::pending::PendingEnrollment::new(
        "SCEP-UDID",
        "SN-SCEP",
        "com.apple.mgmt.External.x",
        e.clock.unix_seconds(),
    );
    block_on(mdm_core::enroll::pending::put(&e.store, &request)).unwrap();
    let r = checkin_signed(&e, &body, client_key(), &cert);
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
}

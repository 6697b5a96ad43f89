//! Who may report: a bound identity acts only for its device, reports are authenticated
//! like check-ins, an unbound certificate must come from our CA, unsigned parts of a
//! certificate make no new identity, an expired identity is refused.

use super::*;

/// A device's own, bound identity cannot act for another enrolled device: an Idle naming
/// the other device's UDID is refused, its queued command stays where it is, and nothing
/// stored changes (the binding, the record and the queue head are read together now).
#[test]
fn a_bound_identity_cannot_poll_for_another_device() {
    let e = env();
    let victim = enrolled(&e);
    let other_udid = "00008110-000B2D3F4F99512F";
    let attacker = Device::new(&e, Identity::ca_issued(), other_udid);
    attacker.enroll("iPhone15,2", "17.4", "");
    queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let before = mdmdevice::dump(&e);
    let r = block_on(commands::handle(
        &e,
        device_request(
            Method::PUT,
            "/mdm/connect",
            &body,
            Some(&attacker.id.sign(&body)),
        ),
    ));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(r.body()).contains("not bound"));
    assert_eq!(mdmdevice::dump(&e), before);
    // The victim still gets its command.
    let r = block_on(commands::handle(
        &e,
        device_request(
            Method::PUT,
            "/mdm/connect",
            &body,
            Some(&victim.id.sign(&body)),
        ),
    ));
    assert_eq!(r.status(), StatusCode::OK);
    assert!(String::from_utf8_lossy(r.body()).contains("ProfileList"));
}

#[test]
fn reports_are_authenticated_like_check_ins() {
    let e = env();
    let d = enrolled(&e);
    queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let send = |sig: Option<&str>, body: &[u8]| {
        block_on(commands::handle(
            &e,
            device_request(Method::PUT, "/mdm/connect", body, sig),
        ))
    };
    let before = mdmdevice::dump(&e);
    for (what, sig) in [
        ("none", None),
        ("garbage", Some("Zm9v".to_string())),
        ("another body's", Some(d.id.sign(b"<plist><dict/></plist>"))),
    ] {
        let r = send(sig.as_deref(), &body);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(mdmdevice::dump(&e), before, "{what}");
    }
    // Signed by a valid identity that is not this device's.
    let stranger = Identity::ca_issued();
    let r = send(Some(&stranger.sign(&body)), &body);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(r.body()).contains("not bound"));
    assert_eq!(mdmdevice::dump(&e), before);
    // Not a report.
    let junk = xml("<key>Status</key><string>Done</string>");
    let r = send(Some(&d.id.sign(&junk)), &junk);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Too large.
    let big = vec![b' '; commands::MAX_REPORT_BODY + 1];
    assert_eq!(
        send(Some("AAAA"), &big).status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // After CheckOut the device gets nothing.
    assert_eq!(d.checkin("CheckOut", "").status(), StatusCode::OK);
    let r = d.connect_raw(&body);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// The CA check is made for a certificate the server has not bound; a bound one passed it
/// when it was bound, so polls do not repeat it.
#[test]
fn an_unbound_certificate_must_come_from_our_ca() {
    let e = env();
    let d = Device::new(&e, Identity::ca_issued(), UDID);
    d.enroll("iPhone15,2", "17.4", "");
    // From now on only the SCEP CA is ours (the self-signed test anchor is not).
    let ca = std::fs::read(format!(
        "{}/tests/fixtures/device-identity/scepca.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    block_on(e.store.set(mdm_core::mdm::signature::SCEP_CA_CERT_KEY, &ca)).unwrap();
    let idle = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    assert_eq!(d.connect_raw(&idle).status(), StatusCode::OK);
    let before = mdmdevice::dump(&e);
    let outsider = Device::new(&e, Identity::self_signed(), UDID);
    let r = outsider.connect_raw(&idle);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let reason = String::from_utf8_lossy(r.body()).to_string();
    assert!(
        !reason.contains("not bound"),
        "the CA check comes first: {reason}"
    );
    assert_eq!(mdmdevice::dump(&e), before);
}

/// Only what the CA signed identifies a certificate: the same certificate with its
/// (unsigned) outer signatureAlgorithm encoded another way is refused, so it cannot pose
/// as a new identity (RFC 5280 §4.1.1.2), and a binding made under the old key (the
/// hash of the whole DER) moves to the new one on first use.
#[test]
fn an_unsigned_part_of_a_certificate_makes_no_new_identity() {
    let e = env();
    let d = enrolled(&e);
    let variant = d.id.outer_algorithm_reencoded();
    assert_ne!(variant.cert_der, d.id.cert_der);
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let before = mdmdevice::dump(&e);
    let r = block_on(commands::handle(
        &e,
        device_request(
            Method::PUT,
            "/mdm/connect",
            &body,
            Some(&variant.sign(&body)),
        ),
    ));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(r.body()).contains("signatureAlgorithm"),
        "{:?}",
        String::from_utf8_lossy(r.body())
    );
    assert_eq!(mdmdevice::dump(&e), before);
    let forged = Device::new(&e, variant, "00008110-000FFFFFFFFFFFFF");
    let r = forged.checkin("Authenticate", "");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(mdmdevice::dump(&e), before);

    // A binding stored under the whole-DER hash (before bindings were keyed on what the
    // CA signed) keeps working, and moves.
    block_on(e.store.delete(&format!("certb:{}", d.id.cert_hash()))).unwrap();
    block_on(
        e.store
            .set(&format!("certb:{}", d.id.der_hash()), UDID.as_bytes()),
    )
    .unwrap();
    assert_eq!(d.idle(), None);
    assert_eq!(
        block_on(e.store.get(&format!("certb:{}", d.id.cert_hash()))).unwrap(),
        Some(UDID.as_bytes().to_vec())
    );
    assert_eq!(
        block_on(e.store.get(&format!("certb:{}", d.id.der_hash()))).unwrap(),
        None
    );
}

/// An expired identity acts for nothing, on the check-in and the command endpoint alike
/// (the device renews before the end, signing the renewal with the valid identity).
#[test]
fn an_expired_identity_is_refused() {
    let e = env();
    let d = enrolled(&e);
    assert_eq!(d.idle(), None);
    let end =
        d.id.cert
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs();
    e.clock
        .advance(std::time::Duration::from_secs(end + 1 - mdmdevice::START));
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let before = mdmdevice::dump(&e);
    let r = d.connect_raw(&body);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(r.body()).contains("expired"));
    let r = d.checkin("TokenUpdate", "");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(r.body()).contains("expired"));
    assert_eq!(mdmdevice::dump(&e), before);
}

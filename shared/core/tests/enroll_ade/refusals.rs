//! Every refusal answers its reason and stores nothing.

use super::*;

#[test]
fn every_refusal_answers_its_reason_and_stores_nothing() {
    let s = server();
    // Devices in other states.
    s.sync_device(
        json!({ "serial_number": "UNASSIGNED1", "profile_status": "empty", "op_type": "added" }),
    );
    s.sync_device(assigned("REMOVED0001", UUID));
    s.sync_device(json!({ "serial_number": "REMOVED0001", "op_type": "deleted", "op_date": "2027-02-01T00:00:00Z" }));
    s.sync_device(assigned("FOREIGNPROF", "0000FFFF0000FFFF0000FFFF0000FFFF"));
    s.add_profile(
        2,
        "AAAA0000BBBB1111CCCC2222DDDD3333",
        json!({ "name": "With user", "platform": "ios", "user_affinity": "with_user" }),
    );
    s.sync_device(assigned("WITHUSER001", "AAAA0000BBBB1111CCCC2222DDDD3333"));
    // Let the CA and signing identity exist: refusals must not depend on their absence.
    assert_eq!(
        s.enroll_request(signed_info(&s, Some("17.2"), false))
            .status(),
        StatusCode::OK
    );
    block_on(pending::remove(&s.e.store, UDID)).unwrap();

    let dev = s.apple.device("6001A957-6FC5-4856-8C5E-DC2E32C61CB9", true);
    let info = machine_info(UDID, SERIAL, Some("17.2"), false);
    let good = dev.sign(&info, Hash::Sha256, Form::Der, &[]);
    let mut tampered = good.clone();
    let at = tampered
        .windows(SERIAL.len())
        .position(|w| w == SERIAL.as_bytes())
        .unwrap();
    tampered[at] ^= 0x01;
    let foreign = FakeCa::new("Apple iPhone Device CA").device("X", true);
    let serial_body = |serial: &str| {
        dev.sign(
            &machine_info(UDID, serial, Some("17.2"), false),
            Hash::Sha1,
            Form::Ber,
            &[],
        )
    };
    let mut no_udid = plist::Dictionary::new();
    no_udid.insert("SERIAL".into(), SERIAL.into());
    let mut no_udid_xml = Vec::new();
    plist::to_writer_xml(&mut no_udid_xml, &plist::Value::Dictionary(no_udid)).unwrap();
    let ber = serial_body(SERIAL);

    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "unsigned plist",
            info.clone(),
            StatusCode::FORBIDDEN,
            "signature.missing",
        ),
        (
            "empty body",
            vec![],
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "garbage",
            b"\x30\x03garbage".to_vec(),
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "truncated BER",
            ber[..ber.len() - 40].to_vec(),
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "trailing bytes",
            [good.clone(), vec![0]].concat(),
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "bad signature",
            tampered,
            StatusCode::FORBIDDEN,
            "signature.invalid",
        ),
        (
            "wrong CA",
            foreign.sign(&info, Hash::Sha256, Form::Ber, &[]),
            StatusCode::FORBIDDEN,
            "signature.untrusted",
        ),
        (
            "content not a plist",
            dev.sign(b"hello", Hash::Sha256, Form::Der, &[]),
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "no UDID",
            dev.sign(&no_udid_xml, Hash::Sha256, Form::Der, &[]),
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "too large",
            vec![0x30; 64 * 1024 + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
        ),
        (
            "unknown serial",
            serial_body("NOTOURS0001"),
            StatusCode::FORBIDDEN,
            "device.unknown",
        ),
        (
            "unassigned serial",
            serial_body("UNASSIGNED1"),
            StatusCode::FORBIDDEN,
            "device.not_assigned",
        ),
        (
            "removed serial",
            serial_body("REMOVED0001"),
            StatusCode::FORBIDDEN,
            "device.removed",
        ),
        (
            "profile not ours",
            serial_body("FOREIGNPROF"),
            StatusCode::FORBIDDEN,
            "device.not_assigned",
        ),
        (
            "user sign-in profile",
            serial_body("WITHUSER001"),
            StatusCode::FORBIDDEN,
            "user.sign_in_required",
        ),
    ];
    let before = s.dump();
    for (name, body, status, code) in cases {
        let r = s.enroll_request(body);
        assert_eq!(r.status(), status, "{name}: {}", text(&r));
        assert_eq!(r.headers()["content-type"], "application/json", "{name}");
        let doc = json_body(&r);
        assert_eq!(doc["code"], code, "{name}: {doc}");
        assert!(doc["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(
            fingerprint(&s.dump()),
            fingerprint(&before),
            "{name} stored something"
        );
    }
    // Asked for XML: the same refusal as a plist.
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/mdm/enroll/ade")
        .header("accept", "application/xml")
        .body(serial_body("NOTOURS0001"))
        .unwrap();
    let r = block_on(mdm_core::routes::checkin::handle(&s.e, req));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["content-type"], "application/xml");
    let v: plist::Value = plist::from_bytes(r.body()).unwrap();
    assert_eq!(
        v.as_dictionary().unwrap()["code"].as_string(),
        Some("device.unknown")
    );
    // Only POST.
    let req = http::Request::builder()
        .method(Method::GET)
        .uri("/mdm/enroll/ade")
        .body(vec![])
        .unwrap();
    let r = block_on(mdm_core::routes::checkin::handle(&s.e, req));
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

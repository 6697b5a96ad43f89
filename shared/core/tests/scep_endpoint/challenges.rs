//! Challenges: one-time, expiring and required, redeemed once under concurrency, and
//! issued by the admin API for manual enrollment.

use super::*;

#[test]
fn challenges_are_one_time_expire_and_are_required() {
    let e = env();
    let (_, ra) = get_ca_cert(&e);
    let aes = EnvelopeCipher::Aes128Cbc;
    let sha = DigestAlgorithm::Sha256;

    let c = new_challenge(&e, "REUSE");
    let first = pkcs_req(&ra, Some(&c), "first", aes, sha);
    assert_eq!(
        cert_rep(&post(&e, first.msg.der.clone()), &first, &ra).status,
        PkiStatus::Success
    );
    // The same challenge again (a new request, and the very same request replayed).
    let again = pkcs_req(&ra, Some(&c), "again", aes, sha);
    assert_failure(
        &cert_rep(&post(&e, again.msg.der.clone()), &again, &ra),
        FailInfo::BadRequest,
    );
    assert_failure(
        &cert_rep(&post(&e, first.msg.der.clone()), &first, &ra),
        FailInfo::BadRequest,
    );

    // Expired: 15 minutes and one second later.
    let c = new_challenge(&e, "LATE");
    e.clock.advance(std::time::Duration::from_secs(901));
    let late = pkcs_req(&ra, Some(&c), "late", aes, sha);
    assert_failure(
        &cert_rep(&post(&e, late.msg.der.clone()), &late, &ra),
        FailInfo::BadRequest,
    );

    // Just inside the 15 minutes.
    let c = new_challenge(&e, "INTIME");
    e.clock.advance(std::time::Duration::from_secs(899));
    let in_time = pkcs_req(&ra, Some(&c), "in time", aes, sha);
    assert_eq!(
        cert_rep(&post(&e, in_time.msg.der.clone()), &in_time, &ra).status,
        PkiStatus::Success
    );

    // No challenge, an unknown one, an empty one.
    for ch in [None, Some("not-a-challenge-we-issued"), Some("")] {
        let req = pkcs_req(&ra, ch, "nochallenge", aes, sha);
        assert_failure(
            &cert_rep(&post(&e, req.msg.der.clone()), &req, &ra),
            FailInfo::BadRequest,
        );
    }
    // Nothing recorded for the refused ones, and no challenge in the store.
    let dump = dump(&e);
    assert!(
        !dump
            .iter()
            .any(|(k, v)| k.contains(&c) || v.windows(c.len()).any(|w| w == c.as_bytes()))
    );
    assert_eq!(
        block_on(issued::issued_to_device(&e.store, "LATE")).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn concurrent_redemption_of_one_challenge_succeeds_once() {
    for defects in [Defects::strict(), Defects::spin_sqlite(), Defects::redis()] {
        let store = Store::new(MemoryBackend::with_defects(defects));
        for round in 0..20 {
            let c = block_on(challenge::issue(&store, 100, &grant("RACE"))).unwrap();
            let results: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| s.spawn(|| block_on(challenge::redeem(&store, 101, &c))))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let wins = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "{defects:?} round {round}: {results:?}");
            assert!(
                results
                    .iter()
                    .all(|r| r.is_ok() || *r == Err(ChallengeError::Used))
            );
        }
    }
}

#[test]
fn admin_issues_challenges_for_manual_enrollment() {
    let e = env();
    let (s, b) = admin_call(
        &e,
        Method::POST,
        "/api/v1/enrollment/challenges",
        &json!({"device_id": "MANUAL-1", "purpose": "manual"}).to_string(),
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let c = b["challenge"].as_str().unwrap().to_owned();
    assert!(c.len() >= 43);
    assert_eq!(b["expires_in"], 900);
    assert_eq!(
        b["expires_at"],
        mdm_core::time::format_rfc3339(START as i64 + 900)
    );
    let (_, ra) = get_ca_cert(&e);
    let req = pkcs_req(
        &ra,
        Some(&c),
        "manual",
        EnvelopeCipher::Aes128Cbc,
        DigestAlgorithm::Sha256,
    );
    let rep = cert_rep(&post(&e, req.msg.der.clone()), &req, &ra);
    let cert = rep.certificate.unwrap();
    let rec = block_on(issued::issued_for(&e.store, &cert.serial_hex()))
        .unwrap()
        .unwrap();
    assert_eq!(
        (rec.device_id.as_str(), rec.purpose.as_str()),
        ("MANUAL-1", "manual")
    );

    for bad in [
        json!({}),
        json!({"device_id": ""}),
        json!({"device_id": "x", "purpose": "Not Valid!"}),
        json!({"device_id": "x".repeat(200)}),
        json!({"device_id": "x", "extra": 1}),
        // The server's own purposes: an identity from such a challenge could pose as a
        // renewal or an enrollment request.
        json!({"device_id": "x", "purpose": "renewal"}),
        json!({"device_id": "x", "purpose": "ade"}),
        json!({"device_id": "x", "purpose": "adde"}),
    ] {
        let (s, b) = admin_call(
            &e,
            Method::POST,
            "/api/v1/enrollment/challenges",
            &bad.to_string(),
        );
        assert!(s.is_client_error(), "{bad}: {s} {b}");
    }
    // Default purpose.
    let (s, b) = admin_call(
        &e,
        Method::POST,
        "/api/v1/enrollment/challenges",
        &json!({"device_id": "MANUAL-2"}).to_string(),
    );
    assert_eq!(
        (s, b["purpose"].as_str()),
        (StatusCode::CREATED, Some("manual"))
    );
    // Without the admin key: 401.
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/enrollment/challenges")
        .body(br#"{"device_id":"x"}"#.to_vec())
        .unwrap();
    let r = block_on(mdm_core::routes::admin::handle(&e, req));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

//! Renewal signed with an identity from our CA (foreign or expired ones fail), and
//! CertPoll.

use super::*;

fn renewal_req(
    ra: &Certificate,
    signer_key: &'static KeyPair,
    signer: &Certificate,
    new_key: &KeyPair,
) -> Req {
    let msg = build_pkcs_req(
        &csr(new_key, "renewed", None, DigestAlgorithm::Sha256),
        signer_key,
        signer,
        ra,
        &RequestOptions {
            message_type: MessageType::RenewalReq,
            transaction_id: "renewal",
            cipher: EnvelopeCipher::Aes256Cbc,
            digest: DigestAlgorithm::Sha256,
        },
    )
    .unwrap();
    Req {
        msg,
        key: signer_key,
    }
}

#[test]
fn renewal_with_our_certificate_succeeds_and_foreign_or_expired_fail() {
    let e = env();
    let (ca, ra) = get_ca_cert(&e);
    let old = enroll(&e, &ra, "RENEW-ME");
    // Issued, but never used to enroll: not renewed.
    let req = renewal_req(&ra, client_key(), &old, other_key());
    assert_failure(
        &cert_rep(&post(&e, req.msg.der.clone()), &req, &ra),
        FailInfo::BadCertId,
    );
    // The identity of an enrolled device.
    let (tbs, _) = mdm_core::mdm::signature::identity_hashes(old.der()).unwrap();
    let rec = mdm_core::mdm::enrollment_record::EnrollmentRecord {
        device_id: "RENEW-ME".into(),
        enrolled: true,
        cert_hashes: vec![tbs.clone()],
        ..Default::default()
    };
    block_on(
        e.store
            .set("enr:RENEW-ME", &serde_json::to_vec(&rec).unwrap()),
    )
    .unwrap();
    block_on(e.store.set(&format!("certb:{tbs}"), b"RENEW-ME")).unwrap();

    let req = renewal_req(&ra, client_key(), &old, other_key());
    let rep = cert_rep(&post(&e, req.msg.der.clone()), &req, &ra);
    assert_eq!(rep.status, PkiStatus::Success);
    let new = rep.certificate.unwrap();
    new.verify_issued_by(&ca).unwrap();
    assert!(new.matches_key(other_key()), "issued for the CSR's key");
    assert_eq!(
        new.common_name().as_deref(),
        Some("RENEW-ME"),
        "named by the CA, not the request"
    );
    let rec = block_on(issued::issued_for(&e.store, &new.serial_hex()))
        .unwrap()
        .unwrap();
    assert_eq!(rec.device_id, "RENEW-ME", "renewal stays with the device");
    assert_eq!(rec.purpose, "renewal");
    assert_eq!(rec.renewed_from.as_deref(), Some(old.serial_hex().as_str()));
    assert_eq!(
        block_on(issued::issued_to_device(&e.store, "RENEW-ME")).unwrap(),
        vec![old.serial_hex(), new.serial_hex()]
    );

    // Signed by a self-signed certificate, and by another CA's certificate.
    let foreign_ca = CertificateAuthority::generate("Foreign CA", START as i64).unwrap();
    let foreign = foreign_ca
        .issue(
            &mdm_crypto::Csr::from_der(&csr(
                client_key(),
                "foreign",
                None,
                DigestAlgorithm::Sha256,
            ))
            .unwrap(),
            START as i64,
            &mdm_crypto::IssueOptions::default(),
        )
        .unwrap();
    for signer in [self_cert(client_key(), "self"), foreign] {
        let req = renewal_req(&ra, client_key(), &signer, other_key());
        assert_failure(
            &cert_rep(&post(&e, req.msg.der.clone()), &req, &ra),
            FailInfo::BadRequest,
        );
    }

    // Ours, but expired.
    e.clock
        .advance(std::time::Duration::from_secs(366 * DAY as u64));
    let req = renewal_req(&ra, client_key(), &old, other_key());
    assert_failure(
        &cert_rep(&post(&e, req.msg.der.clone()), &req, &ra),
        FailInfo::BadCertId,
    );
}

#[test]
fn cert_poll_is_answered_bad_cert_id() {
    let e = env();
    let (_, ra) = get_ca_cert(&e);
    let key = client_key();
    let msg = build_pkcs_req(
        b"\x30\x00",
        key,
        &self_cert(key, "poller"),
        &ra,
        &RequestOptions {
            message_type: MessageType::CertPoll,
            transaction_id: "poll",
            cipher: EnvelopeCipher::Aes128Cbc,
            digest: DigestAlgorithm::Sha256,
        },
    )
    .unwrap();
    let req = Req { msg, key };
    assert_failure(
        &cert_rep(&post(&e, req.msg.der.clone()), &req, &ra),
        FailInfo::BadCertId,
    );
}

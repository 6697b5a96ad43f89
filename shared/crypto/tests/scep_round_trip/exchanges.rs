//! The exchanges that work: PKCSReq with every cipher and digest, the reply cipher,
//! RenewalReq signed by the issued certificate, and FAILURE and PENDING answers.

use super::*;

/// The content cipher OID of the CertRep's envelope.
fn reply_envelope_oid(reply: &[u8]) -> String {
    let signed = verify_signed_data(reply, None).unwrap();
    let ci = cms::content_info::ContentInfo::from_der(signed.content().unwrap()).unwrap();
    let env = ci
        .content
        .decode_as::<cms::enveloped_data::EnvelopedData>()
        .unwrap();
    env.encrypted_content.content_enc_alg.oid.to_string()
}

fn cipher_oid(c: EnvelopeCipher) -> &'static str {
    match c {
        EnvelopeCipher::Aes128Cbc => "2.16.840.1.101.3.4.1.2",
        EnvelopeCipher::Aes192Cbc => "2.16.840.1.101.3.4.1.22",
        EnvelopeCipher::Aes256Cbc => "2.16.840.1.101.3.4.1.42",
        EnvelopeCipher::DesEde3Cbc => "1.2.840.113549.3.7",
        EnvelopeCipher::DesCbc => "1.3.14.3.2.7",
    }
}

const ALL_CIPHERS: [EnvelopeCipher; 5] = [
    EnvelopeCipher::Aes128Cbc,
    EnvelopeCipher::Aes192Cbc,
    EnvelopeCipher::Aes256Cbc,
    EnvelopeCipher::DesEde3Cbc,
    EnvelopeCipher::DesCbc,
];

#[test]
fn pkcsreq_round_trips_with_every_cipher_and_digest() {
    let ca = test_ca();
    let key = generated_key();
    for cipher in ALL_CIPHERS {
        for digest in [
            DigestAlgorithm::Sha1,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha512,
        ] {
            let ctx = format!("{cipher:?}/{digest:?}");
            let (me, csr_der, built, tid) = device_request(key, cipher, digest);

            // Server side.
            let req = parse_pki_message(&built.der).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(req.message_type(), MessageType::PkcsReq, "{ctx}");
            assert_eq!(req.transaction_id(), tid, "{ctx}");
            assert_eq!(req.sender_nonce(), built.sender_nonce, "{ctx}");
            assert_eq!(req.sender_nonce().len(), 16, "{ctx}");
            assert_eq!(req.digest_algorithm(), digest, "{ctx}");
            assert_eq!(req.envelope_cipher(), Some(cipher), "{ctx}");
            assert_eq!(req.signer_certificate(), &me, "{ctx}");
            assert!(req.signer_is_self_signed(), "{ctx}");
            let csr = req
                .decrypt_csr(ca.ra_key())
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(csr.der(), csr_der, "{ctx}");
            assert_eq!(csr.challenge_password(), Some(CHALLENGE), "{ctx}");
            assert_eq!(csr.signature_digest(), digest, "{ctx}");
            assert_eq!(csr.key_bits(), 2048, "{ctx}");
            assert_eq!(
                csr.common_name().as_deref(),
                Some("MDM Identity 00008030-001A2B3C4D5E802E")
            );
            let issued = ca.issue(&csr, NOW, &IssueOptions::default()).unwrap();
            let reply = success(ca, &req, &issued);
            assert_eq!(
                reply_envelope_oid(&reply),
                cipher_oid(reply_cipher(Some(cipher))),
                "{ctx}"
            );

            // Client side.
            let rep = parse_cert_rep(&reply, key).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(rep.status, PkiStatus::Success, "{ctx}");
            assert_eq!(rep.fail_info, None);
            assert_eq!(rep.transaction_id, tid);
            assert_eq!(rep.recipient_nonce, built.sender_nonce);
            assert_ne!(rep.sender_nonce.as_deref(), Some(&built.sender_nonce[..]));
            assert_eq!(&rep.signer, ca.ra_certificate());
            let got = rep.certificate.unwrap();
            assert_eq!(got, issued);
            assert!(got.matches_key(key));
            got.verify_issued_by(ca.ca_certificate()).unwrap();
        }
    }
}

#[test]
fn reply_cipher_mirrors_aes_and_3des_and_upgrades_des() {
    for c in [
        EnvelopeCipher::Aes128Cbc,
        EnvelopeCipher::Aes192Cbc,
        EnvelopeCipher::Aes256Cbc,
        EnvelopeCipher::DesEde3Cbc,
    ] {
        assert_eq!(reply_cipher(Some(c)), c);
    }
    assert_eq!(
        reply_cipher(Some(EnvelopeCipher::DesCbc)),
        EnvelopeCipher::DesEde3Cbc
    );
    assert_eq!(reply_cipher(None), EnvelopeCipher::Aes128Cbc);
}

#[test]
fn renewal_request_signed_by_the_issued_certificate() {
    let ca = test_ca();
    let key = generated_key();
    // First enrolment.
    let (_, _, built, _) = device_request(key, EnvelopeCipher::Aes128Cbc, DigestAlgorithm::Sha256);
    let req = parse_pki_message(&built.der).unwrap();
    let csr = req.decrypt_csr(ca.ra_key()).unwrap();
    let current = ca.issue(&csr, NOW, &IssueOptions::default()).unwrap();

    // Renewal with a new key, signed by the current identity, without a challenge.
    let new_key = other_key();
    let new_csr = build_csr(new_key, &CsrParams::new("MDM Identity renewed")).unwrap();
    for (cipher, digest) in [
        (EnvelopeCipher::Aes256Cbc, DigestAlgorithm::Sha256),
        (EnvelopeCipher::DesEde3Cbc, DigestAlgorithm::Sha1),
        (EnvelopeCipher::DesCbc, DigestAlgorithm::Sha1),
        (EnvelopeCipher::Aes128Cbc, DigestAlgorithm::Sha512),
    ] {
        let renewal = build_pkcs_req(
            &new_csr,
            key,
            &current,
            ca.ra_certificate(),
            &RequestOptions {
                message_type: MessageType::RenewalReq,
                transaction_id: "renewal-1",
                cipher,
                digest,
            },
        )
        .unwrap();
        let req = parse_pki_message(&renewal.der).unwrap();
        assert_eq!(req.message_type(), MessageType::RenewalReq);
        assert!(!req.signer_is_self_signed());
        ca.verify_issued(req.signer_certificate()).unwrap();
        let csr = req.decrypt_csr(ca.ra_key()).unwrap();
        assert_eq!(csr.challenge_password(), None);
        let renewed = ca.issue(&csr, NOW + 100, &IssueOptions::default()).unwrap();
        let reply = success(ca, &req, &renewed);
        // Encrypted to the signer (old identity): the old key opens it, the new one not.
        let rep = parse_cert_rep(&reply, key).unwrap();
        let got = rep.certificate.unwrap();
        assert!(got.matches_key(new_key));
        assert_eq!(got.common_name().as_deref(), Some("MDM Identity renewed"));
        assert_eq!(
            parse_cert_rep(&reply, new_key).unwrap_err(),
            ScepError::DecryptFailed
        );
    }

    // A RenewalReq signed by a certificate our CA never issued is the caller's to refuse.
    let stranger = self_signed_certificate(key, "stranger", NOW, NOW + 3600).unwrap();
    let forged = build_pkcs_req(
        &new_csr,
        key,
        &stranger,
        ca.ra_certificate(),
        &RequestOptions {
            message_type: MessageType::RenewalReq,
            transaction_id: "renewal-2",
            cipher: EnvelopeCipher::Aes128Cbc,
            digest: DigestAlgorithm::Sha256,
        },
    )
    .unwrap();
    let req = parse_pki_message(&forged.der).unwrap();
    assert!(ca.verify_issued(req.signer_certificate()).is_err());
    let other_ca = CertificateAuthority::generate("Other CA", NOW).unwrap();
    assert!(other_ca.verify_issued(&current).is_err());
}

#[test]
fn failure_and_pending_answers() {
    let ca = test_ca();
    let key = generated_key();
    let (_, _, built, tid) =
        device_request(key, EnvelopeCipher::Aes128Cbc, DigestAlgorithm::Sha256);
    let req = parse_pki_message(&built.der).unwrap();
    for fi in [
        FailInfo::BadAlg,
        FailInfo::BadMessageCheck,
        FailInfo::BadRequest,
        FailInfo::BadTime,
        FailInfo::BadCertId,
    ] {
        let der = cert_rep_failure(
            &req,
            fi,
            ca.ra_key(),
            ca.ra_certificate(),
            ca.ca_certificate(),
        )
        .unwrap();
        let rep = parse_cert_rep(&der, key).unwrap();
        assert_eq!(rep.status, PkiStatus::Failure);
        assert_eq!(rep.fail_info, Some(fi));
        assert_eq!(rep.transaction_id, tid);
        assert_eq!(rep.recipient_nonce, built.sender_nonce);
        assert!(rep.certificate.is_none());
        // No envelope: the content is empty.
        assert_eq!(
            verify_signed_data(&der, None).unwrap().content(),
            Some(&[][..])
        );
    }
    let der =
        cert_rep_pending(&req, ca.ra_key(), ca.ra_certificate(), ca.ca_certificate()).unwrap();
    let rep = parse_cert_rep(&der, key).unwrap();
    assert_eq!(rep.status, PkiStatus::Pending);
    assert_eq!(rep.fail_info, None);
    assert_eq!(rep.recipient_nonce, built.sender_nonce);
    assert!(rep.certificate.is_none());

    // The device then polls with the same transactionID.
    let me = req.signer_certificate().clone();
    let poll = build_pkcs_req(
        b"\x30\x00",
        key,
        &me,
        ca.ra_certificate(),
        &RequestOptions {
            message_type: MessageType::CertPoll,
            transaction_id: &tid,
            cipher: EnvelopeCipher::Aes128Cbc,
            digest: DigestAlgorithm::Sha256,
        },
    )
    .unwrap();
    let poll = parse_pki_message(&poll.der).unwrap();
    assert_eq!(poll.message_type(), MessageType::CertPoll);
    assert_eq!(poll.transaction_id(), tid);
    assert_eq!(
        poll.decrypt_csr(ca.ra_key()).unwrap_err(),
        ScepError::UnexpectedMessageType(MessageType::CertPoll)
    );
    assert_eq!(poll.decrypt_content(ca.ra_key()).unwrap(), b"\x30\x00");

    // Typed errors map onto failInfo.
    assert_eq!(
        ScepError::BadSignature.fail_info(),
        FailInfo::BadMessageCheck
    );
    assert_eq!(
        ScepError::MessageDigestMismatch.fail_info(),
        FailInfo::BadMessageCheck
    );
    assert_eq!(
        ScepError::CsrSignature.fail_info(),
        FailInfo::BadMessageCheck
    );
    assert_eq!(
        ScepError::UnsupportedAlgorithm("x".into()).fail_info(),
        FailInfo::BadAlg
    );
    assert_eq!(ScepError::DecryptFailed.fail_info(), FailInfo::BadRequest);
}

//! SCEP both ways with our own client side: every cipher and digest, RenewalReq, CertPoll,
//! FAILURE and PENDING, and the ways a request can be wrong (tampered, mis-addressed,
//! truncated, garbage) — each must be a typed error, never a panic.

mod common;

use common::*;
use der::{Decode, Encode};
use mdm_crypto::{
    BuiltRequest, Certificate, CertificateAuthority, CsrParams, DigestAlgorithm, EnvelopeCipher,
    FailInfo, IssueOptions, KeyPair, MessageType, PkiStatus, RequestOptions, ScepError,
    SignOptions, SignedAttribute, build_csr, build_pkcs_req, cert_rep_failure, cert_rep_pending,
    cert_rep_success, parse_cert_rep, parse_pki_message, reply_cipher, self_signed_certificate,
    sign_data, transaction_id_for, verify_signed_data,
};

const CHALLENGE: &str = "one-time-secret-42";

/// A device: its key, a self-signed certificate over it, and a CSR with the challenge.
fn device_request(
    key: &KeyPair,
    cipher: EnvelopeCipher,
    digest: DigestAlgorithm,
) -> (Certificate, Vec<u8>, BuiltRequest, String) {
    let csr = build_csr(
        key,
        &CsrParams {
            organization: Some("Test MDM"),
            challenge: Some(CHALLENGE),
            digest,
            ..CsrParams::new("MDM Identity 00008030-001A2B3C4D5E802E")
        },
    )
    .unwrap();
    let me = self_signed_certificate(key, "MDM Identity", NOW - 300, NOW + 86_400).unwrap();
    let tid = transaction_id_for(&key.public_key_der().unwrap());
    let req = build_pkcs_req(
        &csr,
        key,
        &me,
        test_ca().ra_certificate(),
        &RequestOptions {
            message_type: MessageType::PkcsReq,
            transaction_id: &tid,
            cipher,
            digest,
        },
    )
    .unwrap();
    (me, csr, req, tid)
}

fn success(
    ca: &CertificateAuthority,
    req: &mdm_crypto::PkiMessage,
    issued: &Certificate,
) -> Vec<u8> {
    cert_rep_success(
        req,
        issued,
        ca.ra_key(),
        ca.ra_certificate(),
        ca.ca_certificate(),
    )
    .unwrap()
}

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

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn tampered_requests_are_typed_errors() {
    let key = generated_key();
    let (_, _, built, _) = device_request(key, EnvelopeCipher::Aes128Cbc, DigestAlgorithm::Sha256);
    let der = &built.der;
    let signed = verify_signed_data(der, None).unwrap();
    let content = signed.content().unwrap().to_vec();

    // A byte of the content (inside the encrypted CSR) changed.
    let mut t = der.clone();
    let at = find(der, &content) + content.len() - 20;
    t[at] ^= 1;
    assert_eq!(
        parse_pki_message(&t).unwrap_err(),
        ScepError::MessageDigestMismatch
    );

    // The messageDigest attribute changed.
    let digest = sha2_256(&content);
    let mut t = der.clone();
    t[find(der, &digest) + 5] ^= 0x80;
    assert_eq!(
        parse_pki_message(&t).unwrap_err(),
        ScepError::MessageDigestMismatch
    );

    // A signed attribute changed (transactionID): the signature breaks.
    let mut t = der.clone();
    let tid = transaction_id_for(&key.public_key_der().unwrap());
    t[find(der, tid.as_bytes())] ^= 1;
    assert_eq!(parse_pki_message(&t).unwrap_err(), ScepError::BadSignature);

    // The signature replaced by one another key made (same length).
    let (_, _, other, _) = device_request(
        other_key(),
        EnvelopeCipher::Aes128Cbc,
        DigestAlgorithm::Sha256,
    );
    let ours = signature_of(der);
    let theirs = signature_of(&other.der);
    let mut t = der.clone();
    let at = find(der, &ours);
    t[at..at + ours.len()].copy_from_slice(&theirs);
    assert_eq!(parse_pki_message(&t).unwrap_err(), ScepError::BadSignature);

    // The signer certificate left out.
    let signer_der = signed.signer().der().to_vec();
    let stripped = remove_certificate(der, &signer_der);
    assert_eq!(
        parse_pki_message(&stripped).unwrap_err(),
        ScepError::SignerCertificateMissing
    );

    // Signing with a key that is not the certificate's is refused up front.
    let me = self_signed_certificate(key, "me", NOW, NOW + 60).unwrap();
    assert!(sign_data(b"x", other_key(), &me, &[], &SignOptions::default()).is_err());
}

/// The SignerInfo's signature value (the last 256-byte OCTET STRING).
fn signature_of(der: &[u8]) -> Vec<u8> {
    let ci = cms::content_info::ContentInfo::from_der(der).unwrap();
    let sd = ci
        .content
        .decode_as::<cms::signed_data::SignedData>()
        .unwrap();
    sd.signer_infos
        .0
        .get(0)
        .unwrap()
        .signature
        .as_bytes()
        .to_vec()
}

/// Re-encodes the SignedData without the certificate `cert`.
fn remove_certificate(der: &[u8], cert: &[u8]) -> Vec<u8> {
    let ci = cms::content_info::ContentInfo::from_der(der).unwrap();
    let mut sd = ci
        .content
        .decode_as::<cms::signed_data::SignedData>()
        .unwrap();
    let certs: Vec<_> = sd
        .certificates
        .take()
        .unwrap()
        .0
        .into_vec()
        .into_iter()
        .filter(|c| c.to_der().unwrap() != cert)
        .collect();
    sd.certificates = if certs.is_empty() {
        None
    } else {
        Some(cms::signed_data::CertificateSet::try_from(certs).unwrap())
    };
    cms::content_info::ContentInfo {
        content_type: ci.content_type,
        content: der::Any::encode_from(&sd).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn sha2_256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

#[test]
fn bad_csr_and_wrong_recipient() {
    let ca = test_ca();
    let key = generated_key();
    let me = self_signed_certificate(key, "me", NOW, NOW + 600).unwrap();
    let opts = RequestOptions {
        message_type: MessageType::PkcsReq,
        transaction_id: "t-1",
        cipher: EnvelopeCipher::Aes128Cbc,
        digest: DigestAlgorithm::Sha256,
    };
    let csr = build_csr(key, &CsrParams::new("Honest Device")).unwrap();

    // The CSR's subject altered after signing: its self-signature no longer verifies.
    let mut bad = csr.clone();
    bad[find(&csr, b"Honest")] = b'h';
    let req = build_pkcs_req(&bad, key, &me, ca.ra_certificate(), &opts).unwrap();
    let req = parse_pki_message(&req.der).unwrap();
    assert_eq!(
        req.decrypt_csr(ca.ra_key()).unwrap_err(),
        ScepError::CsrSignature
    );

    // Not a CSR at all inside the envelope.
    let req = build_pkcs_req(
        b"\x30\x03\x02\x01\x00",
        key,
        &me,
        ca.ra_certificate(),
        &opts,
    )
    .unwrap();
    let req = parse_pki_message(&req.der).unwrap();
    assert!(matches!(
        req.decrypt_csr(ca.ra_key()).unwrap_err(),
        ScepError::InvalidCsr(_)
    ));

    // Encrypted to another certificate (the CA's own, or a stranger's).
    for recipient in [ca.ca_certificate().clone(), me.clone()] {
        let req = build_pkcs_req(&csr, key, &me, &recipient, &opts).unwrap();
        let req = parse_pki_message(&req.der).unwrap();
        assert_eq!(
            req.decrypt_csr(ca.ra_key()).unwrap_err(),
            ScepError::DecryptFailed
        );
    }
    // ...which the CA key would open: the RA split is the caller's to keep.
    let req = build_pkcs_req(&csr, key, &me, ca.ca_certificate(), &opts).unwrap();
    let req = parse_pki_message(&req.der).unwrap();
    assert!(req.decrypt_csr(ca.ca_key()).is_ok());
}

/// Re-signs `content` with hand-picked SCEP attributes.
fn with_attributes(content: &[u8], attrs: Vec<SignedAttribute>) -> Vec<u8> {
    let key = generated_key();
    let me = self_signed_certificate(key, "me", NOW, NOW + 600).unwrap();
    sign_data(
        content,
        key,
        &me,
        &[],
        &SignOptions {
            extra_attributes: attrs,
            ..SignOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn scep_attributes_are_checked() {
    let key = generated_key();
    let (_, _, built, _) = device_request(key, EnvelopeCipher::Aes128Cbc, DigestAlgorithm::Sha256);
    let env = verify_signed_data(&built.der, None)
        .unwrap()
        .content()
        .unwrap()
        .to_vec();
    let mt = |v: &str| SignedAttribute::printable_string("2.16.840.1.113733.1.9.2", v).unwrap();
    let tid = |v: &str| SignedAttribute::printable_string("2.16.840.1.113733.1.9.7", v).unwrap();
    let nonce =
        |n: usize| SignedAttribute::octet_string("2.16.840.1.113733.1.9.5", &vec![7; n]).unwrap();

    let ok = with_attributes(&env, vec![mt("19"), tid("abc"), nonce(16)]);
    let msg = parse_pki_message(&ok).unwrap();
    assert_eq!(msg.transaction_id(), "abc");
    assert!(msg.decrypt_csr(test_ca().ra_key()).is_ok());

    for (attrs, expect) in [
        (
            vec![mt("21"), tid("a"), nonce(16)],
            ScepError::UnsupportedMessageType("21 (GetCert)".into()),
        ),
        (
            vec![mt("22"), tid("a"), nonce(16)],
            ScepError::UnsupportedMessageType("22 (GetCrl)".into()),
        ),
        (
            vec![mt("3"), tid("a"), nonce(16)],
            ScepError::UnsupportedMessageType("3 (CertRep)".into()),
        ),
        (
            vec![mt("99"), tid("a"), nonce(16)],
            ScepError::UnsupportedMessageType("\"99\"".into()),
        ),
        (
            vec![tid("a"), nonce(16)],
            ScepError::MissingAttribute("messageType"),
        ),
        (
            vec![mt("19"), nonce(16)],
            ScepError::MissingAttribute("transactionID"),
        ),
        (
            vec![mt("19"), tid("a")],
            ScepError::MissingAttribute("senderNonce"),
        ),
    ] {
        assert_eq!(
            parse_pki_message(&with_attributes(&env, attrs)).unwrap_err(),
            expect
        );
    }
    assert!(matches!(
        parse_pki_message(&with_attributes(&env, vec![mt("19"), tid("a"), nonce(4)])),
        Err(ScepError::InvalidAttribute("senderNonce", _))
    ));
    let wrong_type = SignedAttribute::octet_string("2.16.840.1.113733.1.9.2", b"19").unwrap();
    assert!(matches!(
        parse_pki_message(&with_attributes(
            &env,
            vec![wrong_type, tid("a"), nonce(16)]
        )),
        Err(ScepError::InvalidAttribute("messageType", _))
    ));
    // No content at all.
    assert!(matches!(
        parse_pki_message(&with_attributes(b"", vec![mt("19"), tid("a"), nonce(16)])),
        Err(ScepError::Malformed(_))
    ));
    // Content that is not an EnvelopedData.
    assert!(matches!(
        parse_pki_message(&with_attributes(
            b"hello",
            vec![mt("19"), tid("a"), nonce(16)]
        )),
        Err(ScepError::Malformed(_))
    ));
    // A CertRep is not a request, and a request is not a CertRep.
    let pending = cert_rep_pending(
        &msg,
        test_ca().ra_key(),
        test_ca().ra_certificate(),
        test_ca().ca_certificate(),
    )
    .unwrap();
    assert!(matches!(
        parse_pki_message(&pending),
        Err(ScepError::UnsupportedMessageType(_))
    ));
    assert_eq!(
        parse_cert_rep(&built.der, key).unwrap_err(),
        ScepError::UnexpectedMessageType(MessageType::PkcsReq)
    );
    // Builders refuse what they cannot make.
    let me = msg.signer_certificate().clone();
    let bad = |mt, tid: &str| {
        build_pkcs_req(
            b"x",
            key,
            &me,
            &me,
            &RequestOptions {
                message_type: mt,
                transaction_id: tid,
                cipher: EnvelopeCipher::Aes128Cbc,
                digest: DigestAlgorithm::Sha256,
            },
        )
        .is_err()
    };
    assert!(bad(MessageType::GetCert, "a"));
    assert!(bad(MessageType::PkcsReq, ""));
    assert!(bad(MessageType::PkcsReq, "not printable: é"));
}

#[test]
fn truncated_and_garbage_input_never_panics() {
    let ca = test_ca();
    let key = generated_key();
    let (_, _, built, _) = device_request(key, EnvelopeCipher::DesEde3Cbc, DigestAlgorithm::Sha1);
    let der = &built.der;
    for n in 0..der.len() {
        assert!(parse_pki_message(&der[..n]).is_err(), "prefix of {n} bytes");
    }
    let req = parse_pki_message(der).unwrap();
    let csr = req.decrypt_csr(ca.ra_key()).unwrap();
    let issued = ca.issue(&csr, NOW, &IssueOptions::default()).unwrap();
    let reply = success(ca, &req, &issued);
    for n in 0..reply.len() {
        assert!(
            parse_cert_rep(&reply[..n], key).is_err(),
            "prefix of {n} bytes"
        );
    }
    // Trailing bytes are refused too.
    let mut long = der.clone();
    long.push(0);
    assert!(matches!(
        parse_pki_message(&long),
        Err(ScepError::Malformed(_))
    ));

    // Every single-byte change: an error or (outside what is signed) still a message.
    for i in 0..der.len() {
        let mut d = der.clone();
        d[i] ^= 0x5a;
        if let Ok(m) = parse_pki_message(&d) {
            let _ = m.decrypt_csr(ca.ra_key());
        }
    }

    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x30],
        vec![0x30, 0x80],
        vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        b"-----BEGIN PKCS7-----".to_vec(),
        vec![0x30, 0x03, 0x06, 0x01, 0x00],
        std::iter::repeat_n([0x30u8, 0x80], 500).flatten().collect(),
    ];
    // A certificate, and an EnvelopedData, are not SignedData.
    garbage.push(ca.ca_certificate().der().to_vec());
    let env = verify_signed_data(der, None)
        .unwrap()
        .content()
        .unwrap()
        .to_vec();
    assert!(matches!(
        parse_pki_message(&env),
        Err(ScepError::NotSignedData(ct)) if ct == "1.2.840.113549.1.7.3"
    ));
    let mut state = 0x1234_5678_u32;
    for len in [1, 2, 10, 100, 1000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        garbage.push(bytes.clone());
        let mut seq = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
        seq.extend(bytes);
        garbage.push(seq);
    }
    for g in &garbage {
        assert!(
            parse_pki_message(g).is_err(),
            "{:02x?}",
            &g[..g.len().min(16)]
        );
        assert!(parse_cert_rep(g, key).is_err());
    }
    let huge = vec![0x30; mdm_crypto::MAX_MESSAGE_LEN + 1];
    assert_eq!(
        parse_pki_message(&huge).unwrap_err(),
        ScepError::TooLarge(mdm_crypto::MAX_MESSAGE_LEN + 1)
    );
}

#[test]
fn errors_are_readable_and_never_leak_the_challenge() {
    let key = generated_key();
    let (_, _, built, _) = device_request(key, EnvelopeCipher::Aes128Cbc, DigestAlgorithm::Sha256);
    let req = parse_pki_message(&built.der).unwrap();
    let csr = req.decrypt_csr(test_ca().ra_key()).unwrap();
    let dbg = format!("{csr:?} {req:?}");
    assert!(!dbg.contains(CHALLENGE), "{dbg}");
    assert!(dbg.contains("has_challenge: true"));
    for e in [
        ScepError::DecryptFailed,
        ScepError::BadSignature,
        ScepError::MissingAttribute("senderNonce"),
        ScepError::UnexpectedMessageType(MessageType::CertPoll),
        ScepError::TooLarge(5),
    ] {
        assert!(!e.to_string().is_empty());
    }
    assert!(
        ScepError::MissingAttribute("senderNonce")
            .to_string()
            .contains("senderNonce")
    );
}

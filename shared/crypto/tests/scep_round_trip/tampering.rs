//! Requests that are wrong on purpose: tampered, a bad CSR or the wrong recipient, and
//! SCEP attributes missing or wrong: each a typed error.

use super::*;

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

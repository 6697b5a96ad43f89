//! Truncated and garbage input never panics, and errors are readable without leaking the
//! challenge.

use super::*;

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

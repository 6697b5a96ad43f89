//! Hostile input: every malformed request is a 4xx, weak keys are refused, and no
//! undecryptable envelope tells a padding failure from a later one.

use super::*;

#[test]
fn hostile_input_is_a_4xx_never_a_panic() {
    let e = env();
    let (ca, ra) = get_ca_cert(&e);
    let c = new_challenge(&e, "HOSTILE");
    let good = pkcs_req(
        &ra,
        Some(&c),
        "hostile",
        EnvelopeCipher::Aes128Cbc,
        DigestAlgorithm::Sha256,
    );
    let before = dump(&e);
    let der = &good.msg.der;
    let mut bodies: Vec<Vec<u8>> = vec![
        vec![],
        b"garbage".to_vec(),
        vec![0x30, 0x80],
        vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        vec![0x30; 5000],
    ];
    for cut in [1, 2, 10, 100, der.len() / 2, der.len() - 1] {
        bodies.push(der[..cut].to_vec());
    }
    for at in [20, der.len() / 2, der.len() - 10] {
        let mut flipped = der.clone();
        flipped[at] ^= 0x40;
        bodies.push(flipped);
    }
    for body in bodies {
        let r = post(&e, body.clone());
        assert!(
            r.status().is_client_error(),
            "{} bytes: {} {}",
            body.len(),
            r.status(),
            text(&r)
        );
        assert!(!r.body().is_empty(), "a reason is given");
    }
    // Nothing was redeemed or issued: the challenge still works.
    assert_eq!(dump(&e), before);
    let rep = cert_rep(&post(&e, der.clone()), &good, &ra);
    assert_eq!(rep.status, PkiStatus::Success);

    // Over 2 MiB: 413 before parsing.
    let r = post(&e, vec![0x30; endpoint::MAX_PKI_MESSAGE + 1]);
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Encrypted to the CA certificate (whose key never decrypts) or to a stranger: the
    // same 400 with the same reason.
    let stranger = self_cert(other_key(), "stranger");
    let mut reasons = Vec::new();
    for recipient in [&ca, &stranger] {
        let c = new_challenge(&e, "WRONG-RECIPIENT");
        let req = pkcs_req(
            recipient,
            Some(&c),
            "wrong recipient",
            EnvelopeCipher::Aes128Cbc,
            DigestAlgorithm::Sha256,
        );
        let r = post(&e, req.msg.der.clone());
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{}", text(&r));
        reasons.push(text(&r));
    }
    assert_eq!(reasons[0], reasons[1]);

    // Operations and methods.
    for (method, query, want) in [
        (Method::GET, "", StatusCode::BAD_REQUEST),
        (Method::GET, "operation=Nonsense", StatusCode::BAD_REQUEST),
        (
            Method::GET,
            "operation=GetNextCACert",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "operation=GetCACaps",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "operation=GetCACert&x=%zz",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = scep(&e, method.clone(), query, vec![]);
        assert_eq!(r.status(), want, "{method} {query}: {}", text(&r));
    }
    let r = scep(&e, Method::PUT, "operation=PKIOperation", vec![]);
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// The CA decides what it vouches for: a request with a 1024-bit RSA key (a real one,
/// as a device makes when a profile names no key size) is refused.
#[test]
fn weak_keys_are_refused() {
    let der = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crypto/tests/fixtures/micromdm_envelope_plaintext.der"
    ))
    .unwrap();
    let csr = mdm_crypto::Csr::from_der(&der).unwrap();
    assert_eq!(csr.key_bits(), 1024);
    let why = endpoint::check_key(&csr).unwrap_err();
    assert!(why.contains("at least 2048"), "{why}");
    // Our own requests (2048 bits) pass.
    let ours = mdm_crypto::Csr::from_der(&csr_der_2048()).unwrap();
    assert!(endpoint::check_key(&ours).is_ok());
}

fn csr_der_2048() -> Vec<u8> {
    csr(client_key(), "ok", None, DigestAlgorithm::Sha256)
}

/// An envelope that does not open with the RA key (encrypted to another key: its key
/// transport unpads to nothing, and the implicit rejection goes on with a derived key) and
/// one that opens to something that is not even DER get the very same answer: nothing
/// tells a padding failure from a later one. (A readable request that is not acceptable
/// gets a signed FAILURE: that needs the right content key, which no padding probe has.)
#[test]
fn every_undecryptable_envelope_gets_the_same_answer() {
    let e = env();
    let (_, ra) = get_ca_cert(&e);
    let c = new_challenge(&e, "ORACLE");
    let key = client_key();
    let stranger = self_cert(other_key(), "not our RA");
    let build = |content: &[u8], recipient: &Certificate| {
        build_pkcs_req(
            content,
            key,
            &self_cert(key, "probe"),
            recipient,
            &RequestOptions {
                message_type: MessageType::PkcsReq,
                transaction_id: "tx-probe",
                cipher: EnvelopeCipher::Aes128Cbc,
                digest: DigestAlgorithm::Sha256,
            },
        )
        .unwrap()
        .der
    };
    let csr_der = csr(key, "probe", Some(&c), DigestAlgorithm::Sha256);
    let before = mdmdevice_free_dump(&e);
    let answers: Vec<(StatusCode, String)> = [
        build(&csr_der, &stranger),
        build(b"opens with the RA key, but is no DER request", &ra),
        build(&[0x04, 0x00], &ra),
    ]
    .into_iter()
    .map(|der| {
        let r = post(&e, der);
        (r.status(), text(&r))
    })
    .collect();
    assert_eq!(answers[0].0, StatusCode::BAD_REQUEST, "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");
    // The challenge was not used up by any of them.
    assert_eq!(mdmdevice_free_dump(&e), before);
    let req = pkcs_req(
        &ra,
        Some(&c),
        "probe",
        EnvelopeCipher::Aes128Cbc,
        DigestAlgorithm::Sha256,
    );
    assert_eq!(
        cert_rep(&post(&e, req.msg.der.clone()), &req, &ra).status,
        PkiStatus::Success
    );
}

fn mdmdevice_free_dump(e: &E) -> Vec<(String, Vec<u8>)> {
    e.store.backend().dump()
}

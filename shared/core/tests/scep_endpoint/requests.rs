//! GetCACaps, GetCACert, PKCSReq with every cipher and digest, micromdm's single-DES
//! request in BER, PKIOperation over GET, and what the issued certificates hold.

use super::*;

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// What micromdm's scepclient sends: single DES, and the envelope's encryptedContent as
/// a constructed, indefinite-length OCTET STRING in chunks (BER).
fn ber_des_pkcs_req(ra: &Certificate, challenge: &str, cn: &str) -> Req {
    let key = client_key();
    let me = self_cert(key, cn);
    let built = build_pkcs_req(
        &csr(key, cn, Some(challenge), DigestAlgorithm::Sha1),
        key,
        &me,
        ra,
        &RequestOptions {
            message_type: MessageType::PkcsReq,
            transaction_id: "ber-des",
            cipher: EnvelopeCipher::DesCbc,
            digest: DigestAlgorithm::Sha1,
        },
    )
    .unwrap();
    // Take the envelope out of the DER request and re-encode it in BER.
    let ci = ContentInfo::from_der(&built.der).unwrap();
    let sd: SignedData = ci.content.decode_as().unwrap();
    let env_der = sd
        .encap_content_info
        .econtent
        .unwrap()
        .decode_as::<der::asn1::OctetString>()
        .unwrap()
        .into_bytes();
    let env_ci = ContentInfo::from_der(&env_der).unwrap();
    let ed: EnvelopedData = env_ci.content.decode_as().unwrap();
    let eci = &ed.encrypted_content;
    let ct = eci.encrypted_content.as_ref().unwrap().as_bytes();
    let mut chunked = vec![0xa0, 0x80];
    for chunk in ct.chunks(24) {
        chunked.extend(der_tlv(0x04, chunk));
    }
    chunked.extend([0, 0]);
    let eci_der = der_tlv(
        0x30,
        &[
            eci.content_type.to_der().unwrap(),
            eci.content_enc_alg.to_der().unwrap(),
            chunked,
        ]
        .concat(),
    );
    let ed_der = der_tlv(
        0x30,
        &[
            ed.version.to_der().unwrap(),
            ed.recip_infos.to_der().unwrap(),
            eci_der,
        ]
        .concat(),
    );
    let ber_env = der_tlv(
        0x30,
        &[
            env_ci.content_type.to_der().unwrap(),
            der_tlv(0xa0, &ed_der),
        ]
        .concat(),
    );
    assert_ne!(ber_env, env_der);
    let nonce = vec![7u8; 8]; // micromdm's client sends 8-byte nonces
    let der = sign_data(
        &ber_env,
        key,
        &me,
        &[],
        &SignOptions {
            digest: DigestAlgorithm::Sha1,
            extra_attributes: vec![
                SignedAttribute::printable_string("2.16.840.1.113733.1.9.2", "19").unwrap(),
                SignedAttribute::printable_string("2.16.840.1.113733.1.9.7", "ber-des").unwrap(),
                SignedAttribute::octet_string("2.16.840.1.113733.1.9.5", &nonce).unwrap(),
            ],
            ..SignOptions::default()
        },
    )
    .unwrap();
    Req {
        msg: BuiltRequest {
            der,
            sender_nonce: nonce,
        },
        key,
    }
}

/// Checks an issued certificate: chains to the CA, one year, and recorded for the device
/// of the challenge, which it names: the CA decides the subject, not the request
/// (which asked for `asked_cn`, in "Test Org").
fn check_issued(e: &E, ca: &Certificate, cert: &Certificate, asked_cn: &str, device: &str) {
    cert.verify_issued_by(ca).unwrap();
    assert!(!cert.is_ca());
    assert_eq!(cert.common_name().as_deref(), Some(device));
    assert_eq!(cert.subject(), format!("CN={device}"), "not {asked_cn:?}");
    assert!(!cert.subject().contains("Test Org"), "{}", cert.subject());
    let now = e.clock.unix_seconds() as i64;
    assert_eq!(cert.not_after_unix(), now + 365 * DAY);
    assert!(cert.not_before_unix() <= now);
    assert!(cert.matches_key(client_key()));
    let rec = block_on(issued::issued_for(&e.store, &cert.serial_hex()))
        .unwrap()
        .expect("issued certificate recorded");
    assert_eq!(rec.serial, cert.serial_hex());
    assert_eq!(rec.device_id, device);
    assert_eq!(rec.not_after, cert.not_after_unix());
    assert_eq!(rec.subject, cert.subject());
    assert_eq!(rec.issued_at, now as u64);
    assert_eq!(
        rec.cert_sha256,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(cert.der()))
    );
    // Upper case with colons finds it too.
    let colons: Vec<String> = cert
        .serial_hex()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap().to_uppercase())
        .collect();
    assert_eq!(
        block_on(issued::issued_for(&e.store, &colons.join(":"))).unwrap(),
        Some(rec)
    );
    assert!(
        block_on(issued::issued_to_device(&e.store, device))
            .unwrap()
            .contains(&cert.serial_hex())
    );
}

#[test]
fn get_ca_caps_offers_aes_3des_and_sha2_but_never_des() {
    let e = env();
    let r = scep(&e, Method::GET, "operation=GetCACaps", vec![]);
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let caps: Vec<String> = text(&r).lines().map(str::to_owned).collect();
    for want in [
        "AES",
        "DES3",
        "POSTPKIOperation",
        "Renewal",
        "SHA-1",
        "SHA-256",
        "SHA-512",
        "SCEPStandard",
    ] {
        assert!(caps.iter().any(|c| c == want), "{want} missing: {caps:?}");
    }
    assert!(!caps.iter().any(|c| c == "DES"), "single DES offered");
    assert!(!caps.iter().any(|c| c == "GetNextCACert"));
    // GetCACaps touches no CA: nothing is created.
    assert!(e.store.backend().is_empty());
}

#[test]
fn get_ca_cert_is_ca_and_ra_and_the_ca_is_the_check_in_anchor() {
    let e = env();
    let (ca, ra) = get_ca_cert(&e);
    ra.verify_issued_by(&ca).unwrap();
    ca.verify_issued_by(&ca).unwrap();
    assert_ne!(ca.der(), ra.der());
    // The same CA every time, and at the key the check-in path reads.
    assert_eq!(get_ca_cert(&e), (ca.clone(), ra.clone()));
    let stored = block_on(e.store.get(SCEP_CA_CERT_KEY)).unwrap().unwrap();
    assert_eq!(stored, ca.der());
    assert_eq!(block_on(ca::ca_certificate(&e)).unwrap(), ca);
    let full = block_on(ca::authority(&e)).unwrap();
    assert_eq!(full.ca_certificate(), &ca);
    assert_eq!(full.ra_certificate(), &ra);
    // The profile's `Name` comes as a message: ignored.
    let r = scep(&e, Method::GET, "operation=GetCACert&message=MDM", vec![]);
    assert_eq!(parse_certs_only(r.body()).unwrap(), vec![ca, ra]);
}

#[test]
fn pkcs_req_succeeds_with_every_cipher_and_digest() {
    let e = env();
    let (ca, ra) = get_ca_cert(&e);
    let mut serials = Vec::new();
    for (i, cipher) in [
        EnvelopeCipher::Aes128Cbc,
        EnvelopeCipher::Aes256Cbc,
        EnvelopeCipher::DesEde3Cbc,
        EnvelopeCipher::DesCbc,
    ]
    .into_iter()
    .enumerate()
    {
        for digest in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256] {
            let device = format!("UDID-{i}-{digest:?}");
            let c = new_challenge(&e, &device);
            let cn = format!("device {i} {digest:?}");
            let req = pkcs_req(&ra, Some(&c), &cn, cipher, digest);
            let rep = cert_rep(&post(&e, req.msg.der.clone()), &req, &ra);
            assert_eq!(rep.status, PkiStatus::Success, "{cipher:?} {digest:?}");
            assert_eq!(rep.transaction_id, format!("tx-{cn}"));
            let cert = rep.certificate.unwrap();
            check_issued(&e, &ca, &cert, &cn, &device);
            serials.push(cert.serial_hex());
        }
    }
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 8, "distinct serials");
}

#[test]
fn micromdm_style_des_with_ber_content_is_accepted() {
    let e = env();
    let (ca, ra) = get_ca_cert(&e);
    let c = new_challenge(&e, "BER-DEVICE");
    let req = ber_des_pkcs_req(&ra, &c, "ber client");
    let rep = cert_rep(&post(&e, req.msg.der.clone()), &req, &ra);
    assert_eq!(rep.status, PkiStatus::Success);
    check_issued(
        &e,
        &ca,
        &rep.certificate.unwrap(),
        "ber client",
        "BER-DEVICE",
    );
}

#[test]
fn pki_operation_over_get_with_base64_message() {
    let e = env();
    let (ca, ra) = get_ca_cert(&e);
    let std = base64::engine::general_purpose::STANDARD;
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    type Encode<'a> = Box<dyn Fn(&[u8]) -> String + 'a>;
    let variants: Vec<Encode> = vec![
        // URL-encoded standard base64 (RFC 8894)
        Box::new(|d| {
            std.encode(d)
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        }),
        // not URL-encoded: '+' arrives as a space
        Box::new(|d| std.encode(d).replace('/', "%2F")),
        Box::new(|d| url_safe.encode(d)),
    ];
    for (i, encode) in variants.iter().enumerate() {
        let device = format!("GET-{i}");
        let c = new_challenge(&e, &device);
        let req = pkcs_req(
            &ra,
            Some(&c),
            &device,
            EnvelopeCipher::Aes128Cbc,
            DigestAlgorithm::Sha256,
        );
        let q = format!("operation=PKIOperation&message={}", encode(&req.msg.der));
        let rep = cert_rep(&scep(&e, Method::GET, &q, vec![]), &req, &ra);
        assert_eq!(rep.status, PkiStatus::Success, "variant {i}");
        check_issued(&e, &ca, &rep.certificate.unwrap(), &device, &device);
    }
    let r = scep(&e, Method::GET, "operation=PKIOperation", vec![]);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = scep(
        &e,
        Method::GET,
        "operation=PKIOperation&message=%%%",
        vec![],
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

//! `/scep` end to end in process: requests built the way SCEP clients build them (mdm-crypto's
//! client side), answers parsed and decrypted as a client does, the CA's life cycle in the
//! store, challenges, renewal, hostile input, and the check-in trust anchor it provides.

mod mdmdevice;

use std::sync::OnceLock;

use base64::Engine;
use cms::content_info::ContentInfo;
use cms::enveloped_data::EnvelopedData;
use cms::signed_data::SignedData;
use der::{Decode, Encode};
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::mdm::signature::SCEP_CA_CERT_KEY;
use mdm_core::platform::testing::{MapVariables, NoHttp, SystemClock};
use mdm_core::scep::challenge::{self, ChallengeError, ChallengeGrant};
use mdm_core::scep::{ca, endpoint};
use mdm_core::{Clock, Env, Response, checkin};
use mdm_crypto::{
    BuiltRequest, CertRep, Certificate, CertificateAuthority, CsrParams, DigestAlgorithm,
    EnvelopeCipher, FailInfo, KeyPair, MessageType, PkiStatus, RequestOptions, SignOptions,
    SignedAttribute, build_csr, build_pkcs_req, parse_cert_rep, parse_certs_only,
    self_signed_certificate, sign_data,
};
use mdm_kv::{Defects, MemoryBackend, Store};
use mdmdevice::{E, START, admin_call, dump};
use serde_json::json;

const DAY: i64 = 86_400;

fn env() -> E {
    mdmdevice::env_without_ca(Defects::spin_sqlite())
}

/// One client key for every request (RSA key generation is the slow part of a test).
fn client_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate().unwrap())
}

fn other_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate().unwrap())
}

fn self_cert(key: &KeyPair, cn: &str) -> Certificate {
    let now = START as i64;
    self_signed_certificate(key, cn, now - 3600, now + 30 * DAY).unwrap()
}

fn scep(e: &E, method: Method, query: &str, body: Vec<u8>) -> Response {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("/scep?{query}"))
        .header("content-type", "application/x-pki-message")
        .body(body)
        .unwrap();
    block_on(checkin::handle(e, req))
}

fn post(e: &E, body: Vec<u8>) -> Response {
    scep(e, Method::POST, "operation=PKIOperation", body)
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// GetCACert: (CA, RA).
fn get_ca_cert(e: &E) -> (Certificate, Certificate) {
    let r = scep(e, Method::GET, "operation=GetCACert", vec![]);
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    assert_eq!(r.headers()["content-type"], "application/x-x509-ca-ra-cert");
    let certs = parse_certs_only(r.body()).unwrap();
    assert_eq!(certs.len(), 2);
    let ca = certs.iter().find(|c| c.is_ca()).unwrap().clone();
    let ra = certs.iter().find(|c| !c.is_ca()).unwrap().clone();
    (ca, ra)
}

fn grant(device: &str) -> ChallengeGrant {
    ChallengeGrant {
        device_id: device.into(),
        serial: Some(format!("SN-{device}")),
        purpose: "ade".into(),
        user: None,
    }
}

fn new_challenge(e: &E, device: &str) -> String {
    let now = e.clock.unix_seconds();
    block_on(challenge::issue(&e.store, now, &grant(device))).unwrap()
}

struct Req {
    msg: BuiltRequest,
    key: &'static KeyPair,
}

fn csr(key: &KeyPair, cn: &str, challenge: Option<&str>, digest: DigestAlgorithm) -> Vec<u8> {
    build_csr(
        key,
        &CsrParams {
            organization: Some("Test Org"),
            challenge,
            digest,
            ..CsrParams::new(cn)
        },
    )
    .unwrap()
}

fn pkcs_req(
    ra: &Certificate,
    challenge: Option<&str>,
    cn: &str,
    cipher: EnvelopeCipher,
    digest: DigestAlgorithm,
) -> Req {
    let key = client_key();
    let msg = build_pkcs_req(
        &csr(key, cn, challenge, digest),
        key,
        &self_cert(key, cn),
        ra,
        &RequestOptions {
            message_type: MessageType::PkcsReq,
            transaction_id: &format!("tx-{cn}"),
            cipher,
            digest,
        },
    )
    .unwrap();
    Req { msg, key }
}

/// Parses a CertRep as the client that sent `req`, checking the nonce and the signer.
fn cert_rep(r: &Response, req: &Req, ra: &Certificate) -> CertRep {
    assert_eq!(r.status(), StatusCode::OK, "{}", text(r));
    assert_eq!(r.headers()["content-type"], "application/x-pki-message");
    let rep = parse_cert_rep(r.body(), req.key).unwrap();
    assert_eq!(rep.recipient_nonce, req.msg.sender_nonce);
    assert_ne!(&rep.signer, ra, "the RA key only decrypts");
    assert!(rep.signer.is_ca(), "CertReps are signed by the CA");
    rep
}

fn assert_failure(rep: &CertRep, fail_info: FailInfo) {
    assert_eq!(rep.status, PkiStatus::Failure);
    assert_eq!(rep.fail_info, Some(fail_info));
    assert!(rep.certificate.is_none());
}

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
    let rec = block_on(endpoint::issued_for(&e.store, &cert.serial_hex()))
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
        block_on(endpoint::issued_for(&e.store, &colons.join(":"))).unwrap(),
        Some(rec)
    );
    assert!(
        block_on(endpoint::issued_to_device(&e.store, device))
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
        block_on(endpoint::issued_to_device(&e.store, "LATE")).unwrap(),
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

/// An identity issued by our CA through SCEP, with its key.
fn enroll(e: &E, ra: &Certificate, device: &str) -> Certificate {
    let c = new_challenge(e, device);
    let req = pkcs_req(
        ra,
        Some(&c),
        device,
        EnvelopeCipher::Aes128Cbc,
        DigestAlgorithm::Sha256,
    );
    let rep = cert_rep(&post(e, req.msg.der.clone()), &req, ra);
    assert_eq!(rep.status, PkiStatus::Success);
    rep.certificate.unwrap()
}

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
    let rec = mdm_core::mdm::enrollments::EnrollmentRecord {
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
    let rec = block_on(endpoint::issued_for(&e.store, &new.serial_hex()))
        .unwrap()
        .unwrap();
    assert_eq!(rec.device_id, "RENEW-ME", "renewal stays with the device");
    assert_eq!(rec.purpose, "renewal");
    assert_eq!(rec.renewed_from.as_deref(), Some(old.serial_hex().as_str()));
    assert_eq!(
        block_on(endpoint::issued_to_device(&e.store, "RENEW-ME")).unwrap(),
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

type SysEnv = Env<MemoryBackend, NoHttp, SystemClock, MapVariables>;

#[test]
fn the_ca_is_created_once_under_concurrent_first_use() {
    for defects in [Defects::spin_sqlite(), Defects::redis()] {
        let e: SysEnv = Env {
            store: Store::new(MemoryBackend::with_defects(defects)),
            http: NoHttp,
            clock: SystemClock,
            vars: MapVariables::new([(
                "storage_key",
                "storage-key-for-scep-tests-0123456789abcdef",
            )]),
        };
        let certs: Vec<Certificate> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        block_on(ca::authority(&e))
                            .unwrap()
                            .ca_certificate()
                            .clone()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(certs.iter().all(|c| *c == certs[0]), "{defects:?}: one CA");
        assert_eq!(
            block_on(e.store.get(SCEP_CA_CERT_KEY)).unwrap().unwrap(),
            certs[0].der()
        );
        assert_eq!(
            block_on(ca::authority(&e)).unwrap().ca_certificate(),
            &certs[0]
        );
    }
}

#[test]
fn a_stalled_creation_is_taken_over_after_the_lease() {
    let e = env();
    // Attempt 0 was claimed by a request that then died.
    let claim = mdm_kv::CounterKey::new("scep:ca-claim:0").unwrap();
    assert!(block_on(e.store.claim(&claim)).unwrap());
    // Requests meanwhile wait, then say "busy" (503, retry).
    let r = scep(&e, Method::GET, "operation=GetCACert", vec![]);
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{}", text(&r));
    // After the lease, the next request takes over and creates the CA.
    e.clock
        .advance(std::time::Duration::from_secs(ca::LEASE_SECS));
    let (ca_cert, _) = get_ca_cert(&e);
    assert_eq!(block_on(ca::ca_certificate(&e)).unwrap(), ca_cert);
}

#[test]
fn keys_are_sealed_and_need_the_storage_key() {
    let mut e = env();
    let authority = block_on(ca::authority(&e)).unwrap();
    let dump = dump(&e);
    let b64 = base64::engine::general_purpose::STANDARD;
    for key in [authority.ca_key(), authority.ra_key()] {
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let b64_key = b64.encode(&pkcs8[..]);
        // A distinctive 64-byte piece of the key (the private exponent area).
        let piece = &pkcs8[pkcs8.len() / 2..pkcs8.len() / 2 + 64];
        for (k, v) in &dump {
            assert!(!v.windows(piece.len()).any(|w| w == piece), "{k}: raw key");
            let s = String::from_utf8_lossy(v);
            assert!(!s.contains("PRIVATE KEY"), "{k}");
            assert!(!s.contains(&b64_key[100..160]), "{k}: base64 key");
        }
    }
    // Certificates are stored in clear; the keys open only with the same storage_key.
    e.vars = MapVariables::new([("storage_key", "another-storage-key-0123456789abcdef")]);
    let err = block_on(ca::authority(&e)).unwrap_err();
    assert!(matches!(err, ca::ScepSetupError::Unsealable(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("another-storage-key-0123456789abcdef"));
    let r = scep(&e, Method::GET, "operation=GetCACert", vec![]);
    assert_eq!(r.status(), StatusCode::OK, "certificates need no key");
    e.vars = MapVariables::new([("admin_api_key", "x")]);
    assert!(matches!(
        block_on(ca::authority(&e)).unwrap_err(),
        ca::ScepSetupError::Misconfigured(_)
    ));
}

fn checkin_signed(e: &E, body: &[u8], key: &KeyPair, cert: &Certificate) -> Response {
    let sig = sign_data(
        body,
        key,
        cert,
        &[],
        &SignOptions {
            detached: true,
            ..SignOptions::default()
        },
    )
    .unwrap();
    let h = base64::engine::general_purpose::STANDARD.encode(sig);
    block_on(checkin::handle(
        e,
        mdmdevice::device_request(Method::PUT, "/mdm/checkin", body, Some(&h)),
    ))
}

#[test]
fn check_in_needs_an_identity_from_our_ca() {
    let e = env();
    let body = mdmdevice::xml(
        "<key>MessageType</key><string>Authenticate</string><key>UDID</key><string>SCEP-UDID</string>\
         <key>Topic</key><string>com.apple.mgmt.External.x</string><key>SerialNumber</key><string>SN-SCEP</string>\
         <key>ProductName</key><string>iPhone14,5</string><key>OSVersion</key><string>17.2</string>",
    );
    // No CA yet: nobody is enrolled.
    let stranger = mdmdevice::Identity::self_signed();
    let r = block_on(checkin::handle(
        &e,
        mdmdevice::device_request(
            Method::PUT,
            "/mdm/checkin",
            &body,
            Some(&stranger.sign(&body)),
        ),
    ));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        text(&r).contains("no enrollment has been made"),
        "{}",
        text(&r)
    );

    let (_, ra) = get_ca_cert(&e);
    // Identities not from our CA: the self-signed one, the fixture CA's one.
    for id in [
        mdmdevice::Identity::self_signed(),
        mdmdevice::Identity::ca_issued(),
    ] {
        let r = block_on(checkin::handle(
            &e,
            mdmdevice::device_request(Method::PUT, "/mdm/checkin", &body, Some(&id.sign(&body))),
        ));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(text(&r).contains("SCEP CA"), "{}", text(&r));
    }
    // The identity our SCEP issued enrolls (after the enrollment request Authenticate
    // must match, see enroll_checkin.rs).
    let cert = enroll(&e, &ra, "SCEP-UDID");
    let request = mdm_core::enroll::pending::PendingEnrollment::new(
        "SCEP-UDID",
        "SN-SCEP",
        "com.apple.mgmt.External.x",
        e.clock.unix_seconds(),
    );
    block_on(mdm_core::enroll::pending::put(&e.store, &request)).unwrap();
    let r = checkin_signed(&e, &body, client_key(), &cert);
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
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
    let rec = block_on(endpoint::issued_for(&e.store, &cert.serial_hex()))
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
    let r = block_on(mdm_core::admin::handle(&e, req));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
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

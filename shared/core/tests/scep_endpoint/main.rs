//! `/scep` end to end in process: requests built the way SCEP clients build them (mdm-crypto's
//! client side), answers parsed and decrypted as a client does, the CA's life cycle in the
//! store, challenges, renewal, hostile input, and the check-in trust anchor it provides.
//!
//! This file holds the helpers that build and read SCEP messages; the tests are in one
//! module per concern: `requests`, `challenges`, `renewal`, `hostile`, `ca_store`, `check_in`.

mod ca_store;
mod challenges;
mod check_in;
mod hostile;
mod renewal;
mod requests;

#[path = "../mdmdevice/mod.rs"]
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
use mdm_core::scep::{ca, endpoint, issued};
use mdm_core::{Clock, Env, Response, routes::checkin};
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

//! SCEP both ways with our own client side: every cipher and digest, RenewalReq, CertPoll,
//! FAILURE and PENDING, and the ways a request can be wrong (tampered, mis-addressed,
//! truncated, garbage) — each must be a typed error, never a panic.
//!
//! This file holds the device's request and the CA's success; the tests are in one module
//! per concern: `exchanges`, `tampering`, `bad_input`.

mod bad_input;
mod exchanges;
mod tampering;

#[path = "../common/mod.rs"]
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

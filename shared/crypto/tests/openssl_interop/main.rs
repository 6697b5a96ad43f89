//! Interoperability with OpenSSL 3 (the `openssl` CLI): it verifies what we sign, opens
//! what we encrypt, accepts the certificates we issue; we accept its CSRs, open its
//! envelopes and verify its signatures. Without the CLI these tests fail, loudly.
//!
//! This file holds the live CA and its helpers; the tests are in one module per direction:
//! `ours` (OpenSSL accepts what we make), `theirs` (we accept what OpenSSL makes).

mod ours;
mod theirs;

#[path = "../common/mod.rs"]
mod common;

use std::sync::OnceLock;

use common::*;
use mdm_crypto::{
    Certificate, CertificateAuthority, Csr, CsrParams, DigestAlgorithm, EnvelopeCipher,
    IssueOptions, KeyPair, MessageType, PkiStatus, RequestOptions, ScepError, SignOptions,
    SignedAttribute, build_csr, build_pkcs_req, cert_rep_success, parse_cert_rep, parse_certs_only,
    parse_pki_message, self_signed_certificate, sign_data, sign_profile, verify_signed_data,
};

/// OpenSSL checks validity against the real clock, so these tests use it too.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn live_ca() -> &'static CertificateAuthority {
    static CA: OnceLock<CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| CertificateAuthority::generate("Interop SCEP CA", now()).unwrap())
}

/// A profile-signing identity issued by the live CA, with its key.
fn signer() -> (&'static KeyPair, Certificate) {
    let key = other_key();
    let csr = Csr::from_der(&build_csr(key, &CsrParams::new("Profile Signer")).unwrap()).unwrap();
    let cert = live_ca()
        .issue(&csr, now(), &IssueOptions::default())
        .unwrap();
    (key, cert)
}

fn write_ca(dir: &TempDir) {
    dir.write("ca.pem", live_ca().ca_certificate().to_pem());
}

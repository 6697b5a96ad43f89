//! The real PKCSReq micromdm's scepclient produced (tests/vectors/micromdm-scep):
//! SHA-1 signature with `rsaEncryption` as signature algorithm, an 8-byte senderNonce, a
//! DES-EDE3 envelope to an RSA-4096 CA, and a CSR with version 2 and no challenge.

mod common;

use common::*;
use der::{Decode, Encode};
use mdm_crypto::{
    Certificate, DigestAlgorithm, EnvelopeCipher, FailInfo, IssueOptions, KeyPair, MessageType,
    PkiStatus, ScepError, cert_rep_failure, parse_pki_message,
};

fn vector_ca() -> (KeyPair, Certificate) {
    let key = KeyPair::from_pem(&fixture_str("micromdm_scep_ca_key.pem")).unwrap();
    let cert = Certificate::from_pem(std::str::from_utf8(&vector("micromdm-scep/ca.pem")).unwrap())
        .unwrap();
    assert!(cert.matches_key(&key));
    (key, cert)
}

#[test]
fn micromdm_pkcsreq_verifies_and_decrypts() {
    let msg = parse_pki_message(&vector("micromdm-scep/PKCSReq.der")).unwrap();
    assert_eq!(msg.message_type(), MessageType::PkcsReq);
    assert_eq!(
        msg.transaction_id(),
        "A13090761A30F66664F85D37433D2065E1112BA1"
    );
    assert_eq!(msg.sender_nonce(), hex("AE7FE8816CC6BEDD"));
    assert_eq!(msg.digest_algorithm(), DigestAlgorithm::Sha1);
    assert_eq!(msg.envelope_cipher(), Some(EnvelopeCipher::DesEde3Cbc));
    assert_eq!(
        msg.signer_certificate().subject(),
        "C=US,CN=MDM SCEP SIGNER"
    );
    assert!(msg.signer_is_self_signed());
    assert_eq!(msg.signing_time_unix(), Some(1_464_694_213)); // 2016-05-31 11:30:13 UTC

    let (ca_key, _) = vector_ca();
    let csr = msg.decrypt_csr(&ca_key).unwrap();
    // Byte for byte what `openssl cms -decrypt` gives (tests/fixtures/make-fixtures.sh).
    assert_eq!(csr.der(), fixture("micromdm_envelope_plaintext.der"));
    assert_eq!(
        csr.common_name().as_deref(),
        Some("com.apple.security.scep.063D7953-1338-4BF0-8F99-913382996224")
    );
    assert_eq!(csr.challenge_password(), None);
    assert_eq!(csr.key_bits(), 1024);
    assert_eq!(csr.signature_digest(), DigestAlgorithm::Sha1);
    // The self-signed signer certificate is over a different (2048-bit) key.
    assert_ne!(
        csr.public_key_der(),
        msg.signer_certificate().public_key_der().unwrap()
    );

    // Any other key: the uniform decryption error, not a panic or a padding hint.
    assert_eq!(
        msg.decrypt_csr(generated_key()).unwrap_err(),
        ScepError::DecryptFailed
    );
}

#[test]
fn issue_and_answer_the_real_request() {
    let msg = parse_pki_message(&vector("micromdm-scep/PKCSReq.der")).unwrap();
    let (ca_key, _) = vector_ca();
    let csr = msg.decrypt_csr(&ca_key).unwrap();

    let ca = mdm_crypto::CertificateAuthority::generate("Vector Test CA", 1_700_000_000).unwrap();
    let issued = ca
        .issue(&csr, 1_700_000_000, &IssueOptions::default())
        .unwrap();
    issued.verify_issued_by(ca.ca_certificate()).unwrap();
    assert_eq!(issued.subject(), csr.subject());
    assert_eq!(issued.public_key_der().unwrap(), csr.public_key_der());

    // We lack the device's key, so only the shape of the reply is checked here; the
    // round trips with our own requests decrypt it.
    let reply = mdm_crypto::cert_rep_success(
        &msg,
        &issued,
        ca.ra_key(),
        ca.ra_certificate(),
        ca.ca_certificate(),
    )
    .unwrap();
    let signed = mdm_crypto::verify_signed_data(&reply, None).unwrap();
    assert_eq!(signed.signer(), ca.ra_certificate());
    assert_eq!(signed.certificates().len(), 2);
    // A 3DES request is answered in 3DES, to the requester's signer certificate.
    let env = signed.content().unwrap();
    assert!(contains(
        env,
        &[0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07]
    ));
    let signer = x509_cert::Certificate::from_der(msg.signer_certificate().der()).unwrap();
    let issuer = signer.tbs_certificate.issuer.to_der().unwrap();
    assert!(contains(env, &issuer), "recipient is the request's signer");

    let fail = cert_rep_failure(
        &msg,
        FailInfo::BadRequest,
        ca.ra_key(),
        ca.ra_certificate(),
        ca.ca_certificate(),
    )
    .unwrap();
    let rep = mdm_crypto::parse_cert_rep(&fail, generated_key()).unwrap();
    assert_eq!(rep.status, PkiStatus::Failure);
    assert_eq!(rep.fail_info, Some(FailInfo::BadRequest));
    assert_eq!(rep.transaction_id, msg.transaction_id());
    assert_eq!(rep.recipient_nonce, msg.sender_nonce());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

//! Key pairs (PKCS#8/PKCS#1 in, PKCS#8/SPKI out) and the self-signed certificate the
//! admin uploads to Apple Business Manager, checked by parsing it back independently.

mod common;

use common::*;
use der::{Decode, Encode};
use mdm_crypto::{Certificate, CryptoError, GENERATED_KEY_BITS, KeyPair, self_signed_certificate};
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey};
use rsa::signature::Verifier;
use sha2::Sha256;
use spki::ObjectIdentifier;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

#[test]
fn generated_key_round_trips_through_pkcs8() {
    let key = generated_key();
    assert_eq!(key.bits(), GENERATED_KEY_BITS);
    let der = key.to_pkcs8_der().unwrap();
    let back = KeyPair::from_pkcs8_der(&der).unwrap();
    assert_eq!(
        back.public_key_der().unwrap(),
        key.public_key_der().unwrap()
    );
    let pem = key.to_pkcs8_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let back = KeyPair::from_pem(&pem).unwrap();
    assert_eq!(
        back.public_key_der().unwrap(),
        key.public_key_der().unwrap()
    );
    // SPKI is a real RSA public key of the right size.
    let public = RsaPublicKey::from_public_key_der(&key.public_key_der().unwrap()).unwrap();
    assert_eq!(rsa::traits::PublicKeyParts::size(&public), 256);
    // Debug says nothing about the key itself.
    assert_eq!(format!("{key:?}"), "KeyPair { bits: 2048, .. }");
}

#[test]
fn openssl_keys_import_in_every_form() {
    let from_pem = dep_key();
    let from_der = KeyPair::from_pkcs8_der(&fixture("dep_key.der")).unwrap();
    let from_pkcs1 = KeyPair::from_pem(&fixture_str("dep_key_pkcs1.pem")).unwrap();
    let crlf = KeyPair::from_pem(&fixture_str("dep_key.pem").replace('\n', "\r\n")).unwrap();
    let spki = from_pem.public_key_der().unwrap();
    for k in [&from_der, &from_pkcs1, &crlf] {
        assert_eq!(k.public_key_der().unwrap(), spki);
    }
    let cert = dep_cert();
    assert!(cert.matches_key(&from_pem));
    assert!(!cert.matches_key(generated_key()));
    assert_eq!(
        Certificate::from_der(&fixture("dep_cert.der")).unwrap(),
        cert
    );
}

#[test]
fn bad_keys_are_refused_with_a_reason() {
    let invalid = |r: Result<KeyPair, CryptoError>| match r {
        Err(CryptoError::InvalidKey(d)) => d,
        other => panic!("{other:?}"),
    };
    invalid(KeyPair::from_pkcs8_der(b"not a key"));
    invalid(KeyPair::from_pkcs8_der(&[]));
    assert!(invalid(KeyPair::from_pem("hello")).contains("no PEM block"));
    assert!(invalid(KeyPair::from_pem(&fixture_str("dep_cert.pem"))).contains("CERTIFICATE"));
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert!(invalid(KeyPair::from_pem(encrypted)).contains("encrypted"));
    let legacy = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/vectors/micromdm-scep/ca.key"),
    )
    .unwrap();
    assert!(invalid(KeyPair::from_pem(&legacy)).contains("encrypted"));
    // RSA-1024 is too weak to hold DEP secrets.
    let small = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap();
    let d = invalid(KeyPair::from_pkcs8_der(
        small.to_pkcs8_der().unwrap().as_bytes(),
    ));
    assert!(d.contains("RSA-1024"), "{d}");
}

#[test]
fn self_signed_certificate_is_well_formed_and_verifies() {
    let key = generated_key();
    let (from, to) = (1_763_884_800, 1_795_420_800); // 2025-11-23 .. 2026-11-23 UTC
    let cert = self_signed_certificate(key, "depserver", from, to).unwrap();
    assert_eq!(cert.not_before_unix(), from);
    assert_eq!(cert.not_after_unix(), to);
    assert!(cert.matches_key(key));

    let x = x509_cert::Certificate::from_der(cert.der()).unwrap();
    let tbs = &x.tbs_certificate;
    assert_eq!(tbs.version, x509_cert::Version::V3);
    assert_eq!(tbs.subject.to_string(), "CN=depserver");
    assert_eq!(tbs.issuer, tbs.subject);
    let serial = tbs.serial_number.as_bytes();
    assert_eq!(serial.len(), 16);
    assert!(
        serial[0] & 0x80 == 0 && serial[0] != 0,
        "positive, minimal: {serial:02x?}"
    );
    assert_eq!(
        tbs.subject_public_key_info.to_der().unwrap(),
        key.public_key_der().unwrap()
    );
    assert_eq!(x.signature_algorithm.oid, SHA256_WITH_RSA);
    assert_eq!(tbs.signature, x.signature_algorithm);

    // Extensions: an end entity whose key may encrypt (what Apple does with it).
    let exts = tbs.extensions.as_ref().unwrap();
    let ext = |oid: &str| {
        exts.iter()
            .find(|e| e.extn_id == ObjectIdentifier::new_unwrap(oid))
            .unwrap_or_else(|| panic!("missing extension {oid}"))
    };
    let ku = KeyUsage::from_der(ext("2.5.29.15").extn_value.as_bytes()).unwrap();
    assert!(
        ku.0.contains(KeyUsages::KeyEncipherment) && ku.0.contains(KeyUsages::DigitalSignature)
    );
    let bc = BasicConstraints::from_der(ext("2.5.29.19").extn_value.as_bytes()).unwrap();
    assert!(!bc.ca);
    ext("2.5.29.14");

    // The self-signature verifies with the certificate's own public key.
    let public =
        RsaPublicKey::from_public_key_der(&tbs.subject_public_key_info.to_der().unwrap()).unwrap();
    let sig = Signature::try_from(x.signature.raw_bytes()).unwrap();
    VerifyingKey::<Sha256>::new(public.clone())
        .verify(&tbs.to_der().unwrap(), &sig)
        .expect("self-signature verifies");

    // PEM for the ABM upload, and back.
    let pem = cert.to_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    assert!(pem.lines().all(|l| l.len() <= 64));
    assert_eq!(Certificate::from_pem(&pem).unwrap(), cert);
    assert!(format!("{cert:?}").contains("CN=depserver"));

    // A second certificate for the same key gets another serial.
    let again = self_signed_certificate(key, "depserver", from, to).unwrap();
    assert_ne!(again.serial_hex(), cert.serial_hex());

    // And the key signs RS256 for the DEP JWT with the same verifier.
    let signature = key.sign_sha256(b"header.claims").unwrap();
    VerifyingKey::<Sha256>::new(public)
        .verify(
            b"header.claims",
            &Signature::try_from(signature.as_slice()).unwrap(),
        )
        .unwrap();
}

#[test]
fn certificate_names_and_times_are_taken_literally() {
    let key = generated_key();
    // Commas and equals signs are part of the name, not RFC 4514 syntax.
    let cert = self_signed_certificate(key, "ACME, Inc. = DEP ü", 0, 60).unwrap();
    let x = x509_cert::Certificate::from_der(cert.der()).unwrap();
    let atv = &x.tbs_certificate.subject.0[0].0.as_slice()[0];
    assert_eq!(atv.value.value(), "ACME, Inc. = DEP ü".as_bytes());
    assert_eq!(cert.not_before_unix(), 0);
    // From 2050 on, RFC 5280 wants GeneralizedTime; both ends still read back.
    let far = self_signed_certificate(key, "depserver", 2_600_000_000, 4_102_444_800).unwrap();
    let x = x509_cert::Certificate::from_der(far.der()).unwrap();
    assert!(matches!(
        x.tbs_certificate.validity.not_before,
        x509_cert::time::Time::GeneralTime(_)
    ));
    assert_eq!(far.not_after_unix(), 4_102_444_800);

    let input = |r: Result<Certificate, CryptoError>| {
        assert!(matches!(r, Err(CryptoError::InvalidInput(_))), "{r:?}");
    };
    input(self_signed_certificate(key, "", 0, 60));
    input(self_signed_certificate(key, "  ", 0, 60));
    input(self_signed_certificate(key, &"x".repeat(65), 0, 60));
    input(self_signed_certificate(key, "a\nb", 0, 60));
    input(self_signed_certificate(key, "depserver", 60, 60));
    input(self_signed_certificate(key, "depserver", -5, 60));
    input(self_signed_certificate(
        key,
        "depserver",
        0,
        300_000_000_000,
    ));
}

#[test]
fn bad_certificates_are_refused() {
    assert!(matches!(
        Certificate::from_der(b"junk"),
        Err(CryptoError::InvalidCertificate(_))
    ));
    assert!(matches!(
        Certificate::from_pem("junk"),
        Err(CryptoError::InvalidCertificate(_))
    ));
    assert!(matches!(
        Certificate::from_pem(&fixture_str("dep_key.pem")),
        Err(CryptoError::InvalidCertificate(d)) if d.contains("PRIVATE KEY")
    ));
}

/// What the admin downloads must satisfy openssl (`openssl x509 -noout -text`) and carry
/// the same public key openssl sees. Skipped where the openssl CLI is missing.
#[test]
fn openssl_reads_our_certificate() {
    if !openssl_available() {
        eprintln!("openssl CLI not found: skipping");
        return;
    }
    use std::io::Write;
    use std::process::{Command, Stdio};
    let key = generated_key();
    let cert = self_signed_certificate(key, "depserver", 1_763_884_800, 1_795_420_800).unwrap();
    let run = |args: &[&str], input: &[u8]| {
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let text =
        String::from_utf8(run(&["x509", "-noout", "-text"], cert.to_pem().as_bytes())).unwrap();
    assert!(text.contains("Subject: CN = depserver"), "{text}");
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(text.contains("Key Encipherment"), "{text}");
    assert!(
        text.contains("Not After : Nov 23 08:00:00 2026 GMT"),
        "{text}"
    );
    let spki = run(&["x509", "-noout", "-pubkey"], cert.to_pem().as_bytes());
    let spki_der = run(&["pkey", "-pubin", "-outform", "DER"], &spki);
    assert_eq!(spki_der, key.public_key_der().unwrap());
    // openssl also reads our private key export.
    let pkcs8 = key.to_pkcs8_pem().unwrap();
    let ours = run(&["pkey", "-pubout", "-outform", "DER"], pkcs8.as_bytes());
    assert_eq!(ours, key.public_key_der().unwrap());
}

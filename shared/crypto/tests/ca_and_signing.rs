//! The certificate authority (what it generates and issues, storing and reloading it),
//! CSR parsing rules, and CMS SignedData signing/verification.

mod common;

use common::*;
use der::{Decode, Encode};
use mdm_crypto::{
    CaOptions, Certificate, CertificateAuthority, CryptoError, Csr, CsrParams, DigestAlgorithm,
    IssueOptions, KeyPair, ScepError, SignOptions, SignedAttribute, build_csr, certs_only,
    parse_certs_only, self_signed_certificate, sign_data, sign_profile, verify_signed_data,
};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};

const DAY: i64 = 86_400;

fn x509(c: &Certificate) -> x509_cert::Certificate {
    x509_cert::Certificate::from_der(c.der()).unwrap()
}

fn ext<'a>(c: &'a x509_cert::Certificate, oid: &str) -> Option<&'a x509_cert::ext::Extension> {
    let oid = der::oid::ObjectIdentifier::new_unwrap(oid);
    c.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
}

fn key_usage(c: &x509_cert::Certificate) -> (bool, KeyUsage) {
    let e = ext(c, "2.5.29.15").expect("keyUsage");
    (
        e.critical,
        KeyUsage::from_der(e.extn_value.as_bytes()).unwrap(),
    )
}

#[test]
fn generated_ca_and_ra_are_well_formed() {
    let ca = test_ca();
    let c = x509(ca.ca_certificate());
    assert_eq!(c.tbs_certificate.version, x509_cert::Version::V3);
    assert_eq!(ca.ca_certificate().subject(), "CN=Test MDM SCEP CA");
    assert_eq!(ca.ca_certificate().issuer(), ca.ca_certificate().subject());
    assert!(ca.ca_certificate().is_ca());
    let bc = ext(&c, "2.5.29.19").unwrap();
    assert!(bc.critical);
    assert!(
        BasicConstraints::from_der(bc.extn_value.as_bytes())
            .unwrap()
            .ca
    );
    let (critical, ku) = key_usage(&c);
    assert!(critical);
    assert_eq!(
        ku.0,
        KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature
    );
    assert!(ca.ca_certificate().subject_key_id().is_some());
    ca.ca_certificate()
        .verify_issued_by(ca.ca_certificate())
        .unwrap();
    assert!(ca.ca_certificate().matches_key(ca.ca_key()));
    assert_eq!(ca.ca_certificate().not_before_unix(), NOW - 600);
    assert_eq!(ca.ca_certificate().not_after_unix(), NOW + 3650 * DAY);
    assert_eq!(ca.ca_key().bits(), 2048);

    let r = x509(ca.ra_certificate());
    assert!(!ca.ra_certificate().is_ca());
    assert_eq!(ca.ra_certificate().subject(), "CN=Test MDM SCEP CA RA");
    assert_eq!(ca.ra_certificate().issuer(), "CN=Test MDM SCEP CA");
    // The RA key decrypts requests and signs nothing.
    let (_, ku) = key_usage(&r);
    assert!(ku.0.contains(KeyUsages::KeyEncipherment));
    assert!(!ku.0.contains(KeyUsages::DigitalSignature));
    ca.verify_issued(ca.ra_certificate()).unwrap();
    assert!(ca.ra_certificate().matches_key(ca.ra_key()));
    assert!(!ca.ra_certificate().matches_key(ca.ca_key()));
    // AKI of the RA = SKI of the CA.
    let aki = ext(&r, "2.5.29.35").unwrap();
    let aki =
        x509_cert::ext::pkix::AuthorityKeyIdentifier::from_der(aki.extn_value.as_bytes()).unwrap();
    assert_eq!(
        aki.key_identifier.unwrap().as_bytes(),
        ca.ca_certificate().subject_key_id().unwrap()
    );
    // Debug names subjects only.
    let dbg = format!("{ca:?}");
    assert!(
        dbg.contains("Test MDM SCEP CA") && !dbg.contains("BEGIN"),
        "{dbg}"
    );
}

#[test]
fn ca_options_and_key_sizes() {
    let ca = CertificateAuthority::generate_with(
        "Org CA",
        NOW,
        &CaOptions {
            key_bits: 3072,
            validity_days: 30,
            organization: Some("Example Org".into()),
        },
    )
    .unwrap();
    assert_eq!(ca.ca_key().bits(), 3072);
    assert_eq!(ca.ra_key().bits(), 3072);
    assert_eq!(ca.ca_certificate().subject(), "CN=Org CA,O=Example Org");
    assert_eq!(ca.ca_certificate().not_after_unix(), NOW + 30 * DAY);
    for bits in [1024, 2047, 8192] {
        let e = CertificateAuthority::generate_with(
            "x",
            NOW,
            &CaOptions {
                key_bits: bits,
                ..CaOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(e, CryptoError::InvalidInput(ref d) if d.contains(&bits.to_string())),
            "{e}"
        );
    }
    assert!(CertificateAuthority::generate("", NOW).is_err());
    let long = CertificateAuthority::generate(&"x".repeat(62), NOW).unwrap_err();
    assert!(long.to_string().contains("61 characters"), "{long}");
    assert!(
        CertificateAuthority::generate_with(
            "x",
            NOW,
            &CaOptions {
                validity_days: 0,
                ..CaOptions::default()
            }
        )
        .is_err()
    );
}

/// RSA-4096 (micromdm's CA size) stays available; generating two such keys takes seconds.
#[test]
fn ca_with_4096_bit_keys() {
    let ca = CertificateAuthority::generate_with(
        "Big CA",
        NOW,
        &CaOptions {
            key_bits: 4096,
            ..CaOptions::default()
        },
    )
    .unwrap();
    assert_eq!(ca.ca_key().bits(), 4096);
    ca.verify_issued(ca.ra_certificate()).unwrap();
}

#[test]
fn ca_survives_storage() {
    let ca = test_ca();
    let again = CertificateAuthority::from_der(
        &ca.ca_key().to_pkcs8_der().unwrap(),
        ca.ca_certificate().der(),
        &ca.ra_key().to_pkcs8_der().unwrap(),
        ca.ra_certificate().der(),
    )
    .unwrap();
    assert_eq!(again.ca_certificate(), ca.ca_certificate());
    assert_eq!(again.ra_certificate(), ca.ra_certificate());
    // It still issues certificates the original CA's certificate verifies.
    let csr = Csr::from_der(&build_csr(generated_key(), &CsrParams::new("dev")).unwrap()).unwrap();
    let issued = again.issue(&csr, NOW, &IssueOptions::default()).unwrap();
    ca.verify_issued(&issued).unwrap();

    // Mixed-up parts are refused with a reason.
    let other = CertificateAuthority::generate("Other", NOW).unwrap();
    let err = |r: Result<CertificateAuthority, CryptoError>| r.unwrap_err().to_string();
    assert!(
        err(CertificateAuthority::from_parts(
            ca.ra_key().clone(),
            ca.ca_certificate().clone(),
            ca.ra_key().clone(),
            ca.ra_certificate().clone()
        ))
        .contains("CA key")
    );
    assert!(
        err(CertificateAuthority::from_parts(
            ca.ca_key().clone(),
            ca.ca_certificate().clone(),
            other.ra_key().clone(),
            ca.ra_certificate().clone()
        ))
        .contains("RA key")
    );
    assert!(
        err(CertificateAuthority::from_parts(
            ca.ca_key().clone(),
            ca.ca_certificate().clone(),
            other.ra_key().clone(),
            other.ra_certificate().clone()
        ))
        .contains("not issued by the CA")
    );
    assert!(
        err(CertificateAuthority::from_parts(
            ca.ra_key().clone(),
            ca.ra_certificate().clone(),
            ca.ra_key().clone(),
            ca.ra_certificate().clone()
        ))
        .contains("CA:true")
    );
    assert!(CertificateAuthority::from_der(b"x", b"y", b"z", b"w").is_err());
}

#[test]
fn issued_certificates_follow_the_profile() {
    let ca = test_ca();
    let key = generated_key();
    let csr_der = build_csr(
        key,
        &CsrParams {
            organization: Some("Test MDM"),
            dns_names: &["device.example"],
            challenge: Some("pw"),
            ..CsrParams::new("MDM Identity 1")
        },
    )
    .unwrap();
    let csr = Csr::from_der(&csr_der).unwrap();
    assert_eq!(csr.dns_names(), vec!["device.example".to_string()]);

    let issued = ca.issue(&csr, NOW, &IssueOptions::default()).unwrap();
    let c = x509(&issued);
    assert_eq!(issued.subject(), "CN=MDM Identity 1,O=Test MDM");
    assert_eq!(issued.issuer(), "CN=Test MDM SCEP CA");
    assert!(issued.matches_key(key));
    assert!(!issued.is_ca());
    assert_eq!(issued.not_before_unix(), NOW - 600);
    assert_eq!(issued.not_after_unix(), NOW + 365 * DAY);
    let serial = c.tbs_certificate.serial_number.as_bytes();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] & 0x80 == 0 && serial[0] != 0);
    assert_eq!(
        c.signature_algorithm.oid.to_string(),
        "1.2.840.113549.1.1.11"
    );
    let (critical, ku) = key_usage(&c);
    assert!(critical);
    assert_eq!(
        ku.0,
        KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment
    );
    let eku = ext(&c, "2.5.29.37").unwrap();
    let eku = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).unwrap();
    assert_eq!(
        eku.0,
        vec![der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2")]
    );
    assert!(ext(&c, "2.5.29.14").is_some());
    assert!(ext(&c, "2.5.29.35").is_some());
    // SAN only when asked.
    assert!(ext(&c, "2.5.29.17").is_none());
    issued.verify_issued_by(ca.ca_certificate()).unwrap();
    // Another CA's certificate does not verify it.
    let other = CertificateAuthority::generate("Test MDM SCEP CA", NOW).unwrap();
    assert!(issued.verify_issued_by(other.ca_certificate()).is_err());

    let with_san = ca
        .issue(
            &csr,
            NOW,
            &IssueOptions {
                validity_days: 30,
                copy_subject_alt_name: true,
                key_encipherment: false,
                subject: None,
            },
        )
        .unwrap();
    let c = x509(&with_san);
    let san = ext(&c, "2.5.29.17").unwrap();
    assert!(!san.critical);
    assert_eq!(Some(san.extn_value.as_bytes()), csr.subject_alt_name_der());
    assert!(key_usage(&c).1.digital_signature() && !key_usage(&c).1.key_encipherment());
    assert_eq!(with_san.not_after_unix(), NOW + 30 * DAY);
    // Serials differ.
    assert_ne!(with_san.serial_hex(), issued.serial_hex());

    // Never beyond the CA's own end; nothing once the CA has expired.
    let late = ca
        .issue(&csr, NOW + 3600 * DAY, &IssueOptions::default())
        .unwrap();
    assert_eq!(late.not_after_unix(), ca.ca_certificate().not_after_unix());
    assert!(
        ca.issue(&csr, NOW + 3651 * DAY, &IssueOptions::default())
            .is_err()
    );
    assert!(
        ca.issue(
            &csr,
            NOW,
            &IssueOptions {
                validity_days: 0,
                ..IssueOptions::default()
            }
        )
        .is_err()
    );
}

#[test]
fn csr_parsing_rules() {
    let key = generated_key();
    for digest in [
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
        DigestAlgorithm::Sha512,
    ] {
        let der = build_csr(
            key,
            &CsrParams {
                digest,
                ..CsrParams::new("d")
            },
        )
        .unwrap();
        let csr = Csr::from_der(&der).unwrap();
        assert_eq!(csr.signature_digest(), digest);
        assert_eq!(csr.public_key_der(), key.public_key_der().unwrap());
        assert_eq!(csr.challenge_password(), None);
        // PEM, as openssl writes it.
        let pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64_encode(&der)
        );
        assert_eq!(Csr::from_pem(&pem).unwrap().der(), der);
    }
    // PrintableString and UTF8String challenges.
    for challenge in ["Abc 123", "pässwörd_@!"] {
        let der = build_csr(
            key,
            &CsrParams {
                challenge: Some(challenge),
                ..CsrParams::new("d")
            },
        )
        .unwrap();
        let csr = Csr::from_der(&der).unwrap();
        assert_eq!(csr.challenge_password(), Some(challenge));
        assert!(!format!("{csr:?}").contains(challenge));
    }
    // Damage anywhere is an error, never a panic; in the signed part, a signature error.
    let der = build_csr(key, &CsrParams::new("device")).unwrap();
    for n in 0..der.len() {
        assert!(Csr::from_der(&der[..n]).is_err());
    }
    let at = der.windows(6).position(|w| w == b"device").unwrap();
    let mut bad = der.clone();
    bad[at] = b'D';
    assert_eq!(Csr::from_der(&bad).unwrap_err(), ScepError::CsrSignature);
    for i in 0..der.len() {
        let mut d = der.clone();
        d[i] ^= 0x01;
        assert!(Csr::from_der(&d).is_err(), "flip at {i} accepted");
    }
    assert!(matches!(
        Csr::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        Err(ScepError::InvalidCsr(_))
    ));
    assert!(matches!(
        Csr::from_der(&[0u8; 70_000]),
        Err(ScepError::InvalidCsr(_))
    ));
    assert!(build_csr(key, &CsrParams::new("")).is_err());
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A signer certificate issued by the test CA, like a profile-signing identity.
fn profile_signer() -> (KeyPair, Certificate) {
    let key = other_key().clone();
    let csr = Csr::from_der(&build_csr(&key, &CsrParams::new("Profile Signer")).unwrap()).unwrap();
    let cert = test_ca()
        .issue(&csr, NOW, &IssueOptions::default())
        .unwrap();
    (key, cert)
}

#[test]
fn signed_profiles_verify_and_carry_the_chain() {
    let (key, cert) = profile_signer();
    let ca = test_ca().ca_certificate().clone();
    let profile = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict/></plist>\n";
    let der = sign_profile(profile, &key, &cert, std::slice::from_ref(&ca), NOW).unwrap();
    let msg = verify_signed_data(&der, None).unwrap();
    assert_eq!(msg.content(), Some(&profile[..]));
    assert_eq!(msg.signer(), &cert);
    assert!(msg.is_data());
    assert_eq!(msg.digest_algorithm(), DigestAlgorithm::Sha256);
    assert_eq!(msg.signing_time_unix(), Some(NOW));
    let mut certs: Vec<_> = msg.certificates().to_vec();
    certs.sort_by_key(|c| c.der().to_vec());
    let mut want = vec![cert.clone(), ca.clone()];
    want.sort_by_key(|c| c.der().to_vec());
    assert_eq!(certs, want);
    // Duplicates in the chain are dropped.
    let dup = sign_profile(
        profile,
        &key,
        &cert,
        &[ca.clone(), cert.clone(), ca.clone()],
        NOW,
    )
    .unwrap();
    assert_eq!(
        verify_signed_data(&dup, None).unwrap().certificates().len(),
        2
    );
    // Altered content fails.
    let mut t = der.clone();
    let at = t.windows(5).position(|w| w == b"plist").unwrap();
    t[at] = b'P';
    assert_eq!(
        verify_signed_data(&t, None).unwrap_err(),
        ScepError::MessageDigestMismatch
    );
    // The signer's certificate is the caller's to trust: chain it to the CA.
    msg.signer().verify_issued_by(&ca).unwrap();
    // Certificates in the message are byte-for-byte the originals.
    assert!(der.windows(ca.der().len()).any(|w| w == ca.der()));
}

#[test]
fn detached_and_sha1_signatures_and_extra_attributes() {
    let (key, cert) = profile_signer();
    let body = b"<plist>check-in body</plist>";
    let opts = SignOptions {
        digest: DigestAlgorithm::Sha1,
        detached: true,
        signing_time_unix: Some(2_600_000_000), // 2052: GeneralizedTime
        extra_attributes: vec![
            SignedAttribute::printable_string("1.2.3.4", "hello").unwrap(),
            SignedAttribute::from_der("1.2.3.5", &[0x02, 0x01, 0x07]).unwrap(),
        ],
    };
    let der = sign_data(body, &key, &cert, &[], &opts).unwrap();
    let msg = verify_signed_data(&der, Some(body)).unwrap();
    assert_eq!(msg.content(), None);
    assert_eq!(msg.digest_algorithm(), DigestAlgorithm::Sha1);
    assert_eq!(msg.signing_time_unix(), Some(2_600_000_000));
    assert!(matches!(
        verify_signed_data(&der, Some(b"other body")),
        Err(ScepError::MessageDigestMismatch)
    ));
    assert!(matches!(
        verify_signed_data(&der, None),
        Err(ScepError::Malformed(_))
    ));
    let attached = sign_data(body, &key, &cert, &[], &SignOptions::default()).unwrap();
    assert!(matches!(
        verify_signed_data(&attached, Some(body)),
        Err(ScepError::Malformed(_))
    ));

    // Attribute rules.
    let dup = SignOptions {
        extra_attributes: vec![
            SignedAttribute::octet_string("1.2.840.113549.1.9.4", b"fake digest").unwrap(),
        ],
        ..SignOptions::default()
    };
    assert!(matches!(
        sign_data(body, &key, &cert, &[], &dup),
        Err(CryptoError::InvalidInput(_))
    ));
    assert!(SignedAttribute::printable_string("not-an-oid", "x").is_err());
    assert!(SignedAttribute::printable_string("1.2.3", "no_underscores").is_err());
    assert!(SignedAttribute::from_der("1.2.3", &[0x02, 0x05]).is_err());
}

#[test]
fn certs_only_round_trip() {
    let ca = test_ca();
    let der = ca.ca_ra_certs_only().unwrap();
    let certs = parse_certs_only(&der).unwrap();
    assert_eq!(certs.len(), 2);
    assert!(certs.contains(ca.ca_certificate()));
    assert!(certs.contains(ca.ra_certificate()));
    // No signer: not a verifiable signed message.
    assert!(verify_signed_data(&der, None).is_err());
    let one = certs_only(std::slice::from_ref(ca.ca_certificate())).unwrap();
    assert_eq!(
        parse_certs_only(&one).unwrap(),
        vec![ca.ca_certificate().clone()]
    );
    assert!(certs_only(&[]).is_err());
    // The cms crate reads it as a SignedData without signers.
    let ci = cms::content_info::ContentInfo::from_der(&der).unwrap();
    let sd = ci
        .content
        .decode_as::<cms::signed_data::SignedData>()
        .unwrap();
    assert!(sd.signer_infos.0.is_empty());
    assert!(sd.encap_content_info.econtent.is_none());
    assert_eq!(sd.certificates.unwrap().0.len(), 2);
    let _ = sd.version.to_der().unwrap();
}

#[test]
fn self_signed_and_generated_keys() {
    assert!(KeyPair::generate_with_bits(1024).is_err());
    assert!(KeyPair::generate_with_bits(8192).is_err());
    let key = generated_key();
    let me = self_signed_certificate(key, "me", NOW, NOW + 10).unwrap();
    me.verify_issued_by(&me).unwrap();
    assert_eq!(me.common_name().as_deref(), Some("me"));
    assert_eq!(me.public_key_der().unwrap(), key.public_key_der().unwrap());
}

//! Interoperability with OpenSSL 3 (the `openssl` CLI): it verifies what we sign, opens
//! what we encrypt, accepts the certificates we issue; we accept its CSRs, open its
//! envelopes and verify its signatures. Without the CLI these tests fail, loudly.

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

#[test]
fn openssl_verifies_our_signed_profiles() {
    let dir = TempDir::new("profile");
    write_ca(&dir);
    let (key, cert) = signer();
    let profile = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\r\n<dict><key>PayloadType</key><string>Configuration</string></dict>\n</plist>\n";
    let der = sign_profile(
        profile,
        key,
        &cert,
        std::slice::from_ref(live_ca().ca_certificate()),
        now(),
    )
    .unwrap();
    dir.write("p.der", &der);
    for tool in ["cms", "smime"] {
        openssl_ok(
            &dir,
            &[
                tool, "-verify", "-binary", "-inform", "DER", "-in", "p.der", "-CAfile", "ca.pem",
                "-purpose", "any", "-out", "out.txt",
            ],
        );
        assert_eq!(dir.read("out.txt"), profile, "{tool}");
    }
    // The chain is in the message: openssl finds the signer without being told.
    let out = openssl_ok(
        &dir,
        &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "p.der"],
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("Profile Signer") && printed.contains("Interop SCEP CA"));
    assert!(printed.contains("signingTime") && printed.contains("sha256"));

    // Tampering is caught by openssl too (so the check above can fail).
    let mut bad = der.clone();
    let at = bad.windows(13).position(|w| w == b"Configuration").unwrap();
    bad[at] = b'c';
    dir.write("bad.der", &bad);
    let out = openssl(
        &dir,
        &[
            "cms", "-verify", "-binary", "-inform", "DER", "-in", "bad.der", "-CAfile", "ca.pem",
            "-purpose", "any", "-out", "bad.txt",
        ],
    );
    assert!(!out.status.success(), "openssl accepted a tampered profile");

    // Detached SHA-1 and SHA-512 signatures (the Mdm-Signature shape).
    for digest in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha512] {
        let body = b"<plist><dict><key>Status</key><string>Idle</string></dict></plist>";
        let sig = sign_data(
            body,
            key,
            &cert,
            &[],
            &SignOptions {
                digest,
                detached: true,
                ..SignOptions::default()
            },
        )
        .unwrap();
        dir.write("body.plist", body);
        dir.write("body.sig", &sig);
        openssl_ok(
            &dir,
            &[
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "body.sig",
                "-content",
                "body.plist",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ],
        );
    }
}

/// A device enrolling against the live CA: returns its request's reply and issued cert.
fn enrol(cipher: EnvelopeCipher) -> (Vec<u8>, Certificate) {
    let ca = live_ca();
    let key = generated_key();
    let csr = build_csr(
        key,
        &CsrParams {
            challenge: Some("c"),
            ..CsrParams::new("Interop Device")
        },
    )
    .unwrap();
    let me = self_signed_certificate(key, "Interop Device", now() - 60, now() + 3600).unwrap();
    let built = build_pkcs_req(
        &csr,
        key,
        &me,
        ca.ra_certificate(),
        &RequestOptions {
            message_type: MessageType::PkcsReq,
            transaction_id: "interop-1",
            cipher,
            digest: DigestAlgorithm::Sha256,
        },
    )
    .unwrap();
    let req = parse_pki_message(&built.der).unwrap();
    let csr = req.decrypt_csr(ca.ra_key()).unwrap();
    let issued = ca.issue(&csr, now(), &IssueOptions::default()).unwrap();
    let reply = cert_rep_success(
        &req,
        &issued,
        ca.ra_key(),
        ca.ra_certificate(),
        ca.ca_certificate(),
    )
    .unwrap();
    (reply, issued)
}

#[test]
fn openssl_opens_our_cert_rep() {
    let dir = TempDir::new("certrep");
    write_ca(&dir);
    dir.write(
        "device.key",
        generated_key().to_pkcs8_pem().unwrap().as_bytes(),
    );
    for (cipher, openssl_name) in [
        (EnvelopeCipher::Aes128Cbc, "AES-128-CBC"),
        (EnvelopeCipher::Aes256Cbc, "AES-256-CBC"),
        (EnvelopeCipher::DesEde3Cbc, "DES-EDE3-CBC"),
        (EnvelopeCipher::DesCbc, "DES-EDE3-CBC"),
    ] {
        let (reply, issued) = enrol(cipher);
        dir.write("reply.der", &reply);
        // openssl verifies the RA's signature and chains the RA to our CA.
        openssl_ok(
            &dir,
            &[
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "reply.der",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "any",
                "-out",
                "env.der",
            ],
        );
        let env = dir.read("env.der");
        assert_eq!(
            Some(&env[..]),
            verify_signed_data(&reply, None).unwrap().content()
        );
        let out = openssl_ok(
            &dir,
            &[
                "cms", "-cmsout", "-print", "-inform", "DER", "-in", "env.der",
            ],
        );
        let printed = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(
            printed.contains(&openssl_name.to_lowercase()),
            "{cipher:?}: expected {openssl_name} in\n{printed}"
        );
        // ... and decrypts the envelope with the device key.
        openssl_ok(
            &dir,
            &[
                "cms",
                "-decrypt",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "env.der",
                "-inkey",
                "device.key",
                "-out",
                "inner.der",
            ],
        );
        let inner = dir.read("inner.der");
        assert_eq!(parse_certs_only(&inner).unwrap(), vec![issued.clone()]);
        let out = openssl_ok(
            &dir,
            &[
                "pkcs7",
                "-inform",
                "DER",
                "-in",
                "inner.der",
                "-print_certs",
            ],
        );
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(Certificate::from_pem(&printed).unwrap(), issued);
        // Our own client agrees.
        let rep = parse_cert_rep(&reply, generated_key()).unwrap();
        assert_eq!(rep.status, PkiStatus::Success);
        assert_eq!(rep.certificate.unwrap(), issued);
    }
}

#[test]
fn openssl_verifies_issued_certificates() {
    let dir = TempDir::new("verify");
    write_ca(&dir);
    let ca = live_ca();
    let (_, issued) = enrol(EnvelopeCipher::Aes128Cbc);
    dir.write("issued.pem", issued.to_pem());
    dir.write("ra.pem", ca.ra_certificate().to_pem());
    for f in ["issued.pem", "ra.pem"] {
        let out = openssl_ok(&dir, &["verify", "-CAfile", "ca.pem", f]);
        assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"), "{f}");
    }
    let out = openssl_ok(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "sslclient",
            "issued.pem",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
    // The CA is a CA, the identity a TLS client.
    let text = |f: &str| {
        String::from_utf8_lossy(&openssl_ok(&dir, &["x509", "-noout", "-text", "-in", f]).stdout)
            .into_owned()
    };
    let ca_text = text("ca.pem");
    assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
    assert!(ca_text.contains("Certificate Sign, CRL Sign"), "{ca_text}");
    let id_text = text("issued.pem");
    assert!(
        id_text.contains("TLS Web Client Authentication"),
        "{id_text}"
    );
    assert!(
        id_text.contains("Digital Signature, Key Encipherment"),
        "{id_text}"
    );
    assert!(id_text.contains("CA:FALSE"), "{id_text}");
    assert!(id_text.contains("sha256WithRSAEncryption"), "{id_text}");

    // A certificate from another CA does not verify against ours.
    let other = CertificateAuthority::generate("Interop SCEP CA", now()).unwrap();
    dir.write("other.pem", other.ra_certificate().to_pem());
    let out = openssl(&dir, &["verify", "-CAfile", "ca.pem", "other.pem"]);
    assert!(!out.status.success());
}

struct OpensslCsr {
    args: &'static [&'static str],
    challenge: Option<&'static str>,
    bits: usize,
    digest: DigestAlgorithm,
}

fn openssl_csr(dir: &TempDir, c: &OpensslCsr) -> (Vec<u8>, String) {
    let mut cfg = String::from(
        "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\nstring_mask = utf8only\n\
         [dn]\nO = Interop Org\nCN = Interop Device 7\n[attrs]\n",
    );
    if let Some(ch) = c.challenge {
        cfg.push_str(&format!("challengePassword = {ch}\n"));
    }
    dir.write("req.cnf", cfg);
    let mut args = vec![
        "req", "-new", "-nodes", "-utf8", "-config", "req.cnf", "-keyout", "csr.key", "-outform",
        "DER", "-out", "csr.der",
    ];
    args.extend_from_slice(c.args);
    openssl_ok(dir, &args);
    let der = dir.read("csr.der");
    let pem = String::from_utf8(
        openssl_ok(
            dir,
            &["req", "-inform", "DER", "-in", "csr.der", "-outform", "PEM"],
        )
        .stdout,
    )
    .unwrap();
    (der, pem)
}

#[test]
fn openssl_csrs_are_accepted_or_refused_for_a_reason() {
    let dir = TempDir::new("csr");
    write_ca(&dir);
    let good = [
        OpensslCsr {
            args: &[
                "-newkey",
                "rsa:2048",
                "-sha256",
                "-addext",
                "subjectAltName=DNS:device7.example,DNS:alt.example",
            ],
            challenge: Some("s3cret-Challenge"),
            bits: 2048,
            digest: DigestAlgorithm::Sha256,
        },
        OpensslCsr {
            args: &["-newkey", "rsa:1024", "-sha1"],
            challenge: Some("abc123"),
            bits: 1024,
            digest: DigestAlgorithm::Sha1,
        },
        OpensslCsr {
            args: &["-newkey", "rsa:3072", "-sha512"],
            challenge: Some("pässwört_ünïcode"),
            bits: 3072,
            digest: DigestAlgorithm::Sha512,
        },
        OpensslCsr {
            args: &["-newkey", "rsa:2048", "-sha384"],
            challenge: None,
            bits: 2048,
            digest: DigestAlgorithm::Sha384,
        },
    ];
    for c in &good {
        let (der, pem) = openssl_csr(&dir, c);
        let csr = Csr::from_der(&der).unwrap_or_else(|e| panic!("{:?}: {e}", c.args));
        assert_eq!(Csr::from_pem(&pem).unwrap().der(), der);
        assert_eq!(csr.challenge_password(), c.challenge, "{:?}", c.args);
        assert_eq!(csr.key_bits(), c.bits);
        assert_eq!(csr.signature_digest(), c.digest);
        assert_eq!(csr.common_name().as_deref(), Some("Interop Device 7"));
        assert_eq!(csr.subject(), "CN=Interop Device 7,O=Interop Org");
        if c.args.iter().any(|a| a.starts_with("subjectAltName")) {
            assert_eq!(csr.dns_names(), vec!["device7.example", "alt.example"]);
        }
        // Issue from it (SAN copied) and let openssl check the result.
        let issued = live_ca()
            .issue(
                &csr,
                now(),
                &IssueOptions {
                    copy_subject_alt_name: true,
                    ..IssueOptions::default()
                },
            )
            .unwrap();
        dir.write("issued.pem", issued.to_pem());
        openssl_ok(&dir, &["verify", "-CAfile", "ca.pem", "issued.pem"]);
        let text = String::from_utf8_lossy(
            &openssl_ok(&dir, &["x509", "-noout", "-text", "-in", "issued.pem"]).stdout,
        )
        .into_owned();
        assert!(text.contains("Interop Device 7"));
        assert_eq!(
            text.contains("DNS:device7.example, DNS:alt.example"),
            !csr.dns_names().is_empty(),
            "{text}"
        );
        // openssl's key in the CSR is the key in the certificate.
        let pubkey = openssl_ok(
            &dir,
            &["pkey", "-in", "csr.key", "-pubout", "-outform", "DER"],
        );
        assert_eq!(issued.public_key_der().unwrap(), pubkey.stdout);

        // One changed byte in the signed part: refused.
        let at = der.windows(7).position(|w| w == b"Interop").unwrap();
        let mut bad = der.clone();
        bad[at] = b'i';
        assert_eq!(Csr::from_der(&bad).unwrap_err(), ScepError::CsrSignature);
    }

    // Keys we refuse, each with its reason.
    for (args, why) in [
        (&["-newkey", "rsa:512", "-sha256"][..], "RSA-512"),
        (
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            "only RSA",
        ),
        (&["-newkey", "ed25519"][..], "only RSA"),
    ] {
        let (der, _) = openssl_csr(
            &dir,
            &OpensslCsr {
                args,
                challenge: Some("x"),
                bits: 0,
                digest: DigestAlgorithm::Sha256,
            },
        );
        match Csr::from_der(&der) {
            Err(ScepError::UnacceptableKey(d)) => assert!(d.contains(why), "{d}"),
            // An EC or Ed25519 signature algorithm is refused even before the key.
            Err(ScepError::UnsupportedAlgorithm(d)) => assert!(why == "only RSA", "{d}"),
            other => panic!("{args:?}: {other:?}"),
        }
    }
}

/// Wraps an EnvelopedData made elsewhere into a PKCSReq signed by `key`.
fn pkcs_req_around(envelope: &[u8], key: &KeyPair) -> Vec<u8> {
    let me = self_signed_certificate(key, "openssl envelope", now() - 60, now() + 600).unwrap();
    sign_data(
        envelope,
        key,
        &me,
        &[],
        &SignOptions {
            extra_attributes: vec![
                SignedAttribute::printable_string("2.16.840.1.113733.1.9.2", "19").unwrap(),
                SignedAttribute::printable_string("2.16.840.1.113733.1.9.7", "ossl").unwrap(),
                SignedAttribute::octet_string("2.16.840.1.113733.1.9.5", &[9; 16]).unwrap(),
            ],
            ..SignOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn openssl_envelopes_decrypt_with_our_code() {
    let dir = TempDir::new("envelope");
    let ca = live_ca();
    dir.write("ra.pem", ca.ra_certificate().to_pem());
    let csr = build_csr(
        generated_key(),
        &CsrParams {
            challenge: Some("from openssl"),
            ..CsrParams::new("Enveloped")
        },
    )
    .unwrap();
    dir.write("csr.der", &csr);
    for (flags, cipher) in [
        (&["-aes128"][..], EnvelopeCipher::Aes128Cbc),
        (&["-aes192"][..], EnvelopeCipher::Aes192Cbc),
        (&["-aes256"][..], EnvelopeCipher::Aes256Cbc),
        (&["-des3"][..], EnvelopeCipher::DesEde3Cbc),
        (
            &["-des", "-provider", "legacy", "-provider", "default"][..],
            EnvelopeCipher::DesCbc,
        ),
        // Indefinite lengths and a chunked encryptedContent.
        (&["-aes128", "-stream"][..], EnvelopeCipher::Aes128Cbc),
        (&["-des3", "-stream"][..], EnvelopeCipher::DesEde3Cbc),
    ] {
        let mut args = vec![
            "cms", "-encrypt", "-binary", "-outform", "DER", "-in", "csr.der",
        ];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["-out", "env.der", "ra.pem"]);
        openssl_ok(&dir, &args);
        let env = dir.read("env.der");
        let msg = parse_pki_message(&pkcs_req_around(&env, generated_key()))
            .unwrap_or_else(|e| panic!("{flags:?}: {e}"));
        assert_eq!(msg.envelope_cipher(), Some(cipher), "{flags:?}");
        let got = msg
            .decrypt_csr(ca.ra_key())
            .unwrap_or_else(|e| panic!("{flags:?}: {e}"));
        assert_eq!(got.der(), csr, "{flags:?}");
        assert_eq!(got.challenge_password(), Some("from openssl"));
        // Not for another key.
        assert_eq!(
            msg.decrypt_csr(ca.ca_key()).unwrap_err(),
            ScepError::DecryptFailed,
            "{flags:?}"
        );
    }
}

#[test]
fn we_verify_openssl_signatures() {
    let dir = TempDir::new("sign");
    let (key, cert) = signer();
    dir.write("signer.pem", cert.to_pem());
    dir.write("signer.key", key.to_pkcs8_pem().unwrap().as_bytes());
    dir.write("ca.pem", live_ca().ca_certificate().to_pem());
    let content = b"MachineInfo plist \x00\x01\x02 binary-safe\r\n";
    dir.write("content.bin", content);
    for (extra, digest) in [
        (&["-md", "sha256"][..], DigestAlgorithm::Sha256),
        (&["-md", "sha1"][..], DigestAlgorithm::Sha1),
        (&["-md", "sha512"][..], DigestAlgorithm::Sha512),
        // BER with indefinite lengths, as Apple's devices send MachineInfo.
        (&["-md", "sha1", "-stream"][..], DigestAlgorithm::Sha1),
        // No signed attributes: the signature is over the content itself.
        (&["-md", "sha256", "-noattr"][..], DigestAlgorithm::Sha256),
        // Signer named by subject key identifier.
        (&["-md", "sha256", "-keyid"][..], DigestAlgorithm::Sha256),
        // The CA in the certificates too.
        (
            &["-md", "sha256", "-certfile", "ca.pem"][..],
            DigestAlgorithm::Sha256,
        ),
    ] {
        let mut args = vec![
            "cms",
            "-sign",
            "-nodetach",
            "-binary",
            "-outform",
            "DER",
            "-in",
            "content.bin",
            "-signer",
            "signer.pem",
            "-inkey",
            "signer.key",
            "-out",
            "signed.der",
        ];
        args.extend_from_slice(extra);
        openssl_ok(&dir, &args);
        let der = dir.read("signed.der");
        let msg = verify_signed_data(&der, None).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        assert_eq!(msg.content(), Some(&content[..]), "{extra:?}");
        assert_eq!(msg.signer(), &cert);
        assert_eq!(msg.digest_algorithm(), digest);
        // A SignedData is not yet a SCEP message.
        assert_eq!(
            parse_pki_message(&der).unwrap_err(),
            ScepError::MissingAttribute("messageType")
        );
        // Every truncation is an error.
        for n in (0..der.len()).step_by(7) {
            assert!(verify_signed_data(&der[..n], None).is_err());
        }
    }
    // Detached, with the PKCS#7 `smime` tool.
    openssl_ok(
        &dir,
        &[
            "smime",
            "-sign",
            "-binary",
            "-outform",
            "DER",
            "-in",
            "content.bin",
            "-signer",
            "signer.pem",
            "-inkey",
            "signer.key",
            "-out",
            "detached.der",
        ],
    );
    let der = dir.read("detached.der");
    let msg = verify_signed_data(&der, Some(content)).unwrap();
    assert_eq!(msg.content(), None);
    assert_eq!(
        verify_signed_data(&der, Some(b"other")).unwrap_err(),
        ScepError::MessageDigestMismatch
    );
}

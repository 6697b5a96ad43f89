//! OpenSSL accepts what we make: it verifies our signed profiles, opens our CertRep and
//! verifies the certificates we issue.

use super::*;

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

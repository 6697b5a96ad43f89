//! We accept what OpenSSL makes: its CSRs (or refuse them for a reason), its envelopes
//! and its signatures.

use super::*;

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

//! Server token files: openssl-made fixtures in every form ABM or an admin may hand
//! us, hand-built and cms-crate-built envelopes for our own keys, and the failure modes.

mod common;

use common::*;
use mdm_crypto::{
    Certificate, KeyPair, TokenFileError, decrypt_server_token, decrypt_server_token_with_cert,
    parse_token_json, read_server_token, self_signed_certificate,
};

const FAKE_SECRET: &str = "fake0123456789";

fn decrypt_both_ways(input: &[u8]) -> Vec<u8> {
    let (key, cert) = (dep_key(), dep_cert());
    let a = decrypt_server_token(input, &key).unwrap();
    let b = decrypt_server_token_with_cert(input, &key, &cert).unwrap();
    assert_eq!(a, b);
    a
}

#[test]
fn every_openssl_form_decrypts() {
    let expected = fixture("token.txt");
    for name in [
        "token_aes256.p7m",
        "token_aes256_crlf.p7m",
        "token_aes256.der",
        "token_aes256.pem",
        "token_des3.p7m",
        "token_aes128_cms.p7m",
        "token_aes192.der",
        "token_ber.der",
        "token_two_recipients.der",
    ] {
        let got = decrypt_both_ways(&fixture(name));
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn wrapper_variations_decrypt() {
    let expected = fixture("token.txt");
    let smime = fixture("token_aes256.p7m");
    let der = fixture("token_aes256.der");
    let pem = fixture_str("token_aes256.pem");
    let mut variants: Vec<(&str, Vec<u8>)> = vec![
        ("bare base64 body", smime_body(&smime)),
        (
            "base64 on one line",
            smime_body(&smime)
                .into_iter()
                .filter(|b| *b != b'\n')
                .collect(),
        ),
        ("PEM with CRLF", pem.replace('\n', "\r\n").into_bytes()),
        (
            "surrounding whitespace",
            [b"\r\n\n  ".as_slice(), &smime, b"\n\n\t "].concat(),
        ),
        ("UTF-8 BOM", [b"\xef\xbb\xbf".as_slice(), &smime].concat()),
        (
            "DER with a trailing newline",
            [der.as_slice(), b"\n"].concat(),
        ),
        (
            "BER with a trailing CRLF",
            [fixture("token_ber.der").as_slice(), b"\r\n"].concat(),
        ),
    ];
    // Base64 without padding (some tools strip it).
    let body = String::from_utf8(smime_body(&smime)).unwrap();
    variants.push((
        "unpadded base64",
        body.trim_end().trim_end_matches('=').as_bytes().to_vec(),
    ));
    for (what, input) in variants {
        match decrypt_server_token(&input, &dep_key()) {
            Ok(got) => assert_eq!(got, expected, "{what}"),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

#[test]
fn fixture_token_json_parses() {
    let s = parse_token_json(&decrypt_both_ways(&fixture("token_aes256.p7m"))).unwrap();
    assert_eq!(s.consumer_key, "CK_fake0123456789");
    assert_eq!(s.consumer_secret, "CS_fake0123456789");
    assert_eq!(s.access_token, "AT_fake0123456789");
    assert_eq!(s.access_secret, "AS_fake0123456789");
    assert_eq!(s.access_token_expiry, "2027-11-23T09:00:00Z");
    assert_eq!(s.expiry_unix(), Some(1_826_960_400));
    let via_read =
        read_server_token(&fixture("token_des3.p7m"), &dep_key(), Some(&dep_cert())).unwrap();
    assert_eq!(via_read, s);
    // Debug names the consumer key and expiry only.
    let dbg = format!("{s:?}");
    for secret in ["CS_fake", "AT_fake", "AS_fake"] {
        assert!(!dbg.contains(secret), "{dbg}");
    }
    assert!(
        dbg.contains("CK_fake0123456789") && dbg.contains("2027-11-23T09:00:00Z"),
        "{dbg}"
    );
}

#[test]
fn token_for_another_certificate_is_wrong_key() {
    let other = fixture("token_other.p7m");
    assert_eq!(
        decrypt_server_token(&other, &dep_key()),
        Err(TokenFileError::WrongKey)
    );
    assert_eq!(
        decrypt_server_token_with_cert(&other, &dep_key(), &dep_cert()),
        Err(TokenFileError::WrongKey)
    );
    // Our file, but a key that is not ours.
    assert_eq!(
        decrypt_server_token(&fixture("token_aes256.der"), generated_key()),
        Err(TokenFileError::WrongKey)
    );
    // Two recipients and the certificate of the other one: its RSA unwrap fails.
    let other_cert = Certificate::from_pem(&fixture_str("other_cert.pem")).unwrap();
    assert_eq!(
        decrypt_server_token_with_cert(
            &fixture("token_two_recipients.der"),
            &dep_key(),
            &other_cert
        ),
        Err(TokenFileError::WrongKey)
    );
    let msg = TokenFileError::WrongKey.to_string();
    assert!(
        msg.contains("public key") && msg.contains("Apple Business Manager"),
        "{msg}"
    );
}

#[test]
fn empty_and_garbage_inputs_say_so() {
    let key = dep_key();
    let cert_der = fixture("dep_cert.der");
    let cert_pem = fixture("dep_cert.pem");
    type Check = fn(&TokenFileError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "empty",
            vec![],
            |e| matches!(e, TokenFileError::NotSmime(d) if d.contains("empty")),
        ),
        ("whitespace", b" \r\n\t\n".to_vec(), |e| {
            matches!(e, TokenFileError::NotSmime(_))
        }),
        (
            "binary junk",
            (0u8..=255).rev().cycle().take(600).collect(),
            |e| matches!(e, TokenFileError::NotSmime(_)),
        ),
        ("prose", b"Hello, this is not a token!".to_vec(), |e| {
            matches!(e, TokenFileError::NotSmime(_))
        }),
        (
            "HTML page",
            b"<html><body>Sign in</body></html>".to_vec(),
            |e| matches!(e, TokenFileError::NotSmime(_)),
        ),
        (
            "MIME without body",
            b"Content-Type: text/plain\r\n".to_vec(),
            |e| matches!(e, TokenFileError::NotSmime(d) if d.contains("without a body")),
        ),
        ("base64 of text", b"aGVsbG8gd29ybGQ=".to_vec(), |e| {
            matches!(e, TokenFileError::NotCms(_))
        }),
        ("a certificate (DER)", cert_der, |e| {
            matches!(e, TokenFileError::NotCms(_))
        }),
        ("a certificate (PEM)", cert_pem, |e| {
            matches!(e, TokenFileError::NotCms(_))
        }),
        ("a key (PEM)", fixture("dep_key.pem"), |e| {
            matches!(e, TokenFileError::NotCms(_))
        }),
        (
            "PEM cut before END",
            {
                let pem = fixture_str("token_aes256.pem");
                pem.as_bytes()[..pem.find("-----END").unwrap()].to_vec()
            },
            |e| matches!(e, TokenFileError::Corrupt(d) if d.contains("END")),
        ),
        ("text starting with 0", b"0000 not a token".to_vec(), |e| {
            matches!(e, TokenFileError::NotSmime(_))
        }),
        (
            "too large",
            vec![b'A'; 2 << 20],
            |e| matches!(e, TokenFileError::NotSmime(d) if d.contains("bytes")),
        ),
    ];
    for (what, input, ok) in cases {
        let err = decrypt_server_token(&input, &key).expect_err(what);
        assert!(ok(&err), "{what}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn truncated_files_are_corrupt() {
    let key = dep_key();
    let der = fixture("token_aes256.der");
    for cut in [2, 10, 100, der.len() / 2, der.len() - 17, der.len() - 1] {
        match decrypt_server_token(&der[..cut], &key) {
            Err(TokenFileError::Corrupt(d)) => assert!(d.contains("cut off"), "{cut}: {d}"),
            other => panic!("DER cut at {cut}: {other:?}"),
        }
    }
    let ber = fixture("token_ber.der");
    for cut in [ber.len() / 2, ber.len() - 2, ber.len() - 1] {
        assert!(
            matches!(
                decrypt_server_token(&ber[..cut], &key),
                Err(TokenFileError::Corrupt(_))
            ),
            "BER cut at {cut}"
        );
    }
    // Anywhere inside the base64 body of the S/MIME file, at every alignment.
    let smime = fixture("token_aes256.p7m");
    let body_start = smime.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    for cut in (body_start + 1..smime.len() - 8).step_by(37) {
        match decrypt_server_token(&smime[..cut], &key) {
            Err(TokenFileError::Corrupt(_)) => {}
            other => panic!("S/MIME cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn damaged_ciphertext_is_corrupt_and_damaged_key_is_wrong_key() {
    let key = generated_key();
    let cert = self_signed_certificate(key, "depserver", 0, 4_000_000_000).unwrap();
    let der = encrypt(
        &token_plaintext(TOKEN_JSON),
        &[cert.der()],
        &Options::default(),
    );
    // Flip the last byte of the penultimate ciphertext block: the padding breaks.
    let mut bad = der.clone();
    let n = bad.len();
    bad[n - 17] ^= 0xff;
    assert!(matches!(
        decrypt_server_token_with_cert(&bad, key, &cert),
        Err(TokenFileError::Corrupt(d)) if d.contains("padding")
    ));
    // Damage inside the RSA-encrypted content key.
    // The 256-byte encrypted key is the first OCTET STRING of that size (04 82 01 00).
    let enc_key_at = der
        .windows(4)
        .position(|w| w == [0x04, 0x82, 0x01, 0x00])
        .unwrap()
        + 4;
    let mut bad = der.clone();
    bad[enc_key_at + 100] ^= 0x01;
    assert_eq!(
        decrypt_server_token_with_cert(&bad, key, &cert),
        Err(TokenFileError::WrongKey)
    );
    // Trailing junk after a binary message.
    let junk = [der.as_slice(), b"junk"].concat();
    assert!(matches!(
        decrypt_server_token(&junk, key),
        Err(TokenFileError::Corrupt(_))
    ));
}

#[test]
fn round_trip_through_our_own_keys() {
    let key = generated_key();
    let cert = self_signed_certificate(key, "MDM DEP token", 1_700_000_000, 1_900_000_000).unwrap();
    let plaintext = token_plaintext(TOKEN_JSON);
    for alg in Alg::ALL {
        for rid in [RidKind::IssuerSerial, RidKind::SubjectKeyId] {
            let der = encrypt(
                &plaintext,
                &[cert.der()],
                &Options {
                    alg,
                    rid,
                    ..Options::default()
                },
            );
            for input in [der.clone(), smime(&der), smime_body(&smime(&der))] {
                let got = decrypt_server_token_with_cert(&input, key, &cert)
                    .unwrap_or_else(|e| panic!("{alg:?} {rid:?}: {e}"));
                assert_eq!(got, plaintext);
                assert_eq!(decrypt_server_token(&input, key).unwrap(), plaintext);
            }
        }
    }
    let secrets = read_server_token(
        &smime(&encrypt(&plaintext, &[cert.der()], &Options::default())),
        key,
        Some(&cert),
    )
    .unwrap();
    assert_eq!(secrets.consumer_secret, "CS_rt42secret");
    assert_eq!(secrets.access_token_expiry, "2030-01-02T03:04:05Z");
}

#[test]
fn round_trip_with_the_cms_crate_builder() {
    use cms::builder::{
        ContentEncryptionAlgorithm, EnvelopedDataBuilder, KeyEncryptionInfo,
        KeyTransRecipientInfoBuilder,
    };
    use cms::cert::IssuerAndSerialNumber;
    use cms::content_info::ContentInfo;
    use cms::enveloped_data::RecipientIdentifier;
    use der::{Any, Decode, Encode};
    use rand_core::OsRng;
    use rsa::RsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;

    let key = generated_key();
    let cert = self_signed_certificate(key, "depserver", 1_700_000_000, 1_900_000_000).unwrap();
    let parsed = x509_cert::Certificate::from_der(cert.der()).unwrap();
    let plaintext = token_plaintext(TOKEN_JSON);
    for alg in [
        ContentEncryptionAlgorithm::Aes128Cbc,
        ContentEncryptionAlgorithm::Aes192Cbc,
        ContentEncryptionAlgorithm::Aes256Cbc,
    ] {
        let rid = RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: parsed.tbs_certificate.issuer.clone(),
            serial_number: parsed.tbs_certificate.serial_number.clone(),
        });
        let public = RsaPublicKey::from_public_key_der(&key.public_key_der().unwrap()).unwrap();
        let mut rng = OsRng;
        let ktri = KeyTransRecipientInfoBuilder::new(rid, KeyEncryptionInfo::Rsa(public), &mut rng)
            .unwrap();
        let mut builder = EnvelopedDataBuilder::new(None, &plaintext, alg, None).unwrap();
        builder.add_recipient_info(ktri).unwrap();
        let env = builder.build_with_rng(&mut OsRng).unwrap();
        let der = ContentInfo {
            content_type: ID_ENVELOPED_DATA,
            content: Any::encode_from(&env).unwrap(),
        }
        .to_der()
        .unwrap();
        assert_eq!(
            decrypt_server_token_with_cert(&smime(&der), key, &cert).unwrap(),
            plaintext
        );
    }
}

#[test]
fn recipient_matching_uses_our_certificate() {
    let key = generated_key();
    let cert = self_signed_certificate(key, "depserver", 1_700_000_000, 1_900_000_000).unwrap();
    // Same key, new certificate (new serial): the token names the old one.
    let reissued = self_signed_certificate(key, "depserver", 1_700_000_000, 1_900_000_000).unwrap();
    assert_ne!(cert.serial_hex(), reissued.serial_hex());
    let plaintext = token_plaintext(TOKEN_JSON);
    for rid in [RidKind::IssuerSerial, RidKind::SubjectKeyId] {
        let der = encrypt(
            &plaintext,
            &[cert.der()],
            &Options {
                rid,
                ..Options::default()
            },
        );
        if rid == RidKind::IssuerSerial {
            assert_eq!(
                decrypt_server_token_with_cert(&der, key, &reissued),
                Err(TokenFileError::WrongKey)
            );
        } else {
            // The subject key identifier is the key's, so the reissued certificate matches.
            assert_eq!(
                decrypt_server_token_with_cert(&der, key, &reissued).unwrap(),
                plaintext
            );
        }
        // Without a certificate, the key alone decides.
        assert_eq!(decrypt_server_token(&der, key).unwrap(), plaintext);
    }
    // Of two recipients, ours is found whichever order they come in.
    let other = fixture("dep_cert.der");
    let der = encrypt(&plaintext, &[&other, cert.der()], &Options::default());
    assert_eq!(
        decrypt_server_token_with_cert(&der, key, &cert).unwrap(),
        plaintext
    );
    assert_eq!(decrypt_server_token(&der, key).unwrap(), plaintext);
}

#[test]
fn unsupported_algorithms_are_named() {
    let key = generated_key();
    let cert = self_signed_certificate(key, "depserver", 1_700_000_000, 1_900_000_000).unwrap();
    let pt = token_plaintext(TOKEN_JSON);
    let rc2 = encrypt(
        &pt,
        &[cert.der()],
        &Options {
            content_oid: Some(RC2_CBC),
            ..Options::default()
        },
    );
    assert_eq!(
        decrypt_server_token(&rc2, key),
        Err(TokenFileError::UnsupportedAlgorithm(
            "1.2.840.113549.3.2".into()
        ))
    );
    let oaep = encrypt(
        &pt,
        &[cert.der()],
        &Options {
            key_enc_oid: Some(RSAES_OAEP),
            ..Options::default()
        },
    );
    assert_eq!(
        decrypt_server_token_with_cert(&oaep, key, &cert),
        Err(TokenFileError::UnsupportedAlgorithm(
            "1.2.840.113549.1.1.7".into()
        ))
    );
    assert!(
        TokenFileError::UnsupportedAlgorithm("1.2.840.113549.3.2".into())
            .to_string()
            .contains("1.2.840.113549.3.2")
    );
    // A content key of the wrong size for the cipher.
    let short = encrypt(
        &pt,
        &[cert.der()],
        &Options {
            cek_len: Some(16),
            ..Options::default()
        },
    );
    assert!(matches!(
        decrypt_server_token_with_cert(&short, key, &cert),
        Err(TokenFileError::Corrupt(d)) if d.contains("16 bytes")
    ));
}

#[test]
fn plaintext_problems_after_decryption() {
    let key = generated_key();
    let cert = self_signed_certificate(key, "depserver", 1_700_000_000, 1_900_000_000).unwrap();
    let open = |pt: &[u8]| {
        read_server_token(
            &smime(&encrypt(pt, &[cert.der()], &Options::default())),
            key,
            Some(&cert),
        )
    };
    assert_eq!(
        open(b"Content-Type: text/plain\r\n\r\n{\"consumer_key\":\"x\"}\r\n"),
        Err(TokenFileError::NoTokenJson)
    );
    let empty_secret = TOKEN_JSON.replace("AS_rt42secret", "");
    assert_eq!(
        open(&token_plaintext(&empty_secret)),
        Err(TokenFileError::BadTokenJson(
            "access_secret is empty".into()
        ))
    );
    let err = open(&token_plaintext(&TOKEN_JSON[..60])).unwrap_err();
    assert!(
        matches!(&err, TokenFileError::BadTokenJson(d) if d.starts_with("not JSON")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("rt42"), "{err}");
}

#[test]
fn errors_never_carry_secrets() {
    let key = dep_key();
    let smime = fixture("token_aes256.p7m");
    let mut messages = Vec::new();
    for cut in (0..smime.len()).step_by(11) {
        if let Err(e) = read_server_token(&smime[..cut], &key, Some(&dep_cert())) {
            messages.push(format!("{e} {e:?}"));
        }
    }
    let pt = fixture_str("token.txt");
    for broken in [
        pt.replace("\"access_token\"", "\"access_tokn\""),
        pt.replace("Z\"}", ""),
    ] {
        let e = parse_token_json(broken.as_bytes()).unwrap_err();
        messages.push(format!("{e} {e:?}"));
    }
    for m in messages {
        assert!(!m.contains(FAKE_SECRET), "{m}");
    }
}

/// A real EnvelopedData made by another implementation (micromdm's Go SCEP client,
/// DES-EDE3-CBC, RSA-4096, PrintableString issuer), taken out of its PKCSReq.
#[test]
fn micromdm_scep_envelope_decrypts() {
    let envelope = fixture("micromdm_envelope.der");
    // Extracted by make-fixtures.sh; check it still is the vector's eContent.
    let pkcsreq = vector("micromdm-scep/PKCSReq.der");
    assert!(pkcsreq.windows(envelope.len()).any(|w| w == envelope));
    let key = KeyPair::from_pem(&fixture_str("micromdm_scep_ca_key.pem")).unwrap();
    assert_eq!(key.bits(), 4096);
    let cert = Certificate::from_pem(std::str::from_utf8(&vector("micromdm-scep/ca.pem")).unwrap())
        .unwrap();
    assert!(cert.matches_key(&key));
    let csr = decrypt_server_token_with_cert(&envelope, &key, &cert).unwrap();
    // The device's certificate request, byte for byte what openssl decrypted.
    assert_eq!(csr, fixture("micromdm_envelope_plaintext.der"));
    assert_eq!(decrypt_server_token(&envelope, &key).unwrap(), csr);
    // And not a token, which the parser says plainly.
    assert_eq!(parse_token_json(&csr), Err(TokenFileError::NoTokenJson));
}

/// openssl encrypting to a certificate our code made, decrypted by our code. Skipped
/// (with a note) where the openssl CLI is missing.
#[test]
fn openssl_encrypts_to_our_certificate() {
    if !openssl_available() {
        eprintln!("openssl CLI not found: skipping");
        return;
    }
    let key: &KeyPair = generated_key();
    let cert = self_signed_certificate(key, "depserver", 1_700_000_000, 1_900_000_000).unwrap();
    let dir = std::env::temp_dir().join(format!("mdm-crypto-openssl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_path = dir.join("cert.pem");
    std::fs::write(&cert_path, cert.to_pem()).unwrap();
    let plaintext = token_plaintext(TOKEN_JSON);
    let in_path = dir.join("token.txt");
    std::fs::write(&in_path, &plaintext).unwrap();
    for (tool, cipher) in [("smime", "-aes256"), ("smime", "-des3"), ("cms", "-aes128")] {
        let out = std::process::Command::new("openssl")
            .args([tool, "-encrypt", "-binary", cipher, "-in"])
            .arg(&in_path)
            .arg(&cert_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = decrypt_server_token_with_cert(&out.stdout, key, &cert)
            .unwrap_or_else(|e| panic!("{tool} {cipher}: {e}"));
        assert_eq!(got, plaintext);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Damage to any single byte of a token gives an error (or, inside the ciphertext's first
/// block, a garbled plaintext), never a panic.
#[test]
fn damaged_bytes_never_panic() {
    let key = dep_key();
    let cert = dep_cert();
    for name in ["token_aes256.der", "token_ber.der", "token_des3.p7m"] {
        let original = fixture(name);
        for i in 0..original.len() {
            let mut damaged = original.clone();
            damaged[i] ^= 0xa5;
            let _ = read_server_token(&damaged, &key, Some(&cert));
        }
    }
}

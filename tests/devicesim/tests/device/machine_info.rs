//! MachineInfo signatures (DER and BER, SHA-1 and SHA-256) that verify and chain to the
//! fake Apple CA, which issues like Apple's although expired.

use super::*;

#[test]
fn machine_info_verifies_and_chains_to_the_fake_apple_ca() {
    let mut d = iphone();
    let apple = d.apple_identity().certificate().clone();
    assert_eq!(apple.common_name().as_deref(), Some(d.udid.as_str()));
    assert!(
        apple.subject().contains("Apple Inc."),
        "{}",
        apple.subject()
    );
    assert!(apple.issuer().contains("Apple iPhone Device CA"));
    assert_eq!(
        apple_ca().certificate().subject(),
        apple.issuer(),
        "issued by the fake CA's name"
    );
    for (digest, ber) in [
        (Digest::Sha1, true),
        (Digest::Sha256, true),
        (Digest::Sha1, false),
        (Digest::Sha256, false),
    ] {
        d.machine_info_options.digest = digest;
        d.machine_info_options.ber = ber;
        let req = d.machine_info_request().unwrap();
        if ber {
            // Indefinite lengths on the outside, a chunked content inside.
            assert_eq!(&req[..2], &[0x30, 0x80]);
            assert!(req.windows(4).any(|w| w == [0x24, 0x80, 0x04, 0x82]));
            // The BER converter reads all of it.
            let (der, used) = mdm_crypto::cms_to_der(&req).unwrap();
            assert_eq!(used, req.len());
            assert_eq!(der[0], 0x30);
        } else {
            assert_eq!(&req[..2], &[0x30, 0x82]);
        }
        let msg = mdm_crypto::verify_signed_data(&req, None).unwrap();
        assert_eq!(msg.content().unwrap(), d.machine_info_plist());
        assert_eq!(msg.signer().der(), apple.der());
        msg.signer()
            .verify_issued_by(apple_ca().certificate())
            .unwrap();
        let expected = match digest {
            Digest::Sha1 => mdm_crypto::DigestAlgorithm::Sha1,
            Digest::Sha256 => mdm_crypto::DigestAlgorithm::Sha256,
        };
        assert_eq!(msg.digest_algorithm(), expected);
    }
    // RSA-1024 like real devices.
    let spki = apple.public_key_der().unwrap();
    assert!(spki.len() < 200, "a 1024-bit key: {} bytes", spki.len());

    let info: Dictionary = plist::from_bytes(&d.machine_info_plist()).unwrap();
    assert_eq!(info["UDID"].as_string(), Some(d.udid.as_str()));
    assert_eq!(info["SERIAL"].as_string(), Some("F2LXK0AAHG7F"));
    assert_eq!(info["PRODUCT"].as_string(), Some("iPhone15,2"));
    assert_eq!(info["OS_VERSION"].as_string(), Some("17.4"));
    assert_eq!(info["VERSION"].as_string(), Some("21E219"));
    assert_eq!(info["LANGUAGE"].as_string(), Some("en-US"));
    assert_eq!(
        info["MDM_CAN_REQUEST_SOFTWARE_UPDATE"].as_boolean(),
        Some(true)
    );

    // The header form is base64 of the same thing.
    use base64::Engine;
    let h = d.aspen_deviceinfo().unwrap();
    let raw = base64::engine::general_purpose::STANDARD.decode(h).unwrap();
    assert_eq!(
        mdm_crypto::verify_signed_data(&raw, None)
            .unwrap()
            .content()
            .unwrap(),
        d.machine_info_plist()
    );
}

#[test]
fn an_expired_fake_ca_still_issues_like_apples() {
    let ca = FakeAppleCa::generate_expired().unwrap();
    assert!(ca.certificate().not_after_unix() < now());
    let d = Device::random(&ca, DeviceKind::Mac, "14.4").unwrap();
    assert_eq!(d.udid.len(), 36);
    let msg = mdm_crypto::verify_signed_data(&d.machine_info_request().unwrap(), None).unwrap();
    msg.signer().verify_issued_by(ca.certificate()).unwrap();
    assert!(msg.signer().not_after_unix() > now());
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

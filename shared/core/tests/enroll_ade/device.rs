//! Recognising the device: MachineInfo signed in every form (DER and BER, SHA-1 and
//! SHA-256), real device certificates chaining to Apple's expired CA, and the serial index
//! written at sync time.

use super::*;

#[test]
fn machine_info_in_der_and_ber_with_sha1_and_sha256_verifies() {
    let apple = FakeCa::new("Apple iPhone Device CA");
    let anchors = machineinfo::anchors_from_pem(&apple.pem()).unwrap();
    let info = machine_info(UDID, SERIAL, Some("17.2"), true);
    for sha256_cert in [false, true] {
        let dev = apple.device("1EB44D08-42EE-471B-BBD6-136582A7BAA4", sha256_cert);
        for hash in [Hash::Sha1, Hash::Sha256] {
            for form in [Form::Der, Form::Ber] {
                let body = dev.sign(&info, hash, form, &[]);
                if form == Form::Ber {
                    assert_eq!(&body[..2], &[0x30, 0x80], "indefinite length like Apple's");
                }
                let v = machineinfo::verify(&body, &anchors)
                    .unwrap_or_else(|e| panic!("{hash:?} {form:?}: {e}"));
                assert_eq!(v.info.udid, UDID);
                assert_eq!(v.info.serial, SERIAL);
                assert_eq!(v.info.os_version.as_deref(), Some("17.2"));
                assert_eq!(v.info.build_version.as_deref(), Some("21C66"));
                assert_eq!(v.info.product.as_deref(), Some("iPhone14,5"));
                assert_eq!(v.info.language.as_deref(), Some("en-US"));
                assert!(v.info.can_request_software_update);
            }
        }
    }
    // The device CA sent along in the message does not make a foreign CA trusted.
    let other = FakeCa::new("Apple iPhone Device CA");
    let dev = other.device("X", true);
    let body = dev.sign(&info, Hash::Sha256, Form::Der, &[&other.der]);
    let e = machineinfo::verify(&body, &anchors).unwrap_err();
    assert_eq!(e.code, "signature.untrusted");
}

#[test]
fn real_device_certificates_chain_to_apple_iphone_device_ca_despite_its_expiry() {
    let anchors = machineinfo::anchors_from_pem("").unwrap();
    assert_eq!(
        anchors,
        machineinfo::anchors_from_pem(APPLE_IPHONE_DEVICE_CA_PEM).unwrap()
    );
    assert!(anchors[0].not_after_unix() < 1_400_000_000, "expired 2014");
    for name in ["device-cert-2013.pem", "device-cert-newer.pem"] {
        let path = format!(
            "{}/../../tests/vectors/micromdm-device-certs/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let cert = Certificate::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(machineinfo::chains_to(&cert, &[], &anchors), "{name}");
        let fake = FakeCa::new("Apple iPhone Device CA");
        let fake_anchor = machineinfo::anchors_from_pem(&fake.pem()).unwrap();
        assert!(!machineinfo::chains_to(&cert, &[], &fake_anchor), "{name}");
    }
}

#[test]
fn the_serial_index_is_written_at_sync_time_and_lookups_survive_without_it() {
    let s = server();
    let idx = inventory::SerialToken::key(SERIAL);
    assert_eq!(
        block_on(s.e.store.get(&idx)).unwrap(),
        Some(s.token.to_string().into_bytes())
    );
    let (t, rec) = block_on(inventory::token_of(&s.e.store, SERIAL))
        .unwrap()
        .unwrap();
    assert_eq!((t, rec.serial_number.as_str()), (s.token, SERIAL));
    // Index lost (written before this existed, or a crash): the token scan finds it.
    block_on(s.e.store.delete(&idx)).unwrap();
    let (t, _) = block_on(inventory::token_of(&s.e.store, SERIAL))
        .unwrap()
        .unwrap();
    assert_eq!(t, s.token);
    assert!(
        block_on(inventory::token_of(&s.e.store, "NOPE"))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.enroll_request(signed_info(&s, Some("17.2"), false))
            .status(),
        StatusCode::OK
    );
}

//! `POST /mdm/enroll/ade` end to end: MachineInfo signed as devices sign it (fake Apple
//! device CA, RSA-1024 identities, SHA-1/SHA-256, DER and BER), every refusal (storing
//! nothing), the signed enrollment profile checked against Apple's schemas, minimum OS.

mod enrollsupport;

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::dep::inventory;
use mdm_core::enroll::machineinfo::{self, APPLE_IPHONE_DEVICE_CA_PEM};
use mdm_core::enroll::pending;
use mdm_core::enroll::profile::PROFILE_IDENTIFIER;
use mdm_core::scep::ca;
use mdm_crypto::Certificate;
use serde_json::json;

use enrollsupport::*;

const UUID: &str = "7C64A6E2E3D94C7F9B8F6E0C0D4D3B21";
const UDID: &str = "00008030-001A2B3C4D5E802E";
const SERIAL: &str = "F9FXK0ABCDEF";

fn server() -> Server {
    let s = Server::new();
    s.add_profile(1, UUID, default_profile());
    s.sync_device(assigned(SERIAL, UUID));
    s
}

fn signed_info(s: &Server, os: Option<&str>, can_update: bool) -> Vec<u8> {
    let dev = s.apple.device("6001A957-6FC5-4856-8C5E-DC2E32C61CB9", true);
    dev.sign(
        &machine_info(UDID, SERIAL, os, can_update),
        Hash::Sha1,
        Form::Ber,
        &[],
    )
}

fn yaml(path: &str) -> serde_yaml_ng::Value {
    let full = format!(
        "{}/../../tests/vectors/apple-device-management/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_yaml_ng::from_str(&std::fs::read_to_string(&full).unwrap()).unwrap()
}

fn keys_of(list: &serde_yaml_ng::Value) -> Vec<String> {
    list.as_sequence()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_owned())
        .collect()
}

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
fn an_assigned_device_gets_a_signed_profile_with_exactly_the_expected_payloads() {
    let s = server();
    let r = s.enroll_request(signed_info(&s, Some("17.2"), true));
    let (profile, signer, chain) = open_profile(&r);
    // Signed by an identity our SCEP CA issued, CA sent along.
    let our_ca = block_on(ca::ca_certificate(&s.e)).unwrap();
    signer.verify_issued_by(&our_ca).unwrap();
    assert!(chain.contains(&our_ca));

    assert_eq!(profile["PayloadType"].as_string(), Some("Configuration"));
    assert_eq!(
        profile["PayloadIdentifier"].as_string(),
        Some(PROFILE_IDENTIFIER)
    );
    assert_eq!(
        profile["PayloadOrganization"].as_string(),
        Some("Example Org")
    );
    assert_eq!(profile["PayloadVersion"].as_signed_integer(), Some(1));
    let top_keys = keys_of(&yaml("mdm/profiles/TopLevel.yaml")["payloadkeys"]);
    for k in profile.keys() {
        assert!(
            top_keys.contains(k),
            "top-level key {k} not in TopLevel.yaml"
        );
    }
    let content = profile["PayloadContent"].as_array().unwrap();
    let mut kinds: Vec<&str> = content
        .iter()
        .map(|p| {
            p.as_dictionary().unwrap()["PayloadType"]
                .as_string()
                .unwrap()
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "com.apple.mdm",
            "com.apple.security.root",
            "com.apple.security.scep"
        ]
    );
    let common = keys_of(&yaml("mdm/profiles/CommonPayloadKeys.yaml")["payloadkeys"]);

    let mdm = payload(&profile, "com.apple.mdm");
    let mdm_keys = keys_of(&yaml("mdm/profiles/com.apple.mdm.yaml")["payloadkeys"]);
    for k in mdm.keys() {
        assert!(
            mdm_keys.contains(k) || common.contains(k),
            "{k} not in com.apple.mdm.yaml"
        );
    }
    let mut expected: Vec<&str> = vec![
        "AccessRights",
        "CheckInURL",
        "CheckOutWhenRemoved",
        "IdentityCertificateUUID",
        "PayloadDisplayName",
        "PayloadIdentifier",
        "PayloadType",
        "PayloadUUID",
        "PayloadVersion",
        "ServerCapabilities",
        "ServerURL",
        "SignMessage",
        "Topic",
    ];
    expected.sort();
    let mut got: Vec<&str> = mdm.keys().map(String::as_str).collect();
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(
        mdm["ServerURL"].as_string(),
        Some("https://mdm.example.com/mdm/connect")
    );
    assert_eq!(
        mdm["CheckInURL"].as_string(),
        Some("https://mdm.example.com/mdm/checkin")
    );
    assert_eq!(mdm["Topic"].as_string(), Some(TOPIC));
    assert_eq!(mdm["AccessRights"].as_signed_integer(), Some(8191));
    assert_eq!(mdm["SignMessage"].as_boolean(), Some(true));
    assert_eq!(mdm["CheckOutWhenRemoved"].as_boolean(), Some(true));
    let caps: Vec<&str> = mdm["ServerCapabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_string().unwrap())
        .collect();
    assert_eq!(
        caps,
        [
            "com.apple.mdm.per-user-connections",
            "com.apple.mdm.bootstraptoken"
        ]
    );

    let scep = payload(&profile, "com.apple.security.scep");
    assert_eq!(
        mdm["IdentityCertificateUUID"].as_string(),
        scep["PayloadUUID"].as_string()
    );
    let scep_yaml = yaml("mdm/profiles/com.apple.security.scep.yaml");
    let scep_keys = keys_of(&scep_yaml["payloadkeys"][0]["subkeys"]);
    let sc = scep["PayloadContent"].as_dictionary().unwrap();
    let mut got: Vec<&str> = sc.keys().map(String::as_str).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "Challenge",
            "Key Type",
            "Key Usage",
            "Keysize",
            "Name",
            "Subject",
            "URL"
        ]
    );
    for k in &got {
        assert!(
            scep_keys.iter().any(|s| s == k),
            "{k} not in com.apple.security.scep.yaml"
        );
    }
    assert_eq!(sc["URL"].as_string(), Some("https://mdm.example.com/scep"));
    assert_eq!(sc["Keysize"].as_signed_integer(), Some(2048));
    assert_eq!(sc["Key Type"].as_string(), Some("RSA"));
    assert_eq!(sc["Key Usage"].as_signed_integer(), Some(5));
    let subject: Vec<Vec<Vec<String>>> = plist::from_value(&sc["Subject"]).unwrap();
    assert!(subject.contains(&vec![vec!["CN".to_owned(), UDID.to_owned()]]));
    assert!(subject.contains(&vec![vec!["O".to_owned(), "Example Org".to_owned()]]));
    assert!(sc["Challenge"].as_string().unwrap().len() >= 40);

    let root = payload(&profile, "com.apple.security.root");
    assert_eq!(root["PayloadContent"].as_data(), Some(our_ca.der()));
    let root_keys = keys_of(&yaml("mdm/profiles/com.apple.security.root.yaml")["payloadkeys"]);
    for k in root.keys() {
        assert!(root_keys.contains(k) || common.contains(k), "{k}");
    }

    // The pending enrollment Authenticate will need.
    let p = block_on(pending::get(&s.e.store, UDID, s.now()))
        .unwrap()
        .unwrap();
    assert_eq!(p.serial, SERIAL);
    assert_eq!(p.token, Some(s.token));
    assert_eq!(p.profile, Some(1));
    assert_eq!(p.topic, TOPIC);
    assert!(p.supervised && p.user.is_none());

    // Again (a device retrying, or re-enrolling): same identifier, fresh UUIDs and challenge.
    let (again, _, _) = open_profile(&s.enroll_request(signed_info(&s, Some("17.2"), true)));
    assert_eq!(again["PayloadIdentifier"], profile["PayloadIdentifier"]);
    assert_ne!(again["PayloadUUID"], profile["PayloadUUID"]);
    assert_ne!(challenge_of(&again), challenge_of(&profile));
    // The signing identity was made once.
    let (_, signer2, _) = open_profile(&s.enroll_request(signed_info(&s, Some("17.2"), true)));
    assert_eq!(signer2, signer);
}

#[test]
fn every_refusal_answers_its_reason_and_stores_nothing() {
    let s = server();
    // Devices in other states.
    s.sync_device(
        json!({ "serial_number": "UNASSIGNED1", "profile_status": "empty", "op_type": "added" }),
    );
    s.sync_device(assigned("REMOVED0001", UUID));
    s.sync_device(json!({ "serial_number": "REMOVED0001", "op_type": "deleted", "op_date": "2027-02-01T00:00:00Z" }));
    s.sync_device(assigned("FOREIGNPROF", "0000FFFF0000FFFF0000FFFF0000FFFF"));
    s.add_profile(
        2,
        "AAAA0000BBBB1111CCCC2222DDDD3333",
        json!({ "name": "With user", "platform": "ios", "user_affinity": "with_user" }),
    );
    s.sync_device(assigned("WITHUSER001", "AAAA0000BBBB1111CCCC2222DDDD3333"));
    // Let the CA and signing identity exist: refusals must not depend on their absence.
    assert_eq!(
        s.enroll_request(signed_info(&s, Some("17.2"), false))
            .status(),
        StatusCode::OK
    );
    block_on(pending::remove(&s.e.store, UDID)).unwrap();

    let dev = s.apple.device("6001A957-6FC5-4856-8C5E-DC2E32C61CB9", true);
    let info = machine_info(UDID, SERIAL, Some("17.2"), false);
    let good = dev.sign(&info, Hash::Sha256, Form::Der, &[]);
    let mut tampered = good.clone();
    let at = tampered
        .windows(SERIAL.len())
        .position(|w| w == SERIAL.as_bytes())
        .unwrap();
    tampered[at] ^= 0x01;
    let foreign = FakeCa::new("Apple iPhone Device CA").device("X", true);
    let serial_body = |serial: &str| {
        dev.sign(
            &machine_info(UDID, serial, Some("17.2"), false),
            Hash::Sha1,
            Form::Ber,
            &[],
        )
    };
    let mut no_udid = plist::Dictionary::new();
    no_udid.insert("SERIAL".into(), SERIAL.into());
    let mut no_udid_xml = Vec::new();
    plist::to_writer_xml(&mut no_udid_xml, &plist::Value::Dictionary(no_udid)).unwrap();
    let ber = serial_body(SERIAL);

    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "unsigned plist",
            info.clone(),
            StatusCode::FORBIDDEN,
            "signature.missing",
        ),
        (
            "empty body",
            vec![],
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "garbage",
            b"\x30\x03garbage".to_vec(),
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "truncated BER",
            ber[..ber.len() - 40].to_vec(),
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "trailing bytes",
            [good.clone(), vec![0]].concat(),
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "bad signature",
            tampered,
            StatusCode::FORBIDDEN,
            "signature.invalid",
        ),
        (
            "wrong CA",
            foreign.sign(&info, Hash::Sha256, Form::Ber, &[]),
            StatusCode::FORBIDDEN,
            "signature.untrusted",
        ),
        (
            "content not a plist",
            dev.sign(b"hello", Hash::Sha256, Form::Der, &[]),
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "no UDID",
            dev.sign(&no_udid_xml, Hash::Sha256, Form::Der, &[]),
            StatusCode::BAD_REQUEST,
            "request.malformed",
        ),
        (
            "too large",
            vec![0x30; 64 * 1024 + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
        ),
        (
            "unknown serial",
            serial_body("NOTOURS0001"),
            StatusCode::FORBIDDEN,
            "device.unknown",
        ),
        (
            "unassigned serial",
            serial_body("UNASSIGNED1"),
            StatusCode::FORBIDDEN,
            "device.not_assigned",
        ),
        (
            "removed serial",
            serial_body("REMOVED0001"),
            StatusCode::FORBIDDEN,
            "device.removed",
        ),
        (
            "profile not ours",
            serial_body("FOREIGNPROF"),
            StatusCode::FORBIDDEN,
            "device.not_assigned",
        ),
        (
            "user sign-in profile",
            serial_body("WITHUSER001"),
            StatusCode::FORBIDDEN,
            "user.sign_in_required",
        ),
    ];
    let before = s.dump();
    for (name, body, status, code) in cases {
        let r = s.enroll_request(body);
        assert_eq!(r.status(), status, "{name}: {}", text(&r));
        assert_eq!(r.headers()["content-type"], "application/json", "{name}");
        let doc = json_body(&r);
        assert_eq!(doc["code"], code, "{name}: {doc}");
        assert!(doc["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(
            fingerprint(&s.dump()),
            fingerprint(&before),
            "{name} stored something"
        );
    }
    // Asked for XML: the same refusal as a plist.
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/mdm/enroll/ade")
        .header("accept", "application/xml")
        .body(serial_body("NOTOURS0001"))
        .unwrap();
    let r = block_on(mdm_core::checkin::handle(&s.e, req));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["content-type"], "application/xml");
    let v: plist::Value = plist::from_bytes(r.body()).unwrap();
    assert_eq!(
        v.as_dictionary().unwrap()["code"].as_string(),
        Some("device.unknown")
    );
    // Only POST.
    let req = http::Request::builder()
        .method(Method::GET)
        .uri("/mdm/enroll/ade")
        .body(vec![])
        .unwrap();
    let r = block_on(mdm_core::checkin::handle(&s.e, req));
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn minimum_os_asks_capable_devices_to_update_and_refuses_older_ones() {
    let s = Server::new();
    let mut settings = default_profile();
    settings["minimum_os_version"] = json!("17.4");
    settings["minimum_os_build"] = json!("21E219");
    s.add_profile(1, UUID, settings);
    s.sync_device(assigned(SERIAL, UUID));
    let before = s.dump();

    let r = s.enroll_request(signed_info(&s, Some("17.2"), true));
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{}", text(&r));
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc = json_body(&r);
    assert_eq!(doc["code"], "com.apple.softwareupdate.required");
    assert_eq!(
        doc["details"],
        json!({ "OSVersion": "17.4", "BuildVersion": "21E219" })
    );
    assert!(doc["message"].is_string() && doc["description"].is_string());
    // Exactly the keys of Apple's schema.
    let schema = yaml("mdm/errors/softwareupdate.required.yaml");
    let allowed = keys_of(&schema["payloadkeys"]);
    for k in doc.as_object().unwrap().keys() {
        assert!(allowed.contains(k), "{k}");
    }
    let detail_keys = keys_of(&schema["payloadkeys"][3]["subkeys"]);
    for k in doc["details"].as_object().unwrap().keys() {
        assert!(detail_keys.contains(k), "{k}");
    }

    // Cannot update on request: refused with a reason.
    let r = s.enroll_request(signed_info(&s, Some("17.2"), false));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let doc = json_body(&r);
    assert_eq!(doc["code"], "os.too_old");
    assert!(doc["message"].as_str().unwrap().contains("17.4"));
    // Pre-17 devices do not send OS_VERSION: older than a 17.4 minimum for sure.
    let r = s.enroll_request(signed_info(&s, None, false));
    assert_eq!(json_body(&r)["code"], "os.too_old");
    assert_eq!(fingerprint(&s.dump()), fingerprint(&before));

    // At or above the minimum: enrolled.
    for os in ["17.4", "17.4.1", "18.0"] {
        let r = s.enroll_request(signed_info(&s, Some(os), true));
        assert_eq!(r.status(), StatusCode::OK, "{os}: {}", text(&r));
    }
}

#[test]
fn minimum_os_comparison_and_validation() {
    use mdm_core::dep::profile_validation::{os_build_is_valid, os_version_is_valid};
    use mdm_core::dep::skipkeys::Platform;
    use mdm_core::enroll::ade::below_minimum;
    let ios = Platform::Ios;
    assert!(below_minimum(Some("17.3.1"), None, "17.4", ios));
    assert!(!below_minimum(Some("17.10"), None, "17.4", ios));
    assert!(!below_minimum(Some("17.4"), None, "17.4", ios));
    assert!(below_minimum(Some("17.4"), None, "17.4 (a)", ios));
    assert!(!below_minimum(Some("17.4"), Some("(a)"), "17.4 (a)", ios));
    assert!(!below_minimum(Some("17.4 (b)"), None, "17.4 (a)", ios));
    // No OS_VERSION: below 17.0 (iOS) / 14.0 (macOS); undecidable for lower minimums.
    assert!(below_minimum(None, None, "17.0", ios));
    assert!(!below_minimum(None, None, "16.4", ios));
    assert!(below_minimum(None, None, "14.1", Platform::Macos));
    for ok in ["17", "17.4", "14.4.1", "17.4 (a)", "10.15"] {
        assert!(os_version_is_valid(ok), "{ok}");
    }
    for bad in [
        "", "17.", ".4", "17.04", "0.1", "17.4.1.2", "17.4 a", "v17", "17.4 (A)",
    ] {
        assert!(!os_version_is_valid(bad), "{bad}");
    }
    for ok in ["21E219", "20A242a", "9A1"] {
        assert!(os_build_is_valid(ok), "{ok}");
    }
    for bad in ["", "21", "21e219", "21E", "21E219ab", "E219"] {
        assert!(!os_build_is_valid(bad), "{bad}");
    }
    // The admin API refuses bad values, naming the field.
    let s = Server::new();
    let (st, body) = s.admin(
        Method::POST,
        &format!("/api/v1/tokens/{}/profiles", s.token),
        &json!({ "name": "x", "platform": "ios", "user_affinity": "without_user",
                 "minimum_os_version": "seventeen", "minimum_os_build": "21E219" })
        .to_string(),
    );
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["minimum_os_version"]);
}

#[test]
fn without_a_push_topic_enrollment_is_impossible_and_says_so() {
    let s = server();
    s.e.vars.set("apns_topic", "");
    let r = s.enroll_request(signed_info(&s, Some("17.2"), false));
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let doc = json_body(&r);
    assert_eq!(doc["code"], "server.push_topic_missing");
    assert!(doc["description"].as_str().unwrap().contains("apns_topic"));
    assert!(
        block_on(pending::get(&s.e.store, UDID, s.now()))
            .unwrap()
            .is_none()
    );
    s.e.vars.set("apns_topic", "not-a-topic");
    let r = s.enroll_request(signed_info(&s, Some("17.2"), false));
    assert_eq!(json_body(&r)["code"], "server.push_topic_invalid");
}

#[test]
fn a_configured_signing_identity_signs_the_profile() {
    let s = server();
    let key = device_mdm_key(5);
    let now = START as i64;
    let cert = mdm_crypto::self_signed_certificate(&key, "Profile Signer", now - 60, now + 86_400)
        .unwrap();
    s.e.vars.set("profile_signing_cert", &cert.to_pem());
    let r = s.enroll_request(signed_info(&s, Some("17.2"), false));
    assert_eq!(
        r.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "key missing: misconfigured"
    );
    assert_eq!(json_body(&r)["code"], "server.misconfigured");
    s.e.vars
        .set("profile_signing_key", &key.to_pkcs8_pem().unwrap());
    let (_, signer, _) = open_profile(&s.enroll_request(signed_info(&s, Some("17.2"), false)));
    assert_eq!(signer, cert);
    // Nothing of ours was generated for signing.
    assert!(block_on(s.e.store.get("enrsign")).unwrap().is_none());
}

#[test]
fn the_serial_index_is_written_at_sync_time_and_lookups_survive_without_it() {
    let s = server();
    let idx = inventory::serial_index_key(SERIAL);
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

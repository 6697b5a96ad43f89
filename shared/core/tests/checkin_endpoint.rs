//! `PUT /mdm/checkin` end to end: real device check-in plists signed by a test identity,
//! signature and trust-anchor refusals (400, never 401, nothing stored), replies per
//! message type.

mod mdmdevice;

use base64::Engine;
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::mdm::enrollment_record;
use mdm_core::mdm::enrollment_record::EnrollmentRecord;
use mdm_core::mdm::signature::{self, SCEP_CA_CERT_KEY};
use mdm_core::routes::checkin;
use mdmdevice::{Device, E, Identity, device_request, dump, env, vector, xml};

const IPAD: &str = "663b07bb783e9ade1dae4fbb92ea12afc0ce5b69";
const IMAC: &str = "66ADE930-5FDF-5EC4-8429-15640684C489";

fn send(e: &E, method: Method, body: &[u8], sig: Option<&str>) -> mdm_core::Response {
    block_on(checkin::handle(
        e,
        device_request(method, "/mdm/checkin", body, sig),
    ))
}

fn record(e: &E, id: &str) -> Option<EnrollmentRecord> {
    block_on(enrollment_record::get(&e.store, id)).unwrap()
}

fn text(r: &mdm_core::Response) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

#[test]
fn captured_check_ins_enroll_a_device_over_put_and_post() {
    let e = env();
    let id = Identity::self_signed();
    let auth = vector("nanomdm-checkin/Authenticate.1.plist");
    // Without an enrollment request (ADE or web) the device may not Authenticate.
    let r = send(&e, Method::PUT, &auth, Some(&id.sign(&auth)));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{}", text(&r));
    assert!(text(&r).contains("enrollment"), "{}", text(&r));
    mdmdevice::admit(&e, &id, IPAD, "F5JM992LF193", mdmdevice::TOPIC);
    let r = send(&e, Method::PUT, &auth, Some(&id.sign(&auth)));
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    assert!(r.body().is_empty());
    let rec = record(&e, IPAD).unwrap();
    assert!(!rec.enrolled);
    assert_eq!(rec.cert_hashes, vec![id.cert_hash()]);
    assert_eq!(rec.serial_number.as_deref(), Some("F5JM992LF193"));

    // Devices PUT; POST is accepted too.
    let tu = vector("nanomdm-checkin/TokenUpdate.1.plist");
    let r = send(&e, Method::POST, &tu, Some(&id.sign(&tu)));
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    let rec = record(&e, IPAD).unwrap();
    assert!(rec.enrolled && rec.push.is_some() && rec.unlock_token.is_some());

    // The second captured device, with the openssl-made signature of the fixtures.
    let other = vector("nanomdm-checkin/Authenticate.2.plist");
    let r = send(&e, Method::PUT, &other, Some(&id.sign(&other)));
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "one identity cannot enroll two devices"
    );
    assert!(text(&r).contains("another enrollment"), "{}", text(&r));
    assert!(record(&e, IMAC).is_none());
}

#[test]
fn openssl_signed_fixture_is_accepted() {
    // tests/fixtures/mdm-signature: TokenUpdate.2 signed by openssl (SHA-256, SHA-1, BER).
    let e = env();
    let dir = format!(
        "{}/tests/fixtures/mdm-signature",
        env!("CARGO_MANIFEST_DIR")
    );
    let id = Identity::self_signed();
    let auth = vector("nanomdm-checkin/Authenticate.2.plist");
    mdmdevice::admit(&e, &id, IMAC, "C02MT66KFLHH", mdmdevice::TOPIC);
    assert_eq!(
        send(&e, Method::PUT, &auth, Some(&id.sign(&auth))).status(),
        StatusCode::OK
    );
    let body = std::fs::read(format!("{dir}/body.plist")).unwrap();
    for sig in ["sig-sha256.der", "sig-sha1.der", "sig-ber.der"] {
        let h = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(format!("{dir}/{sig}")).unwrap());
        let r = send(&e, Method::PUT, &body, Some(&h));
        assert_eq!(r.status(), StatusCode::OK, "{sig}: {}", text(&r));
    }
    assert!(record(&e, IMAC).unwrap().enrolled);
}

#[test]
fn bad_signatures_are_400_and_store_nothing() {
    let e = env();
    let id = Identity::self_signed();
    let auth = vector("nanomdm-checkin/Authenticate.1.plist");
    let mut tampered = auth.clone();
    let at = tampered.windows(6).position(|w| w == b"iPad2,").unwrap();
    tampered[at + 5] = b'9';
    let other_body = xml("<key>MessageType</key><string>Authenticate</string>");
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("no header", auth.clone(), None),
        ("garbage", auth.clone(), Some("not base64!".into())),
        ("empty", auth.clone(), Some(String::new())),
        ("tampered body", tampered, Some(id.sign(&auth))),
        (
            "signature of another body",
            auth.clone(),
            Some(id.sign(&other_body)),
        ),
        (
            "truncated",
            auth.clone(),
            Some(id.sign(&auth)[..200].to_string()),
        ),
    ];
    let before = dump(&e);
    for (what, body, sig) in cases {
        let r = send(&e, Method::PUT, &body, sig.as_deref());
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}: {}", text(&r));
        assert_ne!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert!(!r.body().is_empty(), "{what}: a reason is given");
        assert_eq!(dump(&e), before, "{what}: something was stored");
    }
    assert!(record(&e, IPAD).is_none());
}

#[test]
fn malformed_messages_unbound_identities_and_limits() {
    let e = env();
    let dev = Device::new(&e, Identity::self_signed(), IPAD);
    let before = dump(&e);
    // A well-signed body that is not a check-in.
    let r = dev.checkin_raw(b"{\"json\": true}");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(text(&r).contains("property list"), "{}", text(&r));
    let r = dev.checkin("Nonsense", "");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(text(&r).contains("Nonsense"));
    // TokenUpdate before Authenticate: the identity is bound to nothing and we hold no
    // enrollment for the device, which is told to unenroll (403, never 401).
    let r = dev.checkin(
        "TokenUpdate",
        "<key>Topic</key><string>t</string><key>PushMagic</key><string>m</string><key>Token</key><data>AA==</data>",
    );
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        text(&r).contains("com.apple.unrecognized.device"),
        "{}",
        text(&r)
    );
    assert_eq!(dump(&e), before, "nothing stored");

    // Over 1 MiB: 413, before anything is parsed.
    let big = vec![b' '; checkin::MAX_CHECKIN_BODY + 1];
    let r = send(&e, Method::PUT, &big, Some("AAAA"));
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Routing: other methods and paths.
    let r = send(&e, Method::GET, b"", None);
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = block_on(checkin::handle(
        &e,
        device_request(Method::PUT, "/mdm/checkin/x", b"", None),
    ));
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn replies_per_message_type() {
    let e = env();
    let mac = Device::new(&e, Identity::self_signed(), IMAC);
    mac.enroll("iMac14,2", "10.12.6", "");
    // Bootstrap token: escrowed, then handed back as a plist.
    let r = mac.checkin(
        "SetBootstrapToken",
        "<key>BootstrapToken</key><data>Ym9vdHN0cmFw</data>",
    );
    assert_eq!(r.status(), StatusCode::OK);
    let r = mac.checkin("GetBootstrapToken", "");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/xml");
    let v: plist::Value = plist::from_bytes(r.body()).unwrap();
    assert_eq!(
        v.as_dictionary().unwrap()["BootstrapToken"].as_data(),
        Some(&b"bootstrap"[..])
    );
    // The token is sealed at rest.
    assert!(
        !dump(&e)
            .iter()
            .any(|(_, v)| v.windows(9).any(|w| w == b"bootstrap"))
    );
    // Directory users are declined with 410.
    let r = mac.checkin("UserAuthenticate", "<key>UserID</key><string>u1</string>");
    assert_eq!(r.status(), StatusCode::GONE);
    // Declarative management and GetToken are not offered: 400 with the reason.
    let r = mac.checkin(
        "DeclarativeManagement",
        "<key>Endpoint</key><string>tokens</string>",
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = mac.checkin(
        "GetToken",
        "<key>TokenServiceType</key><string>com.apple.maid</string>",
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = mac.checkin("CheckOut", "");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!record(&e, IMAC).unwrap().enrolled);
}

#[test]
fn missing_storage_key_is_a_server_fault_not_a_refusal() {
    let mut e = env();
    e.vars = mdm_core::platform::testing::MapVariables::new([("admin_api_key", "x")]);
    let dev = Device::new(&e, Identity::self_signed(), IPAD);
    let r = dev.checkin("Authenticate", "<key>Topic</key><string>t</string>");
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // The device learns nothing of our configuration (the log names the variable).
    assert_eq!(text(&r), "server error");
}

#[test]
fn the_scep_ca_in_the_store_is_required_as_issuer() {
    let ca_dir = format!(
        "{}/tests/fixtures/device-identity",
        env!("CARGO_MANIFEST_DIR")
    );
    let ca_der = std::fs::read(format!("{ca_dir}/scepca.der")).unwrap();
    let ca_pem = std::fs::read(format!("{ca_dir}/scepca.pem")).unwrap();
    let other_der = std::fs::read(format!("{ca_dir}/otherca.der")).unwrap();
    let auth = vector("nanomdm-checkin/Authenticate.1.plist");

    for ca in [ca_der.clone(), ca_pem] {
        let e = env();
        block_on(e.store.set(SCEP_CA_CERT_KEY, &ca)).unwrap();
        let before = dump(&e);
        // Self-signed: not ours.
        let self_signed = Identity::self_signed();
        let r = send(&e, Method::PUT, &auth, Some(&self_signed.sign(&auth)));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(text(&r).contains("SCEP CA"), "{}", text(&r));
        assert_eq!(dump(&e), before);
        // Issued by the CA: enrolls.
        let issued = Identity::ca_issued();
        mdmdevice::admit(&e, &issued, IPAD, "F5JM992LF193", mdmdevice::TOPIC);
        let r = send(&e, Method::PUT, &auth, Some(&issued.sign(&auth)));
        assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    }

    // A CA with the same name but another key did not issue it.
    let e = env();
    block_on(e.store.set(SCEP_CA_CERT_KEY, &other_der)).unwrap();
    let issued = Identity::ca_issued();
    let r = send(&e, Method::PUT, &auth, Some(&issued.sign(&auth)));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(record(&e, IPAD).is_none());
}

#[test]
fn issuer_check_on_real_device_certificates() {
    let der = |p: &str| mdmdevice::pem_to_der(&vector(p));
    let device_ca = der("apple-ca/apple-iphone-device-ca.pem");
    let root = der("apple-ca/apple-root-ca.pem");
    for cert in [
        "micromdm-device-certs/device-cert-2013.pem",
        "micromdm-device-certs/device-cert-newer.pem",
    ] {
        let c = der(cert);
        assert_eq!(
            signature::require_issued_by(&c, std::slice::from_ref(&device_ca)),
            Ok(()),
            "{cert}"
        );
        assert_eq!(
            signature::require_issued_by(&c, &[root.clone(), device_ca.clone()]),
            Ok(()),
            "{cert}: any anchor of the list"
        );
        assert!(signature::require_issued_by(&c, std::slice::from_ref(&root)).is_err());
        // No anchors yet: nothing is refused (until SCEP issuance makes the CA mandatory).
        assert_eq!(signature::require_issued_by(&c, &[]), Ok(()));
        let mut tampered = c.clone();
        let n = tampered.len();
        tampered[n - 5] ^= 1; // inside the issuer's signature
        assert!(signature::require_issued_by(&tampered, std::slice::from_ref(&device_ca)).is_err());
    }
}

#[test]
fn without_a_scep_ca_every_identity_is_refused() {
    let e = mdmdevice::env_without_ca(mdm_kv::Defects::spin_sqlite());
    let auth = vector("nanomdm-checkin/Authenticate.1.plist");
    for id in [Identity::self_signed(), Identity::ca_issued()] {
        let r = send(&e, Method::PUT, &auth, Some(&id.sign(&auth)));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{}", text(&r));
        assert!(
            text(&r).contains("no enrollment has been made with this server"),
            "{}",
            text(&r)
        );
    }
    assert!(e.store.backend().is_empty());
    assert!(record(&e, IPAD).is_none());
}

/// A store failure answers devices with a generic reason (the log has the detail).
#[test]
fn store_failures_tell_devices_nothing_of_the_store() {
    let e = env();
    let dev = Device::new(&e, Identity::self_signed(), IPAD);
    e.store.backend().crash_after(0);
    let r = dev.checkin("Authenticate", "<key>Topic</key><string>t</string>");
    e.store.backend().recover();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(&r), "temporarily unavailable: try again later");
}

//! The push certificate: uploads checked (PEM or DER, no private key, an MDM topic, not
//! expired), the topic it names, expiry warnings, and a new topic refused once devices
//! enrolled unless forced.

use super::*;

/// An MDM push certificate as Apple issues them (subject `UID=<topic>, CN=APSP:<uuid>`),
/// valid from `from` to `to`, in PEM; `topic` None leaves the UID out.
fn push_cert_pem(topic: Option<&str>, from: u64, to: u64) -> String {
    use std::str::FromStr;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::EncodePem;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::{Time, Validity};
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let pem = KeyPair::generate().unwrap().to_pkcs8_pem().unwrap();
        rsa::pkcs8::DecodePrivateKey::from_pkcs8_pem(&pem).unwrap()
    });
    let subject = match topic {
        Some(t) => format!("UID={t},CN=APSP:{},C=US", t.rsplit('.').next().unwrap()),
        None => "CN=Not a push certificate,C=US".to_owned(),
    };
    let time = |t: u64| {
        Time::UtcTime(
            x509_cert::der::asn1::UtcTime::from_unix_duration(Duration::from_secs(t)).unwrap(),
        )
    };
    let validity = Validity {
        not_before: time(from),
        not_after: time(to),
    };
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    let profile = Profile::Leaf {
        issuer: Name::from_str(
            "CN=Apple Application Integration 2 Certification Authority,O=Apple Inc.,C=US",
        )
        .unwrap(),
        enable_key_agreement: false,
        enable_key_encipherment: true,
    };
    CertificateBuilder::new(
        profile,
        SerialNumber::from(7u32),
        validity,
        Name::from_str(&subject).unwrap(),
        spki,
        &signer,
    )
    .unwrap()
    .build::<rsa::pkcs1v15::Signature>()
    .unwrap()
    .to_pem(Default::default())
    .unwrap()
}

fn put_cert(e: &TestEnv, query: &str, body: &[u8]) -> (StatusCode, Value) {
    let req = http::Request::builder()
        .method(Method::PUT)
        .uri(format!("/api/v1/push/certificate{query}"))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .header("content-type", "application/x-pem-file")
        .body(body.to_vec())
        .unwrap();
    let resp = block_on(admin::handle(e, req));
    (
        resp.status(),
        serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
    )
}

#[test]
fn the_push_certificate_names_the_topic_and_warns_before_it_expires() {
    let apns = FakeApns::default();
    let mut e = env(&apns);
    // Nothing uploaded, no variable: enrollment is impossible, and the API says so.
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(c["topic"], Value::Null, "{c}");
    assert!(
        c["warnings"][0].as_str().unwrap().contains("cannot enroll"),
        "{c}"
    );
    let err = block_on(mdm_core::enroll::enrollment_profile::push_topic(&e)).unwrap_err();
    assert_eq!(err.code, "server.push_topic_missing");
    // The variable alone: used, with a nudge to upload.
    e.vars = MapVariables::new([
        ("admin_api_key", ADMIN_KEY),
        ("storage_key", "storage-key-for-push-tests-0123456789abc"),
        ("apns_topic", TOPIC),
    ]);
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(
        (c["topic"].as_str(), c["topic_source"].as_str()),
        (Some(TOPIC), Some("variable")),
        "{c}"
    );
    assert_eq!(c["certificate"], Value::Null);

    // Refusals leave nothing behind.
    let year = 365 * 86_400;
    let key_pem = KeyPair::generate()
        .unwrap()
        .to_pkcs8_pem()
        .unwrap()
        .to_string();
    let with_key = format!("{}{}", push_cert_pem(Some(TOPIC), T0, T0 + year), key_pem);
    for (body, needle) in [
        (b"".to_vec(), "empty"),
        (b"garbage".to_vec(), "PEM"),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
            "not a certificate",
        ),
        (with_key.into_bytes(), "private key"),
        (push_cert_pem(None, T0, T0 + year).into_bytes(), "no UID"),
        (
            push_cert_pem(Some("com.example.other"), T0, T0 + year).into_bytes(),
            "not an MDM push topic",
        ),
        (
            push_cert_pem(Some(TOPIC), T0 - 2 * year, T0 - year).into_bytes(),
            "expired",
        ),
    ] {
        let (s, b) = put_cert(&e, "", &body);
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{needle}: {b}");
        assert!(b.to_string().contains(needle), "{needle}: {b}");
        assert!(
            !b.to_string().contains("PRIVATE KEY") && !b.to_string().contains(&key_pem[40..80])
        );
    }
    assert!(block_on(e.store.get("pushcert:info")).unwrap().is_none());

    // The real thing (PEM; DER alike).
    let pem = push_cert_pem(Some(TOPIC), T0 - 86_400, T0 + year);
    let (s, b) = put_cert(&e, "", pem.as_bytes());
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(
        (c["topic"].as_str(), c["topic_source"].as_str()),
        (Some(TOPIC), Some("certificate")),
        "{c}"
    );
    let cert = &c["certificate"];
    assert_eq!(cert["days_left"], 365, "{c}");
    assert_eq!(cert["expiry"], "ok");
    assert_eq!(cert["sha256"].as_str().unwrap().len(), 64);
    assert!(cert["subject"].as_str().unwrap().contains("APSP:"), "{c}");
    assert_eq!(c["warnings"], json!([]), "{c}");
    assert_eq!(c["apns"]["state"], "unknown");
    let der = Certificate::from_pem(&pem).unwrap().der().to_vec();
    assert_eq!(put_cert(&e, "", &der).0, StatusCode::OK);

    // 30 days before expiry: expiring, with a warning saying what to do.
    e.clock.advance(Duration::from_secs(year - 30 * 86_400));
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(
        (
            c["certificate"]["expiry"].as_str(),
            c["certificate"]["days_left"].as_u64()
        ),
        (Some("expiring"), Some(30)),
        "{c}"
    );
    assert!(
        c["warnings"][0]
            .as_str()
            .unwrap()
            .contains("same Apple Account"),
        "{c}"
    );
    e.clock.advance(Duration::from_secs(31 * 86_400));
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(c["certificate"]["expiry"], "expired", "{c}");
}

#[test]
fn a_new_topic_is_refused_once_devices_enrolled_unless_forced() {
    let apns = FakeApns::default();
    let e = env(&apns);
    let year = 365 * 86_400;
    let other = "com.apple.mgmt.External.11111111-2222-3333-4444-555555555555";
    // Before any device, switching is harmless.
    assert_eq!(
        put_cert(&e, "", push_cert_pem(Some(other), T0, T0 + year).as_bytes()).0,
        StatusCode::OK
    );
    assert_eq!(
        put_cert(&e, "", push_cert_pem(Some(TOPIC), T0, T0 + year).as_bytes()).0,
        StatusCode::OK
    );
    assert_eq!(
        block_on(mdm_core::enroll::enrollment_profile::push_topic(&e)).unwrap(),
        TOPIC
    );
    enroll(&e, IPHONE);
    // A renewal (same topic) is fine.
    let renewed = push_cert_pem(Some(TOPIC), T0 + 86_400, T0 + 2 * year);
    assert_eq!(put_cert(&e, "", renewed.as_bytes()).0, StatusCode::OK);
    // Another topic would orphan the device: 409 naming both, nothing changed.
    let (s, b) = put_cert(&e, "", push_cert_pem(Some(other), T0, T0 + year).as_bytes());
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["current_topic"], TOPIC, "{b}");
    assert_eq!(b["new_topic"], other, "{b}");
    let (_, c) = admin_call(&e, Method::GET, "/api/v1/push/certificate", None);
    assert_eq!(c["topic"], TOPIC);
    assert_eq!(c["certificate"]["days_left"], 2 * 365);
    assert_eq!(
        put_cert(&e, "?force=maybe", b"x").0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Forced: switched, and the response says what it replaced.
    let (s, b) = put_cert(
        &e,
        "?force=true",
        push_cert_pem(Some(other), T0, T0 + year).as_bytes(),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["replaced_topic"], TOPIC, "{b}");
    assert_eq!(
        block_on(mdm_core::enroll::enrollment_profile::push_topic(&e)).unwrap(),
        other
    );
}

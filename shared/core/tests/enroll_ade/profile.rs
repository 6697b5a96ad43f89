//! The signed enrollment profile: exactly the expected payloads checked against Apple's
//! schemas, no enrollment without a push topic, and a configured signing identity.

use super::*;

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

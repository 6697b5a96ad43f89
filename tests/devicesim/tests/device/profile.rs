//! Enrollment profile checks: a signed profile installs with every setting, and every
//! problem with one is a typed error.

use super::*;

#[test]
fn a_signed_profile_installs_with_every_setting() {
    let mut d = iphone();
    let p = d.install_profile(&good_profile()).unwrap().clone();
    assert_eq!(p.payload_identifier, "com.example.mdm.enrollment");
    assert_eq!(p.mdm.server_url, format!("{BASE}/mdm/connect"));
    assert_eq!(p.mdm.checkin_url(), format!("{BASE}/mdm/checkin"));
    assert_eq!(p.mdm.topic, TOPIC);
    assert!(p.mdm.sign_message);
    assert_eq!(p.mdm.access_rights, Some(8191));
    assert_eq!(p.scep.url, format!("{BASE}/scep"));
    assert_eq!(p.scep.challenge.as_deref(), Some(CHALLENGE));
    assert_eq!(p.scep.keysize, Some(2048));
    assert_eq!(p.scep.subject_attr(&["CN"]), Some("MDM Identity"));
    assert_eq!(p.scep.subject_attr(&["O"]), Some("Example Org"));
    assert_eq!(p.ca_certs.len(), 1);
    assert_eq!(p.signer.unwrap().der(), signer().1.der());
    assert_eq!(d.mdm().unwrap().topic, TOPIC);
    assert_eq!(d.installed_profiles.len(), 1);
    // Trusting the signer explicitly works; trusting another certificate refuses it.
    d.trusted_profile_signers = vec![signer().1.clone()];
    d.install_profile(&good_profile()).unwrap();
    assert_eq!(d.installed_profiles.len(), 1, "same identifier replaces");
    d.trusted_profile_signers = vec![scep_ca().ca_certificate().clone()];
    assert!(matches!(
        d.install_profile(&good_profile()),
        Err(ProfileError::UntrustedSigner(_))
    ));
}

#[test]
fn profile_problems_are_typed_errors() {
    let mut d = iphone();
    // A flipped byte in the signed content.
    let mut bad = good_profile();
    let at = bad
        .windows(7)
        .position(|w| w == b"Example")
        .expect("content is embedded");
    bad[at] ^= 0x20;
    assert!(matches!(
        d.install_profile(&bad),
        Err(ProfileError::BadSignature(_))
    ));
    // Unsigned: refused unless allowed.
    let plain = profile_plist(|_, _, _| {});
    assert_eq!(
        d.install_profile(&plain).unwrap_err(),
        ProfileError::Unsigned
    );
    d.accept_unsigned_profiles = true;
    assert!(d.install_profile(&plain).unwrap().signer.is_none());

    let cases: Vec<(Vec<u8>, ProfileError)> = vec![
        (
            profile_plist(|m, _, _| {
                m.remove("Topic");
            }),
            ProfileError::MissingKey {
                payload: "com.apple.mdm",
                key: "Topic",
            },
        ),
        (
            profile_plist(|m, _, _| {
                m.insert("IdentityCertificateUUID".into(), "nope".into());
            }),
            ProfileError::IdentityMismatch {
                identity_uuid: "nope".into(),
            },
        ),
        (
            profile_plist(|_, s, _| {
                s.insert("PayloadType".into(), "com.example.other".into());
            }),
            ProfileError::MissingPayload("com.apple.security.scep"),
        ),
        (
            profile_plist(|m, _, _| {
                m.insert("PayloadType".into(), "com.example.other".into());
            }),
            ProfileError::MissingPayload("com.apple.mdm"),
        ),
        (
            profile_plist(|_, s, _| {
                s.remove("PayloadContent");
            }),
            ProfileError::MissingKey {
                payload: "com.apple.security.scep",
                key: "PayloadContent",
            },
        ),
    ];
    for (p, want) in cases {
        assert_eq!(d.install_profile(&signed(&p)).unwrap_err(), want);
    }
    let wrong_topic = profile_plist(|m, _, _| {
        m.insert("Topic".into(), "com.example.push".into());
    });
    assert!(matches!(
        d.install_profile(&signed(&wrong_topic)),
        Err(ProfileError::BadValue { key: "Topic", .. })
    ));
    let bad_url = profile_plist(|_, s, _| {
        let c = s
            .get_mut("PayloadContent")
            .and_then(Value::as_dictionary_mut)
            .unwrap();
        c.insert("URL".into(), "ftp://x".into());
    });
    assert!(matches!(
        d.install_profile(&signed(&bad_url)),
        Err(ProfileError::BadValue { key: "URL", .. })
    ));
    assert!(matches!(
        d.install_profile(b"\x30\x03\x02\x01\x01"),
        Err(ProfileError::BadSignature(_))
    ));
}

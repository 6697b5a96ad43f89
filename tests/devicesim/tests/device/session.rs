//! Against the core in-process: SCEP gets an identity from the CA, `Mdm-Signature` is
//! accepted by the core's verifier, and a whole check-in + command session.

use super::*;

#[test]
fn scep_gets_an_identity_from_the_ca() {
    let server = InProcess::fake_scep();
    let mut d = iphone();
    d.install_profile(&good_profile()).unwrap();
    let cert = block_on(d.scep_enroll(&server)).unwrap().clone();
    cert.verify_issued_by(scep_ca().ca_certificate()).unwrap();
    assert_eq!(cert.common_name().as_deref(), Some("MDM Identity"));
    assert!(cert.matches_key(&d.mdm_identity().unwrap().key));
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].1.contains("GetCACaps") && seen[1].1.contains("GetCACert"));
    assert_eq!(seen[2].0, "POST");

    // A FAILURE answer is an error naming it.
    let mut failing = InProcess::fake_scep();
    failing.scep_failure = true;
    let mut d = iphone();
    d.install_profile(&good_profile()).unwrap();
    let e = block_on(d.scep_enroll(&failing)).unwrap_err();
    assert!(
        matches!(&e, SimError::Scep(m) if m.contains("FAILURE")),
        "{e}"
    );
    assert!(d.mdm_identity().is_none());
}

#[test]
fn mdm_signature_verifies_with_the_cores_verifier() {
    let mut d = iphone();
    let key = KeyPair::generate().unwrap();
    let csr = mdm_crypto::Csr::from_der(
        &mdm_crypto::build_csr(&key, &mdm_crypto::CsrParams::new("id")).unwrap(),
    )
    .unwrap();
    let cert = scep_ca()
        .issue(&csr, now(), &IssueOptions::default())
        .unwrap();
    d.set_mdm_identity(key, cert.clone());
    d.configure_mdm(MdmPayload::manual(
        &format!("{BASE}/mdm/connect"),
        None,
        TOPIC,
    ));
    let body = mdm_devicesim::to_xml(d.token_update_message(false).unwrap());
    let header = d.sign_body(&body).unwrap().expect("SignMessage");
    let signer = signature::verify(&header, &body).unwrap();
    assert_eq!(signer.certificate_der, cert.der());
    assert_eq!(
        signer.der_hash,
        hex::encode(sha2::Sha256::digest(cert.der()))
    );
    assert_eq!(
        signer.cert_hash,
        signature::identity_hashes(cert.der()).unwrap().0
    );
    signature::require_issued_by(
        &signer.certificate_der,
        &[scep_ca().ca_certificate().der().to_vec()],
    )
    .unwrap();
    // Another body does not match the signature.
    assert!(signature::verify(&header, b"<plist/>").is_err());
    // Without SignMessage nothing is signed.
    let mut m = d.mdm().unwrap().clone();
    m.sign_message = false;
    d.configure_mdm(m);
    assert_eq!(d.sign_body(&body).unwrap(), None);
}

#[test]
fn a_whole_session_against_the_core() {
    let mut d = iphone();
    let server = InProcess::new(&[&d.serial]);
    // Nothing works before the profile.
    assert!(matches!(
        block_on(d.authenticate(&server)),
        Err(SimError::NotReady(_))
    ));
    // Zero-touch: MachineInfo → signed profile → SCEP → Authenticate → TokenUpdate.
    let resp = block_on(d.request_enrollment(&server, &format!("{BASE}/mdm/enroll/ade"))).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/x-apple-aspen-config")
    );
    let p = d.install_profile(&resp.body).unwrap().clone();
    assert_eq!(p.mdm.topic, TOPIC);
    assert!(p.mdm.sign_message);
    assert!(p.scep.challenge.is_some());
    assert!(matches!(
        block_on(d.authenticate(&server)),
        Err(SimError::NotReady(_))
    ));
    let cert = block_on(d.scep_enroll(&server)).unwrap().clone();
    assert!(cert.matches_key(&d.mdm_identity().unwrap().key));
    block_on(d.authenticate(&server)).unwrap();
    block_on(d.token_update(&server, true)).unwrap();
    assert!(d.awaiting_configuration);

    // A second device with a serial the server never synced is refused.
    let mut stranger = Device::random(apple_ca(), DeviceKind::Iphone, "17.4").unwrap();
    let e = block_on(stranger.enroll_ade(&server, &format!("{BASE}/mdm/enroll/ade"), false))
        .unwrap_err();
    assert!(matches!(e, SimError::Status { status: 403, .. }), "{e}");

    let (s, dev) = server.admin("GET", &format!("/api/v1/devices/{}", d.udid), None);
    assert_eq!(s, 200, "{dev}");
    assert_eq!(dev["enrolled"], true);
    assert_eq!(dev["serial_number"], d.serial.as_str());
    assert_eq!(dev["awaiting_configuration"], true);
    assert_eq!(dev["unlock_token_escrowed"], true);

    // The server queued DeviceConfigured at the TokenUpdate (this profile has no setup
    // work); the admin's commands below queue behind it, in the priority lane too.
    for cmd in [
        serde_json::json!({"RequestType": "DeviceInformation", "Queries": ["SerialNumber", "OSVersion", "IsSupervised", "WiFiMAC"]}),
        serde_json::json!({"RequestType": "SecurityInfo"}),
        serde_json::json!({"RequestType": "ProfileList"}),
        serde_json::json!({"RequestType": "InstalledApplicationList"}),
        serde_json::json!({"RequestType": "CertificateList"}),
    ] {
        let (s, b) = server.admin(
            "POST",
            &format!("/api/v1/devices/{}/commands", d.udid),
            Some(cmd),
        );
        assert_eq!(s, 201, "{b}");
    }
    let answered = block_on(d.run_until_idle(&server)).unwrap();
    let types: Vec<&str> = answered
        .iter()
        .map(|a| a.command.request_type.as_str())
        .collect();
    // While Setup Assistant waits every command takes the priority lane, in order: the
    // server's own DeviceConfigured first, the admin's last.
    assert_eq!(
        types,
        [
            "DeviceConfigured",
            "DeviceInformation",
            "SecurityInfo",
            "ProfileList",
            "InstalledApplicationList",
            "CertificateList",
        ]
    );
    assert!(answered.iter().all(|a| a.status == Status::Acknowledged));
    assert!(!d.awaiting_configuration);

    let (_, dev) = server.admin("GET", &format!("/api/v1/devices/{}", d.udid), None);
    let inv = &dev["inventory"];
    let info = &inv["DeviceInformation"]["data"];
    assert_eq!(info["SerialNumber"], d.serial.as_str(), "{dev:#}");
    assert_eq!(info["OSVersion"], "17.4");
    assert_eq!(info["IsSupervised"], true);
    assert_eq!(dev["supervised"], true);
    assert_eq!(
        inv["ProfileList"]["data"][0]["PayloadIdentifier"],
        p.payload_identifier.as_str()
    );
    assert_eq!(
        inv["InstalledApplicationList"]["data"][0]["Identifier"],
        "com.example.notes"
    );
    assert_eq!(inv["CertificateList"]["data"][0]["IsIdentity"], true);
    assert!(
        inv["SecurityInfo"]["data"]["PasscodePresent"]
            .as_bool()
            .unwrap()
    );

    // Scripted answers: NotNow, then an error.
    d.set_responder(
        "ProfileList",
        Box::new(|_| (Status::NotNow, Dictionary::new())),
    );
    let (_, b) = server.admin(
        "POST",
        &format!("/api/v1/devices/{}/commands", d.udid),
        Some(serde_json::json!({"RequestType": "ProfileList"})),
    );
    let uuid = b["command_uuid"].as_str().unwrap().to_owned();
    let answered = block_on(d.run_until_idle(&server)).unwrap();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].status, Status::NotNow);
    d.clear_responder("ProfileList");
    let answered = block_on(d.run_until_idle(&server)).unwrap();
    assert_eq!(answered[0].command.uuid, uuid, "sent again after NotNow");
    assert_eq!(answered[0].status, Status::Acknowledged);

    // An unknown command is answered with an error the server records.
    let cmd = mdm_devicesim::Command::parse(
        br#"<plist version="1.0"><dict><key>CommandUUID</key><string>x</string><key>Command</key><dict><key>RequestType</key><string>Nope</string></dict></dict></plist>"#,
    )
    .unwrap();
    let (status, keys) = d.respond(&cmd);
    assert_eq!(status, Status::Error);
    assert!(keys.contains_key("ErrorChain"));

    // CheckOut marks it unenrolled.
    block_on(d.checkout(&server)).unwrap();
    let (_, dev) = server.admin("GET", &format!("/api/v1/devices/{}", d.udid), None);
    assert_eq!(dev["enrolled"], false);
}

//! The simulated device on its own and against the real core in-process: MachineInfo
//! signatures (DER and BER, SHA-1 and SHA-256) that verify and chain to the fake Apple
//! CA, enrollment profile checks, SCEP against a CA built from mdm-crypto, `Mdm-Signature`
//! accepted by the core's verifier, and a whole check-in + command session through the
//! core's check-in, command and admin handlers.

use std::sync::{Mutex, OnceLock};

use futures::executor::block_on;
use mdm_core::Env;
use mdm_core::dep::inventory_apply::{self, ApplyMode, PageContext};
use mdm_core::dep::profile_store::{self, ProfileRecord};
use mdm_core::dep::profiles::ProfileSpec;
use mdm_core::dep::tokens;
use mdm_core::mdm::signature::{self, SCEP_CA_CERT_KEY};
use mdm_core::platform::testing::{ManualClock, MapVariables, NoHttp};
use mdm_crypto::{
    Certificate, CertificateAuthority, IssueOptions, KeyPair, MessageType, parse_pki_message,
};
use mdm_devicesim::http::split_url;
use mdm_devicesim::{
    Device, DeviceKind, Digest, FakeAppleCa, Http, HttpError, HttpResponse, MdmPayload,
    ProfileError, SimError, Status,
};
use mdm_kv::{Defects, MemoryBackend, Store};
use plist::{Dictionary, Value};
use serde_json::Value as Json;
use sha2::Digest as _;

const TOPIC: &str = "com.apple.mgmt.External.0f8e4c1a-8d43-4b8e-9a66-2b7a1c0d9e55";
const ADMIN_KEY: &str = "devicesim-admin-key";
const CHALLENGE: &str = "one-time-challenge-42";
const BASE: &str = "http://mdm.test";

/// Key generation is slow: one fake Apple CA and one SCEP CA for all tests.
fn apple_ca() -> &'static FakeAppleCa {
    static CA: OnceLock<FakeAppleCa> = OnceLock::new();
    CA.get_or_init(|| FakeAppleCa::generate().unwrap())
}

fn scep_ca() -> &'static CertificateAuthority {
    static CA: OnceLock<CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| CertificateAuthority::generate("Devicesim Test SCEP CA", now()).unwrap())
}

/// A profile signer (self-signed, as a server might use).
fn signer() -> &'static (KeyPair, Certificate) {
    static S: OnceLock<(KeyPair, Certificate)> = OnceLock::new();
    S.get_or_init(|| {
        let key = KeyPair::generate().unwrap();
        let cert =
            mdm_crypto::self_signed_certificate(&key, "Profile Signer", now() - 60, now() + 3600)
                .unwrap();
        (key, cert)
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn iphone() -> Device {
    Device::new(
        apple_ca(),
        DeviceKind::Iphone,
        "F2LXK0AAHG7F",
        "00008110-000A1C2E3E88401E",
        "17.4",
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// MachineInfo
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Enrollment profile
// ---------------------------------------------------------------------------------------

const SCEP_UUID: &str = "7C8E2B1A-4F3D-4C5B-9E2A-1D0F3C4B5A69";

fn profile_plist(edit: impl FnOnce(&mut Dictionary, &mut Dictionary, &mut Dictionary)) -> Vec<u8> {
    let mut mdm = Dictionary::new();
    for (k, v) in [
        ("PayloadType", Value::from("com.apple.mdm")),
        ("PayloadVersion", 1.into()),
        ("PayloadIdentifier", "com.example.mdm.mdm".into()),
        ("PayloadUUID", "A1B2C3D4-0000-4000-8000-000000000001".into()),
        ("ServerURL", format!("{BASE}/mdm/connect").into()),
        ("CheckInURL", format!("{BASE}/mdm/checkin").into()),
        ("Topic", TOPIC.into()),
        ("IdentityCertificateUUID", SCEP_UUID.into()),
        ("SignMessage", true.into()),
        ("AccessRights", 8191.into()),
        ("CheckOutWhenRemoved", true.into()),
        (
            "ServerCapabilities",
            Value::Array(vec!["com.apple.mdm.per-user-connections".into()]),
        ),
    ] {
        mdm.insert(k.into(), v);
    }
    let mut content = Dictionary::new();
    content.insert("URL".into(), format!("{BASE}/scep").into());
    content.insert("Name".into(), "MDM".into());
    content.insert("Challenge".into(), CHALLENGE.into());
    content.insert("Keysize".into(), 2048.into());
    content.insert("Key Type".into(), "RSA".into());
    content.insert("Key Usage".into(), 5.into());
    content.insert(
        "Subject".into(),
        Value::Array(vec![
            Value::Array(vec![Value::Array(vec!["O".into(), "Example Org".into()])]),
            Value::Array(vec![Value::Array(vec!["CN".into(), "MDM Identity".into()])]),
        ]),
    );
    let mut scep = Dictionary::new();
    scep.insert("PayloadType".into(), "com.apple.security.scep".into());
    scep.insert("PayloadVersion".into(), 1.into());
    scep.insert("PayloadIdentifier".into(), "com.example.mdm.scep".into());
    scep.insert("PayloadUUID".into(), SCEP_UUID.into());
    scep.insert("PayloadContent".into(), Value::Dictionary(content));
    let mut root = Dictionary::new();
    root.insert("PayloadType".into(), "com.apple.security.root".into());
    root.insert("PayloadVersion".into(), 1.into());
    root.insert("PayloadIdentifier".into(), "com.example.mdm.ca".into());
    root.insert(
        "PayloadUUID".into(),
        "A1B2C3D4-0000-4000-8000-000000000003".into(),
    );
    root.insert(
        "PayloadContent".into(),
        Value::Data(scep_ca().ca_certificate().der().to_vec()),
    );
    edit(&mut mdm, &mut scep, &mut root);
    let mut top = Dictionary::new();
    top.insert("PayloadType".into(), "Configuration".into());
    top.insert("PayloadVersion".into(), 1.into());
    top.insert(
        "PayloadIdentifier".into(),
        "com.example.mdm.enrollment".into(),
    );
    top.insert(
        "PayloadUUID".into(),
        "A1B2C3D4-0000-4000-8000-000000000000".into(),
    );
    top.insert("PayloadDisplayName".into(), "Example MDM".into());
    top.insert("PayloadOrganization".into(), "Example Org".into());
    top.insert(
        "PayloadContent".into(),
        Value::Array(vec![
            Value::Dictionary(root),
            Value::Dictionary(scep),
            Value::Dictionary(mdm),
        ]),
    );
    mdm_devicesim::to_xml(top)
}

fn signed(plist: &[u8]) -> Vec<u8> {
    let (key, cert) = signer();
    mdm_crypto::sign_profile(plist, key, cert, &[], now()).unwrap()
}

fn good_profile() -> Vec<u8> {
    signed(&profile_plist(|_, _, _| {}))
}

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

// ---------------------------------------------------------------------------------------
// In-process server: the core's handlers plus a SCEP endpoint made of mdm-crypto
// ---------------------------------------------------------------------------------------

type E = Env<MemoryBackend, NoHttp, ManualClock, MapVariables>;

struct InProcess {
    env: E,
    /// (method, path) of every request, for assertions.
    seen: Mutex<Vec<(String, String)>>,
    /// Serve `/scep` from the test CA (`scep_ca()`) instead of the core's endpoint.
    fake_scep: bool,
    scep_failure: bool,
}

const PROFILE_UUID: &str = "9D1C7F3E0A2B4C5D8E6F1A2B3C4D5E6F";

impl InProcess {
    /// The core with a fake SCEP CA: only for SCEP itself (the core refuses check-ins
    /// from identities its own SCEP endpoint did not issue).
    fn fake_scep() -> InProcess {
        let s = Self::new(&[]);
        block_on(
            s.env
                .store
                .set(SCEP_CA_CERT_KEY, scep_ca().ca_certificate().der()),
        )
        .unwrap();
        InProcess {
            fake_scep: true,
            ..s
        }
    }

    /// The core as an ADE server: the fake Apple CA as `apple_device_ca`, a server token
    /// whose synced inventory holds `serials`, assigned our profile.
    fn new(serials: &[&str]) -> InProcess {
        let pem = apple_ca().cert_pem();
        let env = Env {
            store: Store::new(MemoryBackend::with_defects(Defects::spin_sqlite())),
            http: NoHttp,
            clock: ManualClock::at_unix(now() as u64),
            vars: MapVariables::new([
                ("admin_api_key", ADMIN_KEY),
                ("storage_key", "devicesim-storage-key-0123456789abcdef"),
                ("server_url", BASE),
                ("apns_topic", TOPIC),
                ("apple_device_ca", pem.as_str()),
            ]),
        };
        let token = block_on(tokens::allocate(&env.store)).unwrap().unwrap();
        let key = tokens::KeyPair {
            certificate: String::new(),
            sealed_key: String::new(),
            created_at: 0,
        };
        let rec = tokens::TokenRecord::new(token, "Main".into(), key, 0);
        block_on(tokens::create(&env.store, &rec)).unwrap();
        let spec: ProfileSpec = serde_json::from_value(serde_json::json!({
            "name": "Staff iPhones", "platform": "ios", "user_affinity": "without_user",
        }))
        .unwrap();
        let t = now() as u64;
        block_on(profile_store::save(
            &env.store,
            &ProfileRecord {
                id: 1,
                token,
                spec,
                apple_uuid: PROFILE_UUID.into(),
                previous_uuids: vec![],
                created_at: t,
                updated_at: t,
            },
        ))
        .unwrap();
        let devices = serials
            .iter()
            .map(|sn| {
                serde_json::json!({
                    "serial_number": sn, "model": "iPhone 14 Pro", "os": "iOS",
                    "device_family": "iPhone", "profile_uuid": PROFILE_UUID,
                    "profile_status": "assigned", "op_type": "added",
                    "op_date": "2027-01-01T00:00:00Z",
                })
                .as_object()
                .unwrap()
                .clone()
            })
            .collect();
        block_on(inventory_apply::apply_page(
            &env.store,
            token,
            devices,
            PageContext::at(ApplyMode::Upsert, t),
        ))
        .unwrap();
        InProcess {
            env,
            seen: Mutex::new(Vec::new()),
            fake_scep: false,
            scep_failure: false,
        }
    }

    fn scep(&self, method: &str, query: &str, body: Vec<u8>) -> HttpResponse {
        let ca = scep_ca();
        let reply = |status: u16, ct: &str, body: Vec<u8>| HttpResponse {
            status,
            headers: vec![("content-type".into(), ct.into())],
            body,
        };
        if query.contains("operation=GetCACaps") {
            return reply(
                200,
                "text/plain",
                b"Renewal\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\nPOSTPKIOperation\n".to_vec(),
            );
        }
        if query.contains("operation=GetCACert") {
            return reply(
                200,
                "application/x-x509-ca-ra-cert",
                ca.ca_ra_certs_only().unwrap(),
            );
        }
        assert!(query.contains("operation=PKIOperation") && method == "POST");
        let msg = parse_pki_message(&body).unwrap();
        assert_eq!(msg.message_type(), MessageType::PkcsReq);
        assert!(msg.signer_is_self_signed());
        let csr = msg.decrypt_csr(ca.ra_key()).unwrap();
        let rep = if self.scep_failure || csr.challenge_password() != Some(CHALLENGE) {
            mdm_crypto::cert_rep_failure(
                &msg,
                mdm_crypto::FailInfo::BadRequest,
                ca.ra_key(),
                ca.ra_certificate(),
                ca.ca_certificate(),
            )
            .unwrap()
        } else {
            let cert = ca.issue(&csr, now(), &IssueOptions::default()).unwrap();
            mdm_crypto::cert_rep_success(
                &msg,
                &cert,
                ca.ra_key(),
                ca.ra_certificate(),
                ca.ca_certificate(),
            )
            .unwrap()
        };
        reply(200, "application/x-pki-message", rep)
    }

    fn admin(&self, method: &str, path: &str, body: Option<Json>) -> (u16, Json) {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {ADMIN_KEY}"));
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let body = body.map(|v| v.to_string().into_bytes()).unwrap_or_default();
        let resp = block_on(mdm_core::admin::handle(&self.env, b.body(body).unwrap()));
        (
            resp.status().as_u16(),
            serde_json::from_slice(resp.body()).unwrap_or(Json::Null),
        )
    }
}

impl Http for InProcess {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> impl Future<Output = Result<HttpResponse, HttpError>> + Send {
        let prepared = (|| {
            let (_, path) = split_url(url)?;
            self.seen
                .lock()
                .unwrap()
                .push((method.to_owned(), path.to_owned()));
            let (p, query) = path.split_once('?').unwrap_or((path, ""));
            if p == "/scep" && self.fake_scep {
                return Ok(Err(self.scep(method, query, body)));
            }
            let mut req = http::Request::builder().method(method).uri(path);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            Ok(Ok((p.to_owned(), req.body(body).unwrap())))
        })();
        async move {
            let (p, req) = match prepared? {
                Ok(r) => r,
                Err(scep) => return Ok(scep),
            };
            // The routes of spin.toml: /mdm/connect is the commands component, the
            // check-in, enrollment and SCEP paths the checkin component.
            let resp = match p.as_str() {
                "/mdm/connect" => mdm_core::commands::handle(&self.env, req).await,
                _ => mdm_core::checkin::handle(&self.env, req).await,
            };
            Ok(HttpResponse {
                status: resp.status().as_u16(),
                headers: resp
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect(),
                body: resp.body().clone(),
            })
        }
    }
}

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

// ---------------------------------------------------------------------------------------
// User Enrollment (account-driven)
// ---------------------------------------------------------------------------------------

const MAID: &str = "ann.lee@appleid.example.com";

/// The core with a User Enrollment group and ann in it.
fn byod_server() -> InProcess {
    let server = InProcess::new(&[]);
    let (s, b) = server.admin(
        "POST",
        "/api/v1/groups",
        Some(serde_json::json!({ "id": "byod", "enrollment_type": "user", "priority": 1 })),
    );
    assert_eq!(s, 201, "{b}");
    let (s, b) = server.admin(
        "POST",
        "/api/v1/users",
        Some(serde_json::json!({
            "username": "ann", "password": "correct horse", "managed_apple_id": MAID, "groups": ["byod"],
        })),
    );
    assert_eq!(s, 201, "{b}");
    server
}

#[test]
fn a_personal_iphone_user_enrolls_against_the_core() {
    let server = byod_server();
    let mut d = iphone();
    // Unknown accounts and wrong passwords get nowhere.
    let e = block_on(d.discover(&server, BASE, "nobody@appleid.example.com")).unwrap_err();
    assert!(
        matches!(e, SimError::Status { status: 403, ref body, .. } if body.contains("com.apple.well-known.failed")),
        "{e}"
    );
    let e = block_on(d.user_enroll(&server, BASE, MAID, MAID, "wrong password")).unwrap_err();
    assert!(
        matches!(e, SimError::Status { ref body, .. } if body.contains("incorrect")),
        "{e}"
    );
    assert!(d.enrollment_id.is_none());

    let flow = block_on(d.user_enroll(&server, BASE, MAID, MAID, "correct horse")).unwrap();
    assert_eq!(flow.discovery.version, "mdm-byod");
    assert_eq!(
        flow.sign_in_url,
        format!("{BASE}/mdm/enroll/account/signin")
    );
    let mdm = &d.profile().unwrap().mdm;
    assert_eq!(mdm.enrollment_mode.as_deref(), Some("BYOD"));
    assert_eq!(mdm.assigned_managed_apple_id.as_deref(), Some(MAID));
    let eid = d.enrollment_id.clone().expect("an EnrollmentID");

    let (s, dev) = server.admin("GET", &format!("/api/v1/devices/ue:{eid}"), None);
    assert_eq!(s, 200, "{dev}");
    assert_eq!(dev["enrollment_type"], "user");
    assert_eq!(dev["enrolled"], true);
    assert_eq!(dev["managed_apple_id"], MAID);
    assert_eq!(dev["udid"], Json::Null);
    assert_eq!(dev["serial_number"], Json::Null);

    // What User Enrollment forbids is refused with the reason and never queued.
    let queue = |cmd: Json| {
        server.admin(
            "POST",
            &format!("/api/v1/devices/ue:{eid}/commands"),
            Some(cmd),
        )
    };
    for (cmd, needle) in [
        (
            serde_json::json!({"RequestType": "EraseDevice"}),
            "not allowed under User Enrollment",
        ),
        (serde_json::json!({"RequestType": "DeviceLock"}), ""),
        (
            serde_json::json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion", "SerialNumber"]}),
            "SerialNumber",
        ),
    ] {
        let (s, b) = queue(cmd.clone());
        if cmd["RequestType"] == "DeviceLock" {
            // Allowed on iOS under User Enrollment (the spec's table).
            assert_eq!(s, 201, "{b}");
            continue;
        }
        assert_eq!(s, 422, "{cmd}: {b}");
        assert!(b.to_string().contains(needle), "{b}");
    }
    // Allowed commands reach the device and are answered.
    for cmd in [
        serde_json::json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion", "ModelName"]}),
        serde_json::json!({"RequestType": "ProfileList"}),
    ] {
        let (s, b) = queue(cmd);
        assert_eq!(s, 201, "{b}");
    }
    let answered = block_on(d.run_until_idle(&server)).unwrap();
    let types: Vec<&str> = answered
        .iter()
        .map(|a| a.command.request_type.as_str())
        .collect();
    assert_eq!(types, ["DeviceLock", "DeviceInformation", "ProfileList"]);
    let (_, dev) = server.admin("GET", &format!("/api/v1/devices/ue:{eid}"), None);
    assert_eq!(
        dev["inventory"]["DeviceInformation"]["data"]["OSVersion"], "17.4",
        "{dev}"
    );

    // The store never saw the device's identifiers.
    let dump: String = server
        .env
        .store
        .backend()
        .dump()
        .iter()
        .map(|(k, v)| format!("{k}={}\n", String::from_utf8_lossy(v)))
        .collect();
    assert!(dump.contains(&eid));
    for id in [d.udid.as_str(), d.serial.as_str()] {
        assert!(!dump.contains(id), "{id} stored");
    }
    if let Some(imei) = &d.imei {
        assert!(!dump.contains(imei.as_str()));
    }
}

#[test]
fn devices_sharing_keys_enroll_with_their_own_identities() {
    let keys = mdm_devicesim::SharedKeys::generate().unwrap();
    let serials = ["F2LXK0AAHG71", "F2LXK0AAHG72"];
    let server = InProcess::new(&serials);
    let url = format!("{BASE}/mdm/enroll/ade");
    let mut devices: Vec<Device> = serials
        .iter()
        .enumerate()
        .map(|(i, sn)| {
            let udid = format!("00008110-000A1C2E3E8840{i:02}");
            Device::with_shared_keys(apple_ca(), &keys, DeviceKind::Iphone, sn, &udid, "17.4")
                .unwrap()
        })
        .collect();
    for d in devices.iter_mut() {
        block_on(d.enroll_ade(&server, &url, false)).unwrap();
    }
    let [a, b] = &devices[..] else { unreachable!() };
    // One key pair behind both, each certificate its own.
    assert_eq!(
        a.apple_identity().key().to_public_key(),
        b.apple_identity().key().to_public_key()
    );
    assert_ne!(
        a.apple_identity().certificate().der(),
        b.apple_identity().certificate().der()
    );
    let (ia, ib) = (a.mdm_identity().unwrap(), b.mdm_identity().unwrap());
    assert!(ia.certificate.matches_key(&keys.scep) && ib.certificate.matches_key(&keys.scep));
    assert_ne!(ia.certificate.serial_hex(), ib.certificate.serial_hex());
    assert_eq!(
        ia.certificate.common_name().as_deref(),
        Some(a.udid.as_str())
    );
    for d in &devices {
        let (s, dev) = server.admin("GET", &format!("/api/v1/devices/{}", d.udid), None);
        assert_eq!((s, &dev["enrolled"]), (200, &Json::Bool(true)), "{dev}");
    }
    // Each device's requests are its own: a command for one reaches only that one.
    let (s, _) = server.admin(
        "POST",
        &format!("/api/v1/devices/{}/commands", a.udid),
        Some(serde_json::json!({"RequestType": "ProfileList"})),
    );
    assert_eq!(s, 201);
    assert_eq!(block_on(b.idle(&server)).unwrap(), None);
    let cmd = block_on(a.idle(&server)).unwrap().expect("a's command");
    assert_eq!(cmd.request_type, "ProfileList");
}

#[test]
fn a_signed_idle_is_sent_again_as_made() {
    let mut d = iphone();
    let server = InProcess::new(&[&d.serial]);
    block_on(d.enroll_ade(&server, &format!("{BASE}/mdm/enroll/ade"), false)).unwrap();
    let idle = d.signed_idle().unwrap();
    assert_eq!(idle.status, "Idle");
    assert_eq!(idle.url, d.mdm().unwrap().server_url);
    let signer = signature::verify(idle.signature.as_deref().unwrap(), &idle.body).unwrap();
    assert_eq!(
        signer.certificate_der,
        d.mdm_identity().unwrap().certificate.der()
    );
    assert_eq!(block_on(d.send_signed(&server, &idle)).unwrap(), None);
    let (_, b) = server.admin(
        "POST",
        &format!("/api/v1/devices/{}/commands", d.udid),
        Some(serde_json::json!({"RequestType": "SecurityInfo"})),
    );
    let uuid = b["command_uuid"].as_str().unwrap().to_owned();
    // The same bytes and signature, accepted again, now with the command.
    let cmd = block_on(d.send_signed(&server, &idle)).unwrap().unwrap();
    assert_eq!(cmd.uuid, uuid);
}

/// A minimal HTTP/1.1 server: answers `200 <n>` (the request's number on its connection)
/// and closes after `close_after` requests on a connection. Returns its address and the
/// connections it accepted.
async fn counting_server(
    close_after: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for n in 1..=close_after {
                    // Requests here carry no body: a request ends at the blank line.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 1024];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let body = n.to_string();
                    let last = if n == close_after {
                        "connection: close\r\n"
                    } else {
                        ""
                    };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{last}\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_http_reuses_connections_and_reconnects_when_closed() {
    use std::sync::atomic::Ordering;
    let (addr, accepted) = counting_server(3).await;
    let http = mdm_devicesim::KeepAliveHttp::to(addr);
    let mut bodies = Vec::new();
    for _ in 0..7 {
        let r = http
            .send("GET", "http://any.host/x", &[], Vec::new())
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        bodies.push(r.body_text());
    }
    // Three requests per connection, then the server closes it and a new one is made.
    assert_eq!(bodies, ["1", "2", "3", "1", "2", "3", "1"]);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    // Concurrent requests each get a connection; they are kept for later.
    let (addr, accepted) = counting_server(1000).await;
    let http = std::sync::Arc::new(mdm_devicesim::KeepAliveHttp::to(addr));
    let sends: Vec<_> = (0..4)
        .map(|_| {
            let http = http.clone();
            tokio::spawn(async move {
                http.send("GET", "http://any.host/y", &[], Vec::new())
                    .await
                    .unwrap()
            })
        })
        .collect();
    for s in sends {
        assert_eq!(s.await.unwrap().status, 200);
    }
    let opened = accepted.load(Ordering::SeqCst);
    assert!((1..=4).contains(&opened), "{opened}");
    assert_eq!(http.idle_connections(), opened);
    for _ in 0..10 {
        http.send("GET", "http://any.host/z", &[], Vec::new())
            .await
            .unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), opened, "no new connection");
}

//! The simulated device on its own and against the real core in-process: MachineInfo
//! signatures (DER and BER, SHA-1 and SHA-256) that verify and chain to the fake Apple
//! CA, enrollment profile checks, SCEP against a CA built from mdm-crypto, `Mdm-Signature`
//! accepted by the core's verifier, and a whole check-in + command session through the
//! core's check-in, command and admin handlers.
//!
//! This file holds the shared fixtures (the CAs, a device, an enrollment profile, the
//! in-process server); the tests are in one module per concern: `machine_info`, `profile`,
//! `session`, `user_enrollment`, `reuse`.

mod machine_info;
mod profile;
mod reuse;
mod session;
mod user_enrollment;

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
        let resp = block_on(mdm_core::routes::admin::handle(
            &self.env,
            b.body(body).unwrap(),
        ));
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
                "/mdm/connect" => mdm_core::routes::commands::handle(&self.env, req).await,
                _ => mdm_core::routes::checkin::handle(&self.env, req).await,
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

//! A simulated MDM device for the device-facing endpoints: an identity (certificate and
//! key from the fixtures), `Mdm-Signature` made as devices make it (detached CMS
//! SignedData over the exact body, certificate embedded, signed attributes), and the
//! in-process server (check-in, connect, admin API) on the in-memory store.

#![allow(dead_code)]

use base64::Engine;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::platform::testing::{ManualClock, MapVariables, NoHttp};
use mdm_core::{Env, Response, routes::admin, routes::checkin, routes::commands};
use mdm_kv::{Defects, MemoryBackend, Store};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::Value;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

pub const ADMIN_KEY: &str = "admin-key-for-command-tests";
pub const SYNC_KEY: &str = "sync-key-for-command-tests";
pub const START: u64 = 1_800_000_000;
pub const TOPIC: &str = "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9";

pub type E = Env<MemoryBackend, NoHttp, ManualClock, MapVariables>;

pub fn env() -> E {
    env_with(Defects::spin_sqlite())
}

/// The server with the test trust anchors at `scep:ca-cert` (see [`test_anchors`]).
pub fn env_with(defects: Defects) -> E {
    let e = env_without_ca(defects);
    block_on(
        e.store
            .set(mdm_core::mdm::signature::SCEP_CA_CERT_KEY, &test_anchors()),
    )
    .unwrap();
    e
}

/// The test trust anchors, put where the server keeps its SCEP CA certificate
/// (`scep:ca-cert`, PEM bundle): the test SCEP CA that issued [`Identity::ca_issued`] and
/// the self-signed [`Identity::self_signed`] (a self-signed certificate is its own issuer).
pub fn test_anchors() -> Vec<u8> {
    let mut pem = fixture("device-identity/scepca.pem");
    pem.extend_from_slice(&fixture("mdm-signature/device.pem"));
    pem
}

/// A server that has no SCEP CA yet: every device request is refused.
pub fn env_without_ca(defects: Defects) -> E {
    Env {
        store: Store::new(MemoryBackend::with_defects(defects)),
        http: NoHttp,
        clock: ManualClock::at_unix(START),
        vars: MapVariables::new([
            ("admin_api_key", ADMIN_KEY),
            ("sync_api_key", SYNC_KEY),
            ("storage_key", "storage-key-for-command-tests-0123456789"),
        ]),
    }
}

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// A captured device plist from tests/vectors/nanomdm-checkin.
pub fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/../../tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// A device identity: certificate and private key.
#[derive(Clone)]
pub struct Identity {
    pub cert: Certificate,
    pub cert_der: Vec<u8>,
    key: rsa::RsaPrivateKey,
}

impl Identity {
    fn load(cert_pem: &str, key_pem: &str) -> Self {
        let cert_der = pem_to_der(&fixture(cert_pem));
        let key =
            rsa::RsaPrivateKey::from_pkcs8_pem(std::str::from_utf8(&fixture(key_pem)).unwrap())
                .unwrap();
        Identity {
            cert: Certificate::from_der(&cert_der).unwrap(),
            cert_der,
            key,
        }
    }

    /// Self-signed (tests/fixtures/mdm-signature).
    pub fn self_signed() -> Self {
        Self::load("mdm-signature/device.pem", "mdm-signature/device.key")
    }

    /// Issued by the test SCEP CA (tests/fixtures/device-identity).
    pub fn ca_issued() -> Self {
        Self::load("device-identity/ident.pem", "device-identity/ident.key")
    }

    /// The same certificate (same tbsCertificate, same signature, same key) with its
    /// outer signatureAlgorithm's parameters encoded the other valid way (NULL or
    /// absent): what an attacker may vary without the CA's key.
    pub fn outer_algorithm_reencoded(&self) -> Self {
        let mut cert = self.cert.clone();
        cert.signature_algorithm.parameters = match cert.signature_algorithm.parameters {
            Some(_) => None,
            None => Some(Any::null()),
        };
        let cert_der = cert.to_der().unwrap();
        Identity {
            cert,
            cert_der,
            key: self.key.clone(),
        }
    }

    /// The binding key: SHA-256 of the certificate's tbsCertificate.
    pub fn cert_hash(&self) -> String {
        mdm_core::mdm::signature::identity_hashes(&self.cert_der)
            .unwrap()
            .0
    }

    /// SHA-256 of the whole certificate DER.
    pub fn der_hash(&self) -> String {
        hex::encode(Sha256::digest(&self.cert_der))
    }

    /// The `Mdm-Signature` header value for `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let oid = ObjectIdentifier::new_unwrap;
        let sha256 = AlgorithmIdentifierOwned {
            oid: oid("2.16.840.1.101.3.4.2.1"),
            parameters: None,
        };
        let attr = |o: &str, v: Any| Attribute {
            oid: oid(o),
            values: SetOfVec::try_from(vec![v]).unwrap(),
        };
        let attrs = SetOfVec::try_from(vec![
            attr(
                "1.2.840.113549.1.9.3",
                Any::encode_from(&oid("1.2.840.113549.1.7.1")).unwrap(),
            ),
            attr(
                "1.2.840.113549.1.9.4",
                Any::encode_from(&OctetString::new(Sha256::digest(body).to_vec()).unwrap())
                    .unwrap(),
            ),
        ])
        .unwrap();
        let signed = attrs.to_der().unwrap();
        let sig = SigningKey::<Sha256>::new(self.key.clone())
            .sign(&signed)
            .to_vec();
        let si = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: self.cert.tbs_certificate.issuer.clone(),
                serial_number: self.cert.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: sha256.clone(),
            signed_attrs: Some(attrs),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: oid("1.2.840.113549.1.1.1"),
                parameters: Some(Any::null()),
            },
            signature: OctetString::new(sig).unwrap(),
            unsigned_attrs: None,
        };
        let sd = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![sha256]).unwrap(),
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: oid("1.2.840.113549.1.7.1"),
                econtent: None,
            },
            certificates: Some(CertificateSet(
                SetOfVec::try_from(vec![CertificateChoices::Certificate(self.cert.clone())])
                    .unwrap(),
            )),
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![si]).unwrap()),
        };
        let ci = ContentInfo {
            content_type: oid("1.2.840.113549.1.7.2"),
            content: Any::encode_from(&sd).unwrap(),
        };
        base64::engine::general_purpose::STANDARD.encode(ci.to_der().unwrap())
    }
}

pub fn xml(body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>{body}</dict></plist>"#
    )
    .into_bytes()
}

/// A device request with an optional `Mdm-Signature`.
pub fn device_request(
    method: Method,
    path: &str,
    body: &[u8],
    sig: Option<&str>,
) -> http::Request<Vec<u8>> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/x-apple-aspen-mdm-checkin");
    if let Some(s) = sig {
        b = b.header("mdm-signature", s);
    }
    b.body(body.to_vec()).unwrap()
}

/// A simulated device on the server in `e`.
pub struct Device<'a> {
    pub e: &'a E,
    pub id: Identity,
    pub udid: String,
}

impl<'a> Device<'a> {
    pub fn new(e: &'a E, id: Identity, udid: &str) -> Self {
        Device {
            e,
            id,
            udid: udid.to_owned(),
        }
    }

    pub fn checkin_raw(&self, body: &[u8]) -> Response {
        let req = device_request(Method::PUT, "/mdm/checkin", body, Some(&self.id.sign(body)));
        block_on(checkin::handle(self.e, req))
    }

    pub fn checkin(&self, message_type: &str, extra: &str) -> Response {
        self.checkin_raw(&xml(&format!(
            "<key>MessageType</key><string>{message_type}</string><key>UDID</key><string>{}</string>{extra}",
            self.udid
        )))
    }

    /// Lets this device Authenticate as `SN-<udid>` with [`TOPIC`] (see [`admit`]).
    pub fn admit(&self) {
        admit(
            self.e,
            &self.id,
            &self.udid,
            &format!("SN-{}", self.udid),
            TOPIC,
        );
    }

    /// Authenticate + TokenUpdate. `product`: ProductName (platform), `extra_tu`: more
    /// TokenUpdate keys.
    pub fn enroll(&self, product: &str, os: &str, extra_tu: &str) {
        self.admit();
        let r = self.checkin(
            "Authenticate",
            &format!("<key>Topic</key><string>{TOPIC}</string><key>ProductName</key><string>{product}</string><key>OSVersion</key><string>{os}</string><key>SerialNumber</key><string>SN-{}</string>", self.udid),
        );
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(r.body())
        );
        let r = self.checkin(
            "TokenUpdate",
            &format!("<key>Topic</key><string>{TOPIC}</string><key>PushMagic</key><string>magic-{}</string><key>Token</key><data>AAECAw==</data>{extra_tu}", self.udid),
        );
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(r.body())
        );
    }

    pub fn connect_raw(&self, body: &[u8]) -> Response {
        let req = device_request(Method::PUT, "/mdm/connect", body, Some(&self.id.sign(body)));
        block_on(commands::handle(self.e, req))
    }

    /// Sends a report; returns the next command's (CommandUUID, RequestType), or None for
    /// an empty 200. Panics on any other answer.
    pub fn report(
        &self,
        status: &str,
        uuid: Option<&str>,
        extra: &str,
    ) -> Option<(String, String)> {
        let u = uuid
            .map(|u| format!("<key>CommandUUID</key><string>{u}</string>"))
            .unwrap_or_default();
        let body = xml(&format!(
            "<key>Status</key><string>{status}</string><key>UDID</key><string>{}</string>{u}{extra}",
            self.udid
        ));
        next_command(&self.connect_raw(&body))
    }

    pub fn idle(&self) -> Option<(String, String)> {
        self.report("Idle", None, "")
    }

    pub fn ack(&self, uuid: &str) -> Option<(String, String)> {
        self.report("Acknowledged", Some(uuid), "")
    }

    pub fn not_now(&self, uuid: &str) -> Option<(String, String)> {
        self.report("NotNow", Some(uuid), "")
    }
}

/// What the enrollment flow leaves before a device's `Authenticate` (which is refused
/// without it): the pending enrollment request of `device_id` (serial, topic) and the
/// record of our SCEP having issued `id`'s certificate for it (`scepcert:<serial>`, as
/// `mdm_core::scep::endpoint` writes it).
pub fn admit(e: &E, id: &Identity, device_id: &str, serial: &str, topic: &str) {
    use mdm_core::enroll::pending::{self, PendingEnrollment, Via};
    block_on(pending::put(
        &e.store,
        &PendingEnrollment {
            udid: device_id.into(),
            serial: serial.into(),
            via: Via::Ade,
            token: None,
            profile: None,
            apple_profile_uuid: None,
            user: None,
            topic: topic.into(),
            supervised: false,
            product: None,
            os_version: None,
            build_version: None,
            grant: None,
            at: START,
        },
    ))
    .unwrap();
    let mut cert_serial = hex::encode(id.cert.tbs_certificate.serial_number.as_bytes());
    while cert_serial.len() > 2 && cert_serial.starts_with("00") {
        cert_serial.drain(..2);
    }
    let issued = mdm_core::scep::issued::IssuedRecord {
        serial: cert_serial.clone(),
        subject: String::new(),
        not_before: 0,
        not_after: i64::MAX,
        issued_at: START,
        device_id: device_id.into(),
        device_serial: Some(serial.into()),
        user: None,
        purpose: "test".into(),
        cert_sha256: id.der_hash(),
        tbs_sha256: Some(id.cert_hash()),
        transaction_id: "test".into(),
        renewed_from: None,
    };
    block_on(e.store.set(
        &format!("scepcert:{cert_serial}"),
        &serde_json::to_vec(&issued).unwrap(),
    ))
    .unwrap();
}

/// The command in a connect response, or None for an empty 200.
pub fn next_command(resp: &Response) -> Option<(String, String)> {
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(resp.body())
    );
    if resp.body().is_empty() {
        return None;
    }
    assert_eq!(resp.headers()["content-type"], "application/xml");
    let v: plist::Value = plist::from_bytes(resp.body()).unwrap();
    let d = v.as_dictionary().unwrap();
    let uuid = d["CommandUUID"].as_string().unwrap().to_owned();
    let rt = d["Command"].as_dictionary().unwrap()["RequestType"]
        .as_string()
        .unwrap()
        .to_owned();
    Some((uuid, rt))
}

/// An admin API call with the admin key; JSON body (or none when empty).
pub fn admin_call(e: &E, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN_KEY}"));
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    let resp = block_on(admin::handle(e, b.body(body.as_bytes().to_vec()).unwrap()));
    let json = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (resp.status(), json)
}

/// An admin API call with a raw body and content type.
pub fn admin_raw(
    e: &E,
    method: Method,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .header("content-type", content_type)
        .body(body.to_vec())
        .unwrap();
    let resp = block_on(admin::handle(e, req));
    let json = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (resp.status(), json)
}

/// Queues a command over the admin API; returns its CommandUUID (panics unless 201).
pub fn queue(e: &E, device: &str, command: &str) -> String {
    let (s, b) = admin_call(
        e,
        Method::POST,
        &format!("/api/v1/devices/{device}/commands"),
        command,
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["command_uuid"].as_str().unwrap().to_owned()
}

/// Everything in the store, for "nothing changed" checks.
pub fn dump(e: &E) -> Vec<(String, Vec<u8>)> {
    let mut d = e.store.backend().dump();
    d.sort();
    d
}

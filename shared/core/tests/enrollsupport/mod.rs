//! Test material for enrollment: a fake Apple device CA (expired, like Apple's), device
//! identities (RSA-1024 with `CN=<UUID>`, like devices'), MachineInfo plists signed as
//! devices sign them (attached CMS, SHA-1 or SHA-256, DER or Apple's BER with indefinite
//! lengths and a chunked content), a server with a synced device assigned a profile, and
//! the device side of SCEP and check-in.

#![allow(dead_code)]

use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, Encode};
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::dep::TokenId;
use mdm_core::dep::inventory_apply::{self, ApplyMode, PageContext};
use mdm_core::dep::profile_store::{self, ProfileRecord};
use mdm_core::dep::profiles::ProfileSpec;
use mdm_core::dep::tokens::{self, KeyPair as SlotKey, TokenRecord};
use mdm_core::platform::testing::{ManualClock, MapVariables, NoHttp};
use mdm_core::{Clock, Env, Response, checkin};
use mdm_crypto::{
    Certificate, CsrParams, DigestAlgorithm, EnvelopeCipher, KeyPair, MessageType, PkiStatus,
    RequestOptions, SignOptions, build_csr, build_pkcs_req, parse_cert_rep,
    self_signed_certificate, sign_data,
};
use mdm_kv::{Defects, MemoryBackend, Store};
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};
use sha2::Digest as _;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

pub const START: u64 = 1_800_000_000;
pub const TOPIC: &str = "com.apple.mgmt.External.3f1c1a1e-2b7d-4a57-9c0e-5e1a3c2b9d10";
pub const SERVER: &str = "https://mdm.example.com";
pub const ADMIN_KEY: &str = "admin-key-for-enrollment-tests";

pub type E = Env<MemoryBackend, NoHttp, ManualClock, MapVariables>;

/// rand_core 0.6 over the platform's randomness, for RSA key generation.
pub struct Rng;

impl rsa::rand_core::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        getrandom::fill(dest).unwrap();
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for Rng {}

fn utc(unix: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(unix)).unwrap())
}

fn spki(key: &RsaPrivateKey) -> SubjectPublicKeyInfoOwned {
    let der = key.to_public_key().to_public_key_der().unwrap();
    SubjectPublicKeyInfoOwned::try_from(der.as_bytes()).unwrap()
}

fn serial() -> SerialNumber {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    b[0] = (b[0] & 0x7f) | 0x10;
    SerialNumber::new(&b).unwrap()
}

/// A fake "Apple iPhone Device CA": RSA-1024, SHA-1, valid 2007-2014 (expired, as
/// Apple's is).
pub struct FakeCa {
    pub key: RsaPrivateKey,
    pub cert: x509_cert::Certificate,
    pub der: Vec<u8>,
}

impl FakeCa {
    pub fn new(cn: &str) -> Self {
        let key = RsaPrivateKey::new(&mut Rng, 1024).unwrap();
        let name = Name::from_str(&format!("CN={cn},OU=Apple iPhone,O=Apple Inc.,C=US")).unwrap();
        let validity = Validity {
            not_before: utc(1_176_764_086), // 2007-04-16
            not_after: utc(1_397_688_886),  // 2014-04-16
        };
        let signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key.clone());
        let cert =
            CertificateBuilder::new(Profile::Root, serial(), validity, name, spki(&key), &signer)
                .unwrap()
                .build::<rsa::pkcs1v15::Signature>()
                .unwrap();
        let der = cert.to_der().unwrap();
        FakeCa { key, cert, der }
    }

    pub fn pem(&self) -> String {
        Certificate::from_der(&self.der).unwrap().to_pem()
    }

    /// A device identity as Apple issues them: RSA-1024, `CN=<uuid>`, signed with
    /// `sha256` (newer devices) or SHA-1 (older ones), valid now.
    pub fn device(&self, cn: &str, sha256: bool) -> DeviceKey {
        let key = RsaPrivateKey::new(&mut Rng, 1024).unwrap();
        let validity = Validity {
            not_before: utc(START - 86_400),
            not_after: utc(START + 3 * 365 * 86_400),
        };
        let profile = Profile::Leaf {
            issuer: self.cert.tbs_certificate.subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: true,
        };
        let subject = Name::from_str(&format!("CN={cn}")).unwrap();
        let cert = if sha256 {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone());
            CertificateBuilder::new(profile, serial(), validity, subject, spki(&key), &signer)
                .unwrap()
                .build::<rsa::pkcs1v15::Signature>()
                .unwrap()
        } else {
            let signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(self.key.clone());
            CertificateBuilder::new(profile, serial(), validity, subject, spki(&key), &signer)
                .unwrap()
                .build::<rsa::pkcs1v15::Signature>()
                .unwrap()
        };
        let der = cert.to_der().unwrap();
        DeviceKey { key, cert, der }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Der,
    /// As Apple devices (and `openssl cms -stream`) send it: indefinite lengths, the
    /// content as a constructed OCTET STRING in chunks.
    Ber,
}

pub struct DeviceKey {
    pub key: RsaPrivateKey,
    pub cert: x509_cert::Certificate,
    pub der: Vec<u8>,
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn indefinite(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

const ID_DATA: &str = "1.2.840.113549.1.7.1";
const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";

fn oid_der(s: &str) -> Vec<u8> {
    ObjectIdentifier::new_unwrap(s).to_der().unwrap()
}

impl DeviceKey {
    /// Attached CMS SignedData over `content`, as a device signs its MachineInfo.
    /// `extra_certs` (DER) go next to the device certificate (e.g. the device CA).
    pub fn sign(&self, content: &[u8], hash: Hash, form: Form, extra_certs: &[&[u8]]) -> Vec<u8> {
        let oid = ObjectIdentifier::new_unwrap;
        let (digest_oid, digest) = match hash {
            Hash::Sha1 => ("1.3.14.3.2.26", sha1::Sha1::digest(content).to_vec()),
            Hash::Sha256 => (
                "2.16.840.1.101.3.4.2.1",
                sha2::Sha256::digest(content).to_vec(),
            ),
        };
        let alg = AlgorithmIdentifierOwned {
            oid: oid(digest_oid),
            parameters: None,
        };
        let attr = |o: &str, v: Any| x509_cert::attr::Attribute {
            oid: oid(o),
            values: SetOfVec::try_from(vec![v]).unwrap(),
        };
        let attrs = SetOfVec::try_from(vec![
            attr(
                "1.2.840.113549.1.9.3",
                Any::encode_from(&oid(ID_DATA)).unwrap(),
            ),
            attr(
                "1.2.840.113549.1.9.4",
                Any::encode_from(&OctetString::new(digest).unwrap()).unwrap(),
            ),
        ])
        .unwrap();
        let signed = attrs.to_der().unwrap();
        let sig = match hash {
            Hash::Sha1 => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(self.key.clone())
                .sign(&signed)
                .to_vec(),
            Hash::Sha256 => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone())
                .sign(&signed)
                .to_vec(),
        };
        let si = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: self.cert.tbs_certificate.issuer.clone(),
                serial_number: self.cert.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: alg.clone(),
            signed_attrs: Some(attrs),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: oid("1.2.840.113549.1.1.1"),
                parameters: Some(Any::null()),
            },
            signature: OctetString::new(sig).unwrap(),
            unsigned_attrs: None,
        }
        .to_der()
        .unwrap();
        let digest_algs = tlv(0x31, &alg.to_der().unwrap());
        let mut certs = self.der.clone();
        for c in extra_certs {
            certs.extend_from_slice(c);
        }
        let signer_infos = tlv(0x31, &si);
        match form {
            Form::Der => {
                let eci = tlv(
                    0x30,
                    &[oid_der(ID_DATA), tlv(0xa0, &tlv(0x04, content))].concat(),
                );
                let sd = tlv(
                    0x30,
                    &[
                        vec![0x02, 0x01, 0x01],
                        digest_algs,
                        eci,
                        tlv(0xa0, &certs),
                        signer_infos,
                    ]
                    .concat(),
                );
                tlv(0x30, &[oid_der(ID_SIGNED_DATA), tlv(0xa0, &sd)].concat())
            }
            Form::Ber => {
                let chunks: Vec<Vec<u8>> = content.chunks(1000).map(|c| tlv(0x04, c)).collect();
                let chunk_refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
                let octets = indefinite(0x24, &chunk_refs);
                let explicit = indefinite(0xa0, &[&octets]);
                let eci = indefinite(0x30, &[&oid_der(ID_DATA), &explicit]);
                let cert_set = indefinite(0xa0, &[&certs]);
                let sd = indefinite(
                    0x30,
                    &[
                        &[0x02, 0x01, 0x01],
                        &digest_algs,
                        &eci,
                        &cert_set,
                        &signer_infos,
                    ],
                );
                let wrapped = indefinite(0xa0, &[&sd]);
                indefinite(0x30, &[&oid_der(ID_SIGNED_DATA), &wrapped])
            }
        }
    }
}

/// A MachineInfo plist as a device sends it.
pub fn machine_info(udid: &str, serial: &str, os: Option<&str>, can_update: bool) -> Vec<u8> {
    let mut d = plist::Dictionary::new();
    d.insert("UDID".into(), udid.into());
    d.insert("SERIAL".into(), serial.into());
    d.insert("PRODUCT".into(), "iPhone14,5".into());
    d.insert("VERSION".into(), "21C66".into());
    if let Some(os) = os {
        d.insert("OS_VERSION".into(), os.into());
    }
    d.insert("LANGUAGE".into(), "en-US".into());
    d.insert("IMEI".into(), "35 123456 789012 3".into());
    if can_update {
        d.insert("MDM_CAN_REQUEST_SOFTWARE_UPDATE".into(), true.into());
    }
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &plist::Value::Dictionary(d)).unwrap();
    out
}

/// The server: fake Apple CA as `apple_device_ca`, a push topic, a token whose inventory
/// holds devices.
pub struct Server {
    pub e: E,
    pub apple: FakeCa,
    pub token: TokenId,
}

pub fn env_with_vars(vars: &[(&str, &str)]) -> E {
    Env {
        store: Store::new(MemoryBackend::with_defects(Defects::spin_sqlite())),
        http: NoHttp,
        clock: ManualClock::at_unix(START),
        vars: MapVariables::new(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
    }
}

impl Server {
    pub fn new() -> Self {
        let apple = FakeCa::new("Apple iPhone Device CA");
        let pem = apple.pem();
        let e = env_with_vars(&[
            ("admin_api_key", ADMIN_KEY),
            ("storage_key", "storage-key-for-enrollment-tests-0123456789"),
            ("server_url", SERVER),
            ("apns_topic", TOPIC),
            ("apple_device_ca", &pem),
        ]);
        let token = block_on(tokens::allocate(&e.store)).unwrap().unwrap();
        let key = SlotKey {
            certificate: String::new(),
            sealed_key: String::new(),
            created_at: 0,
        };
        let mut rec = TokenRecord::new(token, "Main".into(), key, 0);
        let mut account = serde_json::Map::new();
        account.insert("org_name".into(), json!("Example Org"));
        rec.account = Some(account);
        block_on(tokens::create(&e.store, &rec)).unwrap();
        Server { e, apple, token }
    }

    pub fn now(&self) -> u64 {
        self.e.clock.unix_seconds()
    }

    /// Our profile `id` with Apple UUID `uuid` and `settings` (JSON of ProfileSpec).
    pub fn add_profile(&self, id: u64, uuid: &str, settings: Value) {
        let spec: ProfileSpec = serde_json::from_value(settings).unwrap();
        spec.validate().unwrap();
        let r = ProfileRecord {
            id,
            token: self.token,
            spec,
            apple_uuid: uuid.into(),
            previous_uuids: vec![],
            created_at: START,
            updated_at: START,
        };
        block_on(profile_store::save(&self.e.store, &r)).unwrap();
    }

    /// A synced device (Apple's record fields).
    pub fn sync_device(&self, fields: Value) {
        let rec = fields.as_object().unwrap().clone();
        block_on(inventory_apply::apply_page(
            &self.e.store,
            self.token,
            vec![rec],
            PageContext::at(ApplyMode::Upsert, START),
        ))
        .unwrap();
    }

    pub fn enroll_request(&self, body: Vec<u8>) -> Response {
        let req = http::Request::builder()
            .method(Method::POST)
            .uri("/mdm/enroll/ade")
            .header("content-type", "application/pkcs7-signature")
            .body(body)
            .unwrap();
        block_on(checkin::handle(&self.e, req))
    }

    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut d = self.e.store.backend().dump();
        d.sort();
        d
    }

    pub fn admin(&self, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {ADMIN_KEY}"));
        if !body.is_empty() {
            b = b.header("content-type", "application/json");
        }
        let resp = block_on(mdm_core::admin::handle(
            &self.e,
            b.body(body.as_bytes().to_vec()).unwrap(),
        ));
        let v = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        (resp.status(), v)
    }
}

pub fn default_profile() -> Value {
    json!({ "name": "Staff iPhones", "platform": "ios", "user_affinity": "without_user" })
}

pub fn assigned(serial: &str, uuid: &str) -> Value {
    json!({
        "serial_number": serial, "model": "iPhone 13", "os": "iOS", "device_family": "iPhone",
        "profile_uuid": uuid, "profile_status": "assigned", "op_type": "added",
        "op_date": "2027-01-01T00:00:00Z",
    })
}

pub fn text(r: &Response) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

pub fn json_body(r: &Response) -> Value {
    serde_json::from_slice(r.body()).unwrap_or(Value::Null)
}

/// The verified profile: its plist and the CMS signer certificate.
pub fn open_profile(r: &Response) -> (plist::Dictionary, Certificate, Vec<Certificate>) {
    assert_eq!(r.status(), StatusCode::OK, "{}", text(r));
    assert_eq!(
        r.headers()["content-type"],
        "application/x-apple-aspen-config"
    );
    let msg = mdm_crypto::verify_signed_data(r.body(), None).expect("profile signature verifies");
    let v: plist::Value = plist::from_bytes(msg.content().unwrap()).unwrap();
    (
        v.into_dictionary().unwrap(),
        msg.signer().clone(),
        msg.certificates().to_vec(),
    )
}

pub fn payload<'a>(profile: &'a plist::Dictionary, kind: &str) -> &'a plist::Dictionary {
    profile["PayloadContent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_dictionary().unwrap())
        .find(|p| p["PayloadType"].as_string() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} payload"))
}

pub fn challenge_of(profile: &plist::Dictionary) -> String {
    payload(profile, "com.apple.security.scep")["PayloadContent"]
        .as_dictionary()
        .unwrap()["Challenge"]
        .as_string()
        .unwrap()
        .to_owned()
}

/// The device's MDM identity, obtained over SCEP as a device does.
pub struct Identity {
    pub key: KeyPair,
    pub cert: Certificate,
}

pub fn scep_request(e: &E, method: Method, query: &str, body: Vec<u8>) -> Response {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("/scep?{query}"))
        .header("content-type", "application/x-pki-message")
        .body(body)
        .unwrap();
    block_on(checkin::handle(e, req))
}

/// Runs SCEP with `challenge`: `Ok(identity)` on SUCCESS, `Err(status)` otherwise.
pub fn scep_enroll(e: &E, key: &KeyPair, cn: &str, challenge: &str) -> Result<Identity, PkiStatus> {
    let r = scep_request(e, Method::GET, "operation=GetCACert", vec![]);
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    let certs = mdm_crypto::parse_certs_only(r.body()).unwrap();
    let ra = certs
        .iter()
        .find(|c| !c.is_ca())
        .or(certs.first())
        .unwrap()
        .clone();
    let csr = build_csr(
        key,
        &CsrParams {
            organization: Some("Example Org"),
            challenge: Some(challenge),
            ..CsrParams::new(cn)
        },
    )
    .unwrap();
    let now = START as i64;
    let me = self_signed_certificate(key, cn, now - 3600, now + 86_400).unwrap();
    let tx = mdm_crypto::transaction_id_for(&key.public_key_der().unwrap());
    let msg = build_pkcs_req(
        &csr,
        key,
        &me,
        &ra,
        &RequestOptions {
            message_type: MessageType::PkcsReq,
            transaction_id: &tx,
            cipher: EnvelopeCipher::Aes128Cbc,
            digest: DigestAlgorithm::Sha256,
        },
    )
    .unwrap();
    let r = scep_request(e, Method::POST, "operation=PKIOperation", msg.der);
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    let rep = parse_cert_rep(r.body(), key).unwrap();
    match (rep.status, rep.certificate) {
        (PkiStatus::Success, Some(cert)) => Ok(Identity {
            key: key.clone(),
            cert,
        }),
        (status, _) => Err(status),
    }
}

/// Renews `old` over SCEP as a device does: a RenewalReq for a CSR on `new_key`, signed
/// by the current identity; the CertRep is encrypted to it.
pub fn scep_renew(e: &E, old: &Identity, new_key: &KeyPair) -> Result<Identity, PkiStatus> {
    let r = scep_request(e, Method::GET, "operation=GetCACert", vec![]);
    let certs = mdm_crypto::parse_certs_only(r.body()).unwrap();
    let ra = certs
        .iter()
        .find(|c| !c.is_ca())
        .or(certs.first())
        .unwrap()
        .clone();
    let cn = old.cert.common_name().unwrap_or_default();
    let csr = build_csr(new_key, &CsrParams::new(&cn)).unwrap();
    let tx = mdm_crypto::transaction_id_for(&new_key.public_key_der().unwrap());
    let msg = build_pkcs_req(
        &csr,
        &old.key,
        &old.cert,
        &ra,
        &RequestOptions {
            message_type: MessageType::RenewalReq,
            transaction_id: &tx,
            cipher: EnvelopeCipher::Aes128Cbc,
            digest: DigestAlgorithm::Sha256,
        },
    )
    .unwrap();
    let r = scep_request(e, Method::POST, "operation=PKIOperation", msg.der);
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    let rep = parse_cert_rep(r.body(), &old.key).unwrap();
    match (rep.status, rep.certificate) {
        (PkiStatus::Success, Some(cert)) => Ok(Identity {
            key: new_key.clone(),
            cert,
        }),
        (status, _) => Err(status),
    }
}

impl Identity {
    pub fn signature(&self, body: &[u8]) -> String {
        let sig = sign_data(
            body,
            &self.key,
            &self.cert,
            &[],
            &SignOptions {
                detached: true,
                ..SignOptions::default()
            },
        )
        .unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig)
    }

    pub fn send(&self, e: &E, path: &str, body: &[u8]) -> Response {
        let req = http::Request::builder()
            .method(Method::PUT)
            .uri(path)
            .header("content-type", "application/x-apple-aspen-mdm-checkin")
            .header("mdm-signature", self.signature(body))
            .body(body.to_vec())
            .unwrap();
        if path.starts_with("/mdm/connect") {
            block_on(mdm_core::commands::handle(e, req))
        } else {
            block_on(checkin::handle(e, req))
        }
    }

    pub fn checkin(&self, e: &E, message_type: &str, udid: &str, extra: &str) -> Response {
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>MessageType</key><string>{message_type}</string><key>UDID</key><string>{udid}</string>{extra}</dict></plist>"#
        );
        self.send(e, "/mdm/checkin", body.as_bytes())
    }

    pub fn authenticate(&self, e: &E, udid: &str, serial: &str) -> Response {
        self.checkin(
            e,
            "Authenticate",
            udid,
            &format!(
                "<key>Topic</key><string>{TOPIC}</string><key>SerialNumber</key><string>{serial}</string>\
                 <key>ProductName</key><string>iPhone14,5</string><key>OSVersion</key><string>17.2</string>\
                 <key>BuildVersion</key><string>21C66</string><key>IMEI</key><string>35 123456 789012 3</string>"
            ),
        )
    }

    pub fn token_update(&self, e: &E, udid: &str, extra: &str) -> Response {
        self.checkin(
            e,
            "TokenUpdate",
            udid,
            &format!(
                "<key>Topic</key><string>{TOPIC}</string><key>PushMagic</key><string>magic-{udid}</string>\
                 <key>Token</key><data>AAECAwQFBgc=</data><key>AwaitingConfiguration</key><true/>{extra}"
            ),
        )
    }
}

/// One RSA-2048 key per role, shared by the tests of a binary (generation is slow).
pub fn device_mdm_key(n: usize) -> KeyPair {
    use std::sync::{Mutex, OnceLock};
    static KEYS: OnceLock<Mutex<Vec<KeyPair>>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| Mutex::new(Vec::new()));
    let mut k = keys.lock().unwrap();
    while k.len() <= n {
        k.push(KeyPair::generate().unwrap());
    }
    k[n].clone()
}

/// Digest of a store dump, for "nothing changed" checks.
pub fn fingerprint(d: &[(String, Vec<u8>)]) -> String {
    let mut h = sha2::Sha256::new();
    for (k, v) in d {
        h.update(k.as_bytes());
        h.update(v);
    }
    hex::encode(h.finalize())
}

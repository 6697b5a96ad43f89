//! The device side after the profile: reading the signed profile and its SCEP challenge,
//! SCEP enrollment and renewal, and signed check-in messages.

use base64::Engine;
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::{Response, routes::checkin};
use mdm_crypto::{
    Certificate, CsrParams, DigestAlgorithm, EnvelopeCipher, KeyPair, MessageType, PkiStatus,
    RequestOptions, SignOptions, build_csr, build_pkcs_req, parse_cert_rep,
    self_signed_certificate, sign_data,
};

use super::{E, START, TOPIC, text};

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
            block_on(mdm_core::routes::commands::handle(e, req))
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

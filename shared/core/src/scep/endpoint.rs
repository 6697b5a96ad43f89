//! `/scep` (RFC 8894), served by the `checkin` component:
//!
//! | request | answer |
//! |---|---|
//! | `GET ?operation=GetCACaps` | `200 text/plain`, [`CA_CAPS`] (no single DES) |
//! | `GET ?operation=GetCACert` | `200 application/x-x509-ca-ra-cert`: CA + RA, certs-only SignedData |
//! | `POST ?operation=PKIOperation` (body ≤ 64 KiB, else 413) | `200 application/x-pki-message` CertRep |
//! | `GET ?operation=PKIOperation&message=<base64>` | the same; standard or URL-safe base64 |
//!
//! PKIOperation:
//! - **PKCSReq**: signature verified, envelope opened with the RA key (never the CA key;
//!   the RA key decrypts and nothing else: CertReps are signed by the CA),
//!   CSR self-signature checked, the challengePassword redeemed (one-time, 15 minutes),
//!   certificate issued for [`IDENTITY_VALIDITY_DAYS`] and recorded ([`IssuedRecord`]).
//! - **RenewalReq**: signed by a certificate this CA issued (and recorded), not expired;
//!   no challenge needed; the new certificate is recorded for the same device.
//! - **CertPoll** (GetCertInitial): we never answer PENDING, so there is nothing to poll
//!   for: FAILURE badCertId.
//!
//! Policy refusals (no, unknown, expired or used challenge; foreign or expired renewal
//! certificate; a CSR we will not sign) are a signed CertRep FAILURE, as micromdm answers
//! them, and are logged without the challenge. A message that cannot be parsed or
//! verified, or whose envelope does not open with our RA key, gets HTTP 400 with a short
//! plain-text reason; every decryption failure gets the same one (no padding oracle).

use crate::mdm::enrollment_record;
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderValue, Method, StatusCode, header};
use sha2::{Digest, Sha256};

use mdm_crypto::{
    Certificate, CertificateAuthority, Csr, FailInfo, IssueOptions, MessageType, PkiMessage,
    ScepError, cert_rep_failure, cert_rep_success, parse_pki_message,
};
use mdm_kv::{Backend, Store};

use super::ca::{self, ScepSetupError};
use super::challenge::{self, ChallengeError};
use super::issued::add_to_device_index;
use super::issued::{IssuedRecord, issued_for};
use crate::api::{self, Request, Response};
use crate::device_auth::DeviceError;
use crate::log::loggable;
use crate::record::Stored;
use crate::{Clock, Platform};

/// GetCACaps. AES (RFC 8894's mandatory cipher) and 3DES; single DES is read, never
/// offered. `SCEPStandard` implies AES, POSTPKIOperation and SHA-256.
pub const CA_CAPS: &str =
    "AES\nPOSTPKIOperation\nRenewal\nSHA-1\nSHA-256\nSHA-512\nDES3\nSCEPStandard\n";
/// Largest PKIOperation accepted (a PKCSReq with a 4096-bit key and its certificate is
/// under 10 KiB).
pub const MAX_PKI_MESSAGE: usize = 64 * 1024;
/// Smallest RSA key an identity certificate is issued for (Apple's SCEP payload uses
/// RSA keys only; its default 1024 bits is refused: our profiles ask for 2048).
pub const MIN_KEY_BITS: usize = 2048;
/// Lifetime of an issued identity certificate.
pub const IDENTITY_VALIDITY_DAYS: u32 = 365;

const PKI_MESSAGE: &str = "application/x-pki-message";
const CA_RA_CERT: &str = "application/x-x509-ca-ra-cert";
/// The one answer to every envelope that does not open with the RA key.
const UNDECRYPTABLE: &str =
    "the request's envelope could not be decrypted with this server's RA certificate";

/// Entry point for `/scep` (GET and POST).
pub async fn handle(p: &impl Platform, req: &Request) -> Response {
    serve(p, req)
        .await
        .unwrap_or_else(DeviceError::into_response)
}

impl From<ScepSetupError> for DeviceError {
    fn from(e: ScepSetupError) -> Self {
        let status = match e {
            ScepSetupError::Store(_) | ScepSetupError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        crate::log::error("SCEP unavailable", &[("error", e.to_string().into())]);
        DeviceError {
            status,
            reason: "the SCEP service is unavailable: try again later".into(),
        }
    }
}

fn server_error(reason: impl Into<String>) -> DeviceError {
    crate::log::error("SCEP server error", &[("error", reason.into().into())]);
    DeviceError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        reason: "server error".into(),
    }
}

fn ok(content_type: &'static str, body: Vec<u8>) -> Response {
    let mut resp = http::Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

async fn serve(p: &impl Platform, req: &Request) -> Result<Response, DeviceError> {
    let params = api::query(req).map_err(|_| DeviceError::bad_request("malformed query string"))?;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(op) = param("operation") else {
        return Err(DeviceError::bad_request(
            "the operation query parameter is missing",
        ));
    };
    let is = |name: &str| op.eq_ignore_ascii_case(name);
    let method = req.method();
    if is("GetCACaps") && method == Method::GET {
        Ok(ok("text/plain", CA_CAPS.as_bytes().to_vec()))
    } else if is("GetCACert") && method == Method::GET {
        let (ca_cert, ra_cert) = ca::ca_ra_certificates(p).await?;
        let body = mdm_crypto::certs_only(&[ca_cert, ra_cert])
            .map_err(|e| server_error(format!("GetCACert: {e}")))?;
        Ok(ok(CA_RA_CERT, body))
    } else if is("PKIOperation") && method == Method::POST {
        if req.body().len() > MAX_PKI_MESSAGE {
            return Err(DeviceError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                reason: format!("PKIOperation body exceeds {MAX_PKI_MESSAGE} bytes"),
            });
        }
        pki_operation(p, req.body()).await
    } else if is("PKIOperation") && method == Method::GET {
        let message = param("message").ok_or_else(|| {
            DeviceError::bad_request("PKIOperation over GET needs the message parameter")
        })?;
        if message.len() > MAX_PKI_MESSAGE / 3 * 4 + 8 {
            return Err(DeviceError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                reason: format!("PKIOperation message exceeds {MAX_PKI_MESSAGE} bytes"),
            });
        }
        let der = decode_message(message)
            .ok_or_else(|| DeviceError::bad_request("the message parameter is not base64"))?;
        pki_operation(p, &der).await
    } else if ["GetCACaps", "GetCACert", "PKIOperation"]
        .iter()
        .any(|o| is(o))
    {
        let mut resp = DeviceError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: format!("{op} does not take {method}"),
        }
        .into_response();
        let allow = if is("PKIOperation") {
            "GET, POST"
        } else {
            "GET"
        };
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        Ok(resp)
    } else {
        Err(DeviceError::bad_request(format!(
            "unsupported operation {:?}",
            loggable(op)
        )))
    }
}

/// Standard or URL-safe base64, padded or not, with `+` possibly turned into a space by
/// a client that did not URL-encode it, and line breaks ignored.
fn decode_message(message: &str) -> Option<Vec<u8>> {
    let cleaned: String = message
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\t'))
        .map(|c| match c {
            ' ' | '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let engine = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine
        .decode(cleaned.trim_end_matches('='))
        .ok()
        .filter(|d| !d.is_empty())
}

/// What a PKIOperation ends in.
enum Outcome {
    Issued(Box<Certificate>),
    Refused(FailInfo, String),
}

async fn pki_operation(p: &impl Platform, der: &[u8]) -> Result<Response, DeviceError> {
    let msg = match parse_pki_message(der) {
        Ok(m) => m,
        Err(e) => {
            crate::log::warn(
                "SCEP PKIOperation rejected",
                &[("error", e.to_string().into())],
            );
            return Err(DeviceError::bad_request(format!(
                "invalid SCEP message: {e}"
            )));
        }
    };
    let ca = ca::authority(p).await?;
    let now = p.clock().unix_seconds();
    let outcome = match msg.message_type() {
        MessageType::PkcsReq => enroll(p.store(), &ca, &msg, now).await?,
        MessageType::RenewalReq => renew(p.store(), &ca, &msg, now).await?,
        MessageType::CertPoll => Outcome::Refused(
            FailInfo::BadCertId,
            "CertPoll: this server never answers PENDING, there is nothing to poll for".into(),
        ),
        other => Outcome::Refused(
            FailInfo::BadRequest,
            format!("messageType {} is not handled", other.code()),
        ),
    };
    // Replies are signed by the CA: the RA key only ever decrypts (attacker-chosen)
    // envelopes, so a decryption side channel on it could not forge a reply.
    let reply = match outcome {
        Outcome::Issued(cert) => cert_rep_success(
            &msg,
            &cert,
            ca.ca_key(),
            ca.ca_certificate(),
            ca.ra_certificate(),
        ),
        Outcome::Refused(fail_info, reason) => {
            crate::log::warn(
                "SCEP request refused",
                &[
                    ("message_type", format!("{:?}", msg.message_type()).into()),
                    ("fail_info", format!("{fail_info:?}").into()),
                    ("transaction", loggable(msg.transaction_id()).into()),
                    ("reason", reason.as_str().into()),
                ],
            );
            cert_rep_failure(
                &msg,
                fail_info,
                ca.ca_key(),
                ca.ca_certificate(),
                ca.ra_certificate(),
            )
        }
    }
    .map_err(|e| server_error(format!("building the CertRep failed: {e}")))?;
    Ok(ok(PKI_MESSAGE, reply))
}

/// Opens the request's CSR with the RA key. Decryption failures are an HTTP 400 with one
/// fixed reason; a readable envelope with an unacceptable CSR or algorithm is a FAILURE.
fn open_csr(
    ca: &CertificateAuthority,
    msg: &PkiMessage,
) -> Result<Result<Csr, Outcome>, DeviceError> {
    match msg.decrypt_csr(ca.ra_key()) {
        Ok(csr) => Ok(Ok(csr)),
        Err(ScepError::DecryptFailed | ScepError::Malformed(_)) => {
            crate::log::warn(
                "SCEP envelope does not decrypt",
                &[
                    ("message_type", format!("{:?}", msg.message_type()).into()),
                    ("transaction", loggable(msg.transaction_id()).into()),
                ],
            );
            Err(DeviceError::bad_request(UNDECRYPTABLE))
        }
        Err(e) => Ok(Err(Outcome::Refused(e.fail_info(), e.to_string()))),
    }
}

async fn enroll<B: Backend>(
    store: &Store<B>,
    ca: &CertificateAuthority,
    msg: &PkiMessage,
    now: u64,
) -> Result<Outcome, DeviceError> {
    let csr = match open_csr(ca, msg)? {
        Ok(csr) => csr,
        Err(refused) => return Ok(refused),
    };
    let Some(challenge) = csr.challenge_password() else {
        return Ok(Outcome::Refused(
            FailInfo::BadRequest,
            format!(
                "PKCSReq for {:?} without a challengePassword",
                loggable(&csr.subject())
            ),
        ));
    };
    let grant = match challenge::redeem(store, now, challenge).await {
        Ok(g) => g,
        Err(ChallengeError::Store(e)) => return Err(e.into()),
        Err(e) => {
            return Ok(Outcome::Refused(
                FailInfo::BadRequest,
                format!("PKCSReq for {:?}: {e}", loggable(&csr.subject())),
            ));
        }
    };
    let issued = Issued {
        device_id: grant.device_id,
        device_serial: grant.serial,
        user: grant.user,
        purpose: grant.purpose,
        renewed_from: None,
    };
    issue_and_record(store, ca, msg, &csr, now, issued).await
}

async fn renew<B: Backend>(
    store: &Store<B>,
    ca: &CertificateAuthority,
    msg: &PkiMessage,
    now: u64,
) -> Result<Outcome, DeviceError> {
    let signer = msg.signer_certificate();
    if let Err(e) = ca.verify_issued(signer) {
        return Ok(Outcome::Refused(
            FailInfo::BadRequest,
            format!(
                "RenewalReq signed by {:?}, which this CA did not issue: {e}",
                loggable(&signer.subject())
            ),
        ));
    }
    if signer.not_after_unix() < now as i64 {
        return Ok(Outcome::Refused(
            FailInfo::BadCertId,
            format!(
                "RenewalReq signed by the expired certificate {}",
                signer.serial_hex()
            ),
        ));
    }
    let Some(previous) = issued_for(store, &signer.serial_hex()).await? else {
        return Ok(Outcome::Refused(
            FailInfo::BadCertId,
            format!(
                "RenewalReq signed by certificate {}, which has no issuance record",
                signer.serial_hex()
            ),
        ));
    };
    // Only an identity in use by a live enrollment is renewed: not one of a retired (or
    // retiring) device, a checked-out one, or one never used to enroll.
    if let Err(why) = renewable(store, signer).await? {
        return Ok(Outcome::Refused(
            FailInfo::BadCertId,
            format!(
                "RenewalReq signed by certificate {}: {why}",
                signer.serial_hex()
            ),
        ));
    }
    let csr = match open_csr(ca, msg)? {
        Ok(csr) => csr,
        Err(refused) => return Ok(refused),
    };
    let issued = Issued {
        device_id: previous.device_id,
        device_serial: previous.device_serial,
        user: previous.user,
        purpose: "renewal".into(),
        renewed_from: Some(previous.serial),
    };
    issue_and_record(store, ca, msg, &csr, now, issued).await
}

/// Whether the certificate signing a RenewalReq is the identity of a live enrollment.
async fn renewable<B: Backend>(
    store: &Store<B>,
    signer: &Certificate,
) -> Result<Result<(), &'static str>, DeviceError> {
    use crate::mdm::enrollment_binding;
    let (tbs, der) = crate::mdm::signature::identity_hashes(signer.der())
        .map_err(|e| DeviceError::bad_request(e.to_string()))?;
    let bound = match enrollment_record::bound_device(store, &tbs).await? {
        Some(d) => Some(d),
        None => enrollment_binding::migrate_legacy_binding(store, &tbs, &der).await?,
    };
    // An account-driven identity was issued for an enrollment reference, not the device
    // id it is bound to: the binding is what counts.
    let Some(device) = bound else {
        return Ok(Err(
            "not the identity of an enrollment (retired, or never used)",
        ));
    };
    match enrollment_record::get(store, &device).await? {
        Some(rec) if rec.retire.is_some() => Ok(Err("its device is being retired")),
        Some(rec) if rec.enrolled => Ok(Ok(())),
        _ => Ok(Err("its device is not enrolled")),
    }
}

/// The key policy of the certificates we issue: RSA of at least [`MIN_KEY_BITS`] (the
/// request parser takes RSA only, as Apple's SCEP payload makes).
pub fn check_key(csr: &Csr) -> Result<(), String> {
    if csr.key_bits() < MIN_KEY_BITS {
        return Err(format!(
            "{}-bit RSA key; at least {MIN_KEY_BITS} bits",
            csr.key_bits()
        ));
    }
    Ok(())
}

/// Who a certificate is issued for.
struct Issued {
    device_id: String,
    device_serial: Option<String>,
    user: Option<String>,
    purpose: String,
    renewed_from: Option<String>,
}

async fn issue_and_record<B: Backend>(
    store: &Store<B>,
    ca: &CertificateAuthority,
    msg: &PkiMessage,
    csr: &Csr,
    now: u64,
    who: Issued,
) -> Result<Outcome, DeviceError> {
    // The CA decides what it vouches for: the key must be strong enough, and the
    // certificate names the enrollment its challenge (or renewed identity) was for,
    // whatever subject the request asked for.
    if let Err(why) = check_key(csr) {
        return Ok(Outcome::Refused(FailInfo::BadAlg, why));
    }
    let opts = IssueOptions {
        validity_days: IDENTITY_VALIDITY_DAYS,
        subject: Some((who.device_id.clone(), None)),
        ..IssueOptions::default()
    };
    let cert = match ca.issue(csr, now as i64, &opts) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome::Refused(
                FailInfo::BadRequest,
                format!("certificate not issued: {e}"),
            ));
        }
    };
    let record = IssuedRecord {
        serial: cert.serial_hex(),
        subject: cert.subject(),
        not_before: cert.not_before_unix(),
        not_after: cert.not_after_unix(),
        issued_at: now,
        device_id: who.device_id,
        device_serial: who.device_serial,
        user: who.user,
        purpose: who.purpose,
        cert_sha256: hex::encode(Sha256::digest(cert.der())),
        tbs_sha256: crate::mdm::signature::identity_hashes(cert.der())
            .ok()
            .map(|(tbs, _)| tbs),
        transaction_id: loggable(msg.transaction_id()),
        renewed_from: who.renewed_from,
    };
    // A fresh random 128-bit serial: nobody else writes this key.
    record.save(store, &record.serial).await?;
    add_to_device_index(store, &record.device_id, &record.serial).await?;
    crate::log::info(
        "SCEP certificate issued",
        &[
            ("serial", record.serial.as_str().into()),
            ("subject", loggable(&record.subject).into()),
            ("device", loggable(&record.device_id).into()),
            ("purpose", record.purpose.to_string().into()),
            (
                "cipher",
                msg.envelope_cipher().map_or("?", |c| c.name()).into(),
            ),
            (
                "not_after",
                crate::time::format_rfc3339(record.not_after).into(),
            ),
        ],
    );
    Ok(Outcome::Issued(Box::new(cert)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_variants_and_serials() {
        let raw = vec![0xfb, 0xff, 0xbf, 0x00, 0x01];
        let std = base64::engine::general_purpose::STANDARD.encode(&raw);
        assert!(std.contains('+') && std.contains('/'));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        for m in [std.clone(), url, std.replace('+', " "), format!("{std}\n")] {
            assert_eq!(decode_message(&m), Some(raw.clone()), "{m:?}");
        }
        assert_eq!(decode_message("!!"), None);
        assert_eq!(decode_message(""), None);
        assert_eq!(
            super::super::issued::normalise_serial("5E:ED").as_deref(),
            Some("5eed")
        );
        assert_eq!(
            super::super::issued::normalise_serial("005eed").as_deref(),
            Some("5eed")
        );
        assert_eq!(super::super::issued::normalise_serial("xyz"), None);
        assert!(!CA_CAPS.lines().any(|l| l == "DES"));
    }
}

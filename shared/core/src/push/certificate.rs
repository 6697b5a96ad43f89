//! The MDM push certificate as the admin registers it: its topic, validity and renewal.
//!
//! The certificate and key that authenticate pushes live in the runtime config
//! (`[[client_tls]]`, see infra/README.md): a component cannot present a client certificate
//! itself. The admin also uploads the certificate (public part only) here, so the server
//! knows the topic to put in enrollment profiles and can warn before it expires. Without an
//! upload the `apns_topic` variable names the topic and the expiry is unknown.
//!
//! A certificate with another topic cuts off every enrolled device: devices only answer
//! pushes for the topic they enrolled with, and the topic changes when a certificate is
//! created anew instead of renewed with the same Apple Account. Such an upload is refused
//! (409) once devices have enrolled, unless the admin forces it.
//!
//! Key layout:
//!
//! | key | value |
//! |---|---|
//! | `pushcert:info` | the uploaded [`PushCertificate`] (JSON) |

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use mdm_crypto::Certificate;
use mdm_kv::{Backend, KvError, Store};

use crate::api::{self, ApiError, Request, Response};
use crate::record::{Record, Stored};
use crate::{Clock, Platform, Variables};

/// The key of the [`PushCertificate`] (also what the readiness probe reads).
pub const INFO_KEY: &str = "pushcert:info";
/// The `apns_topic` variable: the topic when no certificate was uploaded.
use crate::enroll::APNS_TOPIC;
/// Days before expiry from which the admin API warns.
pub const WARN_DAYS: i64 = 30;
/// Largest upload accepted (a certificate chain in PEM is a few KiB).
pub const MAX_UPLOAD: usize = 64 * 1024;
const TOPIC_PREFIX: &str = "com.apple.mgmt.";
const DAY: i64 = 86_400;

/// What the server knows of the uploaded push certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushCertificate {
    pub topic: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER, hex: what `openssl x509 -fingerprint -sha256` shows.
    pub sha256: String,
    pub uploaded_at: u64,
    /// The topic this one replaced when the admin forced a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_topic: Option<String>,
}

impl Record for PushCertificate {
    type Id<'a> = ();
    const NAME: &'static str = "push certificate";
    fn key((): ()) -> String {
        INFO_KEY.into()
    }
}

/// Where the topic in use comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Certificate(String),
    Variable(String),
    None,
}

impl Topic {
    pub fn value(&self) -> Option<&str> {
        match self {
            Topic::Certificate(t) | Topic::Variable(t) => Some(t),
            Topic::None => None,
        }
    }
}

pub async fn load<B: Backend>(store: &Store<B>) -> Result<Option<PushCertificate>, KvError> {
    PushCertificate::load_valid(store, ()).await
}

/// The topic enrollment profiles carry: the uploaded certificate's, else the variable's.
pub async fn topic(p: &impl Platform) -> Result<Topic, KvError> {
    if let Some(c) = load(p.store()).await? {
        return Ok(Topic::Certificate(c.topic));
    }
    let var = p.vars().get(APNS_TOPIC).await.ok().flatten();
    Ok(match var.map(|v| v.trim().to_owned()) {
        Some(v) if !v.is_empty() => Topic::Variable(v),
        _ => Topic::None,
    })
}

/// `ok`, `expiring` (≤ [`WARN_DAYS`] left) or `expired`, and the whole days left.
pub fn expiry(not_after: i64, now: i64) -> (&'static str, i64) {
    let left = (not_after - now).div_euclid(DAY);
    let state = if not_after <= now {
        "expired"
    } else if left <= WARN_DAYS {
        "expiring"
    } else {
        "ok"
    };
    (state, left)
}

/// Why an upload is not a usable MDM push certificate.
fn parse_upload(body: &[u8]) -> Result<Certificate, String> {
    if body.is_empty() {
        return Err("empty body: send the MDM push certificate (PEM or DER)".into());
    }
    let text = std::str::from_utf8(body).ok();
    if text.is_some_and(|t| t.contains("PRIVATE KEY")) {
        // Never echo or keep it: the key belongs in the runtime config only.
        return Err("the upload contains a private key: send the certificate only; the key goes into the runtime config's [[client_tls]] (see infra/README.md)".into());
    }
    match text.and_then(|t| t.find("-----BEGIN CERTIFICATE-----").map(|i| &t[i..])) {
        Some(pem) => {
            const END: &str = "-----END CERTIFICATE-----";
            let end = pem
                .find(END)
                .ok_or("unterminated PEM certificate block")?
                + END.len();
            Certificate::from_pem(&pem[..end]).map_err(|e| format!("not a certificate: {e}"))
        }
        None if body[0] == 0x30 => {
            Certificate::from_der(body).map_err(|e| format!("not a DER certificate: {e}"))
        }
        None => Err("expected a PEM CERTIFICATE block or DER (the .pem or .cer from the Apple Push Certificates Portal)".into()),
    }
}

fn view(c: Option<&PushCertificate>, topic: &Topic, now: i64) -> Value {
    let mut warnings: Vec<String> = Vec::new();
    let cert = c.map(|c| {
        let (state, left) = expiry(c.not_after, now);
        match state {
            "expired" => warnings.push(format!(
                "the push certificate for {} expired {} days ago: no device can be pushed; renew it in the Apple Push Certificates Portal with the same Apple Account",
                c.topic, -left
            )),
            "expiring" => warnings.push(format!(
                "the push certificate for {} expires in {left} days: renew it in the Apple Push Certificates Portal with the same Apple Account (Renew, not Create) to keep the topic",
                c.topic
            )),
            _ => {}
        }
        json!({
            "topic": c.topic,
            "subject": c.subject,
            "issuer": c.issuer,
            "serial": c.serial,
            "not_before": crate::time::format_rfc3339(c.not_before),
            "not_after": crate::time::format_rfc3339(c.not_after),
            "days_left": left.max(0),
            "expiry": state,
            "sha256": c.sha256,
            "uploaded_at": crate::time::format_rfc3339(c.uploaded_at as i64),
        })
    });
    match topic {
        Topic::Variable(_) => warnings.push(
            "no push certificate uploaded: the topic comes from the apns_topic variable and expiry is not watched; upload the certificate (PUT /api/v1/push/certificate)".into(),
        ),
        Topic::None => warnings.push(
            "no push certificate: upload it (PUT /api/v1/push/certificate) or set apns_topic; devices cannot enroll until then".into(),
        ),
        Topic::Certificate(_) => {}
    }
    json!({
        "topic": topic.value(),
        "topic_source": match topic {
            Topic::Certificate(_) => Some("certificate"),
            Topic::Variable(_) => Some("variable"),
            Topic::None => None,
        },
        "certificate": cert,
        "warnings": warnings,
    })
}

/// `GET /api/v1/push/certificate`: the certificate, its topic and expiry, and how APNs
/// last judged it (`apns`).
pub async fn get(p: &impl Platform) -> Result<Response, ApiError> {
    let now = p.clock().unix_seconds() as i64;
    let c = load(p.store()).await.map_err(ApiError::store)?;
    let t = topic(p).await.map_err(ApiError::store)?;
    let mut body = view(c.as_ref(), &t, now);
    let apns = crate::push::state::certificate_status(p.store())
        .await
        .map_err(ApiError::store)?;
    if apns.state == "failing" {
        body["warnings"].as_array_mut().expect("array").push(json!(
            "APNs refuses the push certificate: check the runtime config's [[client_tls]] entry"
        ));
    }
    body["apns"] = serde_json::to_value(&apns).unwrap_or(Value::Null);
    Ok(api::ok_json(&body))
}

/// `PUT /api/v1/push/certificate[?force=true]`: registers the certificate (PEM or DER).
/// 422 for anything that is not a current MDM push certificate; 409 for a topic change
/// once devices have enrolled, unless forced.
pub async fn put(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let body = req.body();
    if body.len() > MAX_UPLOAD {
        return Err(ApiError::payload_too_large(MAX_UPLOAD));
    }
    let mut force = false;
    for (k, v) in api::query(req)? {
        match (k.as_str(), v.as_str()) {
            ("force", "true" | "1") => force = true,
            ("force", "false" | "0" | "") => force = false,
            ("force", _) => return Err(ApiError::field("force", "true or false")),
            _ => {
                return Err(ApiError::invalid(vec![api::FieldError::unknown_parameter(
                    &k,
                )]));
            }
        }
    }
    let unusable = |reason: String| ApiError::unprocessable("invalid_push_certificate", reason);
    let cert = parse_upload(body).map_err(unusable)?;
    let topic = match cert.subject_uid() {
        Some(t) if t.starts_with(TOPIC_PREFIX) && t.len() > TOPIC_PREFIX.len() => t,
        Some(t) => {
            return Err(unusable(format!(
                "subject UID {t:?} is not an MDM push topic (com.apple.mgmt.…): is this the MDM push certificate?"
            )));
        }
        None => {
            return Err(unusable(
                "the subject has no UID (the push topic): this is not an MDM push certificate"
                    .into(),
            ));
        }
    };
    let now = p.clock().unix_seconds();
    if cert.not_after_unix() <= now as i64 {
        return Err(unusable(format!(
            "the certificate expired at {}: renew it in the Apple Push Certificates Portal",
            crate::time::format_rfc3339(cert.not_after_unix())
        )));
    }
    let current = self::topic(p).await.map_err(ApiError::store)?;
    let mut replaced = None;
    if let Some(old) = current.value()
        && old != topic
    {
        let enrolled = crate::mdm::enrollment_record::ever_enrolled(p.store())
            .await
            .map_err(ApiError::store)?;
        if enrolled && !force {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "push_topic_change",
                "the new certificate's topic differs from the one enrolled devices use: they would no longer receive pushes and must re-enroll. Renew the existing certificate with the same Apple Account instead, or repeat with ?force=true to switch anyway",
            )
            .with_fact("current_topic", old)
            .with_fact("new_topic", topic));
        }
        replaced = Some(old.to_owned());
    }
    let info = PushCertificate {
        topic,
        subject: cert.subject(),
        issuer: cert.issuer(),
        serial: cert.serial_hex(),
        not_before: cert.not_before_unix(),
        not_after: cert.not_after_unix(),
        sha256: hex(&Sha256::digest(cert.der())),
        uploaded_at: now,
        replaced_topic: replaced,
    };
    info.save(p.store(), ()).await.map_err(ApiError::store)?;
    let t = Topic::Certificate(info.topic.clone());
    let mut body = view(Some(&info), &t, now as i64);
    if let Some(old) = &info.replaced_topic {
        body["replaced_topic"] = json!(old);
    }
    Ok(api::ok_json(&body))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

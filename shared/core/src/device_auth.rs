//! Authentication shared by the device-facing components (`checkin`, `commands`): the
//! `Mdm-Signature` over the raw body, the identity certificate's issuer, its validity, and
//! the answer a device gets when refused. Devices react to failures they do not expect in
//! ways we do not want, so refusals are 400 with a plain-text reason, never 401 (which can
//! make a device unenroll).

use http::{HeaderValue, StatusCode, header};

use crate::api::{self, Request, Response};
use crate::mdm::enrollment_record::Refusal;
use crate::mdm::signature::{self, SCEP_CA_CERT_KEY, Signer};
use mdm_kv::{Backend, KvError, Store};

/// Body of a device request that carries no message (and of unknown paths).
pub const MAX_OTHER_BODY: usize = 4 * 1024;

/// The header carrying the detached CMS signature over the body.
pub const MDM_SIGNATURE: &str = "mdm-signature";

/// A refusal answered to a device: a status and a plain-text reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceError {
    pub status: StatusCode,
    pub reason: String,
}

impl DeviceError {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        DeviceError {
            status: StatusCode::BAD_REQUEST,
            reason: reason.into(),
        }
    }

    /// 500 with a generic reason (the detail goes to the log, not to the device).
    pub fn server(reason: impl Into<String>) -> Self {
        DeviceError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: reason.into(),
        }
    }

    /// 403 `{"code":"com.apple.unrecognized.device"}`: we hold no enrollment for the
    /// device, which then unenrolls (mdm/errors/unrecognized.device.yaml).
    pub fn unrecognized(description: impl Into<String>) -> Self {
        let doc = serde_json::json!({
            "code": "com.apple.unrecognized.device",
            "description": description.into(),
        });
        DeviceError {
            status: StatusCode::FORBIDDEN,
            reason: doc.to_string(),
        }
    }

    /// Plain text; a 403 is always the JSON of [`Self::unrecognized`].
    pub fn into_response(self) -> Response {
        let json = self.status == StatusCode::FORBIDDEN;
        let mut resp = http::Response::new(self.reason.into_bytes());
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(if json {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            }),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        resp
    }
}

impl From<KvError> for DeviceError {
    /// Devices get a generic reason; the log gets the store's (keys, never values).
    fn from(e: KvError) -> Self {
        crate::log::error("store unavailable", &[("error", e.to_string().into())]);
        DeviceError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "temporarily unavailable: try again later".into(),
        }
    }
}

impl From<Refusal> for DeviceError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::BadRequest(reason) => DeviceError::bad_request(reason),
            Refusal::Unrecognized(reason) => DeviceError::unrecognized(reason),
            Refusal::Store(e) => e.into(),
        }
    }
}

impl From<api::ApiError> for DeviceError {
    /// Configuration errors (a missing variable): a fault on our side, named in the log;
    /// devices get a generic reason.
    fn from(e: api::ApiError) -> Self {
        crate::log::error(e.code.as_str(), &[("detail", e.message.as_str().into())]);
        DeviceError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: "server error".into(),
        }
    }
}

/// The trust anchors a device identity must chain to: our SCEP CA, as stored at
/// [`SCEP_CA_CERT_KEY`] (written by [`crate::scep::ca::authority`]). Empty while no CA
/// exists, and then [`authenticate_device`] refuses every device.
pub async fn trust_anchors<B: Backend>(store: &Store<B>) -> Result<Vec<Vec<u8>>, KvError> {
    Ok(store
        .get(SCEP_CA_CERT_KEY)
        .await?
        .map(|raw| signature::ca_certs_from_store_value(&raw))
        .unwrap_or_default())
}

/// Authenticates a device request: body size, the `Mdm-Signature` over the raw body, and
/// the identity certificate's issuer (one of `anchors`, which must not be empty: without
/// a CA no identity can be ours). Returns the signer, whose
/// `cert_hash` is the identity the enrollment state machine binds.
pub fn authenticate_device(
    req: &Request,
    max_body: usize,
    anchors: &[Vec<u8>],
) -> Result<Signer, DeviceError> {
    let signer = verify_signed(req, max_body)?;
    require_ours(&signer, anchors)?;
    Ok(signer)
}

/// Body size and the `Mdm-Signature` over the raw body: the sender holds the key of the
/// certificate it presents. Whether that certificate is ours is [`require_ours`].
pub fn verify_signed(req: &Request, max_body: usize) -> Result<Signer, DeviceError> {
    if req.body().len() > max_body {
        return Err(DeviceError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            reason: format!("body exceeds {max_body} bytes"),
        });
    }
    let header = req
        .headers()
        .get(MDM_SIGNATURE)
        .ok_or_else(|| DeviceError::bad_request("Mdm-Signature header missing"))?
        .to_str()
        .map_err(|_| DeviceError::bad_request("Mdm-Signature header is not text"))?;
    signature::verify(header, req.body()).map_err(|e| DeviceError::bad_request(e.to_string()))
}

/// The identity certificate is within its validity at `now`: an expired identity acts
/// for nothing (a device renews its identity over SCEP before the end, signing the
/// renewal with the still valid one).
pub fn require_current(signer: &Signer, now: u64) -> Result<(), DeviceError> {
    if signer.valid_at(now) {
        Ok(())
    } else {
        Err(DeviceError::bad_request(
            "identity certificate is expired (or not yet valid)",
        ))
    }
}

/// The signer's certificate was issued by one of `anchors` (our SCEP CA).
pub fn require_ours(signer: &Signer, anchors: &[Vec<u8>]) -> Result<(), DeviceError> {
    if anchors.is_empty() {
        return Err(DeviceError::bad_request(
            "no enrollment has been made with this server",
        ));
    }
    signature::require_issued_by(&signer.certificate_der, anchors)
        .map_err(|e| DeviceError::bad_request(e.to_string()))
}

/// 200 with an XML plist body.
pub fn plist_response(body: Vec<u8>) -> Response {
    let mut resp = http::Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

/// 200 with an empty body.
pub fn empty_response() -> Response {
    http::Response::new(Vec::new())
}

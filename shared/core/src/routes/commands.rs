//! Device-facing endpoints of the `commands` component: command delivery at the
//! MDM ServerURL (`/mdm/connect`). Routes join the table as their
//! protocol handlers land; a path without one answers 404.
//!
//! Authentication is the check-in endpoint's ([`crate::device_auth`]):
//! `Mdm-Signature` over the raw body, the identity certificate's issuer, then the
//! certificate's binding to the enrollment (in [`connect::report_read`]). Refusals are 400 with
//! a plain-text reason, never 401.

use crate::api::{self, Request, Response, Route};
use crate::command;
use crate::config;
use crate::device_auth::{self, DeviceError};
use crate::mdm::connect::{self, Next};
use crate::mdm::enrollment_binding;
use crate::mdm::enrollment_record;
use crate::mdm::report::Report;
use crate::{Clock, Platform};

/// Largest report accepted: results such as InstalledApplicationList or CertificateList
/// can be large.
pub const MAX_REPORT_BODY: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Connect,
}

/// The most bytes of body a request to this component may have: read no further (413).
pub fn body_limit(method: &http::Method, path: &str) -> usize {
    match api::route(ROUTES, method, path) {
        Ok((Op::Connect, _)) => MAX_REPORT_BODY,
        Err(_) => device_auth::MAX_OTHER_BODY,
    }
}

pub const ROUTES: &[Route<Op>] = &[
    ("PUT", "/mdm/connect", Op::Connect),
    ("POST", "/mdm/connect", Op::Connect),
];

pub async fn handle(p: &impl Platform, req: Request) -> Response {
    match api::route(ROUTES, req.method(), req.uri().path()) {
        Ok((op, _)) => match op {
            Op::Connect => {
                let mut device = None;
                let resp = connect(p, &req, &mut device)
                    .await
                    .unwrap_or_else(DeviceError::into_response);
                match device {
                    Some(d) => crate::log::tag(resp, crate::log::Subject::Device(d)),
                    None => resp,
                }
            }
        },
        Err(e) => e.into_response(),
    }
}

/// Sets `device` to the channel the report names once its signature has held (for the
/// request's log line).
async fn connect(
    p: &impl Platform,
    req: &Request,
    device: &mut Option<String>,
) -> Result<Response, DeviceError> {
    let signer = device_auth::verify_signed(req, MAX_REPORT_BODY)?;
    device_auth::require_current(&signer, p.clock().unix_seconds())?;
    let report = Report::parse(req.body()).map_err(|e| DeviceError::bad_request(e.to_string()))?;
    *device = report.enrollment.device_id().map(str::to_owned);
    let now = p.clock().unix_seconds();
    let store = p.store();
    let mut read = connect::prefetch(store, &signer.cert_hash, &report).await?;
    if read.bound.is_none()
        && enrollment_binding::migrate_legacy_binding(store, &signer.cert_hash, &signer.der_hash)
            .await?
            .is_some()
    {
        read = connect::prefetch(store, &signer.cert_hash, &report).await?;
    }
    // A bound certificate passed the CA check when it was bound (Authenticate or an
    // adopted renewal) and its binding goes with the enrollment: checking the CA's
    // signature again on every poll would only repeat that.
    if read.bound.is_none() {
        let anchors = device_auth::trust_anchors(store).await?;
        device_auth::require_ours(&signer, &anchors)?;
    }
    if let Some(device) = report.enrollment.device_id()
        && read.bound.as_deref() != Some(device)
    {
        let identity = enrollment_record::DeviceIdentity::from_certificate(
            &signer.cert_hash,
            &signer.certificate_der,
        );
        if enrollment_binding::adopt_renewal(store, &identity, device).await? {
            read = connect::prefetch(store, &signer.cert_hash, &report).await?;
        }
    }
    let next = connect::report_read(store, read, &signer.cert_hash, &report, now).await?;
    match next {
        Next::Command(body) => Ok(device_auth::plist_response(body)),
        Next::Sealed { body, aad } => {
            let key = config::storage_key(p.vars()).await?;
            let plain = command::secrets::open(&key, &aad, &body).ok_or_else(|| {
                // Sealed under another storage_key (rotated without re-queueing): the
                // command stays queued; an admin cancels it.
                crate::log::error(
                    "queued command does not open with storage_key",
                    &[("command", aad.as_str().into())],
                );
                DeviceError::server("cannot deliver the next command: try again later")
            })?;
            Ok(device_auth::plist_response(plain))
        }
        Next::Nothing => Ok(device_auth::empty_response()),
    }
}

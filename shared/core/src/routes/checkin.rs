//! Device-facing endpoints of the `checkin` component: check-in (`/mdm/checkin`), ADE
//! enrollment (`/mdm/enroll/...`) and SCEP (`/scep`). Routes join the table as their
//! protocol handlers land; a path without one answers 404. Requests are authenticated by
//! [`crate::device_auth`].

use http::StatusCode;

use crate::api::{self, Request, Response, Route};
use crate::config;
use crate::device_auth::{
    DeviceError, MAX_OTHER_BODY, authenticate_device, empty_response, plist_response,
    require_current, trust_anchors,
};
use crate::mdm::await_config;
use crate::mdm::checkin_message::CheckinMessage;
use crate::mdm::devlog;
use crate::mdm::enrollment_record;
use crate::mdm::enrollment_record::Refusal;
use crate::mdm::enrollment_type::EnrollmentType;
use crate::mdm::enrollments::{self, Reply};
use crate::push;
use crate::record::Record;
use crate::{Clock, Platform};

/// Largest check-in body accepted (check-ins are a few KiB).
pub const MAX_CHECKIN_BODY: usize = 64 * 1024;

/// The most bytes of body a request to this component may have: read no further (413).
pub fn body_limit(method: &http::Method, path: &str) -> usize {
    match api::route(ROUTES, method, path) {
        Ok((Op::Checkin, _)) => MAX_CHECKIN_BODY,
        Ok((Op::Scep, _)) => crate::scep::endpoint::MAX_PKI_MESSAGE,
        Ok((
            Op::EnrollAde
            | Op::EnrollWebSignIn
            | Op::EnrollByod
            | Op::EnrollAdde
            | Op::AccountSignIn,
            _,
        )) => crate::enroll::MAX_ENROLL_BODY,
        _ => MAX_OTHER_BODY,
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Checkin,
    Scep,
    EnrollAde,
    EnrollWebPage,
    EnrollWebSignIn,
    WellKnown,
    EnrollByod,
    EnrollAdde,
    AccountSignInPage,
    AccountSignIn,
}

pub const ROUTES: &[Route<Op>] = &[
    ("PUT", "/mdm/checkin", Op::Checkin),
    ("POST", "/mdm/checkin", Op::Checkin),
    ("GET", "/scep", Op::Scep),
    ("POST", "/scep", Op::Scep),
    ("POST", "/mdm/enroll/ade", Op::EnrollAde),
    ("GET", "/mdm/enroll/web", Op::EnrollWebPage),
    ("POST", "/mdm/enroll/web", Op::EnrollWebSignIn),
    (
        "GET",
        "/.well-known/com.apple.remotemanagement",
        Op::WellKnown,
    ),
    ("POST", "/mdm/enroll/account/byod", Op::EnrollByod),
    ("POST", "/mdm/enroll/account/adde", Op::EnrollAdde),
    ("GET", "/mdm/enroll/account/signin", Op::AccountSignInPage),
    ("POST", "/mdm/enroll/account/signin", Op::AccountSignIn),
];

pub async fn handle(p: &impl Platform, req: Request) -> Response {
    match api::route(ROUTES, req.method(), req.uri().path()) {
        Ok((op, _)) => match op {
            Op::Checkin => {
                let mut device = None;
                let resp = checkin(p, &req, &mut device)
                    .await
                    .unwrap_or_else(DeviceError::into_response);
                match device {
                    Some(d) => crate::log::tag(resp, crate::log::Subject::Device(d)),
                    None => resp,
                }
            }
            Op::Scep => crate::scep::endpoint::handle(p, &req).await,
            Op::EnrollAde => crate::enroll::ade::handle(p, &req).await,
            Op::EnrollWebPage => crate::enroll::web::page(p, &req).await,
            Op::EnrollWebSignIn => crate::enroll::web::sign_in(p, &req).await,
            Op::WellKnown => crate::enroll::account::discover(p, &req).await,
            Op::EnrollByod => crate::enroll::account::enroll(p, &req, EnrollmentType::User).await,
            Op::EnrollAdde => crate::enroll::account::enroll(p, &req, EnrollmentType::Device).await,
            Op::AccountSignInPage => crate::enroll::account::signin_page(p, &req).await,
            Op::AccountSignIn => crate::enroll::account::signin(p, &req).await,
        },
        Err(e) => e.into_response(),
    }
}

/// Sets `device` to the channel the message names once its signature has held (for the
/// request's log line).
async fn checkin(
    p: &impl Platform,
    req: &Request,
    device: &mut Option<String>,
) -> Result<Response, DeviceError> {
    let anchors = trust_anchors(p.store()).await?;
    let signer = authenticate_device(req, MAX_CHECKIN_BODY, &anchors)?;
    require_current(&signer, p.clock().unix_seconds())?;
    let msg =
        CheckinMessage::parse(req.body()).map_err(|e| DeviceError::bad_request(e.to_string()))?;
    *device = msg.enrollment().device_id().map(str::to_owned);
    let storage_key = config::storage_key(p.vars()).await?;
    let now = p.clock().unix_seconds();
    let identity = enrollment_record::DeviceIdentity::from_certificate(
        &signer.cert_hash,
        &signer.certificate_der,
    );
    let outcome =
        enrollments::checkin_identity(p.store(), &storage_key, &identity, &msg, now).await;
    // The device log: what the device sent and how we took it (after its signature held).
    // Refusals are logged only for devices we hold an enrollment for: a made-up UDID
    // must leave nothing behind.
    let known = |device: &str| {
        let key = enrollment_record::EnrollmentRecord::key(device);
        async move { p.store().exists(&key).await.unwrap_or(false) }
    };
    let logged = match (&outcome, msg.enrollment().device_id()) {
        (Ok(_), _) => Some(("ok", String::new())),
        (Err(Refusal::BadRequest(reason)), Some(d)) if known(d).await => {
            Some(("refused", reason.clone()))
        }
        _ => None,
    };
    if let (Some(device), Some((status, details))) = (msg.enrollment().device_id(), logged) {
        let entry = devlog::NewEntry {
            action: msg.message_type(),
            status,
            details: &details,
            user: msg.enrollment().user_id(),
        };
        if let Err(e) = devlog::append(p.store(), device, &entry, now).await {
            crate::log::warn("device log not written", &[("error", e.to_string().into())]);
        }
    }
    let reply = outcome?;
    if let CheckinMessage::TokenUpdate(tu) = &msg
        && tu.enrollment.user_id().is_none()
        && let Some(device) = tu.enrollment.device_id()
    {
        // A fresh token makes the device pushable again. Best effort: the unreachable
        // mark names the dead token, so a changed token outdates it anyway.
        let _ = push::clear_unreachable(p.store(), device).await;
        // Setup work is queued once per enrollment (TokenUpdates are rare, so the record
        // read is cheap); the device's awaiting flag decides DeviceConfigured.
        if let Err(e) = await_config::on_token_update(p, device).await {
            crate::log::error(
                "enrollment setup work not queued",
                &[("device", device.into()), ("error", e.to_string().into())],
            );
        }
    }
    Ok(match reply {
        Reply::Empty => empty_response(),
        Reply::Plist(body) => plist_response(body),
        Reply::Gone => {
            let mut resp = http::Response::new(Vec::new());
            *resp.status_mut() = StatusCode::GONE;
            resp
        }
    })
}

//! What a push came to: APNs' answer classified ([`Verdict`], by [`classify`]), and the
//! outcome callers are told ([`PushOutcome`]), including why nothing was sent
//! ([`SkipReason`]).

use std::time::Duration;

use http::Response;
use serde::Serialize;

use crate::platform::TransportError;
use crate::push::apns::error_body;

/// Why nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No enrollment record for this id.
    NoEnrollment,
    /// Enrolled no longer (checked out) or not yet (Authenticate without TokenUpdate).
    NotEnrolled,
    /// No push token / PushMagic known.
    NoPushToken,
    /// APNs said the current token is dead; waits for the next TokenUpdate.
    Unreachable,
    /// A follow-up found nothing left in the device's queue.
    QueueEmpty,
    /// Nothing was due for this device any more (an outdated wheel entry).
    NotDue,
    /// Another drain is pushing this device right now.
    Busy,
}

/// What a push (or an enqueue notification) came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PushOutcome {
    /// APNs accepted the push (HTTP 200). Accepted is not delivered to the device yet,
    /// but it is all APNs tells.
    Delivered { apns_id: Option<String> },
    /// Within the coalescing window of an earlier push: nothing sent now. `followup_at`:
    /// when a follow-up push is due (sent by the drain if commands are still pending).
    Coalesced { followup_at: Option<u64> },
    /// A retry is already scheduled (APNs asked us to back off); the enqueue waits for it.
    RetryPending { retry_at: u64 },
    /// 410 / 400 BadDeviceToken: marked unreachable until the next TokenUpdate.
    Unreachable { status: u16, reason: String },
    /// 403: the push certificate is marked failing.
    CertificateRejected { status: u16, reason: String },
    /// 429 / 5xx / transport error: retried at `retry_at`.
    RetryScheduled {
        status: Option<u16>,
        reason: String,
        attempt: u32,
        retry_at: u64,
    },
    /// Retryable failures for longer than [`GIVE_UP_SECS`](crate::push::send::GIVE_UP_SECS): no more retries.
    GaveUp {
        status: Option<u16>,
        reason: String,
        attempts: u32,
    },
    /// Any other answer: recorded, not retried.
    Rejected { status: u16, reason: String },
    /// Nothing sent.
    Skipped { why: SkipReason },
}

impl PushOutcome {
    /// Short name, as stored in [`PushState::last_outcome`](crate::push::state::PushState::last_outcome).
    pub fn name(&self) -> &'static str {
        match self {
            PushOutcome::Delivered { .. } => "delivered",
            PushOutcome::Coalesced { .. } => "coalesced",
            PushOutcome::RetryPending { .. } => "retry_pending",
            PushOutcome::Unreachable { .. } => "unreachable",
            PushOutcome::CertificateRejected { .. } => "certificate_rejected",
            PushOutcome::RetryScheduled { .. } => "retry_scheduled",
            PushOutcome::GaveUp { .. } => "gave_up",
            PushOutcome::Rejected { .. } => "rejected",
            PushOutcome::Skipped { .. } => "skipped",
        }
    }
}

/// What an APNs answer means for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered {
        apns_id: Option<String>,
    },
    /// The token is dead (410, 400 BadDeviceToken).
    Unreachable {
        status: u16,
        reason: String,
        apns_timestamp: Option<u64>,
    },
    /// The push certificate was refused (403).
    Certificate {
        status: u16,
        reason: String,
    },
    /// Try again later (429, 5xx, transport). `tls`: the failure was in the TLS
    /// handshake, which also casts doubt on the certificate.
    Retry {
        status: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
        tls: bool,
    },
    /// Anything else: not retried.
    Failed {
        status: u16,
        reason: String,
    },
}

/// Classifies one exchange with APNs. `now` is for an HTTP-date `Retry-After`.
pub fn classify(
    result: &Result<Response<Vec<u8>>, TransportError>,
    now: std::time::SystemTime,
) -> Verdict {
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            let msg = e.0.to_ascii_lowercase();
            let tls =
                msg.contains("tls") || msg.contains("certificate") || msg.contains("handshake");
            return Verdict::Retry {
                status: None,
                reason: format!("transport: {}", e.0.chars().take(200).collect::<String>()),
                retry_after: None,
                tls,
            };
        }
    };
    let status = resp.status();
    let code = status.as_u16();
    let (reason, timestamp) = error_body(resp.body());
    let reason_or = |fallback: &str| {
        reason.clone().unwrap_or_else(|| {
            status
                .canonical_reason()
                .map(|r| r.replace(' ', ""))
                .unwrap_or_else(|| fallback.to_owned())
        })
    };
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match code {
        200 => Verdict::Delivered {
            apns_id: header("apns-id"),
        },
        410 => Verdict::Unreachable {
            status: code,
            reason: reason_or("Unregistered"),
            apns_timestamp: timestamp,
        },
        400 if reason.as_deref() == Some("BadDeviceToken") => Verdict::Unreachable {
            status: code,
            reason: "BadDeviceToken".into(),
            apns_timestamp: timestamp,
        },
        403 => Verdict::Certificate {
            status: code,
            reason: reason_or("Forbidden"),
        },
        _ if code == 429 || status.is_server_error() => Verdict::Retry {
            status: Some(code),
            reason: reason_or("HTTP error"),
            retry_after: header("retry-after")
                .and_then(|v| crate::dep::client::parse_retry_after(&v, now)),
            tls: false,
        },
        _ => Verdict::Failed {
            status: code,
            reason: reason_or("HTTP error"),
        },
    }
}

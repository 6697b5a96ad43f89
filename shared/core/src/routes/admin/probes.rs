//! The probes an orchestrator and a monitoring system call without credentials:
//! `GET /healthz` (liveness), `GET /readyz` (readiness), `GET /version`. They answer
//! states, never secrets or record contents.

use http::StatusCode;
use serde_json::{Value, json};

use crate::api::{self, Response, Route};
use crate::config::{self, ADMIN_API_KEY, SERVER_URL};
use crate::dep::tokens::{self, TokenStatus};
use crate::push;
use crate::push::certificate::Topic;
use crate::{Clock, Platform};

/// The release this component was built from.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit it was built from (`build.rs`: `git rev-parse HEAD`, or `MDM_COMMIT` when
/// set, e.g. by an image build without the repository), "unknown" without either.
pub const COMMIT: &str = env!("MDM_COMMIT");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Live,
    Ready,
    Version,
}

/// Routes answered before authentication.
pub const PROBES: &[Route<Probe>] = &[
    ("GET", "/healthz", Probe::Live),
    ("GET", "/readyz", Probe::Ready),
    ("GET", "/version", Probe::Version),
];

pub async fn answer(p: &impl Platform, probe: Probe) -> Response {
    match probe {
        // Liveness touches nothing outside the instance: a slow store must not get the
        // pod restarted, readiness takes it out of service instead.
        Probe::Live => api::ok_json(&json!({ "status": "ok" })),
        Probe::Version => api::ok_json(&json!({ "version": VERSION, "commit": COMMIT })),
        Probe::Ready => ready(p).await,
    }
}

/// `GET /readyz`: 200 when the store answers a read and the variables every request
/// needs are valid, else 503 saying which check failed. The push certificate and the
/// server tokens are summarised as warnings: devices and admins can still be served
/// while they need attention.
async fn ready(p: &impl Platform) -> Response {
    let mut ready = true;
    let store = match p.store().get(push::certificate::INFO_KEY).await {
        Ok(_) => json!({ "ok": true }),
        Err(e) => {
            ready = false;
            json!({ "ok": false, "error": e.to_string() })
        }
    };
    let problems = variable_problems(p).await;
    ready &= problems.is_empty();
    let mut body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "version": VERSION,
        "checks": {
            "store": store,
            "variables": { "ok": problems.is_empty(), "problems": problems },
        },
    });
    if store_ok(&body) {
        let now = p.clock().unix_seconds();
        body["push_certificate"] = push_summary(p, now).await;
        body["tokens"] = token_summary(p, now).await;
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    api::json(status, &body)
}

fn store_ok(body: &Value) -> bool {
    body["checks"]["store"]["ok"] == true
}

/// What is wrong with the variables this component needs on every request; the names
/// only, never a value.
async fn variable_problems(p: &impl Platform) -> Vec<String> {
    let mut problems = Vec::new();
    for check in [
        config::secret(p.vars(), ADMIN_API_KEY).await.map(drop),
        config::storage_key(p.vars()).await.map(drop),
        server_url(p).await,
    ] {
        if let Err(e) = check {
            problems.push(e.message);
        }
    }
    problems
}

async fn server_url(p: &impl Platform) -> Result<(), api::ApiError> {
    let url = config::required(p.vars(), SERVER_URL).await?;
    let ok = url
        .parse::<http::Uri>()
        .ok()
        .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(api::ApiError::misconfigured(format!(
            "variable {SERVER_URL} is not an http(s) URL"
        )))
    }
}

async fn push_summary(p: &impl Platform, now: u64) -> Value {
    let cert = push::certificate::load(p.store()).await;
    let topic = push::certificate::topic(p).await;
    match (cert, topic) {
        (Ok(Some(c)), _) => {
            let (state, left) = push::certificate::expiry(c.not_after, now as i64);
            json!({ "state": state, "days_left": left.max(0) })
        }
        (Ok(None), Ok(Topic::Variable(_))) => json!({ "state": "topic_only" }),
        (Ok(None), Ok(_)) => json!({ "state": "missing" }),
        (Err(e), _) | (_, Err(e)) => json!({ "state": "unknown", "error": e.to_string() }),
    }
}

async fn token_summary(p: &impl Platform, now: u64) -> Value {
    match tokens::list(p.store()).await {
        Ok(all) => {
            let count = |s: TokenStatus| all.iter().filter(|t| t.status(now) == s).count();
            let soonest = all
                .iter()
                .filter(|t| t.sealed_secrets.is_some())
                .filter_map(|t| t.access_token_expiry)
                .min()
                .map(|e| (e.saturating_sub(now) / 86_400) as i64);
            json!({
                "count": all.len(),
                "ok": count(TokenStatus::Ok),
                "expiring": count(TokenStatus::Expiring),
                "expired": count(TokenStatus::Expired),
                "awaiting_token": count(TokenStatus::AwaitingToken),
                "needs_attention": count(TokenStatus::TermsNotSigned) + count(TokenStatus::Rejected),
                "soonest_expiry_days": soonest,
            })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

//! `GET /metrics`: the server's state and activity in Prometheus' text format, for a
//! scraper holding the admin key. Counters come from [`crate::metrics`] and the records'
//! own counters; gauges are read from the records at scrape time (tokens, push
//! certificate). Requests by route and status are not here: Spin's OpenTelemetry
//! export and the per-request log lines carry them without a store write per request.

use std::fmt::Write as _;

use http::{HeaderValue, StatusCode, header};

use crate::api::{ApiError, Response};
use crate::command;
use crate::dep::inventory;
use crate::dep::tokens::{self, TokenStatus};
use crate::mdm::enrollment_record;
use crate::metrics::{self, COMMAND_STATUSES, Counter, PUSH_OUTCOMES, SYNC_OUTCOMES};
use crate::push;
use crate::{Clock, Platform};

/// Prometheus' text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family being written: `# HELP`, `# TYPE`, then its samples.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: i64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn get(p: &impl Platform) -> Result<Response, ApiError> {
    let s = p.store();
    let now = p.clock().unix_seconds();
    let c = |counter: Counter| async move { metrics::read(s, &counter).await };
    let mut out = Exposition(String::new());

    out.family("mdm_build_info", "gauge", "The running release and commit.");
    out.sample(
        "mdm_build_info",
        &[
            ("version", super::probes::VERSION),
            ("commit", super::probes::COMMIT),
        ],
        1,
    );

    let enrolled = c(Counter::Enrolled).await? - c(Counter::Unenrolled).await?;
    let awaiting = c(Counter::AwaitingStarted).await? - c(Counter::AwaitingReleased).await?;
    out.family(
        "mdm_devices",
        "gauge",
        "Enrolled device channels by state (awaiting_configuration: held in Setup Assistant).",
    );
    out.sample("mdm_devices", &[("state", "enrolled")], enrolled.max(0));
    out.sample(
        "mdm_devices",
        &[("state", "awaiting_configuration")],
        awaiting.max(0),
    );
    out.family(
        "mdm_devices_authenticated_total",
        "counter",
        "Devices that ever sent Authenticate.",
    );
    let ever = metrics::read_key(s, &enrollment_record::index_counter()).await?;
    out.sample("mdm_devices_authenticated_total", &[], ever);

    let enqueued = c(Counter::CommandsEnqueued).await?;
    let finished = metrics::read_key(s, &command::records::done_counter()).await?;
    out.family("mdm_commands_enqueued_total", "counter", "Commands queued.");
    out.sample("mdm_commands_enqueued_total", &[], enqueued);
    out.family(
        "mdm_commands_finished_total",
        "counter",
        "Commands answered (Acknowledged, Error, CommandFormatError) or cancelled.",
    );
    out.sample("mdm_commands_finished_total", &[], finished);
    out.family(
        "mdm_command_queue_depth",
        "gauge",
        "Commands queued and not yet finished, over all devices.",
    );
    out.sample("mdm_command_queue_depth", &[], (enqueued - finished).max(0));
    out.family(
        "mdm_command_results_total",
        "counter",
        "Command reports by Status.",
    );
    for status in COMMAND_STATUSES {
        let n = c(Counter::CommandResults(status)).await?;
        out.sample("mdm_command_results_total", &[("status", status)], n);
    }
    out.family("mdm_pushes_total", "counter", "APNs pushes by outcome.");
    for outcome in PUSH_OUTCOMES {
        let n = c(Counter::Pushes(outcome)).await?;
        out.sample("mdm_pushes_total", &[("outcome", outcome)], n);
    }

    let all = tokens::list(s).await.map_err(ApiError::store)?;
    out.family("mdm_dep_tokens", "gauge", "Server tokens by status.");
    for status in [
        TokenStatus::AwaitingToken,
        TokenStatus::Ok,
        TokenStatus::Expiring,
        TokenStatus::Expired,
        TokenStatus::TermsNotSigned,
        TokenStatus::Rejected,
    ] {
        let n = all.iter().filter(|t| t.status(now) == status).count();
        let name = serde_json::to_value(status).ok();
        let label = name.as_ref().and_then(|v| v.as_str()).unwrap_or("unknown");
        out.sample("mdm_dep_tokens", &[("status", label)], n as i64);
    }
    out.family(
        "mdm_dep_token_expiry_days",
        "gauge",
        "Whole days until a server token expires (negative: expired).",
    );
    for t in &all {
        if let (Some(expiry), Some(_)) = (t.access_token_expiry, &t.sealed_secrets) {
            let days = (expiry as i64 - now as i64).div_euclid(86_400);
            out.sample(
                "mdm_dep_token_expiry_days",
                &[("token", &t.id.to_string())],
                days,
            );
        }
    }
    out.family(
        "mdm_dep_devices",
        "gauge",
        "Devices in a token's inventory (Apple's list, removed ones excluded).",
    );
    for t in &all {
        let n = metrics::read_key(s, &inventory::live_counter(t.id)).await?;
        out.sample("mdm_dep_devices", &[("token", &t.id.to_string())], n);
    }
    out.family(
        "mdm_dep_sync_runs_total",
        "counter",
        "Device Assignment sync runs of a token by outcome.",
    );
    for t in &all {
        for outcome in SYNC_OUTCOMES {
            let n = c(Counter::SyncRuns(t.id.0, outcome)).await?;
            out.sample(
                "mdm_dep_sync_runs_total",
                &[("token", &t.id.to_string()), ("outcome", outcome)],
                n,
            );
        }
    }
    out.family(
        "mdm_dep_devices_synced_total",
        "counter",
        "Device records a token's syncs fetched from Apple.",
    );
    for t in &all {
        let n = c(Counter::DevicesSynced(t.id.0)).await?;
        out.sample(
            "mdm_dep_devices_synced_total",
            &[("token", &t.id.to_string())],
            n,
        );
    }

    if let Some(cert) = push::certificate::load(s).await.map_err(ApiError::store)? {
        out.family(
            "mdm_push_certificate_expiry_days",
            "gauge",
            "Whole days until the MDM push certificate expires (negative: expired).",
        );
        let (_, days) = push::certificate::expiry(cert.not_after, now as i64);
        out.sample("mdm_push_certificate_expiry_days", &[], days);
    }

    let mut resp = http::Response::new(out.0.into_bytes());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut e = Exposition(String::new());
        e.sample("m", &[("a", "x\"y\\z\nw"), ("b", "1")], -3);
        assert_eq!(e.0, "m{a=\"x\\\"y\\\\z\\nw\",b=\"1\"} -3\n");
    }
}

//! Assigning profiles to devices with Apple and keeping what Apple answered per serial.
//! What Apple accepts shows in the inventory at once: readers lay the answer over the
//! synced record (see [`super::assignment`]); nothing here rewrites device records.
//!
//! Key layout (token `t`, serial `s`):
//! - `asg:<t>:<s>`       the last [`AssignmentResult`] for the serial
//! - `asgretry:<t>`      serials to retry (FAILED / THROTTLED): serial → [`Retry`]
//! - `ctr:asgretry:<t>`  claimed once, by whoever creates `asgretry:<t>`
//!
//! At most 1,000 serials go in one Apple call. A THROTTLED serial is retried no sooner
//! than Apple's `retry_after_seconds`; a FAILED one at most once a day.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use mdm_kv::{Backend, CounterKey, KvError, Store};

use super::TokenId;
use super::assignment::AssignmentResult;
use super::client::DepClient;
use super::endpoints::MAX_SERIALS;
use super::error::DepError;
use super::inventory::DeviceRecord;
use super::wire::DeviceStatus;
use crate::platform::{Clock, HttpClient};
use crate::record::{Created, Record, Stored};

pub const FAILED_RETRY: u64 = 86_400;
/// When Apple throttles without saying for how long.
pub const THROTTLED_RETRY: u64 = 3_600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    pub profile: u64,
    pub retry_at: u64,
}

/// The serials of a token to retry (`asgretry:<t>`): serial → [`Retry`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Retries(pub BTreeMap<String, Retry>);

impl Record for Retries {
    type Id<'a> = TokenId;
    const NAME: &'static str = "assignment retries";
    const ATTEMPTS: usize = 50;
    fn key(token: TokenId) -> String {
        format!("asgretry:{token}")
    }
    /// A damaged list starts over: the next sync's auto-assignment finds unassigned
    /// devices again.
    fn fresh_if_damaged() -> Option<Self> {
        Some(Retries::default())
    }
}

impl Created for Retries {
    fn claim(token: TokenId) -> CounterKey {
        CounterKey::new(&format!("asgretry:{token}")).expect("static counter name")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Status → number of serials.
    pub counts: BTreeMap<String, u64>,
    pub apple_calls: u64,
    /// Why the run stopped early, if it did (the rest is marked for retry or untouched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

pub async fn results<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    serial: &str,
) -> Result<Option<AssignmentResult>, KvError> {
    AssignmentResult::load_valid(store, (token, serial)).await
}

async fn update_retries<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    change: impl Fn(&mut BTreeMap<String, Retry>),
) -> Result<(), KvError> {
    Retries::modify_or_create(store, token, true, |m| {
        let before = m.clone();
        change(&mut m.0);
        Ok::<_, KvError>(*m != before)
    })
    .await?;
    Ok(())
}

/// Serials due for another attempt, by profile.
pub async fn due_retries<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    now: u64,
) -> Result<BTreeMap<u64, Vec<String>>, KvError> {
    let m = Retries::load_valid(store, token)
        .await?
        .unwrap_or_default()
        .0;
    let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (serial, r) in m {
        if r.retry_at <= now {
            out.entry(r.profile).or_default().push(serial);
        }
    }
    Ok(out)
}

/// Assigns `apple_uuid` (our profile `profile`) to `serials` and records every answer.
pub async fn assign<B: Backend, H: HttpClient, C: Clock>(
    store: &Store<B>,
    client: &mut DepClient<'_, H, C>,
    token: TokenId,
    profile: u64,
    apple_uuid: &str,
    serials: &[String],
    now: u64,
) -> Result<Summary, KvError> {
    let mut summary = Summary::default();
    let mut chunks = serials.chunks(MAX_SERIALS);
    for chunk in chunks.by_ref() {
        summary.apple_calls += 1;
        let (statuses, retry_after): (Vec<(String, String)>, _) =
            match client.assign_profile(apple_uuid, chunk).await {
                Ok(answer) => {
                    let statuses = chunk
                        .iter()
                        .map(|s| {
                            let st = answer
                                .devices
                                .get(s)
                                .map(DeviceStatus::as_str)
                                .unwrap_or("FAILED")
                                .to_owned();
                            (s.clone(), st)
                        })
                        .collect();
                    (statuses, answer.retry_after_seconds)
                }
                Err(DepError::RetryLater { after, .. }) => {
                    summary.stopped = Some(format!(
                        "Apple asked us to wait {} s; the rest is retried later",
                        after.as_secs()
                    ));
                    let throttled = chunk
                        .iter()
                        .map(|s| (s.clone(), "THROTTLED".to_owned()))
                        .collect();
                    (throttled, Some(after.as_secs()))
                }
                Err(e) => {
                    summary.stopped = Some(e.to_string());
                    break;
                }
            };
        record(
            store,
            token,
            Some(profile),
            Some(apple_uuid),
            &statuses,
            retry_after,
            now,
            &mut summary,
        )
        .await?;
        if summary.stopped.is_some() {
            break;
        }
    }
    // Whatever was not sent after a stop waits for a retry too.
    if summary.stopped.is_some() {
        let rest: Vec<String> = chunks.flatten().cloned().collect();
        if !rest.is_empty() {
            let retry_at = now + THROTTLED_RETRY;
            update_retries(store, token, |m| {
                for s in &rest {
                    m.insert(s.clone(), Retry { profile, retry_at });
                }
            })
            .await?;
            *summary.counts.entry("NOT_SENT".into()).or_default() += rest.len() as u64;
        }
    }
    Ok(summary)
}

/// Removes the profile assignment of `serials`.
pub async fn remove<B: Backend, H: HttpClient, C: Clock>(
    store: &Store<B>,
    client: &mut DepClient<'_, H, C>,
    token: TokenId,
    serials: &[String],
    now: u64,
) -> Result<Summary, KvError> {
    let mut summary = Summary::default();
    for chunk in serials.chunks(MAX_SERIALS) {
        summary.apple_calls += 1;
        match client.remove_profile(chunk, None).await {
            Ok(answer) => {
                let statuses: Vec<(String, String)> = chunk
                    .iter()
                    .map(|s| {
                        let st = match answer.devices.get(s) {
                            Some(DeviceStatus::Success) => "REMOVED".to_owned(),
                            Some(other) => other.as_str().to_owned(),
                            None => "FAILED".to_owned(),
                        };
                        (s.clone(), st)
                    })
                    .collect();
                record(store, token, None, None, &statuses, None, now, &mut summary).await?;
            }
            Err(e) => {
                summary.stopped = Some(e.to_string());
                break;
            }
        }
    }
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn record<B: Backend>(
    store: &Store<B>,
    token: TokenId,
    profile: Option<u64>,
    apple_uuid: Option<&str>,
    statuses: &[(String, String)],
    retry_after: Option<u64>,
    now: u64,
    summary: &mut Summary,
) -> Result<(), KvError> {
    let ids: Vec<(TokenId, &str)> = statuses.iter().map(|(s, _)| (token, s.as_str())).collect();
    let previous = AssignmentResult::load_many_valid(store, &ids).await?;
    let mut writes: Vec<AssignmentResult> = Vec::with_capacity(statuses.len());
    let mut retry: Vec<(String, u64)> = Vec::new();
    let mut settled: Vec<String> = Vec::new();
    for ((serial, status), prev) in statuses.iter().zip(previous) {
        *summary.counts.entry(status.clone()).or_default() += 1;
        let failing = matches!(status.as_str(), "FAILED" | "THROTTLED");
        let failures = if failing {
            prev.map_or(0, |p| p.failures) + 1
        } else {
            0
        };
        let retry_at = match status.as_str() {
            "THROTTLED" => Some(now + retry_after.unwrap_or(THROTTLED_RETRY).max(1)),
            "FAILED" => Some(now + FAILED_RETRY.max(retry_after.unwrap_or(0))),
            _ => None,
        };
        match (retry_at, profile) {
            (Some(at), Some(_)) => retry.push((serial.clone(), at)),
            _ => settled.push(serial.clone()),
        }
        let r = AssignmentResult {
            status: status.clone(),
            at: now,
            profile,
            apple_uuid: apple_uuid.map(str::to_owned),
            retry_at,
            failures,
        };
        writes.push(r);
    }
    let items: Vec<((TokenId, &str), &AssignmentResult)> =
        ids.iter().copied().zip(writes.iter()).collect();
    AssignmentResult::save_many(store, &items).await?;
    if let Some(p) = profile
        && (!retry.is_empty() || !settled.is_empty())
    {
        update_retries(store, token, |m| {
            for (s, at) in &retry {
                m.insert(
                    s.clone(),
                    Retry {
                        profile: p,
                        retry_at: *at,
                    },
                );
            }
            for s in &settled {
                m.remove(s);
            }
        })
        .await?;
    } else if profile.is_none() && !settled.is_empty() {
        update_retries(store, token, |m| {
            for s in &settled {
                m.remove(s);
            }
        })
        .await?;
    }
    Ok(())
}

/// Auto-assignment while syncing: devices a page brings that we did not know yet, or
/// whose profile Apple reports removed (moved from another MDM server), get the profile
/// the rules choose, else the default. Done before the page is stored, so a run killed
/// in between sees the same devices as new again when it resumes.
pub struct AutoAssign<'a, B: Backend> {
    pub store: &'a Store<B>,
    pub token: TokenId,
    pub rules: Vec<super::profile_store::Rule>,
    pub default: Option<u64>,
    /// Our profile id → its current Apple UUID.
    pub profiles: BTreeMap<u64, String>,
    pub summary: Summary,
}

impl<'a, B: Backend> AutoAssign<'a, B> {
    /// None when the token has neither rules nor a default profile.
    pub async fn load(
        store: &'a Store<B>,
        token: &super::tokens::TokenRecord,
    ) -> Result<Option<Self>, KvError> {
        let default = token
            .default_profile
            .as_deref()
            .and_then(|d| d.parse().ok());
        let rules = super::profile_store::load_rules(store, token.id).await?;
        if default.is_none() && rules.is_empty() {
            return Ok(None);
        }
        let profiles = super::profile_store::list(store, token.id)
            .await?
            .into_iter()
            .map(|r| (r.id, r.apple_uuid))
            .collect();
        Ok(Some(AutoAssign {
            store,
            token: token.id,
            rules,
            default,
            profiles,
            summary: Summary::default(),
        }))
    }

    pub async fn page<H: HttpClient, C: Clock>(
        &mut self,
        client: &mut DepClient<'_, H, C>,
        devices: &[serde_json::Map<String, Value>],
        now: u64,
    ) -> Result<(), KvError> {
        let field = |d: &serde_json::Map<String, Value>, k: &str| {
            d.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase()
        };
        let unassigned: Vec<&serde_json::Map<String, Value>> = devices
            .iter()
            .filter(|d| field(d, "op_type") != "deleted")
            .filter(|d| {
                matches!(
                    field(d, "profile_status").as_str(),
                    "" | "empty" | "removed"
                )
            })
            .filter(|d| d.get("serial_number").and_then(Value::as_str).is_some())
            .collect();
        if unassigned.is_empty() {
            return Ok(());
        }
        let ids: Vec<(TokenId, &str)> = unassigned
            .iter()
            .map(|d| (self.token, d["serial_number"].as_str().unwrap_or_default()))
            .collect();
        let known = DeviceRecord::load_many_valid(self.store, &ids).await?;
        let mut by_profile: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for (d, stored) in unassigned.into_iter().zip(known) {
            let live = stored.filter(|r| !r.tombstone);
            let moved_here =
                field(d, "op_type") == "modified" && field(d, "profile_status") == "removed";
            if live.is_some() && !moved_here {
                continue;
            }
            let serial = d["serial_number"].as_str().unwrap_or_default().to_owned();
            if let Some((pid, _)) =
                super::profile_store::choose(&self.rules, self.default, d, &serial)
            {
                by_profile.entry(pid).or_default().push(serial);
            }
        }
        for (pid, serials) in by_profile {
            let Some(uuid) = self.profiles.get(&pid).cloned() else {
                continue;
            };
            let s = assign(self.store, client, self.token, pid, &uuid, &serials, now).await?;
            self.summary.apple_calls += s.apple_calls;
            for (k, v) in s.counts {
                *self.summary.counts.entry(k).or_default() += v;
            }
            self.summary.stopped = self.summary.stopped.take().or(s.stopped);
        }
        Ok(())
    }
}

/// Retries FAILED / THROTTLED serials whose time has come (the scheduler calls this).
pub async fn retry_due<B: Backend, H: HttpClient, C: Clock>(
    store: &Store<B>,
    client: &mut DepClient<'_, H, C>,
    token: TokenId,
    now: u64,
) -> Result<Summary, KvError> {
    let mut total = Summary::default();
    for (pid, serials) in due_retries(store, token, now).await? {
        let Some(r) = super::profile_store::load(store, token, pid).await? else {
            // The profile is gone: nothing left to retry for these serials.
            update_retries(store, token, |m| {
                for s in &serials {
                    m.remove(s);
                }
            })
            .await?;
            continue;
        };
        let s = assign(store, client, token, pid, &r.apple_uuid, &serials, now).await?;
        total.apple_calls += s.apple_calls;
        for (k, v) in s.counts {
            *total.counts.entry(k).or_default() += v;
        }
        total.stopped = total.stopped.take().or(s.stopped);
    }
    Ok(total)
}

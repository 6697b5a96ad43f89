//! A device's push status as the device API shows it: its push bookkeeping, with the
//! unreachable mark judged against the device's current token.

use serde::Serialize;

use mdm_kv::{Backend, KvError, Store};

use crate::push::state::{
    PushReason, RetryInfo, Unreachable, is_unreachable, load_record, load_state,
};

/// What the device API shows ([`push_state`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushStatus {
    pub device_id: String,
    /// False while APNs' last word on the current token was 410 / BadDeviceToken.
    pub reachable: bool,
    pub last_push_at: Option<u64>,
    pub last_reason: Option<PushReason>,
    pub last_outcome: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_apns_id: Option<String>,
    pub last_delivered_at: Option<u64>,
    pub attempts: u64,
    pub delivered: u64,
    pub unreachable: Option<Unreachable>,
    pub retry: Option<RetryInfo>,
    pub followup_at: Option<u64>,
    /// The push owed for commands the device deferred (NotNow), if any.
    pub not_now_at: Option<u64>,
}

/// The device's push status for the device API (`None`: never pushed).
pub async fn push_state<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Option<PushStatus>, KvError> {
    let Some(st) = load_state(store, device_id).await? else {
        return Ok(None);
    };
    let rec = load_record(store, device_id).await?;
    let reachable = match (&st.unreachable, rec.as_ref().and_then(|r| r.push.as_ref())) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(_), Some(push)) => !is_unreachable(&st, push),
    };
    Ok(Some(PushStatus {
        device_id: device_id.to_owned(),
        reachable,
        last_push_at: st.last_attempt_at,
        last_reason: st.last_reason,
        last_outcome: st.last_outcome,
        last_status: st.last_status,
        last_error: st.last_error,
        last_apns_id: st.last_apns_id,
        last_delivered_at: st.last_delivered_at,
        attempts: st.attempts,
        delivered: st.delivered,
        unreachable: if reachable { None } else { st.unreachable },
        retry: st.retry,
        followup_at: st.followup_at,
        not_now_at: st.not_now.due_at,
    }))
}

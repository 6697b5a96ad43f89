//! What goes when an enrollment ends: replaced by a re-enrollment, or deleted by a purge.
//! Identity bindings, user channels, queued commands (cancelled in their history) and the
//! bootstrap token go; the command history and device log stay until their retention ends.

use mdm_kv::{Backend, KvError, Store};

use crate::command;
use crate::enroll::pending;
use crate::mdm::enrollment_record::{
    BoundDevice, EnrollmentRecord, ListedDevice, Refusal, SealedBootstrapToken, UserChannel, bad,
    bound_device, load, modify_record,
};
use crate::queue::{self, Channel};
use crate::record::{Record, Stored};

/// The first TokenUpdate of a re-enrollment's identity: the enrollment it started
/// replaces the live one now (whose identities, channels and queued commands go, as at any
/// re-enrollment). Nothing for any other identity.
pub(super) async fn complete_reenrollment<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    device_id: &str,
    now: u64,
) -> Result<(), Refusal> {
    if bound_device(store, cert_hash).await?.as_deref() != Some(device_id) {
        return Ok(());
    }
    let mut replaced: Option<EnrollmentRecord> = None;
    modify_record(store, device_id, |cur| {
        replaced = None;
        let Some(re) = cur
            .reenrollment
            .as_ref()
            .filter(|r| r.cert_hash == cert_hash)
        else {
            return Ok(false);
        };
        if now.saturating_sub(re.authenticated_at) >= pending::PENDING_TTL {
            return Err(bad(
                "this identity's re-enrollment expired: enroll the device again",
            ));
        }
        let mut next = re.record.clone();
        next.index_pos = cur.index_pos;
        next.inventory = std::mem::take(&mut cur.inventory);
        let mut prev = std::mem::replace(cur, next);
        prev.reenrollment = None;
        replaced = Some(prev);
        Ok(true)
    })
    .await?;
    match replaced {
        Some(prev) => reset_enrollment(store, &prev, cert_hash, now).await,
        None => Ok(()),
    }
}

/// Drops what a previous enrollment of the device left: other identities' bindings, user
/// channels, queued commands (cancelled in their history), the bootstrap token.
pub(super) async fn reset_enrollment<B: Backend>(
    store: &Store<B>,
    prev: &EnrollmentRecord,
    keep_cert: &str,
    now: u64,
) -> Result<(), Refusal> {
    let mut gone = close_channels(store, prev, now)
        .await
        .map_err(queue_error)?;
    gone.extend(
        prev.cert_hashes
            .iter()
            .chain(prev.reenrollment.as_ref().map(|r| &r.cert_hash))
            .filter(|h| h.as_str() != keep_cert)
            .map(|h| BoundDevice::key(h)),
    );
    let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
    store.delete_many(&refs).await?;
    Ok(())
}

/// Cancels every queued command of the enrollment's channels (device and users); returns
/// the keys of what goes with them (user channel records, the bootstrap token).
async fn close_channels<B: Backend>(
    store: &Store<B>,
    rec: &EnrollmentRecord,
    now: u64,
) -> Result<Vec<String>, queue::QueueError> {
    let device_id = &rec.device_id;
    let mut gone = Vec::new();
    for user in &rec.user_channels {
        command::records::cancel_all(store, &Channel::user(device_id, user), now).await?;
        gone.push(UserChannel::key((device_id, user)));
    }
    command::records::cancel_all(store, &Channel::device(device_id), now).await?;
    gone.push(SealedBootstrapToken::key(device_id));
    Ok(gone)
}

fn queue_error(e: queue::QueueError) -> Refusal {
    match e {
        queue::QueueError::Store(e) => Refusal::Store(e),
        other => Refusal::BadRequest(other.to_string()),
    }
}

/// Deletes everything held for the device's enrollment: the record and its place in
/// the device list, identity bindings, user channels, queued commands (cancelled in their
/// history), escrowed bootstrap token, push state and any pending enrollment request. The
/// command history and device log stay until their retention ends (an audit trail).
/// Returns false when there was no record. A later enrollment starts afresh.
pub async fn purge<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    now: u64,
) -> Result<bool, KvError> {
    let Some(rec) = load(store, device_id).await.map_err(|e| match e {
        Refusal::Store(e) => e,
        other => KvError::Backend(format!("{other:?}")),
    })?
    else {
        return Ok(false);
    };
    let mut gone = close_channels(store, &rec, now)
        .await
        .map_err(queue_kv_error)?;
    gone.extend(rec.cert_hashes.iter().map(|h| BoundDevice::key(h)));
    if let Some(n) = rec.index_pos {
        gone.push(ListedDevice::key(n));
    }
    let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
    store.delete_many(&refs).await?;
    pending::remove(store, device_id).await?;
    crate::push::state::reset_state(store, device_id).await?;
    // The record last: a failure above leaves it, so the purge can be repeated.
    EnrollmentRecord::delete(store, device_id).await?;
    crate::mdm::enrollment_record::count_transition(
        store,
        crate::mdm::enrollment_record::State::of(&rec),
        Default::default(),
    )
    .await;
    Ok(true)
}

fn queue_kv_error(e: queue::QueueError) -> KvError {
    match e {
        queue::QueueError::Store(e) => e,
        other => KvError::Backend(other.to_string()),
    }
}

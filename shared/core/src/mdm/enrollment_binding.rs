//! Which identity certificate speaks for which enrollment, kept current: a binding moved
//! off its legacy key, the certificate of a SCEP renewal adopted, and the check that a
//! message's signer is bound to the device it names.

use mdm_kv::{Backend, KvError, Store};

use crate::mdm::enrollment_record::{
    BoundDevice, DeviceIdentity, EnrollmentRecord, Refusal, bound_device, load, require_bound,
};
use crate::record::Stored;

/// Bindings used to be keyed on the hash of the whole certificate DER; they are keyed on
/// the hash of its tbsCertificate now. A certificate whose binding is only under the old
/// key gets it moved to the new one (and its enrollment record lists the new hash).
/// Returns the device it is bound to.
pub async fn migrate_legacy_binding<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    der_hash: &str,
) -> Result<Option<String>, KvError> {
    if cert_hash == der_hash {
        return Ok(None);
    }
    let Some(device) = bound_device(store, der_hash).await? else {
        return Ok(None);
    };
    BoundDevice(device.clone()).save(store, cert_hash).await?;
    EnrollmentRecord::modify(store, &device, |rec| {
        if rec.cert_hashes.iter().any(|h| h == cert_hash) {
            return Ok::<_, KvError>(false);
        }
        rec.cert_hashes.push(cert_hash.to_owned());
        Ok(true)
    })
    .await?;
    BoundDevice::delete(store, der_hash).await?;
    Ok(Some(device))
}

pub async fn require_binding<B: Backend>(
    store: &Store<B>,
    cert_hash: &str,
    device_id: &str,
) -> Result<EnrollmentRecord, Refusal> {
    let bound = bound_device(store, cert_hash).await?;
    require_bound(store, bound.as_deref(), cert_hash, device_id).await
}

/// A device whose identity was renewed over SCEP (RenewalReq signed by its current
/// identity) signs with the new certificate from then on, without a new Authenticate:
/// bind the new certificate to the enrollment when our SCEP issued it as the renewal of
/// a certificate bound to this very device. The enrollment keeps its queue, channels and
/// tokens. Anything else is left for [`require_binding`] to refuse.
pub async fn adopt_renewal<B: Backend>(
    store: &Store<B>,
    identity: &DeviceIdentity,
    device_id: &str,
) -> Result<bool, KvError> {
    let Some(serial) = &identity.serial_hex else {
        return Ok(false);
    };
    if BoundDevice::exists(store, &identity.cert_hash).await? {
        return Ok(false);
    }
    // A retired (or retiring) or checked-out enrollment takes no new identity.
    match load(store, device_id).await {
        Ok(Some(rec)) if rec.enrolled && rec.retire.is_none() => {}
        Ok(_) => return Ok(false),
        Err(Refusal::Store(e)) => return Err(e),
        Err(_) => return Ok(false),
    }
    let Some(issued) = crate::scep::issued::issued_for(store, serial).await? else {
        return Ok(false);
    };
    let Some(previous) = issued
        .renewed_from
        .as_deref()
        .filter(|_| issued.purpose == "renewal")
    else {
        return Ok(false);
    };
    if !issued.is(identity) {
        return Ok(false);
    }
    let Some(prev) = crate::scep::issued::issued_for(store, previous).await? else {
        return Ok(false);
    };
    let mut prev_bound = false;
    for h in prev.binding_hashes() {
        if BoundDevice::load_valid(store, h).await? == Some(BoundDevice(device_id.to_owned())) {
            prev_bound = true;
            break;
        }
    }
    if !prev_bound {
        return Ok(false);
    }
    BoundDevice(device_id.to_owned())
        .save(store, &identity.cert_hash)
        .await?;
    EnrollmentRecord::modify(store, device_id, |rec| {
        if !rec.cert_hashes.contains(&identity.cert_hash) {
            rec.cert_hashes.push(identity.cert_hash.clone());
        }
        rec.identity_serial = Some(serial.clone());
        rec.identity_expires_at = identity.not_after;
        Ok::<_, KvError>(true)
    })
    .await?;
    Ok(true)
}

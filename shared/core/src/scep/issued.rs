//! Records of the certificates our SCEP CA issued (`scepcert:<serial>`, and the serials
//! of each enrollment at `scepdev:<device>`): who a certificate was issued for and why.
//! The enrollment state machine reads them to admit an identity; the SCEP endpoint
//! writes them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use mdm_kv::key::segment;
use mdm_kv::{Backend, KvError, Store};

use crate::record::{Record, Stored};

/// Purposes the server gives its own issuances: enrollment requests (`ade`, `web`),
/// account-driven references (`byod`, `adde`) and identity renewals. A challenge an
/// administrator creates (manual enrollment) takes any other purpose.
pub const SERVER_PURPOSES: [&str; 5] = ["ade", "web", "byod", "adde", "renewal"];

/// Serials kept in a device's index (`scepdev:`), newest last.
pub const MAX_SERIALS_PER_DEVICE: usize = 16;

/// What is recorded for every certificate issued, at `scepcert:<serial hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    /// Lowercase hex serial number (as `openssl x509 -serial` prints it, lowercased).
    pub serial: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub issued_at: u64,
    /// The enrollment (device) the challenge was issued for; kept across renewals.
    pub device_id: String,
    /// Hardware serial number from the challenge grant, when known.
    pub device_serial: Option<String>,
    pub user: Option<String>,
    /// The grant's purpose ("ade", "manual", ...) or "renewal".
    pub purpose: String,
    /// Lowercase hex SHA-256 of the certificate DER.
    pub cert_sha256: String,
    /// Lowercase hex SHA-256 of its tbsCertificate: the `cert_hash` check-in binds
    /// (absent in records made before bindings were keyed on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tbs_sha256: Option<String>,
    pub transaction_id: String,
    /// Serial of the certificate that signed the RenewalReq.
    pub renewed_from: Option<String>,
}

impl IssuedRecord {
    /// Whether `identity` is the certificate this record was made for.
    pub fn is(&self, identity: &crate::mdm::enrollment_record::DeviceIdentity) -> bool {
        match &self.tbs_sha256 {
            Some(tbs) => *tbs == identity.cert_hash,
            None => identity.der_hash.as_deref() == Some(self.cert_sha256.as_str()),
        }
    }

    /// The binding keys this certificate may be bound under (current first, then the
    /// whole-DER hash older bindings used).
    pub fn binding_hashes(&self) -> Vec<&str> {
        self.tbs_sha256
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(self.cert_sha256.as_str()))
            .collect()
    }
}

impl Record for IssuedRecord {
    /// The serial, normalised ([`normalise_serial`]).
    type Id<'a> = &'a str;
    const NAME: &'static str = "issued certificate record";
    fn key(serial_hex: &str) -> String {
        format!("scepcert:{serial_hex}")
    }
}

/// Serials issued for one enrollment (`scepdev:<device>`), newest last: a convenience
/// index, the per-serial records are authoritative.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct DeviceSerials(pub Vec<String>);

impl Record for DeviceSerials {
    type Id<'a> = &'a str;
    const NAME: &'static str = "issued serials of a device";
    const ATTEMPTS: usize = 8;
    fn key(device_id: &str) -> String {
        let seg = segment(device_id);
        if seg.len() <= 200 {
            format!("scepdev:{seg}")
        } else {
            format!(
                "scepdev:h-{}",
                hex::encode(Sha256::digest(device_id.as_bytes()))
            )
        }
    }
    /// A hint: a damaged list starts over.
    fn fresh_if_damaged() -> Option<Self> {
        Some(DeviceSerials::default())
    }
}

/// Normalises a serial to our key form: lowercase hex without separators or leading
/// zero bytes. `None` if it is not hex.
pub(crate) fn normalise_serial(serial_hex: &str) -> Option<String> {
    let s: String = serial_hex
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut s = if s.len() % 2 == 1 { format!("0{s}") } else { s };
    while s.len() > 2 && s.starts_with("00") {
        s.drain(..2);
    }
    Some(s)
}

/// The record of a certificate this CA issued, by serial number (hex, any case, colons
/// allowed): who it was issued for. `None` for a serial we never issued. The check-in
/// path uses it to confirm an identity was issued for the device that presents it.
pub async fn issued_for<B: Backend>(
    store: &Store<B>,
    serial_hex: &str,
) -> Result<Option<IssuedRecord>, KvError> {
    let Some(serial) = normalise_serial(serial_hex) else {
        return Ok(None);
    };
    IssuedRecord::load_valid(store, &serial).await
}

/// Serials issued for `device_id`, oldest first (at most [`MAX_SERIALS_PER_DEVICE`]).
pub async fn issued_to_device<B: Backend>(
    store: &Store<B>,
    device_id: &str,
) -> Result<Vec<String>, KvError> {
    Ok(DeviceSerials::load_valid(store, device_id)
        .await?
        .unwrap_or_default()
        .0)
}

/// Appends `serial` to the device's index. The index is a convenience (the per-serial
/// records are authoritative): creating it is a plain set, so two first issuances for
/// one device at the same instant may keep only one serial.
pub(crate) async fn add_to_device_index<B: Backend>(
    store: &Store<B>,
    device_id: &str,
    serial: &str,
) -> Result<(), KvError> {
    let appended = DeviceSerials::modify(store, device_id, |list| {
        list.0.retain(|s| s != serial);
        list.0.push(serial.to_owned());
        if list.0.len() > MAX_SERIALS_PER_DEVICE {
            list.0.drain(..list.0.len() - MAX_SERIALS_PER_DEVICE);
        }
        Ok::<_, KvError>(true)
    })
    .await?;
    if appended.is_none() {
        DeviceSerials(vec![serial.to_owned()])
            .save(store, device_id)
            .await?;
    }
    Ok(())
}

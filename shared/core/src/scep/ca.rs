//! The SCEP CA of this server: a CA key pair that signs the devices' identity certificates
//! and a separate RA key pair that decrypts the requests and signs the CertReps, so the
//! CA key never touches attacker-supplied ciphertext (see `mdm_crypto::CertificateAuthority`).
//!
//! Both are created on first use and stored in one record, `scep:ca` ([`StoredCa`]): the
//! certificates in clear, the PKCS#8 keys sealed with `storage_key`. The CA certificate is
//! also written to [`SCEP_CA_CERT_KEY`], where the check-in path reads its trust anchor.
//!
//! Creation is race-safe on every backend without compare-and-swap on an absent key: the
//! first request to see no CA claims creation attempt 0 (`ctr:scep:ca-claim:0`, an
//! `increment` only one caller can see reach 1) and creates the CA; the others wait for
//! the record to appear. An attempt whose creator stalled (crashed after claiming) is
//! taken over after [`LEASE_SECS`] by claiming attempt 1, and so on. A creator re-reads
//! the record right before writing and adopts a CA that appeared meanwhile.

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};

use mdm_crypto::{CaOptions, Certificate, CertificateAuthority, KeyPair};
use mdm_kv::{CounterKey, KvError};

use crate::api::ApiError;
use crate::config::{self, Secret};
use crate::mdm::signature::SCEP_CA_CERT_KEY;
use crate::record::{self, Record, Stored};
use crate::seal::Sealer;
use crate::{Clock, Platform, random};

/// A creation attempt older than this is presumed dead and taken over. Generating two
/// RSA-2048 keys takes seconds, even in WebAssembly.
pub const LEASE_SECS: u64 = 300;
/// How long a request waits for another request's creation before answering "busy".
const MAX_WAIT_SECS: u64 = 30;
const POLL: std::time::Duration = std::time::Duration::from_millis(200);
/// Creation attempts after which we give up (each needs a stalled predecessor).
const MAX_ATTEMPTS: u32 = 16;
const CA_KEY_PURPOSE: &str = "scep-ca-key";
const RA_KEY_PURPOSE: &str = "scep-ra-key";
const CA_KEY_AAD: &[u8] = b"scep:ca:ca-key";
const RA_KEY_AAD: &[u8] = b"scep:ca:ra-key";
/// Lifetime of the CA and RA certificates.
const CA_VALIDITY_DAYS: u32 = 3650;

/// Why the CA could not be loaded or created. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScepSetupError {
    /// A variable is missing (`storage_key`): a deployment error.
    Misconfigured(String),
    Store(KvError),
    /// The stored keys do not open with this `storage_key`, or the record is damaged.
    Unsealable(String),
    /// Another request is creating the CA right now; retry shortly.
    Busy,
    /// Key generation or certificate building failed.
    Crypto(String),
}

impl fmt::Display for ScepSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScepSetupError::Misconfigured(d) => write!(f, "server misconfigured: {d}"),
            ScepSetupError::Store(e) => write!(f, "store unavailable: {e}"),
            ScepSetupError::Unsealable(d) => write!(f, "the stored SCEP CA cannot be opened: {d}"),
            ScepSetupError::Busy => {
                f.write_str("the SCEP CA is being created by another request; retry shortly")
            }
            ScepSetupError::Crypto(d) => write!(f, "SCEP CA: {d}"),
        }
    }
}

impl std::error::Error for ScepSetupError {}

impl From<KvError> for ScepSetupError {
    fn from(e: KvError) -> Self {
        ScepSetupError::Store(e)
    }
}

impl From<ApiError> for ScepSetupError {
    fn from(e: ApiError) -> Self {
        ScepSetupError::Misconfigured(e.message)
    }
}

impl From<ScepSetupError> for ApiError {
    fn from(e: ScepSetupError) -> Self {
        match e {
            ScepSetupError::Store(e) => ApiError::store(e),
            ScepSetupError::Misconfigured(d) => ApiError::misconfigured(d),
            ScepSetupError::Busy => ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                ScepSetupError::Busy.to_string(),
            )
            .with_header(http::header::RETRY_AFTER, "5"),
            other => ApiError::new(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "scep_ca_unavailable",
                other.to_string(),
            ),
        }
    }
}

/// The record holding CA and RA (`scep:ca`). Certificates are base64 DER; keys are base64 of the
/// PKCS#8 DER sealed with `storage_key` (AES-256-GCM, one derived key per purpose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCa {
    pub version: u32,
    pub created_at: u64,
    pub ca_cert: String,
    pub ra_cert: String,
    pub ca_key_sealed: String,
    pub ra_key_sealed: String,
}

impl Record for StoredCa {
    type Id<'a> = ();
    const NAME: &'static str = "SCEP CA";
    fn key((): ()) -> String {
        "scep:ca".into()
    }
}

/// When a creation attempt of the CA started (`scep:ca-lease:<attempt>`, Unix seconds in
/// decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct CreationLease(u64);

impl Record for CreationLease {
    type Id<'a> = u32;
    const NAME: &'static str = "SCEP CA creation lease";
    fn key(attempt: u32) -> String {
        format!("scep:ca-lease:{attempt}")
    }
    record::stored_as_decimal!();
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl StoredCa {
    fn seal(
        ca: &CertificateAuthority,
        storage_key: &Secret,
        now: u64,
    ) -> Result<Self, ScepSetupError> {
        let crypto = |e: mdm_crypto::CryptoError| ScepSetupError::Crypto(e.to_string());
        let ca_key = ca.ca_key().to_pkcs8_der().map_err(crypto)?;
        let ra_key = ca.ra_key().to_pkcs8_der().map_err(crypto)?;
        Ok(StoredCa {
            version: 1,
            created_at: now,
            ca_cert: b64().encode(ca.ca_certificate().der()),
            ra_cert: b64().encode(ca.ra_certificate().der()),
            ca_key_sealed: b64()
                .encode(Sealer::new(storage_key, CA_KEY_PURPOSE).seal(&ca_key, CA_KEY_AAD)),
            ra_key_sealed: b64()
                .encode(Sealer::new(storage_key, RA_KEY_PURPOSE).seal(&ra_key, RA_KEY_AAD)),
        })
    }

    /// The record as stored; damaged, it is as unusable as one that does not open.
    fn read(raw: &[u8]) -> Result<Self, ScepSetupError> {
        <Self as Record>::decode(raw)
            .map_err(|e| ScepSetupError::Unsealable(format!("record {}: {e}", Self::key(()))))
    }

    fn cert(field: &str, what: &str) -> Result<Certificate, ScepSetupError> {
        let der = b64()
            .decode(field)
            .map_err(|_| ScepSetupError::Unsealable(format!("{what} certificate is not base64")))?;
        Certificate::from_der(&der)
            .map_err(|e| ScepSetupError::Unsealable(format!("{what} certificate: {e}")))
    }

    /// The CA certificate (no key opened).
    pub fn ca_certificate(&self) -> Result<Certificate, ScepSetupError> {
        Self::cert(&self.ca_cert, "CA")
    }

    /// The RA certificate (no key opened).
    pub fn ra_certificate(&self) -> Result<Certificate, ScepSetupError> {
        Self::cert(&self.ra_cert, "RA")
    }

    fn open_key(
        sealed: &str,
        storage_key: &Secret,
        purpose: &str,
        aad: &[u8],
    ) -> Result<KeyPair, ScepSetupError> {
        let raw = b64()
            .decode(sealed)
            .map_err(|_| ScepSetupError::Unsealable(format!("{purpose}: not base64")))?;
        let der = zeroize_vec(
            Sealer::new(storage_key, purpose)
                .open(&raw, aad)
                .map_err(|e| ScepSetupError::Unsealable(format!("{purpose}: {e}")))?,
        );
        KeyPair::from_pkcs8_der(&der)
            .map_err(|e| ScepSetupError::Unsealable(format!("{purpose}: {e}")))
    }

    /// Opens both keys and checks they belong to their certificates.
    pub fn open(&self, storage_key: &Secret) -> Result<CertificateAuthority, ScepSetupError> {
        let ca_key = Self::open_key(&self.ca_key_sealed, storage_key, CA_KEY_PURPOSE, CA_KEY_AAD)?;
        let ra_key = Self::open_key(&self.ra_key_sealed, storage_key, RA_KEY_PURPOSE, RA_KEY_AAD)?;
        CertificateAuthority::from_parts(
            ca_key,
            self.ca_certificate()?,
            ra_key,
            self.ra_certificate()?,
        )
        .map_err(|e| ScepSetupError::Unsealable(e.to_string()))
    }
}

/// Plaintext key bytes are wiped when dropped.
fn zeroize_vec(v: Vec<u8>) -> mdm_crypto::Zeroizing<Vec<u8>> {
    mdm_crypto::Zeroizing::new(v)
}

fn claim_counter(attempt: u32) -> Result<CounterKey, KvError> {
    CounterKey::new(&format!("scep:ca-claim:{attempt}"))
}

/// The CA and RA with their keys, loaded, or created when this server has none yet.
/// Also (re)writes [`SCEP_CA_CERT_KEY`] when it does not hold the CA certificate.
pub async fn authority(p: &impl Platform) -> Result<CertificateAuthority, ScepSetupError> {
    let storage_key = config::storage_key(p.vars()).await?;
    let stored = stored_or_create(p, &storage_key).await?;
    match stored {
        Loaded::Existing(stored) => stored.open(&storage_key),
        Loaded::Created(ca) => Ok(*ca),
    }
}

/// Our CA certificate, without opening any key (creates the CA on first use). For the
/// enrollment profile's CA payload and anchors.
pub async fn ca_certificate(p: &impl Platform) -> Result<Certificate, ScepSetupError> {
    match p.store().get(&StoredCa::key(())).await? {
        Some(raw) => StoredCa::read(&raw)?.ca_certificate(),
        None => Ok(authority(p).await?.ca_certificate().clone()),
    }
}

/// CA and RA certificates (GetCACert), without opening any key.
pub async fn ca_ra_certificates(
    p: &impl Platform,
) -> Result<(Certificate, Certificate), ScepSetupError> {
    match p.store().get(&StoredCa::key(())).await? {
        Some(raw) => {
            let s = StoredCa::read(&raw)?;
            Ok((s.ca_certificate()?, s.ra_certificate()?))
        }
        None => {
            let ca = authority(p).await?;
            Ok((ca.ca_certificate().clone(), ca.ra_certificate().clone()))
        }
    }
}

enum Loaded {
    Existing(StoredCa),
    Created(Box<CertificateAuthority>),
}

async fn stored_or_create(
    p: &impl Platform,
    storage_key: &Secret,
) -> Result<Loaded, ScepSetupError> {
    let store = p.store();
    let started = p.clock().unix_seconds();
    let mut attempt = 0u32;
    loop {
        let found = store
            .get_many(&[&StoredCa::key(()), SCEP_CA_CERT_KEY])
            .await?;
        if let Some(raw) = &found[0] {
            let stored = StoredCa::read(raw)?;
            let cert = b64()
                .decode(&stored.ca_cert)
                .map_err(|_| ScepSetupError::Unsealable("CA certificate is not base64".into()))?;
            if found[1].as_deref() != Some(&cert[..]) {
                // Creation stopped between the two writes, or someone put another CA
                // there: the anchor must be the CA that issues.
                store.set(SCEP_CA_CERT_KEY, &cert).await?;
            }
            return Ok(Loaded::Existing(stored));
        }
        let now = p.clock().unix_seconds();
        if store.claim(&claim_counter(attempt)?).await? {
            CreationLease(now).save(store, attempt).await?;
            return create(p, storage_key).await;
        }
        // Attempt `attempt` belongs to another request: wait for it, or take over when it
        // is older than the lease. A missing lease (its creator stopped right after the
        // claim) is started now, by whoever sees it missing first.
        let lease_start = match store.get(&CreationLease::key(attempt)).await? {
            // A damaged lease is as old as can be: taken over.
            Some(raw) => CreationLease::decode(&raw).map_or(0, |l| l.0),
            None => {
                CreationLease(now).save(store, attempt).await?;
                now
            }
        };
        if now >= lease_start.saturating_add(LEASE_SECS) {
            attempt += 1;
            if attempt >= MAX_ATTEMPTS {
                return Err(ScepSetupError::Busy);
            }
            continue;
        }
        if now >= started.saturating_add(MAX_WAIT_SECS) {
            return Err(ScepSetupError::Busy);
        }
        p.clock().sleep(POLL).await;
    }
}

async fn create(p: &impl Platform, storage_key: &Secret) -> Result<Loaded, ScepSetupError> {
    let now = p.clock().unix_seconds();
    let name = format!("MDM SCEP CA {}", random::hex_id(4));
    let ca = CertificateAuthority::generate_with(
        &name,
        now as i64,
        &CaOptions {
            validity_days: CA_VALIDITY_DAYS,
            ..CaOptions::default()
        },
    )
    .map_err(|e| ScepSetupError::Crypto(e.to_string()))?;
    let stored = StoredCa::seal(&ca, storage_key, now)?;
    let store = p.store();
    // Taken over while generating? Then the other CA stands.
    if let Some(raw) = store.get(&StoredCa::key(())).await? {
        let other = StoredCa::read(&raw)?;
        let cert = other.ca_certificate()?;
        store.set(SCEP_CA_CERT_KEY, cert.der()).await?;
        return Ok(Loaded::Existing(other));
    }
    stored.save(store, ()).await?;
    store
        .set(SCEP_CA_CERT_KEY, ca.ca_certificate().der())
        .await?;
    crate::log::info(
        "created the SCEP CA",
        &[
            ("ca", ca.ca_certificate().subject().to_string().into()),
            ("ra", ca.ra_certificate().subject().to_string().into()),
        ],
    );
    Ok(Loaded::Created(Box::new(ca)))
}

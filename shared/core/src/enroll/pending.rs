//! Enrollment requests waiting for the device's `Authenticate`: what the MachineInfo
//! said, which token/profile/user it enrolls under. `Authenticate` must match one (by
//! UDID, serial and topic), so only devices we answered a profile to can enroll.
//!
//! Key layout (`d` = the UDID as a key segment):
//! - `enrpend:<d>`  the [`PendingEnrollment`] (JSON). Replaced by a newer request of the
//!   same device; removed by the device's first TokenUpdate after Authenticate; ignored
//!   after [`PENDING_TTL`].

use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, KvError, Store};

use crate::dep::TokenId;
use crate::record::{Record, Stored};

/// Seconds between the enrollment request and a usable `Authenticate` (SCEP with its
/// 15-minute challenge, then the MDM check-in: minutes in practice).
pub const PENDING_TTL: u64 = 3600;

/// How the device asked to enroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Automated Device Enrollment: the `url` POST, or web enrollment
    /// (`configuration_web_url`, then [`PendingEnrollment::user`] is set).
    Ade,
    /// No request: an identity issued with a challenge an administrator created for the
    /// device (made up at Authenticate, never stored).
    Manual,
    /// Account-driven enrollment ([`crate::enroll::account`]): keyed by a random
    /// enrollment reference (`udid`), not a device identifier; `serial` is empty.
    AccountDriven,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEnrollment {
    pub udid: String,
    pub serial: String,
    pub via: Via,
    /// The server token whose inventory holds the device, and our profile it is assigned.
    pub token: Option<TokenId>,
    pub profile: Option<u64>,
    /// Apple's profile UUID the device carries.
    #[serde(default)]
    pub apple_profile_uuid: Option<String>,
    /// Our local user who signed in (web enrollment).
    #[serde(default)]
    pub user: Option<String>,
    /// The `Topic` in the profile we answered; Authenticate must carry the same.
    pub topic: String,
    /// From the profile: the device ends up supervised (iOS/iPadOS ADE always is).
    #[serde(default)]
    pub supervised: bool,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub os_version: Option<String>,
    #[serde(default)]
    pub build_version: Option<String>,
    pub at: u64,
    /// Account-driven enrollment: the store key of the access grant the request was made
    /// with, consumed together with the request at the enrollment's Authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

impl Record for PendingEnrollment {
    /// The UDID (or account-driven enrollment reference).
    type Id<'a> = &'a str;
    const NAME: &'static str = "pending enrollment";
    fn key(udid: &str) -> String {
        format!("enrpend:{}", segment(udid))
    }
}

impl PendingEnrollment {
    /// A request with only what Authenticate checks (the rest unknown).
    pub fn new(udid: &str, serial: &str, topic: &str, at: u64) -> Self {
        PendingEnrollment {
            udid: udid.to_owned(),
            serial: serial.to_owned(),
            via: Via::Ade,
            token: None,
            profile: None,
            apple_profile_uuid: None,
            user: None,
            topic: topic.to_owned(),
            supervised: false,
            product: None,
            os_version: None,
            build_version: None,
            at,
            grant: None,
        }
    }

    pub fn expired(&self, now: u64) -> bool {
        now >= self.at.saturating_add(PENDING_TTL)
    }
}

pub async fn put<B: Backend>(store: &Store<B>, p: &PendingEnrollment) -> Result<(), KvError> {
    p.save(store, &p.udid).await
}

/// The device's pending request, unless expired.
pub async fn get<B: Backend>(
    store: &Store<B>,
    udid: &str,
    now: u64,
) -> Result<Option<PendingEnrollment>, KvError> {
    Ok(PendingEnrollment::load(store, udid)
        .await?
        .filter(|p| !p.expired(now)))
}

pub async fn remove<B: Backend>(store: &Store<B>, udid: &str) -> Result<(), KvError> {
    PendingEnrollment::delete(store, udid).await
}

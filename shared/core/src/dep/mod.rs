//! Automated Device Enrollment: server tokens, the device inventory synced from Apple,
//! and the sync engine.

pub mod apple;
pub mod assign;
pub mod assignment;
pub mod client;
pub mod endpoints;
pub mod error;
pub mod inventory;
pub mod inventory_apply;
pub mod inventory_list;
pub mod oauth;
pub mod profile_setup;
pub mod profile_store;
pub mod profile_validation;
pub mod profiles;
pub mod reconcile;
pub mod skipkeys;
pub mod sync;
pub mod sync_state;
pub mod tokens;
pub mod wire;

/// A token slot's id: small sequential numbers allocated by a counter, so every slot can
/// be enumerated without listing keys.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TokenId(pub u64);

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

//! Server token slots: the key pair whose public half the admin uploads to Apple
//! Business/School Manager, the OAuth secrets Apple returns in the `.p7m`, and what
//! `/account` says about the organisation.
//!
//! Key layout:
//! - `ctr:tok:seq`   last slot id allocated (ids are never reused)
//! - `ctr:tok:live`  number of existing slots (bounded by [`MAX_TOKENS`])
//! - `tok:<t>`       the [`TokenRecord`] (JSON; private keys and OAuth secrets sealed
//!   with a key derived from `storage_key`, bound to the slot id)
//! - `dsync:<t>`     sync state, see [`super::sync`]
//! - `depsess:<t>`   the cached Device Assignment API session (sealed)

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use mdm_kv::{Backend, CounterKey, KvError, Store};

use super::TokenId;
use crate::record::{self, Record, Stored};

pub const MAX_TOKENS: i64 = 2_000;
/// A token expiring within this many seconds is `expiring`.
pub const EXPIRY_WARNING: u64 = 30 * 86400;

pub(crate) fn seq_counter() -> CounterKey {
    CounterKey::new("tok:seq").expect("static counter name")
}

pub(crate) fn live_counter() -> CounterKey {
    CounterKey::new("tok:live").expect("static counter name")
}

/// A key pair of the slot. The private key is sealed; the certificate is public.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPair {
    /// Base64 of the DER certificate (what the admin uploads, as PEM).
    pub certificate: String,
    /// Base64 of the sealed PKCS#8 private key.
    pub sealed_key: String,
    pub created_at: u64,
}

/// What we keep of Apple's `/account` answer.
pub type AccountDetail = Map<String, Value>;

/// Last thing Apple told us about this token when we used it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppleVerdict {
    Ok,
    TermsNotSigned,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: String,
    pub created_at: u64,
    pub key: KeyPair,
    /// A rotated key pair waiting for a token made for it; the current key keeps
    /// decrypting until then.
    #[serde(default)]
    pub staged_key: Option<KeyPair>,
    /// Base64 of the sealed OAuth secrets (JSON), once a token was uploaded.
    #[serde(default)]
    pub sealed_secrets: Option<String>,
    /// `consumer_key` is not secret on its own but identifies the ABM/ASM server entry.
    #[serde(default)]
    pub consumer_key: Option<String>,
    #[serde(default)]
    pub access_token_expiry: Option<u64>,
    #[serde(default)]
    pub uploaded_at: Option<u64>,
    /// The Apple ID of the ABM/ASM administrator who renews this token.
    #[serde(default)]
    pub apple_id: Option<String>,
    #[serde(default)]
    pub account: Option<AccountDetail>,
    #[serde(default)]
    pub apple_verdict: Option<AppleVerdict>,
    #[serde(default)]
    pub apple_verdict_at: Option<u64>,
    #[serde(default)]
    pub profile_count: u64,
    #[serde(default)]
    pub default_profile: Option<String>,
}

impl Record for TokenRecord {
    type Id<'a> = TokenId;
    const NAME: &'static str = "token record";
    const ATTEMPTS: usize = 50;
    fn key(token: TokenId) -> String {
        format!("tok:{token}")
    }
}

/// The slot's cached Device Assignment API session, sealed (`depsess:<t>`, the sealed
/// bytes; see [`super::apple::SlotSealer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSession(pub Vec<u8>);

impl Record for SealedSession {
    type Id<'a> = TokenId;
    const NAME: &'static str = "Device Assignment session";
    fn key(token: TokenId) -> String {
        format!("depsess:{token}")
    }
    record::stored_as_bytes!();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Created; no token uploaded yet.
    AwaitingToken,
    Ok,
    Expiring,
    Expired,
    TermsNotSigned,
    Rejected,
}

impl TokenRecord {
    /// A new slot holding only its key pair: no token uploaded yet.
    pub fn new(id: TokenId, name: String, key: KeyPair, now: u64) -> Self {
        TokenRecord {
            id,
            name,
            created_at: now,
            key,
            staged_key: None,
            sealed_secrets: None,
            consumer_key: None,
            access_token_expiry: None,
            uploaded_at: None,
            apple_id: None,
            account: None,
            apple_verdict: None,
            apple_verdict_at: None,
            profile_count: 0,
            default_profile: None,
        }
    }

    pub fn status(&self, now: u64) -> TokenStatus {
        let Some(expiry) = self
            .access_token_expiry
            .filter(|_| self.sealed_secrets.is_some())
        else {
            return TokenStatus::AwaitingToken;
        };
        if expiry <= now {
            return TokenStatus::Expired;
        }
        match self.apple_verdict {
            Some(AppleVerdict::Rejected) => return TokenStatus::Rejected,
            Some(AppleVerdict::TermsNotSigned) => return TokenStatus::TermsNotSigned,
            _ => {}
        }
        if expiry - now <= EXPIRY_WARNING {
            TokenStatus::Expiring
        } else {
            TokenStatus::Ok
        }
    }
}

pub async fn load<B: Backend>(
    store: &Store<B>,
    token: TokenId,
) -> Result<Option<TokenRecord>, KvError> {
    TokenRecord::load(store, token).await
}

/// Every existing slot, by id. Slots are enumerated through the id counter, never by
/// listing keys.
pub async fn list<B: Backend>(store: &Store<B>) -> Result<Vec<TokenRecord>, KvError> {
    let last = store.counter(&seq_counter()).await?.max(0) as u64;
    let ids: Vec<TokenId> = (1..=last).map(TokenId).collect();
    Ok(TokenRecord::load_many_valid(store, &ids)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// Reserves a slot id within [`MAX_TOKENS`]; `None` when the server is full.
pub async fn allocate<B: Backend>(store: &Store<B>) -> Result<Option<TokenId>, KvError> {
    if store.increment(&live_counter(), 1).await? > MAX_TOKENS {
        store.increment(&live_counter(), -1).await?;
        return Ok(None);
    }
    Ok(Some(TokenId(
        store.increment(&seq_counter(), 1).await? as u64,
    )))
}

/// Stores a brand-new slot (no race: the id was just allocated to us).
pub async fn create<B: Backend>(store: &Store<B>, record: &TokenRecord) -> Result<(), KvError> {
    super::sync_state::init(store, record.id).await?;
    record.save(store, record.id).await
}

/// Read-modify-write of a slot. `change` may refuse with its own error.
pub async fn modify<B: Backend, E: From<KvError>>(
    store: &Store<B>,
    token: TokenId,
    mut change: impl FnMut(&mut TokenRecord) -> Result<(), E>,
) -> Result<Option<TokenRecord>, E> {
    TokenRecord::modify(store, token, |rec| {
        change(rec)?;
        Ok(true)
    })
    .await
}

/// Removes a slot and its sync state and session. The caller checked it holds nothing.
pub async fn remove<B: Backend>(store: &Store<B>, token: TokenId) -> Result<(), KvError> {
    store
        .delete_many(&[
            &TokenRecord::key(token),
            &super::sync_state::SyncState::key(token),
            &SealedSession::key(token),
        ])
        .await?;
    store.increment(&live_counter(), -1).await?;
    Ok(())
}

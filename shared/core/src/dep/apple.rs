//! Talking to Apple for one token slot: its secrets opened from the store, a
//! Device Assignment client with the cached session, and the [`DeviceFeed`] the sync
//! engine pulls pages from.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use mdm_kv::{Backend, KvError, Store};

use super::TokenId;
use super::client::DepClient;
use super::error::{ApiError, DepError};
use super::oauth::DepCredentials;
use super::sync::{DeviceFeed, FeedError, FeedPage};
use super::tokens::{self, SealedSession, TokenRecord};
use super::wire::DevicePage;
use crate::config::Secret;
use crate::platform::{Clock, HttpClient};
use crate::record::Stored;
use crate::seal::Sealer;

/// Variable naming Apple's Device Assignment base URL (tests point it at depsim).
pub const DEP_BASE_URL: &str = "dep_base_url";
/// Page size we ask for; the client clamps nothing, Apple's maximum is 1000.
pub const PAGE_LIMIT: u32 = 1000;

const KEY_PURPOSE: &str = "dep-token-private-key";
const SECRETS_PURPOSE: &str = "dep-token-oauth-secrets";
const SESSION_PURPOSE: &str = "dep-session";

fn aad(token: TokenId, what: &str) -> Vec<u8> {
    format!("tok:{token}:{what}").into_bytes()
}

/// Seals secrets of one slot; every sealed value is bound to the slot id.
pub struct SlotSealer<'a> {
    pub storage_key: &'a Secret,
    pub token: TokenId,
}

#[derive(Debug)]
pub struct Unsealable(pub String);

impl SlotSealer<'_> {
    pub fn seal_key(&self, pkcs8_der: &[u8]) -> String {
        B64.encode(
            Sealer::new(self.storage_key, KEY_PURPOSE).seal(pkcs8_der, &aad(self.token, "key")),
        )
    }

    pub fn open_key(&self, sealed: &str) -> Result<mdm_crypto::KeyPair, Unsealable> {
        let raw = B64
            .decode(sealed)
            .map_err(|_| Unsealable("sealed private key is not base64".into()))?;
        let der = Sealer::new(self.storage_key, KEY_PURPOSE)
            .open(&raw, &aad(self.token, "key"))
            .map_err(|e| Unsealable(format!("private key: {e}")))?;
        mdm_crypto::KeyPair::from_pkcs8_der(&der)
            .map_err(|e| Unsealable(format!("private key: {e}")))
    }

    pub fn seal_secrets(&self, creds: &DepCredentials) -> String {
        let json = serde_json::to_vec(creds).expect("serialises");
        B64.encode(
            Sealer::new(self.storage_key, SECRETS_PURPOSE).seal(&json, &aad(self.token, "secrets")),
        )
    }

    pub fn open_secrets(&self, sealed: &str) -> Result<DepCredentials, Unsealable> {
        let raw = B64
            .decode(sealed)
            .map_err(|_| Unsealable("sealed OAuth secrets are not base64".into()))?;
        let json = Sealer::new(self.storage_key, SECRETS_PURPOSE)
            .open(&raw, &aad(self.token, "secrets"))
            .map_err(|e| Unsealable(format!("OAuth secrets: {e}")))?;
        serde_json::from_slice(&json).map_err(|_| Unsealable("OAuth secrets are not JSON".into()))
    }

    fn seal_session(&self, session: &str) -> Vec<u8> {
        Sealer::new(self.storage_key, SESSION_PURPOSE)
            .seal(session.as_bytes(), &aad(self.token, "session"))
    }

    fn open_session(&self, sealed: &[u8]) -> Option<String> {
        Sealer::new(self.storage_key, SESSION_PURPOSE)
            .open(sealed, &aad(self.token, "session"))
            .ok()
            .and_then(|s| String::from_utf8(s).ok())
    }
}

/// The cached Device Assignment session of a slot, if any (sessions live minutes; a
/// stale one costs one 401 and a new session).
pub async fn load_session<B: Backend>(
    store: &Store<B>,
    sealer: &SlotSealer<'_>,
) -> Result<Option<String>, KvError> {
    Ok(SealedSession::load(store, sealer.token)
        .await?
        .and_then(|sealed| sealer.open_session(&sealed.0)))
}

pub async fn save_session<B: Backend>(
    store: &Store<B>,
    sealer: &SlotSealer<'_>,
    session: Option<&str>,
) -> Result<(), KvError> {
    match session {
        Some(s) => {
            SealedSession(sealer.seal_session(s))
                .save(store, sealer.token)
                .await
        }
        None => SealedSession::delete(store, sealer.token).await,
    }
}

/// The slot's OAuth credentials, when a token was uploaded.
pub fn credentials(
    record: &TokenRecord,
    storage_key: &Secret,
) -> Result<Option<DepCredentials>, Unsealable> {
    let sealer = SlotSealer {
        storage_key,
        token: record.id,
    };
    record
        .sealed_secrets
        .as_deref()
        .map(|s| sealer.open_secrets(s))
        .transpose()
}

/// Apple's device endpoints through our client, as the sync engine wants them, with
/// auto-assignment of new devices when the token has rules or a default profile.
pub struct DepFeed<'a, H: HttpClient, C: Clock, B: Backend> {
    pub client: DepClient<'a, H, C>,
    clock: &'a C,
    pub auto: Option<super::assign::AutoAssign<'a, B>>,
    /// Errors as they happened (the engine maps them; the verdict is kept on the slot).
    pub last_error: Option<DepError>,
}

impl<'a, H: HttpClient, C: Clock, B: Backend> DepFeed<'a, H, C, B> {
    pub fn new(
        client: DepClient<'a, H, C>,
        clock: &'a C,
        auto: Option<super::assign::AutoAssign<'a, B>>,
    ) -> Self {
        DepFeed {
            client,
            clock,
            auto,
            last_error: None,
        }
    }

    fn fail(&mut self, e: DepError) -> FeedError {
        let mapped = e.to_feed_error();
        self.last_error = Some(e);
        mapped
    }

    async fn arrived(&mut self, page: FeedPage) -> Result<FeedPage, FeedError> {
        if let Some(auto) = self.auto.as_mut() {
            auto.page(&mut self.client, &page.devices, self.clock.unix_seconds())
                .await
                .map_err(|e| FeedError::Other(format!("auto-assignment: {e}")))?;
        }
        Ok(page)
    }
}

impl<H: HttpClient, C: Clock, B: Backend> DeviceFeed for DepFeed<'_, H, C, B> {
    async fn fetch(&mut self, cursor: Option<&str>) -> Result<FeedPage, FeedError> {
        match self.client.fetch_devices(cursor, Some(PAGE_LIMIT)).await {
            Ok(page) => self.arrived(page.into_feed_page()).await,
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn sync(&mut self, cursor: &str) -> Result<FeedPage, FeedError> {
        match self.client.sync_devices(cursor, Some(PAGE_LIMIT)).await {
            Ok(page) => self.arrived(page.into_feed_page()).await,
            Err(e) => Err(self.fail(e)),
        }
    }
}

/// Why a sync could not start for a slot.
#[derive(Debug)]
pub enum SyncStartError {
    /// No server token has been uploaded into the slot yet.
    NoToken,
    Unsealable(Unsealable),
    Sync(super::sync_state::SyncError),
}

impl std::fmt::Display for SyncStartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncStartError::NoToken => f.write_str("no server token uploaded"),
            SyncStartError::Unsealable(u) => write!(f, "cannot open the slot's secrets: {}", u.0),
            SyncStartError::Sync(e) => e.fmt(f),
        }
    }
}

/// Runs (or resumes) `plan` for a slot against Apple, keeping the session cache and
/// the slot's verdict (terms not signed, token rejected) up to date.
pub async fn run_sync<P: crate::Platform>(
    p: &P,
    record: &TokenRecord,
    plan: super::sync_state::Plan,
    policy: &super::sync_state::Policy,
    storage_key: &Secret,
    base_url: &str,
) -> Result<super::sync::Report, SyncStartError> {
    let (client, session) = client_for(p, record, storage_key, base_url).await?;
    let auto = super::assign::AutoAssign::load(p.store(), record)
        .await
        .map_err(|e| SyncStartError::Sync(e.into()))?;
    let mut feed = DepFeed::new(client, p.clock(), auto);
    let report = super::sync::run(p.store(), p.clock(), record.id, &mut feed, plan, policy)
        .await
        .map_err(SyncStartError::Sync)?;
    finish(p, record.id, storage_key, &feed.client, session).await;
    let verdict = match (
        &report.outcome,
        feed.last_error.as_ref().map(DepError::to_feed_error),
    ) {
        (_, Some(FeedError::TermsNotSigned)) => Some(tokens::AppleVerdict::TermsNotSigned),
        (_, Some(FeedError::TokenRejected(_))) => Some(tokens::AppleVerdict::Rejected),
        (super::sync::Outcome::Completed, _) => Some(tokens::AppleVerdict::Ok),
        _ => None,
    };
    if let Some(v) = verdict.filter(|v| record.apple_verdict != Some(*v)) {
        let now = p.clock().unix_seconds();
        let _ = tokens::modify::<_, KvError>(p.store(), record.id, |r| {
            r.apple_verdict = Some(v);
            r.apple_verdict_at = Some(now);
            Ok(())
        })
        .await;
    }
    Ok(report)
}

/// The `dep_base_url` variable, or Apple's.
pub async fn base_url(vars: &impl crate::Variables) -> String {
    match vars.get(DEP_BASE_URL).await {
        Ok(Some(v)) if !v.trim().is_empty() => v.trim().trim_end_matches('/').to_owned(),
        _ => super::client::DEFAULT_BASE_URL.to_owned(),
    }
}

/// A client for the slot with its cached session; give it back to [`finish`] after use.
pub async fn client_for<'a, P: crate::Platform>(
    p: &'a P,
    record: &TokenRecord,
    storage_key: &Secret,
    base_url: &str,
) -> Result<(DepClient<'a, P::Http, P::Clock>, Option<String>), SyncStartError> {
    let creds = credentials(record, storage_key)
        .map_err(SyncStartError::Unsealable)?
        .ok_or(SyncStartError::NoToken)?;
    let sealer = SlotSealer {
        storage_key,
        token: record.id,
    };
    let session = load_session(p.store(), &sealer)
        .await
        .map_err(|e| SyncStartError::Sync(e.into()))?;
    Ok((
        DepClient::new(p.http(), p.clock(), base_url, creds).with_session(session.clone()),
        session,
    ))
}

/// Runs `op` with the slot's client ([`client_for`]), then keeps the session it ended
/// with ([`finish`]).
pub async fn with_client<P: crate::Platform, T>(
    p: &P,
    record: &TokenRecord,
    storage_key: &Secret,
    base_url: &str,
    op: impl AsyncFnOnce(&mut DepClient<'_, P::Http, P::Clock>) -> T,
) -> Result<T, SyncStartError> {
    let (mut client, before) = client_for(p, record, storage_key, base_url).await?;
    let r = op(&mut client).await;
    finish(p, record.id, storage_key, &client, before).await;
    Ok(r)
}

/// Keeps the session the client ended with; losing it only costs a new session next
/// time.
pub async fn finish<P: crate::Platform>(
    p: &P,
    token: TokenId,
    storage_key: &Secret,
    client: &DepClient<'_, P::Http, P::Clock>,
    session_before: Option<String>,
) {
    let now = client.session_token().map(str::to_owned);
    if now != session_before {
        let sealer = SlotSealer { storage_key, token };
        let _ = save_session(p.store(), &sealer, now.as_deref()).await;
    }
}

// The client's answers in the terms of the sync engine (kept here, in the adapter between
// the two, so that the client does not depend on the engine).
impl DepError {
    /// The same failure in the terms of the sync engine.
    pub fn to_feed_error(&self) -> FeedError {
        match self {
            DepError::Api {
                code: ApiError::ExhaustedCursor,
                ..
            } => FeedError::ExhaustedCursor,
            DepError::Api { code, .. } if code.is_cursor_error() => {
                FeedError::CursorRejected(code.as_str().into())
            }
            DepError::Api {
                code: ApiError::TermsNotSigned,
                ..
            } => FeedError::TermsNotSigned,
            DepError::Api {
                code: ApiError::AccessDenied | ApiError::Forbidden,
                ..
            }
            | DepError::Unauthorized { .. } => FeedError::TokenRejected(self.to_string()),
            DepError::RetryLater { after, .. } => FeedError::Throttled {
                retry_after: after.as_secs().max(1),
            },
            other => FeedError::Other(other.to_string()),
        }
    }
}

impl DevicePage {
    /// The page as the sync engine takes it.
    pub fn into_feed_page(self) -> FeedPage {
        FeedPage {
            devices: self.devices,
            cursor: self.cursor,
            more_to_follow: self.more_to_follow,
        }
    }
}

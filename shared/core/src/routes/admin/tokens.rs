//! Server token slots over the admin API: create (key pair + certificate to upload to
//! Apple Business/School Manager), download the public key, upload the `.p7m` Apple
//! returns, rotate the key, list/get/rename, delete, and ask for a sync.
//!
//! No answer ever carries a secret: private keys and OAuth secrets stay sealed in the
//! store, and the views below are built field by field.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use mdm_crypto::TokenFileError;

use super::dep::token_id;
use super::paging;
use crate::api::{self, ApiError, Params, Request, Response};
use crate::config::{self, Secret};
use crate::dep::apple::{self, SlotSealer, SyncStartError};
use crate::dep::client::DepClient;
use crate::dep::error::{ApiError as AppleCode, DepError};
use crate::dep::oauth::DepCredentials;
use crate::dep::sync::Outcome;
use crate::dep::sync_state::{self, ManualRefusal, Policy, SyncKind, SyncState};
use crate::dep::tokens::{self, AppleVerdict, KeyPair, TokenRecord};
use crate::dep::{TokenId, inventory};
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::{Clock, Platform};

/// Above this many devices a token is flagged (Apple's practical limit per server).
pub const DEVICE_WARNING: i64 = 200_000;
/// A `.p7m` is a few KiB; anything much larger is not one.
pub const MAX_TOKEN_FILE: usize = 64 * 1024;
/// The certificate only has to be valid when uploaded, but renewals decrypt with the
/// same key for years.
const CERT_VALIDITY: i64 = 5 * 365 * 86400;
/// A manual sync works this long inside the admin request, then continues in the
/// background (the scheduler resumes it).
const MANUAL_SYNC_BUDGET: u64 = 20;

fn ts(t: Option<u64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t as i64)))
}

async fn storage_key(p: &impl Platform) -> Result<Secret, ApiError> {
    config::storage_key(p.vars()).await
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError::internal(message)
}

/// The admin's view of a slot.
pub async fn view(p: &impl Platform, r: &TokenRecord) -> Result<Value, ApiError> {
    let now = p.clock().unix_seconds();
    let devices = inventory::live_count(p.store(), r.id).await?;
    let sync_state = sync_state::load(p.store(), r.id).await?.unwrap_or_default();
    let account = r.account.as_ref();
    let field = |k: &str| {
        account
            .and_then(|a| a.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let days_left = r
        .access_token_expiry
        .filter(|_| r.sealed_secrets.is_some())
        .map(|e| (e as i64 - now as i64).div_euclid(86400));
    Ok(json!({
        "id": r.id,
        "name": r.name,
        "status": r.status(now),
        "created_at": ts(Some(r.created_at)),
        "uploaded_at": ts(r.uploaded_at),
        "access_token_expiry": ts(r.access_token_expiry),
        "days_left": days_left,
        "apple_id": r.apple_id,
        "org_name": field("org_name"),
        "org_email": field("org_email"),
        "org_phone": field("org_phone"),
        "org_address": field("org_address"),
        "org_type": field("org_type"),
        "server_name": field("server_name"),
        "server_uuid": field("server_uuid"),
        "apple_verdict_at": ts(r.apple_verdict_at),
        "device_count": devices,
        "device_warning": (devices > DEVICE_WARNING).then(|| format!(
            "more than {DEVICE_WARNING} devices on one server token; split them across MDM servers in Apple Business Manager"
        )),
        "profile_count": r.profile_count,
        "default_profile": r.default_profile,
        "key_rotation_pending": r.staged_key.is_some(),
        "public_key_url": format!("/api/v1/tokens/{}/public-key", r.id),
        "last_full_sync_at": ts(sync_state.last_full_at),
        "last_delta_sync_at": ts(sync_state.last_delta_at),
        "last_sync_error": sync_state.last_error,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    apple_id: Option<String>,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::field("name", "1 to 100 printable characters"));
    }
    Ok(name.to_owned())
}

fn check_apple_id(id: Option<&str>) -> Result<Option<String>, ApiError> {
    match id.map(str::trim) {
        None | Some("") => Ok(None),
        Some(id) if id.len() <= 254 && id.contains('@') && !id.chars().any(char::is_whitespace) => {
            Ok(Some(id.to_owned()))
        }
        Some(_) => Err(ApiError::field(
            "apple_id",
            "the Managed Apple ID of the ABM/ASM administrator, e.g. admin@example.com",
        )),
    }
}

/// A fresh key pair and its self-signed certificate, private key sealed to the slot.
fn new_key_pair(storage_key: &Secret, token: TokenId, now: u64) -> Result<KeyPair, ApiError> {
    let key = mdm_crypto::KeyPair::generate().map_err(|e| internal(e.to_string()))?;
    let cert = mdm_crypto::self_signed_certificate(
        &key,
        &format!("mdm-server DEP token {token}"),
        now as i64 - 600,
        now as i64 + CERT_VALIDITY,
    )
    .map_err(|e| internal(e.to_string()))?;
    let der = key.to_pkcs8_der().map_err(|e| internal(e.to_string()))?;
    Ok(KeyPair {
        certificate: B64.encode(cert.der()),
        sealed_key: SlotSealer { storage_key, token }.seal_key(&der),
        created_at: now,
    })
}

pub async fn create(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let body: CreateBody = api::parse_json(req)?;
    let name = check_name(&body.name)?;
    let apple_id = check_apple_id(body.apple_id.as_deref())?;
    let storage_key = storage_key(p).await?;
    let Some(id) = tokens::allocate(p.store()).await? else {
        return Err(ApiError::conflict(format!(
            "this server already has {} token slots, the most it holds",
            tokens::MAX_TOKENS
        )));
    };
    let now = p.clock().unix_seconds();
    let key = new_key_pair(&storage_key, id, now)?;
    let mut record = TokenRecord::new(id, name, key, now);
    record.apple_id = apple_id;
    tokens::create(p.store(), &record).await?;
    let mut resp = api::json(StatusCode::CREATED, &view(p, &record).await?);
    if let Ok(v) = format!("/api/v1/tokens/{id}").parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

pub async fn list(p: &impl Platform) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    for r in tokens::list(p.store()).await? {
        out.push(view(p, &r).await?);
    }
    Ok(api::ok_json(&paging::answer(out, None, Map::new())))
}

async fn load(p: &impl Platform, params: &Params) -> Result<TokenRecord, ApiError> {
    let id = token_id(p, params).await?;
    tokens::load(p.store(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no token {id}")))
}

pub async fn get(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let r = load(p, params).await?;
    Ok(api::ok_json(&view(p, &r).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    apple_id: Option<String>,
}

pub async fn patch(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let id = token_id(p, params).await?;
    let body: PatchBody = api::parse_json(req)?;
    let name = body.name.as_deref().map(check_name).transpose()?;
    let apple_id = check_apple_id(body.apple_id.as_deref())?;
    let r = tokens::modify::<_, ApiError>(p.store(), id, |r| {
        if let Some(n) = &name {
            r.name = n.clone();
        }
        if body.apple_id.is_some() {
            r.apple_id = apple_id.clone();
        }
        Ok(())
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no token {id}")))?;
    Ok(api::ok_json(&view(p, &r).await?))
}

/// The certificate to upload in ABM/ASM: the staged one while a rotation is pending.
pub async fn public_key(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let r = load(p, params).await?;
    let kp = r.staged_key.as_ref().unwrap_or(&r.key);
    let der = B64
        .decode(&kp.certificate)
        .map_err(|_| internal("stored certificate is not base64"))?;
    let cert = mdm_crypto::Certificate::from_der(&der).map_err(|e| internal(e.to_string()))?;
    let mut resp = api::uncached(
        StatusCode::OK,
        "application/x-pem-file",
        cert.to_pem().into_bytes(),
    );
    if let Ok(v) = format!("attachment; filename=\"mdm-server-token-{}.pem\"", r.id).parse() {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Starts a key rotation: a new key pair waits beside the current one until a token
/// made for it is uploaded; the current key keeps working meanwhile.
pub async fn rotate_key(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let id = token_id(p, params).await?;
    let storage_key = storage_key(p).await?;
    let now = p.clock().unix_seconds();
    let staged = new_key_pair(&storage_key, id, now)?;
    let r = tokens::modify::<_, ApiError>(p.store(), id, |r| {
        r.staged_key = Some(staged.clone());
        Ok(())
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no token {id}")))?;
    Ok(api::ok_json(&view(p, &r).await?))
}

fn token_file_error(e: &TokenFileError) -> ApiError {
    let (code, detail) = match e {
        TokenFileError::WrongKey => (
            "wrong_key",
            "this server token was not made for this slot's public key: download the .pem of this slot, upload it to the MDM server in Apple Business Manager and download a new token".to_owned(),
        ),
        TokenFileError::NotSmime(m) | TokenFileError::NotCms(m) => (
            "not_a_server_token",
            format!("not an Apple server token (.p7m): {m}"),
        ),
        TokenFileError::UnsupportedAlgorithm(oid) => (
            "unsupported_algorithm",
            format!("the token uses an encryption algorithm we do not support ({oid})"),
        ),
        TokenFileError::Corrupt(m) => ("corrupt", format!("the token file is damaged: {m}")),
        TokenFileError::NoTokenJson | TokenFileError::BadTokenJson(_) => (
            "bad_token_content",
            format!("the token decrypted but its content is not a server token: {e}"),
        ),
    };
    ApiError::unprocessable(code, detail)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadJson {
    token: String,
    #[serde(default)]
    apple_id: Option<String>,
    #[serde(default)]
    force: bool,
}

/// Upload (or renew with) the `.p7m` Apple returned. Body: the file as is, or JSON
/// `{"token": "<file text or base64>", "apple_id": "...", "force": false}`. Query
/// parameters `apple_id` and `force` work with a raw body.
pub async fn upload(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let id = token_id(p, params).await?;
    if req.body().len() > MAX_TOKEN_FILE {
        return Err(ApiError::payload_too_large(MAX_TOKEN_FILE));
    }
    if req.body().iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty body: send the .p7m file Apple Business Manager gave you",
        ));
    }
    let query = api::query(req)?;
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (file, apple_id, force) = if is_json {
        let b: UploadJson = api::parse_json(req)?;
        (b.token.into_bytes(), b.apple_id.or(q("apple_id")), b.force)
    } else {
        let force = match q("force").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ApiError::field("force", "true or false")),
        };
        (req.body().clone(), q("apple_id"), force)
    };
    let apple_id = check_apple_id(apple_id.as_deref())?;
    let storage_key = storage_key(p).await?;
    let record = load(p, params).await?;
    let sealer = SlotSealer {
        storage_key: &storage_key,
        token: id,
    };

    // The staged key first: a token made for it completes a rotation.
    let mut opened = None;
    let mut first_error = None;
    for (staged, kp) in [
        (true, record.staged_key.as_ref()),
        (false, Some(&record.key)),
    ] {
        let Some(kp) = kp else { continue };
        let key = sealer
            .open_key(&kp.sealed_key)
            .map_err(|e| ApiError::misconfigured(format!("{}: was storage_key changed?", e.0)))?;
        let cert = B64
            .decode(&kp.certificate)
            .ok()
            .and_then(|d| mdm_crypto::Certificate::from_der(&d).ok())
            .ok_or_else(|| internal("stored certificate is unreadable"))?;
        match mdm_crypto::read_server_token(&file, &key, Some(&cert)) {
            Ok(secrets) => {
                opened = Some((staged, secrets));
                break;
            }
            Err(e) => {
                // A file that is not a token at all fails the same way for every key.
                let not_for_this_key = matches!(e, TokenFileError::WrongKey);
                if first_error.is_none() || !not_for_this_key {
                    first_error = Some(e);
                }
                if !not_for_this_key {
                    break;
                }
            }
        }
    }
    let Some((staged, secrets)) = opened else {
        return Err(token_file_error(
            &first_error.unwrap_or(TokenFileError::WrongKey),
        ));
    };
    let now = p.clock().unix_seconds();
    let expiry = parse_rfc3339(&secrets.access_token_expiry)
        .filter(|e| *e > 0)
        .map(|e| e as u64)
        .ok_or_else(|| {
            token_file_error(&TokenFileError::BadTokenJson(
                "access_token_expiry is not a date".into(),
            ))
        })?;
    if expiry <= now {
        return Err(ApiError::unprocessable(
            "expired",
            format!(
                "this server token expired on {}: download a new one from Apple Business Manager",
                format_rfc3339(expiry as i64)
            ),
        ));
    }
    let creds = DepCredentials {
        consumer_key: secrets.consumer_key.clone(),
        consumer_secret: secrets.consumer_secret.clone(),
        access_token: secrets.access_token.clone(),
        access_secret: secrets.access_secret.clone(),
    };
    let other_server = record
        .consumer_key
        .as_ref()
        .is_some_and(|ck| *ck != creds.consumer_key);
    if other_server && !force {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "different_server",
            "this token belongs to a different MDM server in Apple Business Manager than the one this slot holds; its devices and cursor would be replaced. Upload it to a new slot, or repeat with force=true",
        ));
    }

    // Ask Apple who we are: proves the secrets work and gives the organisation details.
    let base = apple::base_url(p.vars()).await;
    let mut client = DepClient::new(p.http(), p.clock(), &base, creds.clone());
    let (account, verdict) = match client.account().await {
        Ok(a) => (
            serde_json::to_value(&a)
                .ok()
                .and_then(|v| v.as_object().cloned()),
            AppleVerdict::Ok,
        ),
        Err(DepError::Api {
            code: AppleCode::TermsNotSigned,
            ..
        }) => (None, AppleVerdict::TermsNotSigned),
        Err(e @ (DepError::Unauthorized { .. } | DepError::Api { .. })) => {
            return Err(ApiError::unprocessable(
                "rejected_by_apple",
                format!(
                    "Apple refused this server token ({e}); it may have been replaced by a newer download or revoked"
                ),
            ));
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "apple_unreachable",
                format!(
                    "could not check the token with Apple's Device Assignment service: {e}; nothing was changed, try again"
                ),
            ));
        }
    };
    let sealed = sealer.seal_secrets(&creds);
    let session = client.session_token().map(str::to_owned);
    let updated = tokens::modify::<_, ApiError>(p.store(), id, |r| {
        if staged && let Some(k) = r.staged_key.take() {
            r.key = k;
        }
        r.sealed_secrets = Some(sealed.clone());
        r.consumer_key = Some(creds.consumer_key.clone());
        r.access_token_expiry = Some(expiry);
        r.uploaded_at = Some(now);
        if apple_id.is_some() {
            r.apple_id = apple_id.clone();
        }
        if account.is_some() {
            r.account = account.clone();
        }
        r.apple_verdict = Some(verdict);
        r.apple_verdict_at = Some(now);
        Ok(())
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no token {id}")))?;
    if other_server {
        // Another ABM server's cursor means nothing here: the next sync is full.
        sync_state::init(p.store(), id).await?;
    } else {
        // A new token: a sync that failed with the old one is tried again at once.
        sync_state::clear_backoff(p.store(), id)
            .await
            .map_err(|e| match e {
                sync_state::SyncError::Store(kv) => ApiError::store(kv),
                other => internal(other.to_string()),
            })?;
    }
    // New secrets: the old session belongs to the old token.
    let _ = apple::save_session(p.store(), &sealer, session.as_deref()).await;
    Ok(api::ok_json(&view(p, &updated).await?))
}

pub async fn delete(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let r = load(p, params).await?;
    let devices = inventory::live_count(p.store(), r.id).await?;
    let mut blockers = Vec::new();
    if devices > 0 {
        blockers.push(json!({ "what": "devices", "count": devices }));
    }
    if r.profile_count > 0 {
        blockers.push(json!({ "what": "profiles", "count": r.profile_count }));
    }
    if let Some(d) = &r.default_profile {
        blockers.push(json!({ "what": "default_profile", "profile": d }));
    }
    if !blockers.is_empty() {
        return Err(
            ApiError::conflict("the token still holds these; remove them first")
                .with_fact("blocked_by", blockers),
        );
    }
    tokens::remove(p.store(), r.id).await?;
    let mut resp = http::Response::new(Vec::new());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    #[serde(default)]
    kind: Option<SyncKind>,
}

/// A manual sync: at most one per 15 minutes (429 with `Retry-After` otherwise). It
/// works for a short while inside this request and then goes on in the background.
pub async fn sync_now(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let r = load(p, params).await?;
    let body: SyncBody = if req.body().iter().all(u8::is_ascii_whitespace) {
        SyncBody::default()
    } else {
        api::parse_json(req)?
    };
    if r.sealed_secrets.is_none() {
        return Err(ApiError::conflict(
            "upload the server token (.p7m) into this slot first",
        ));
    }
    let now = p.clock().unix_seconds();
    if r.access_token_expiry.is_some_and(|e| e <= now) {
        return Err(ApiError::conflict(
            "the server token has expired: upload a renewed one",
        ));
    }
    let policy = Policy::default();
    let state: SyncState = sync_state::load(p.store(), r.id).await?.unwrap_or_default();
    let plan = match state.manual_plan(body.kind.unwrap_or(SyncKind::Delta), now, &policy) {
        Ok(plan) => plan,
        Err(ManualRefusal::Running) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "sync_running",
                "a sync of this token is already running",
            ));
        }
        Err(ManualRefusal::TooSoon { next_allowed_at }) => {
            let wait = next_allowed_at.saturating_sub(now).max(1);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "a manual sync is allowed once every 15 minutes",
            )
            .with_fact("next_allowed_at", format_rfc3339(next_allowed_at as i64))
            .with_header(header::RETRY_AFTER, wait.to_string()));
        }
    };
    let storage_key = storage_key(p).await?;
    let base = apple::base_url(p.vars()).await;
    let short = Policy {
        slice: MANUAL_SYNC_BUDGET,
        ..policy
    };
    let report = apple::run_sync(p, &r, plan, &short, &storage_key, &base)
        .await
        .map_err(|e| match e {
            SyncStartError::Sync(sync_state::SyncError::Store(kv)) => ApiError::store(kv),
            other => internal(other.to_string()),
        })?;
    let state = sync_state::load(p.store(), r.id).await?.unwrap_or_default();
    let status = match report.outcome {
        Outcome::Completed | Outcome::Failed(_) | Outcome::TimedOut => StatusCode::OK,
        Outcome::Paused | Outcome::Throttled { .. } | Outcome::Busy => StatusCode::ACCEPTED,
    };
    Ok(api::json(
        status,
        &json!({
            "outcome": match &report.outcome {
                Outcome::Completed => "completed".to_owned(),
                Outcome::Paused => "continuing".to_owned(),
                Outcome::Throttled { .. } => "throttled".to_owned(),
                Outcome::Busy => "busy".to_owned(),
                Outcome::Failed(m) => format!("failed: {m}"),
                Outcome::TimedOut => "timed_out".to_owned(),
            },
            "kind": report.kind,
            "add_only": plan.add_only,
            "sync": super::dep::sync_view(&state, p.clock().unix_seconds(), &policy),
        }),
    ))
}

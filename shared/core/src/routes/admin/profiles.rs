//! The DEP profiles of a token over the admin API: list, read, create, edit, delete.
//!
//! Apple profiles are immutable: saving an edited profile defines a new one with Apple
//! and moves the devices that carried the old definition onto it. Which devices get which
//! profile (by hand, by default, by rule) is [`super::profile_assignment`]'s.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::dep::token_id;
use super::paging;
use crate::api::{self, ApiError, Params, Request, Response};
use crate::config::{self, SERVER_URL, Secret};
use crate::dep::TokenId;
use crate::dep::apple::{self, SyncStartError};
use crate::dep::assign::{self, Summary};
use crate::dep::client::DepClient;
use crate::dep::error::DepError;
use crate::dep::inventory_list::{self, Assignment};
use crate::dep::profile_store::{self as store_, ProfileRecord};
use crate::dep::profiles::{ProfileSpec, changes_needing_reset};
use crate::dep::tokens::{self, TokenRecord};
use crate::time::format_rfc3339;
use crate::{Clock, Platform};

/// Our enrollment endpoints, from `server_url`; the admin never types them.
pub async fn enrollment_urls(p: &impl Platform) -> Result<(String, String), ApiError> {
    let base = config::required(p.vars(), SERVER_URL).await?;
    let base = base.trim().trim_end_matches('/');
    Ok((
        format!("{base}/mdm/enroll/ade"),
        format!("{base}/mdm/enroll/web"),
    ))
}

fn view(r: &ProfileRecord, default: Option<u64>) -> Value {
    json!({
        "id": r.id,
        "token": r.token,
        "apple_uuid": r.apple_uuid,
        "previous_apple_uuids": r.previous_uuids,
        "is_default": default == Some(r.id),
        "created_at": format_rfc3339(r.created_at as i64),
        "updated_at": format_rfc3339(r.updated_at as i64),
        "settings": r.spec,
    })
}

pub(super) fn default_of(t: &TokenRecord) -> Option<u64> {
    t.default_profile.as_deref().and_then(|d| d.parse().ok())
}

pub(super) async fn token(p: &impl Platform, params: &Params) -> Result<TokenRecord, ApiError> {
    let id = token_id(p, params).await?;
    tokens::load(p.store(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no token {id}")))
}

pub(super) async fn profile(
    p: &impl Platform,
    t: TokenId,
    params: &Params,
) -> Result<ProfileRecord, ApiError> {
    let raw = params.get("profile").unwrap_or_default();
    let id = raw.parse::<u64>().ok().filter(|n| *n > 0);
    match id {
        Some(id) => store_::load(p.store(), t, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no profile {raw:?} in token {t}"))),
        None => Err(ApiError::not_found(format!("no profile {raw:?}"))),
    }
}

fn apple_error(e: &DepError) -> ApiError {
    match e {
        DepError::Api { .. } | DepError::Unauthorized { .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "apple_refused",
            format!("Apple's Device Assignment service refused the request: {e}"),
        ),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "apple_unreachable",
            format!("could not reach Apple's Device Assignment service: {e}; nothing was changed"),
        ),
    }
}

fn start_error(e: SyncStartError) -> ApiError {
    match e {
        SyncStartError::NoToken => {
            ApiError::conflict("upload the server token (.p7m) into this slot first")
        }
        SyncStartError::Sync(crate::dep::sync_state::SyncError::Store(kv)) => ApiError::store(kv),
        other => ApiError::internal(other.to_string()),
    }
}

pub(super) struct Ctx {
    pub(super) storage_key: Secret,
    pub(super) base: String,
}

pub(super) async fn ctx(p: &impl Platform) -> Result<Ctx, ApiError> {
    Ok(Ctx {
        storage_key: config::storage_key(p.vars()).await?,
        base: apple::base_url(p.vars()).await,
    })
}

/// Runs `op` with the token's Apple client ([`apple::with_client`]).
async fn with_apple<P: Platform, T>(
    p: &P,
    t: &TokenRecord,
    c: &Ctx,
    op: impl AsyncFnOnce(&mut DepClient<'_, P::Http, P::Clock>) -> T,
) -> Result<T, ApiError> {
    apple::with_client(p, t, &c.storage_key, &c.base, op)
        .await
        .map_err(start_error)
}

/// Assigns profile `r` to `serials` with Apple ([`assign::assign`]).
pub(super) async fn assign_with_apple(
    p: &impl Platform,
    t: &TokenRecord,
    c: &Ctx,
    r: &ProfileRecord,
    serials: &[String],
    now: u64,
) -> Result<Summary, ApiError> {
    Ok(with_apple(p, t, c, async |client| {
        assign::assign(p.store(), client, t.id, r.id, &r.apple_uuid, serials, now).await
    })
    .await??)
}

/// Removes the profile assignment of `serials` with Apple ([`assign::remove`]).
pub(super) async fn remove_with_apple(
    p: &impl Platform,
    t: &TokenRecord,
    c: &Ctx,
    serials: &[String],
    now: u64,
) -> Result<Summary, ApiError> {
    Ok(with_apple(p, t, c, async |client| {
        assign::remove(p.store(), client, t.id, serials, now).await
    })
    .await??)
}

fn parse_spec(req: &Request) -> Result<(ProfileSpec, Vec<String>), ApiError> {
    let spec: ProfileSpec = api::parse_json(req)?;
    match spec.validate() {
        Ok(notices) => Ok((spec, notices.0)),
        Err(errors) => Err(ApiError::invalid(errors)),
    }
}

/// Defines `spec` with Apple, returning its new UUID.
async fn define<P: Platform>(
    p: &P,
    t: &TokenRecord,
    c: &Ctx,
    spec: &ProfileSpec,
) -> Result<String, ApiError> {
    let (enroll, web) = enrollment_urls(p).await?;
    let profile = spec.apple_profile(&enroll, &web);
    let r = with_apple(p, t, c, async |client| {
        client.define_profile(&profile).await
    })
    .await?;
    r.map(|d| d.profile_uuid).map_err(|e| apple_error(&e))
}

pub async fn list(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    let d = default_of(&t);
    let all: Vec<Value> = store_::list(p.store(), t.id)
        .await?
        .iter()
        .map(|r| view(r, d))
        .collect();
    Ok(api::ok_json(&paging::answer(all, None, Map::new())))
}

pub async fn get(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    let r = profile(p, t.id, params).await?;
    Ok(api::ok_json(&view(&r, default_of(&t))))
}

pub async fn create(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    let (spec, notices) = parse_spec(req)?;
    let c = ctx(p).await?;
    let Some(id) = store_::allocate(p.store(), t.id).await? else {
        return Err(ApiError::conflict(format!(
            "token {} already has {} profiles, the most it holds",
            t.id,
            store_::MAX_PROFILES
        )));
    };
    let uuid = match define(p, &t, &c, &spec).await {
        Ok(u) => u,
        Err(e) => {
            store_::release(p.store(), t.id).await?;
            return Err(e);
        }
    };
    let now = p.clock().unix_seconds();
    let r = ProfileRecord {
        id,
        token: t.id,
        spec,
        apple_uuid: uuid,
        previous_uuids: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    store_::save(p.store(), &r).await?;
    sync_profile_count(p, t.id).await?;
    let mut body = view(&r, default_of(&t));
    body["notices"] = json!(notices);
    Ok(api::json(StatusCode::CREATED, &body))
}

async fn sync_profile_count(p: &impl Platform, t: TokenId) -> Result<(), ApiError> {
    let n = store_::count(p.store(), t).await? as u64;
    tokens::modify::<_, ApiError>(p.store(), t, |r| {
        r.profile_count = n;
        Ok(())
    })
    .await?;
    Ok(())
}

/// Serials of the token's devices that carry any definition of profile `r`.
async fn devices_with(
    p: &impl Platform,
    t: TokenId,
    uuids: &[String],
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for uuid in uuids {
        out.extend(
            inventory_list::select(p.store(), t, Assignment::Profile(uuid.clone()))
                .await?
                .into_iter()
                .map(|d| d.serial_number),
        );
    }
    Ok(out)
}

pub async fn update(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    let old = profile(p, t.id, params).await?;
    let (spec, notices) = parse_spec(req)?;
    let c = ctx(p).await?;
    let now = p.clock().unix_seconds();
    let reset_needed = changes_needing_reset(&old.spec, &spec);
    let mut r = old.clone();
    r.spec = spec;
    r.updated_at = now;
    let mut moved = Summary::default();
    // Only what Apple sees needs a new definition.
    let (enroll, web) = enrollment_urls(p).await?;
    if old.spec.apple_profile(&enroll, &web) != r.spec.apple_profile(&enroll, &web) {
        let uuid = define(p, &t, &c, &r.spec).await?;
        r.previous_uuids
            .push(std::mem::replace(&mut r.apple_uuid, uuid));
        store_::save(p.store(), &r).await?;
        let mut all = vec![r.previous_uuids.last().cloned().unwrap_or_default()];
        all.dedup();
        let serials = devices_with(p, t.id, &all).await?;
        if !serials.is_empty() {
            moved = assign_with_apple(p, &t, &c, &r, &serials, now).await?;
        }
    } else {
        store_::save(p.store(), &r).await?;
    }
    let mut body = view(&r, default_of(&t));
    body["notices"] = json!(notices);
    body["reassigned"] = serde_json::to_value(&moved).unwrap_or_default();
    body["effective_after_reset"] = json!(reset_needed);
    Ok(api::ok_json(&body))
}

pub async fn delete(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    let r = profile(p, t.id, params).await?;
    let q = api::query(req)?;
    let unassign = match q
        .iter()
        .find(|(k, _)| k == "unassign")
        .map(|(_, v)| v.as_str())
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::field("unassign", "true or false")),
    };
    if default_of(&t) == Some(r.id) {
        return Err(ApiError::conflict(
            "this profile is the token's default profile; choose another default first",
        )
        .with_fact("blocked_by", json!([{ "what": "default_profile" }])));
    }
    let mut uuids = r.previous_uuids.clone();
    uuids.push(r.apple_uuid.clone());
    let serials = devices_with(p, t.id, &uuids).await?;
    let mut removed = Summary::default();
    if !serials.is_empty() {
        if !unassign {
            return Err(ApiError::conflict(
                "devices are assigned to this profile; repeat with unassign=true to remove their assignment",
            )
            .with_fact("blocked_by", json!([{ "what": "devices", "count": serials.len() }])));
        }
        let c = ctx(p).await?;
        let now = p.clock().unix_seconds();
        removed = remove_with_apple(p, &t, &c, &serials, now).await?;
        if removed.stopped.is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "apple_unreachable",
                "not every device could be unassigned; the profile is kept",
            )
            .with_fact("result", json!(removed)));
        }
    }
    store_::remove(p.store(), t.id, r.id).await?;
    sync_profile_count(p, t.id).await?;
    Ok(api::ok_json(
        &json!({ "deleted": r.id, "unassigned": removed }),
    ))
}

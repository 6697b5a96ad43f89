//! Enrollment profiles, assignment, the default profile and auto-assign rules of a
//! token over the admin API.
//!
//! Apple profiles are immutable: saving an edited profile defines a new one with Apple
//! and moves the devices that carried the old definition onto it.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::dep::token_id;
use crate::api::{self, ApiError, Params, Request, Response};
use crate::config::{self, SERVER_URL, Secret};
use crate::dep::apple::{self, SyncStartError};
use crate::dep::assign::{self, Summary};
use crate::dep::error::DepError;
use crate::dep::inventory_list::{self, Assignment, ListQuery};
use crate::dep::profile_store::{self as store_, MAX_RULES, ProfileRecord, Rule};
use crate::dep::profiles::ProfileSpec;
use crate::dep::tokens::{self, TokenRecord};
use crate::dep::{TokenId, inventory::DeviceRecord};
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

fn default_of(t: &TokenRecord) -> Option<u64> {
    t.default_profile.as_deref().and_then(|d| d.parse().ok())
}

async fn token(p: &impl Platform, params: &Params) -> Result<TokenRecord, ApiError> {
    let id = token_id(p, params).await?;
    tokens::load(p.store(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no token {id}")))
}

async fn profile(
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
            "apple refused",
            format!("Apple's Device Assignment service refused the request: {e}"),
        ),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "apple unreachable",
            format!("could not reach Apple's Device Assignment service: {e}; nothing was changed"),
        ),
    }
}

fn start_error(e: SyncStartError) -> ApiError {
    match e {
        SyncStartError::NoToken => {
            ApiError::conflict("upload the server token (.p7m) into this slot first")
        }
        SyncStartError::Sync(crate::dep::sync::SyncError::Store(kv)) => ApiError::store(kv),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            other.to_string(),
        ),
    }
}

struct Ctx {
    storage_key: Secret,
    base: String,
}

async fn ctx(p: &impl Platform) -> Result<Ctx, ApiError> {
    Ok(Ctx {
        storage_key: config::storage_key(p.vars()).await?,
        base: apple::base_url(p.vars()).await,
    })
}

fn parse_spec(req: &Request) -> Result<(ProfileSpec, Vec<String>), ApiError> {
    let spec: ProfileSpec = api::parse_json(req)?;
    match spec.validate() {
        Ok(notices) => Ok((spec, notices.0)),
        Err(errors) => Err(ApiError::unprocessable(
            serde_json::to_value(errors).unwrap_or(Value::Null),
        )),
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
    let (mut client, before) = apple::client_for(p, t, &c.storage_key, &c.base)
        .await
        .map_err(start_error)?;
    let r = client
        .define_profile(&spec.apple_profile(&enroll, &web))
        .await;
    apple::finish(p, t.id, &c.storage_key, &client, before).await;
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
    Ok(api::ok_json(&json!({ "profiles": all })))
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
            select(p, t, Assignment::Profile(uuid.clone()))
                .await?
                .into_iter()
                .map(|d| d.serial_number),
        );
    }
    Ok(out)
}

/// Every device of the token matching a filter (the whole inventory, page by page).
async fn select(
    p: &impl Platform,
    t: TokenId,
    a: Assignment,
) -> Result<Vec<DeviceRecord>, ApiError> {
    let mut out = Vec::new();
    let mut q = ListQuery {
        after: 0,
        limit: 1000,
        assignment: Some(a),
        serial_prefix: None,
        removed: Some(false),
    };
    loop {
        let page = inventory_list::list(p.store(), t, &q).await?;
        out.extend(page.devices);
        match page.next {
            Some(n) => q.after = n,
            None => return Ok(out),
        }
    }
}

/// Settings that only reach devices through Setup Assistant, i.e. after a reset.
fn changes_needing_reset(old: &ProfileSpec, new: &ProfileSpec) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = Vec::new();
    for k in a.keys().chain(b.keys()) {
        if a.get(k) != b.get(k)
            && !matches!(k.as_str(), "device_name_template" | "description" | "name")
            && !keys.contains(k)
        {
            keys.push(k.clone());
        }
    }
    keys
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
            let (mut client, before) = apple::client_for(p, &t, &c.storage_key, &c.base)
                .await
                .map_err(start_error)?;
            moved = assign::assign(
                p.store(),
                &mut client,
                t.id,
                r.id,
                &r.apple_uuid,
                &serials,
                now,
            )
            .await?;
            apple::finish(p, t.id, &c.storage_key, &client, before).await;
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
        Some(_) => return Err(ApiError::bad_request("unassign must be true or false")),
    };
    if default_of(&t) == Some(r.id) {
        return Err(ApiError::conflict(json!({
            "message": "this profile is the token's default profile; choose another default first",
            "blocked_by": [{ "what": "default_profile" }],
        })));
    }
    let mut uuids = r.previous_uuids.clone();
    uuids.push(r.apple_uuid.clone());
    let serials = devices_with(p, t.id, &uuids).await?;
    let mut removed = Summary::default();
    if !serials.is_empty() {
        if !unassign {
            return Err(ApiError::conflict(json!({
                "message": "devices are assigned to this profile; repeat with unassign=true to remove their assignment",
                "blocked_by": [{ "what": "devices", "count": serials.len() }],
            })));
        }
        let c = ctx(p).await?;
        let (mut client, before) = apple::client_for(p, &t, &c.storage_key, &c.base)
            .await
            .map_err(start_error)?;
        removed = assign::remove(
            p.store(),
            &mut client,
            t.id,
            &serials,
            p.clock().unix_seconds(),
        )
        .await?;
        apple::finish(p, t.id, &c.storage_key, &client, before).await;
        if removed.stopped.is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "apple unreachable",
                json!({ "message": "not every device could be unassigned; the profile is kept", "result": removed }),
            ));
        }
    }
    store_::remove(p.store(), t.id, r.id).await?;
    sync_profile_count(p, t.id).await?;
    Ok(api::ok_json(
        &json!({ "deleted": r.id, "unassigned": removed }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Selection {
    #[serde(default)]
    serials: Option<Vec<String>>,
    /// `unassigned`, `any`, or a profile id (its devices).
    #[serde(default)]
    filter: Option<Value>,
}

async fn selected(p: &impl Platform, t: TokenId, sel: Selection) -> Result<Vec<String>, ApiError> {
    match (sel.serials, sel.filter) {
        (Some(s), None) => {
            if s.is_empty() || s.len() > 200_000 {
                return Err(ApiError::unprocessable(
                    json!([{ "field": "serials", "problem": "1 to 200000 serial numbers" }]),
                ));
            }
            if let Some(bad) = s.iter().find(|s| {
                s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric())
            }) {
                return Err(ApiError::unprocessable(
                    json!([{ "field": "serials", "problem": format!("{bad:?} is not a serial number") }]),
                ));
            }
            let mut s = s;
            s.sort();
            s.dedup();
            Ok(s)
        }
        (None, Some(f)) => {
            let a = match &f {
                Value::String(s) if s == "unassigned" => Assignment::Unassigned,
                Value::String(s) if s == "any" => Assignment::Any,
                Value::Number(n) => {
                    let id = n.as_u64().unwrap_or(0);
                    let r = store_::load(p.store(), t, id).await?.ok_or_else(|| {
                        ApiError::unprocessable(
                            json!([{ "field": "filter", "problem": format!("no profile {id}") }]),
                        )
                    })?;
                    Assignment::Profile(r.apple_uuid)
                }
                _ => {
                    return Err(ApiError::unprocessable(
                        json!([{ "field": "filter", "problem": "\"unassigned\", \"any\" or a profile id" }]),
                    ));
                }
            };
            Ok(select(p, t, a)
                .await?
                .into_iter()
                .map(|d| d.serial_number)
                .collect())
        }
        _ => Err(ApiError::unprocessable(
            json!([{ "field": "serials", "problem": "give either serials or filter" }]),
        )),
    }
}

pub async fn assign(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    let r = profile(p, t.id, params).await?;
    let serials = selected(p, t.id, api::parse_json(req)?).await?;
    let c = ctx(p).await?;
    let (mut client, before) = apple::client_for(p, &t, &c.storage_key, &c.base)
        .await
        .map_err(start_error)?;
    let summary = assign::assign(
        p.store(),
        &mut client,
        t.id,
        r.id,
        &r.apple_uuid,
        &serials,
        p.clock().unix_seconds(),
    )
    .await?;
    apple::finish(p, t.id, &c.storage_key, &client, before).await;
    let status = if summary.stopped.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(api::json(
        status,
        &json!({ "profile": r.id, "devices": serials.len(), "result": summary }),
    ))
}

pub async fn unassign(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    let serials = selected(p, t.id, api::parse_json(req)?).await?;
    let c = ctx(p).await?;
    let (mut client, before) = apple::client_for(p, &t, &c.storage_key, &c.base)
        .await
        .map_err(start_error)?;
    let summary = assign::remove(
        p.store(),
        &mut client,
        t.id,
        &serials,
        p.clock().unix_seconds(),
    )
    .await?;
    apple::finish(p, t.id, &c.storage_key, &client, before).await;
    let status = if summary.stopped.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(api::json(
        status,
        &json!({ "devices": serials.len(), "result": summary }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultBody {
    profile: Option<u64>,
}

pub async fn get_default(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    Ok(api::ok_json(&json!({ "profile": default_of(&t) })))
}

pub async fn set_default(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    let body: DefaultBody = api::parse_json(req)?;
    if let Some(id) = body.profile
        && store_::load(p.store(), t.id, id).await?.is_none()
    {
        return Err(ApiError::unprocessable(
            json!([{ "field": "profile", "problem": format!("no profile {id} in token {}", t.id) }]),
        ));
    }
    tokens::modify::<_, ApiError>(p.store(), t.id, |r| {
        r.default_profile = body.profile.map(|p| p.to_string());
        Ok(())
    })
    .await?;
    Ok(api::ok_json(&json!({ "profile": body.profile })))
}

async fn check_rules(p: &impl Platform, t: TokenId, rules: &[Rule]) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    if rules.len() > MAX_RULES {
        problems.push(json!({ "field": "rules", "problem": format!("at most {MAX_RULES} rules") }));
    }
    for (i, r) in rules.iter().enumerate() {
        if r.matches.is_empty() {
            problems.push(json!({ "field": format!("rules[{i}].match"), "problem": "a rule must match on something" }));
        }
        if store_::load(p.store(), t, r.profile).await?.is_none() {
            problems.push(json!({ "field": format!("rules[{i}].profile"), "problem": format!("no profile {}", r.profile) }));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(Value::Array(problems)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesBody {
    rules: Vec<Rule>,
}

pub async fn get_rules(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    Ok(api::ok_json(
        &json!({ "rules": store_::load_rules(p.store(), t.id).await? }),
    ))
}

pub async fn set_rules(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    let body: RulesBody = api::parse_json(req)?;
    check_rules(p, t.id, &body.rules).await?;
    store_::save_rules(p.store(), t.id, &body.rules).await?;
    Ok(api::ok_json(&json!({ "rules": body.rules })))
}

/// Which devices a rule set (the stored one, or one given) would move, without moving
/// any: each device's current profile and the one the rules choose.
pub async fn dry_run(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let t = token(p, params).await?;
    let rules = if req.body().iter().all(u8::is_ascii_whitespace) {
        store_::load_rules(p.store(), t.id).await?
    } else {
        let body: RulesBody = api::parse_json(req)?;
        check_rules(p, t.id, &body.rules).await?;
        body.rules
    };
    let default = default_of(&t);
    let profiles = store_::list(p.store(), t.id).await?;
    let ours = |uuid: Option<&str>| {
        uuid.and_then(|u| {
            profiles
                .iter()
                .find(|r| r.apple_uuid == u || r.previous_uuids.iter().any(|x| x == u))
        })
        .map(|r| r.id)
    };
    let mut moves = Vec::new();
    let mut unchanged = 0u64;
    for d in select(p, t.id, Assignment::Any)
        .await?
        .into_iter()
        .chain(select(p, t.id, Assignment::Unassigned).await?)
    {
        let current =
            ours(d.profile_uuid()).filter(|_| !matches!(d.profile_status(), "empty" | "removed"));
        match store_::choose_for(&rules, default, &d) {
            Some((target, rule)) if Some(target) != current => moves.push(json!({
                "serial_number": d.serial_number,
                "from": current,
                "to": target,
                "rule": rule,
            })),
            _ => unchanged += 1,
        }
    }
    Ok(api::ok_json(
        &json!({ "moves": moves, "unchanged": unchanged }),
    ))
}

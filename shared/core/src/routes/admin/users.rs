//! Local user accounts over the admin API (`/api/v1/users`): the people who sign in
//! during web enrollment. Passwords are write-only: set with POST or PATCH, never
//! returned, not even as a hash (see [`crate::users`]).

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::paging;
use crate::api::{self, ApiError, Params, Request, Response};
use crate::time::format_rfc3339;
use std::collections::BTreeMap;

use crate::groups::Group;
use crate::user_input::{NewUser, UserPatch};
use crate::users::{self, UserError, UserRecord};
use crate::{Clock, Platform};

fn ts(t: Option<u64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t as i64)))
}

/// A user as the API shows it. `full`: the user's own record shows the Managed Apple ID
/// whole; lists mask it (privacy: a list is seen by more eyes, and exported).
fn view(r: &UserRecord, groups: &BTreeMap<String, Group>, full: bool) -> Value {
    let v = r.view();
    let (etype, decided_by) = crate::groups::effective(groups, &v.groups);
    let maid = v.managed_apple_id.as_deref().map(|m| {
        if full {
            m.to_owned()
        } else {
            crate::groups::mask_managed_apple_id(m)
        }
    });
    json!({
        "username": v.username,
        "name": v.name,
        "email": v.email,
        "managed_apple_id": maid,
        "groups": v.groups,
        "enrollment_type": etype,
        "enrollment_type_group": decided_by,
        "disabled": v.disabled,
        "has_password": v.has_password,
        "created_at": ts(Some(v.created_at)),
        "updated_at": ts(Some(v.updated_at)),
        "password_changed_at": ts(v.password_changed_at),
        "last_sign_in_at": ts(v.last_sign_in_at),
    })
}

fn error(e: UserError, who: &str) -> ApiError {
    match e {
        UserError::Invalid(fields) => ApiError::invalid(fields),
        UserError::Conflict(d) => ApiError::conflict(d),
        UserError::NotFound => ApiError::not_found(format!("no user {who:?}")),
        UserError::Full => ApiError::conflict(format!(
            "this server already has {} users, the most it holds",
            users::MAX_USERS
        )),
        UserError::Store(e) => ApiError::store(e),
    }
}

/// 422 naming every group that does not exist.
fn known_groups(groups: &BTreeMap<String, Group>, ids: &[String]) -> Result<(), ApiError> {
    let unknown: Vec<_> = crate::groups::unknown(groups, ids)
        .into_iter()
        .filter(|e| crate::groups::id_is_valid(ids[field_index(&e.field)].as_str()))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(unknown))
    }
}

fn field_index(f: &str) -> usize {
    f.trim_start_matches("groups[")
        .trim_end_matches(']')
        .parse()
        .unwrap_or(0)
}

fn who(params: &Params) -> &str {
    params.get("user").unwrap_or_default()
}

/// `POST /api/v1/users`
pub async fn create(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let new: NewUser = api::parse_json(req)?;
    let name = new.username.clone();
    let groups = crate::groups::all(p.store()).await?;
    known_groups(&groups, &new.groups)?;
    let now = p.clock().unix_seconds();
    let r = users::create(p.store(), new, now)
        .await
        .map_err(|e| error(e, &name))?;
    Ok(api::json(StatusCode::CREATED, &view(&r, &groups, true)))
}

/// `GET /api/v1/users`
pub async fn list(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let page = paging::query(req, |_, _, _| false)?;
    let found = users::list(p.store(), page.cursor.unwrap_or(0), page.limit).await?;
    let groups = crate::groups::all(p.store()).await?;
    Ok(api::ok_json(&paging::answer(
        found
            .users
            .iter()
            .map(|u| view(u, &groups, false))
            .collect(),
        found.next,
        Map::new(),
    )))
}

/// `GET /api/v1/users/{user}`
pub async fn get(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    match users::get(p.store(), who(params)).await? {
        Some(r) => {
            let groups = crate::groups::all(p.store()).await?;
            Ok(api::ok_json(&view(&r, &groups, true)))
        }
        None => Err(error(UserError::NotFound, who(params))),
    }
}

/// `PATCH /api/v1/users/{user}`
pub async fn patch(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let patch: UserPatch = api::parse_json(req)?;
    let groups = crate::groups::all(p.store()).await?;
    if let Some(g) = &patch.groups {
        known_groups(&groups, g)?;
    }
    let now = p.clock().unix_seconds();
    let r = users::update(p.store(), who(params), patch, now)
        .await
        .map_err(|e| error(e, who(params)))?;
    Ok(api::ok_json(&view(&r, &groups, true)))
}

/// `DELETE /api/v1/users/{user}`
pub async fn delete(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let now = p.clock().unix_seconds();
    users::delete(p.store(), who(params), now)
        .await
        .map_err(|e| error(e, who(params)))?;
    let mut resp = http::Response::new(Vec::new());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

fn group_error(e: crate::groups::GroupError, id: &str) -> ApiError {
    use crate::groups::GroupError;
    match e {
        GroupError::Invalid(fields) => ApiError::invalid(fields),
        GroupError::NotFound => ApiError::not_found(format!("no group {id:?}")),
        GroupError::Conflict(d) => ApiError::conflict(d),
        GroupError::Store(e) => ApiError::store(e),
    }
}

fn group_view(g: &Group) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "enrollment_type": g.enrollment_type,
        "priority": g.priority,
        "created_at": ts(Some(g.created_at)),
        "updated_at": ts(Some(g.updated_at)),
    })
}

/// `GET /api/v1/groups`: every group (at most [`crate::groups::MAX_GROUPS`]), lowest
/// priority number first, as one page.
pub async fn list_groups(p: &impl Platform) -> Result<Response, ApiError> {
    let mut all: Vec<Group> = crate::groups::all(p.store()).await?.into_values().collect();
    all.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    Ok(api::ok_json(&paging::answer(
        all.iter().map(group_view).collect(),
        None,
        Map::new(),
    )))
}

/// `POST /api/v1/groups`
pub async fn create_group(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let new: crate::groups::NewGroup = api::parse_json(req)?;
    let id = new.id.clone();
    let now = p.clock().unix_seconds();
    let g = crate::groups::create(p.store(), new, now)
        .await
        .map_err(|e| group_error(e, &id))?;
    Ok(api::json(StatusCode::CREATED, &group_view(&g)))
}

/// `GET /api/v1/groups/{group}`
pub async fn get_group(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let id = params.get("group").unwrap_or_default();
    match crate::groups::all(p.store()).await?.get(id) {
        Some(g) => Ok(api::ok_json(&group_view(g))),
        None => Err(group_error(crate::groups::GroupError::NotFound, id)),
    }
}

/// `PATCH /api/v1/groups/{group}`
pub async fn patch_group(
    p: &impl Platform,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let id = params.get("group").unwrap_or_default();
    let patch: crate::groups::GroupPatch = api::parse_json(req)?;
    let now = p.clock().unix_seconds();
    let g = crate::groups::update(p.store(), id, patch, now)
        .await
        .map_err(|e| group_error(e, id))?;
    Ok(api::ok_json(&group_view(&g)))
}

/// `DELETE /api/v1/groups/{group}`
pub async fn delete_group(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    let id = params.get("group").unwrap_or_default();
    crate::groups::delete(p.store(), id)
        .await
        .map_err(|e| group_error(e, id))?;
    let mut resp = http::Response::new(Vec::new());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

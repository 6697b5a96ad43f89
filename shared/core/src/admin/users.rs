//! Local user accounts over the admin API (`/api/v1/users`): the people who sign in
//! during web enrollment. Passwords are write-only: set with POST or PATCH, never
//! returned, not even as a hash (see [`crate::users`]).

use http::StatusCode;
use serde_json::{Value, json};

use crate::api::{self, ApiError, Params, Request, Response};
use crate::time::format_rfc3339;
use crate::users::{self, NewUser, UserError, UserPatch, UserRecord};
use crate::{Clock, Platform};

pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

fn ts(t: Option<u64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t as i64)))
}

fn view(r: &UserRecord) -> Value {
    let v = r.view();
    json!({
        "username": v.username,
        "name": v.name,
        "email": v.email,
        "managed_apple_id": v.managed_apple_id,
        "groups": v.groups,
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
        UserError::Invalid(fields) => {
            ApiError::unprocessable(serde_json::to_value(fields).unwrap_or(Value::Null))
        }
        UserError::Conflict(d) => ApiError::conflict(d),
        UserError::NotFound => ApiError::not_found(format!("no user {who:?}")),
        UserError::Full => ApiError::conflict(format!(
            "this server already has {} users, the most it holds",
            users::MAX_USERS
        )),
        UserError::Store(e) => ApiError::store(e),
    }
}

fn who(params: &Params) -> &str {
    params.get("user").unwrap_or_default()
}

/// `POST /api/v1/users`
pub async fn create(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let new: NewUser = api::parse_json(req)?;
    let name = new.username.clone();
    let now = p.clock().unix_seconds();
    let r = users::create(p.store(), new, now)
        .await
        .map_err(|e| error(e, &name))?;
    Ok(api::json(StatusCode::CREATED, &view(&r)))
}

/// `GET /api/v1/users`
pub async fn list(p: &impl Platform, req: &Request) -> Result<Response, ApiError> {
    let mut limit = DEFAULT_PAGE;
    let mut after = 0;
    let mut bad = Vec::new();
    for (k, v) in api::query(req)? {
        match k.as_str() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => limit = n,
                _ => bad.push(
                    json!({ "field": "limit", "rule": format!("an integer from 1 to {MAX_PAGE}") }),
                ),
            },
            "after" => match v.parse::<u64>() {
                Ok(n) => after = n,
                Err(_) => bad.push(
                    json!({ "field": "after", "rule": "the `next` value of the previous page" }),
                ),
            },
            other => bad.push(json!({ "field": other, "rule": "unknown query parameter" })),
        }
    }
    if !bad.is_empty() {
        return Err(ApiError::unprocessable(Value::Array(bad)));
    }
    let page = users::list(p.store(), after, limit).await?;
    Ok(api::ok_json(&json!({
        "users": page.users.iter().map(view).collect::<Vec<_>>(),
        "next": page.next.map(|n| n.to_string()),
    })))
}

/// `GET /api/v1/users/{user}`
pub async fn get(p: &impl Platform, params: &Params) -> Result<Response, ApiError> {
    match users::get(p.store(), who(params)).await? {
        Some(r) => Ok(api::ok_json(&view(&r))),
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
    let now = p.clock().unix_seconds();
    let r = users::update(p.store(), who(params), patch, now)
        .await
        .map_err(|e| error(e, who(params)))?;
    Ok(api::ok_json(&view(&r)))
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

//! Which devices get which DEP profile, over the admin API: assigning by hand (serials
//! or a filter) and removing assignments with Apple, the token's default profile, and the
//! auto-assign rules with their dry run.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::profiles::{assign_with_apple, ctx, default_of, profile, remove_with_apple, token};
use crate::api::{self, ApiError, FieldError, Params, Request, Response};
use crate::dep::TokenId;
use crate::dep::assign::Summary;
use crate::dep::inventory_list::{self, Assignment};
use crate::dep::profile_store::{self as store_, MAX_RULES, Rule};
use crate::dep::tokens;
use crate::{Clock, Platform};

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
                return Err(ApiError::field("serials", "1 to 200000 serial numbers"));
            }
            if let Some(bad) = s.iter().find(|s| {
                s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric())
            }) {
                return Err(ApiError::field(
                    "serials",
                    format!("{bad:?} is not a serial number (1 to 64 letters and digits)"),
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
                    let r = store_::load(p.store(), t, id)
                        .await?
                        .ok_or_else(|| ApiError::field("filter", format!("no profile {id}")))?;
                    Assignment::Profile(r.apple_uuid)
                }
                _ => {
                    return Err(ApiError::field(
                        "filter",
                        "\"unassigned\", \"any\" or a profile id",
                    ));
                }
            };
            Ok(inventory_list::select(p.store(), t, a)
                .await?
                .into_iter()
                .map(|d| d.serial_number)
                .collect())
        }
        _ => Err(ApiError::field("serials", "give either serials or filter")),
    }
}

/// 202 when Apple stopped the run part way (the rest waits for a retry), else 200.
fn status_of(summary: &Summary) -> StatusCode {
    if summary.stopped.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
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
    let now = p.clock().unix_seconds();
    let summary = assign_with_apple(p, &t, &c, &r, &serials, now).await?;
    Ok(api::json(
        status_of(&summary),
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
    let now = p.clock().unix_seconds();
    let summary = remove_with_apple(p, &t, &c, &serials, now).await?;
    Ok(api::json(
        status_of(&summary),
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
        return Err(ApiError::field(
            "profile",
            format!("no profile {id} in token {}", t.id),
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
        problems.push(FieldError::new(
            "rules",
            format!("at most {MAX_RULES} rules"),
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        if r.matches.is_empty() {
            problems.push(FieldError::new(
                format!("rules[{i}].match"),
                "a rule must match on something",
            ));
        }
        if store_::load(p.store(), t, r.profile).await?.is_none() {
            problems.push(FieldError::new(
                format!("rules[{i}].profile"),
                format!("no profile {}", r.profile),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(problems))
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
    for d in inventory_list::select(p.store(), t.id, Assignment::Any)
        .await?
        .into_iter()
        .chain(inventory_list::select(p.store(), t.id, Assignment::Unassigned).await?)
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

//! Account-driven enrollment (Apple: "Onboarding users with account sign-in"): a person types their
//! Managed Apple ID on the device, which discovers us, makes them sign in on our page and
//! enrolls with the bearer token the page hands back. The result is a User Enrollment
//! (`mdm-byod`, EnrollmentMode `BYOD`: personal device, EnrollmentID only) or an
//! account-driven Device Enrollment (`mdm-adde`, EnrollmentMode `ADDE`), decided by
//! [`crate::mdm::enrollment_type::decide`] from the user's groups.
//!
//! 1. `GET /.well-known/com.apple.remotemanagement?user-identifier=<id>&model-family=<f>`:
//!    a live user with that Managed Apple ID gets `{"Servers":[{"Version","BaseURL"}]}`;
//!    anyone else Apple's 403 `com.apple.well-known.failed`.
//! 2. `POST <BaseURL>` (`/mdm/enroll/account/byod` or `/adde`) without a token: 401 with
//!    `WWW-Authenticate: Bearer method="apple-as-web", url="<sign-in page>"`.
//! 3. The sign-in page (`/mdm/enroll/account/signin`): a correct local sign-in redirects
//!    to `apple-remotemanagement-user-login://authentication-results?access-token=<t>`.
//! 4. The same POST with `Authorization: Bearer <t>`: the signed enrollment profile with
//!    EnrollmentMode and AssignedManagedAppleID, and a SCEP challenge bound to a random
//!    enrollment reference (no device identifier is known, or wanted, at this point).
//!    The later Authenticate (EnrollmentID for BYOD, UDID for ADDE) is admitted through the
//!    identity our SCEP issued for that reference ([`crate::mdm::enrollments`]).
//!
//! Re-enrollment keeps the type of the user's first account-driven enrollment even if
//! their groups changed since: a User Enrollment carries no device identifier, so the
//! person (not the device) is what a re-enrollment is recognised by.
//!
//! Tokens and enrollment references are deleted when they expire ([`crate::expiry`]).
//!
//! Key layout:
//! - `uetok:<h>`   [`AccessGrant`] for the access token whose SHA-256 hex is `h` (the
//!   token itself is never stored); valid [`TOKEN_TTL`] seconds
//! - `uetype:<u>`  the type (`"user"`/`"device"`) of user `u`'s first account-driven
//!   enrollment

use base64::Engine;
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use mdm_kv::key::segment;
use mdm_kv::{Backend, KvError, Store};

use super::pending::{self, PendingEnrollment, Via};
use super::web;
use super::{EnrollError, EnrollmentTarget, enrollment_profile};
use crate::api::{self, Request, Response};
use crate::command::table::OsFamily;
use crate::config::{self, SERVER_URL};
use crate::mdm::enrollment_type::{self, EnrollmentType, Facts, Path};
use crate::record::{Record, Stored};
use crate::user_sign_in::{self, SignInError};
use crate::users::{self, UserRecord};
use crate::{Clock, Platform};

pub const WELL_KNOWN: &str = "/.well-known/com.apple.remotemanagement";
pub const BYOD_PATH: &str = "/mdm/enroll/account/byod";
pub const ADDE_PATH: &str = "/mdm/enroll/account/adde";
pub const SIGNIN_PATH: &str = "/mdm/enroll/account/signin";
/// Where the sign-in page sends the browser with the token (Apple's scheme).
pub const LOGIN_CALLBACK: &str = "apple-remotemanagement-user-login://authentication-results";
/// Seconds an access token stays usable: the device posts it right after the sign-in.
pub const TOKEN_TTL: u64 = 15 * 60;

/// What an access token stands for: one user, one enrollment. The first enrollment POST
/// with the token makes the enrollment reference; a repeated POST (a device retrying) gets
/// a profile for the same reference; the enrollment's Authenticate consumes both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    pub username: String,
    pub issued_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl Record for AccessGrant {
    /// The access token itself; only its hash is in the key.
    type Id<'a> = &'a str;
    const NAME: &'static str = "access grant";
    const ATTEMPTS: usize = 10;
    fn key(token: &str) -> String {
        format!("uetok:{}", hex::encode(Sha256::digest(token.as_bytes())))
    }
}

/// The type of a user's first account-driven enrollment (`uetype:<u>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct FirstEnrollmentType(EnrollmentType);

impl Record for FirstEnrollmentType {
    /// The username.
    type Id<'a> = &'a str;
    const NAME: &'static str = "first enrollment type";
    fn key(username: &str) -> String {
        format!("uetype:{}", segment(username))
    }
}

/// The platform a discovery request's `model-family` names.
pub fn os_of_family(family: &str) -> Option<OsFamily> {
    match family {
        "iPhone" | "iPad" | "" => Some(OsFamily::Ios),
        "Mac" => Some(OsFamily::Macos),
        "RealityDevice" => Some(OsFamily::Visionos),
        "AppleTV" => Some(OsFamily::Tvos),
        "Watch" => Some(OsFamily::Watchos),
        _ => None,
    }
}

/// The OS a device running account-driven enrollment has at least (iOS 15, macOS 14,
/// visionOS 1.1): the flow does not exist before.
fn account_driven_minimum(os: OsFamily) -> &'static str {
    match os {
        OsFamily::Macos => "14.0",
        OsFamily::Visionos => "1.1",
        _ => "15.0",
    }
}

async fn first_type<B: Backend>(
    store: &Store<B>,
    username: &str,
) -> Result<Option<EnrollmentType>, KvError> {
    Ok(FirstEnrollmentType::load_valid(store, username)
        .await?
        .map(|t| t.0))
}

/// The enrollment type `user` gets on `os`.
pub async fn decide_for<B: Backend>(
    store: &Store<B>,
    user: &UserRecord,
    os: OsFamily,
) -> Result<EnrollmentType, KvError> {
    let groups = crate::groups::all(store).await?;
    let (setting, _) = crate::groups::effective(&groups, &user.groups);
    let facts = Facts {
        path: Path::AccountDriven,
        // Account-driven enrollment is for devices the organisation does not supervise.
        supervised: false,
        os,
        os_version: account_driven_minimum(os),
        user_setting: setting,
        has_managed_apple_id: user.managed_apple_id.is_some(),
        previous: first_type(store, &user.username).await?,
    };
    Ok(enrollment_type::decide(&facts))
}

fn well_known_failed(description: &str) -> Response {
    let body = json!({
        "code": "com.apple.well-known.failed",
        "description": description,
        "message": "This account cannot enroll devices with this organization.",
    });
    api::json(StatusCode::FORBIDDEN, &body)
}

fn query(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| web::parse_form(q.as_bytes()))
        .unwrap_or_default()
}

async fn base(p: &impl Platform) -> Result<String, EnrollError> {
    Ok(config::required(p.vars(), SERVER_URL)
        .await?
        .trim()
        .trim_end_matches('/')
        .to_owned())
}

/// `GET /.well-known/com.apple.remotemanagement`
pub async fn discover(p: &impl Platform, req: &Request) -> Response {
    let q = query(req);
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let id = get("user-identifier");
    let family = get("model-family");
    if id.is_empty() || id.len() > 254 {
        return well_known_failed("user-identifier missing or too long");
    }
    let Some(os) = os_of_family(&family) else {
        return well_known_failed("unknown model-family");
    };
    if matches!(os, OsFamily::Tvos | OsFamily::Watchos) {
        return well_known_failed(
            "account-driven enrollment is for iPhone, iPad, Mac and Vision Pro",
        );
    }
    let user = match users::by_managed_apple_id(p.store(), &id).await {
        Ok(Some(u)) if !u.disabled => u,
        Ok(_) => return well_known_failed("no enrollable user with this Managed Apple ID"),
        Err(e) => return EnrollError::from(e).into_response_for(req),
    };
    let kind = match decide_for(p.store(), &user, os).await {
        Ok(k) => k,
        Err(e) => return EnrollError::from(e).into_response_for(req),
    };
    let base = match base(p).await {
        Ok(b) => b,
        Err(e) => return e.into_response_for(req),
    };
    let (version, path) = match kind {
        EnrollmentType::User => ("mdm-byod", BYOD_PATH),
        EnrollmentType::Device => ("mdm-adde", ADDE_PATH),
    };
    api::json(
        StatusCode::OK,
        &json!({ "Servers": [{ "Version": version, "BaseURL": format!("{base}{path}") }] }),
    )
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// 401 asking the device to sign the user in on our page.
async fn challenge(p: &impl Platform, req: &Request) -> Response {
    let base = match base(p).await {
        Ok(b) => b,
        Err(e) => return e.into_response_for(req),
    };
    let mut resp = api::json(
        StatusCode::UNAUTHORIZED,
        &json!({ "code": "authentication.required", "description": "sign in on the page named in WWW-Authenticate" }),
    );
    let value = format!("Bearer method=\"apple-as-web\", url=\"{base}{SIGNIN_PATH}\"");
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// `POST /mdm/enroll/account/{byod|adde}`
pub async fn enroll(p: &impl Platform, req: &Request, mode: EnrollmentType) -> Response {
    if let Err(e) = super::bounded_body(req) {
        return e.into_response_for(req);
    }
    let Some(token) = bearer(req) else {
        return challenge(p, req).await;
    };
    match enroll_with(p, token, mode).await {
        Ok(Some(profile)) => super::profile_response(profile),
        // Unknown or expired token: sign in again.
        Ok(None) => challenge(p, req).await,
        Err(e) => e.into_response_for(req),
    }
}

async fn enroll_with(
    p: &impl Platform,
    token: &str,
    mode: EnrollmentType,
) -> Result<Option<Vec<u8>>, EnrollError> {
    let now = p.clock().unix_seconds();
    let Some(grant) = AccessGrant::load_valid(p.store(), token)
        .await?
        .filter(|g| now < g.issued_at.saturating_add(TOKEN_TTL))
    else {
        return Ok(None);
    };
    let user = users::get(p.store(), &grant.username)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| {
            EnrollError::new(
                StatusCode::FORBIDDEN,
                "user.unavailable",
                "the signed-in user no longer exists or is disabled",
            )
        })?;
    // The device's platform is not in the request; the flow's minimum OS holds for all.
    let decided = decide_for(p.store(), &user, OsFamily::Ios).await?;
    if decided != mode {
        return Err(EnrollError::new(
            StatusCode::FORBIDDEN,
            "enrollment.type_changed",
            format!(
                "this user now gets {} enrollment: start enrollment again from Settings",
                if decided == EnrollmentType::User {
                    "user"
                } else {
                    "device"
                }
            ),
        )
        .with_message("Enrollment settings changed. Start again from Settings."));
    }
    let maid = user.managed_apple_id.clone();
    if mode == EnrollmentType::User && maid.is_none() {
        return Err(EnrollError::new(
            StatusCode::FORBIDDEN,
            "user.no_managed_apple_id",
            "User Enrollment needs a Managed Apple ID on the user",
        ));
    }
    // A random reference stands for the device until its Authenticate; the token makes
    // one, and only one, whichever POST comes first.
    let reference = bind_reference(p, token, &grant, now).await?;
    let Some(reference) = reference else {
        return Ok(None);
    };
    let (purpose, enrollment_mode) = match mode {
        EnrollmentType::User => ("byod", "BYOD"),
        EnrollmentType::Device => ("adde", "ADDE"),
    };
    let target = EnrollmentTarget {
        udid: reference.clone(),
        serial: None,
        purpose: purpose.into(),
        user: Some(user.username.clone()),
        organization: None,
        removal_disallowed: false,
        enrollment_mode: Some(enrollment_mode.into()),
        assigned_managed_apple_id: maid,
    };
    let topic = enrollment_profile::push_topic(p).await?;
    let signed = enrollment_profile::build_signed_profile(p, &target).await?;
    let mut pend = PendingEnrollment::new(&reference, "", &topic, grant.issued_at);
    pend.via = Via::AccountDriven;
    pend.user = Some(user.username.clone());
    pend.grant = Some(AccessGrant::key(token));
    pending::put(p.store(), &pend).await?;
    crate::expiry::register(
        p.store(),
        &PendingEnrollment::key(&reference),
        now + pending::PENDING_TTL,
    )
    .await?;
    if first_type(p.store(), &user.username).await?.is_none() {
        FirstEnrollmentType(mode)
            .save(p.store(), &user.username)
            .await?;
    }
    Ok(Some(signed))
}

/// The enrollment reference the access token stands for: the one it made before, or a
/// new one bound to it by compare-and-swap (two POSTs at once agree on one). `None` when
/// the grant was consumed (or expired away) meanwhile.
async fn bind_reference(
    p: &impl Platform,
    token: &str,
    grant: &AccessGrant,
    now: u64,
) -> Result<Option<String>, EnrollError> {
    if let Some(r) = &grant.reference {
        return Ok(Some(r.clone()));
    }
    let fresh = crate::random::uuid_v4();
    let bound = AccessGrant::modify(p.store(), token, |g| {
        if g.reference.is_some() || now >= g.issued_at.saturating_add(TOKEN_TTL) {
            return Ok::<_, KvError>(false);
        }
        g.reference = Some(fresh.clone());
        Ok(true)
    })
    .await?;
    Ok(bound.and_then(|g| g.reference))
}

/// `GET /mdm/enroll/account/signin`
pub async fn signin_page(_p: &impl Platform, req: &Request) -> Response {
    let q = query(req);
    let hint = q
        .iter()
        .find(|(k, _)| k == "user-identifier")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    page(StatusCode::OK, hint, None)
}

/// `POST /mdm/enroll/account/signin` (form: username, password)
pub async fn signin(p: &impl Platform, req: &Request) -> Response {
    let body = match super::bounded_body(req) {
        Ok(b) => b,
        Err(e) => return e.into_response_for(req),
    };
    let form_fields = web::parse_form(body);
    let field = |name: &str| {
        form_fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let username = field("username").trim().to_owned();
    let now = p.clock().unix_seconds();
    // The Managed Apple ID the person typed on the device works as the user name too.
    let account = match users::by_managed_apple_id(p.store(), &username).await {
        Ok(Some(u)) => u.username,
        Ok(None) => username.clone(),
        Err(e) => return EnrollError::from(e).into_response_for(req),
    };
    let user = match user_sign_in::sign_in(p.store(), &account, field("password"), now).await {
        Ok(u) => u,
        Err(SignInError::Invalid) => {
            return page(
                StatusCode::OK,
                &username,
                Some("The user name or password is incorrect."),
            );
        }
        Err(SignInError::RateLimited { retry_after }) => {
            let mut resp = page(
                StatusCode::TOO_MANY_REQUESTS,
                &username,
                Some("Too many failed sign-ins. Wait a few minutes, then try again."),
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        Err(SignInError::Store(e)) => return EnrollError::from(e).into_response_for(req),
    };
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random::bytes(32));
    let grant = AccessGrant {
        username: user.username,
        issued_at: now,
        reference: None,
    };
    if let Err(e) = grant.save(p.store(), &token).await {
        return EnrollError::from(e).into_response_for(req);
    }
    let mut resp = http::Response::new(Vec::new());
    *resp.status_mut() = StatusCode::FOUND;
    let location = format!("{LOGIN_CALLBACK}?access-token={token}");
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("URL-safe token"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The sign-in page; its form may lead (by redirect) to Apple's callback scheme.
fn page(status: StatusCode, username: &str, error: Option<&str>) -> Response {
    let mut resp = web::html(status, &form(username, error));
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' apple-remotemanagement-user-login:; frame-ancestors 'none'",
        ),
    );
    resp
}

fn form(username: &str, error: Option<&str>) -> String {
    web::sign_in_form(
        SIGNIN_PATH,
        "",
        "Sign in with your work account to enroll this device.",
        "User name or Managed Apple ID",
        username,
        error,
    )
}

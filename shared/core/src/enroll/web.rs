//! Web enrollment (`configuration_web_url`, user affinity): Setup Assistant opens
//! `GET /mdm/enroll/web` in a web view with `x-apple-aspen-deviceinfo` (base64 of the
//! same signed MachineInfo the ADE request carries). We verify and admit the device as
//! for ADE, then ask the user to sign in with a local account. The form posts back to
//! `POST /mdm/enroll/web` with the device info carried in a hidden field (later requests
//! may lack the header); a correct sign-in binds the user to the pending enrollment and
//! answers the signed profile from this same host, as Apple requires.
//!
//! Nothing is stored until a sign-in succeeds. A wrong password shows the form again
//! saying so; repeated failures are rate limited per user ([`crate::user_sign_in`]). Pages are
//! self-contained (no external assets, a strict Content-Security-Policy).

use base64::Engine;
use http::{HeaderValue, StatusCode, header};

use super::machineinfo::{self, VerifiedMachineInfo};
use super::{EnrollError, ade};
use crate::api::{self, Request, Response};
use crate::user_sign_in::{self, SignInError};
use crate::{Clock, Platform};

pub const DEVICEINFO_HEADER: &str = "x-apple-aspen-deviceinfo";
/// The hidden form field that carries the device info from the page to the sign-in.
pub const DEVICEINFO_FIELD: &str = "deviceinfo";

/// `GET /mdm/enroll/web`
pub async fn page(p: &impl Platform, req: &Request) -> Response {
    let Some(info_b64) = header_deviceinfo(req) else {
        return html(
            StatusCode::BAD_REQUEST,
            &message_page(
                "Enroll from Setup Assistant",
                "This page signs you in while a device is being set up. Open it from the device's Setup Assistant.",
            ),
        );
    };
    match admit(p, &info_b64).await {
        Ok(_) => html(StatusCode::OK, &form_page(&info_b64, "", None)),
        Err(e) => refusal(req, e),
    }
}

/// `POST /mdm/enroll/web` (form: username, password, deviceinfo)
pub async fn sign_in(p: &impl Platform, req: &Request) -> Response {
    let body = match super::bounded_body(req) {
        Ok(b) => b,
        Err(e) => return refusal(req, e),
    };
    let form = parse_form(body);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let info_b64 =
        header_deviceinfo(req).unwrap_or_else(|| field(DEVICEINFO_FIELD).trim().to_owned());
    if info_b64.is_empty() {
        return refusal(
            req,
            EnrollError::malformed("no device information: start again from Setup Assistant"),
        );
    }
    let (verified, admission) = match admit(p, &info_b64).await {
        Ok(v) => v,
        Err(e) => return refusal(req, e),
    };
    let username = field("username").trim().to_owned();
    let password = field("password");
    let now = p.clock().unix_seconds();
    let user = match user_sign_in::sign_in(p.store(), &username, password, now).await {
        Ok(u) => u,
        Err(SignInError::Invalid) => {
            return html(
                StatusCode::OK,
                &form_page(
                    &info_b64,
                    &username,
                    Some("The user name or password is incorrect."),
                ),
            );
        }
        Err(SignInError::RateLimited { retry_after }) => {
            let mut resp = html(
                StatusCode::TOO_MANY_REQUESTS,
                &form_page(
                    &info_b64,
                    &username,
                    Some("Too many failed sign-ins. Wait a few minutes, then try again."),
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        Err(SignInError::Store(e)) => return refusal(req, e.into()),
    };
    match ade::answer(p, &verified.info, &admission, Some(user.username)).await {
        Ok(profile) => super::profile_response(profile),
        Err(e) => refusal(req, e),
    }
}

async fn admit(
    p: &impl Platform,
    info_b64: &str,
) -> Result<(VerifiedMachineInfo, ade::Admission), EnrollError> {
    let compact: String = info_b64.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .map_err(|_| EnrollError::malformed(format!("{DEVICEINFO_HEADER} is not base64")))?;
    if der.len() > super::MAX_ENROLL_BODY {
        return Err(EnrollError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
            "device information too large",
        ));
    }
    let anchors = machineinfo::configured_anchors(p.vars()).await?;
    let verified = machineinfo::verify(&der, &anchors)?;
    let admission = ade::admit(p.store(), &verified).await?;
    Ok((verified, admission))
}

fn header_deviceinfo(req: &Request) -> Option<String> {
    req.headers()
        .get(DEVICEINFO_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A refusal as the web view shows it; Apple's machine-readable answers
/// (`com.apple.softwareupdate.required`) stay JSON/plist for the device to act on.
fn refusal(req: &Request, e: EnrollError) -> Response {
    if e.code.starts_with("com.apple.") {
        return e.into_response_for(req);
    }
    let text = e
        .message
        .clone()
        .unwrap_or_else(|| "This device cannot be enrolled right now.".into());
    let mut resp = html(
        e.status,
        &message_page("Enrollment not possible", &format!("{text} ({})", e.code)),
    );
    if e.status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    }
    resp
}

pub(crate) fn html(status: StatusCode, body: &str) -> Response {
    let mut resp = api::uncached(status, "text/html; charset=utf-8", body.as_bytes().to_vec());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// HTML text and attribute escaping.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:-apple-system,system-ui,sans-serif;margin:0;padding:2em 1.5em;\
background:#f5f5f7;color:#1d1d1f}main{max-width:24em;margin:0 auto}h1{font-size:1.5em}\
label{display:block;margin:1em 0 .3em}input{width:100%;box-sizing:border-box;font-size:1.1em;\
padding:.6em;border:1px solid #c7c7cc;border-radius:8px}button{margin-top:1.5em;width:100%;\
font-size:1.1em;padding:.7em;border:0;border-radius:8px;background:#0071e3;color:#fff}\
.error{color:#b00020;font-weight:600}";

pub(crate) fn document(title: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title><style>{STYLE}</style></head><body><main><h1>{t}</h1>{main}</main></body></html>",
        t = escape(title)
    )
}

fn message_page(title: &str, text: &str) -> String {
    document(title, &format!("<p>{}</p>", escape(text)))
}

fn form_page(info_b64: &str, username: &str, error: Option<&str>) -> String {
    let hidden = format!(
        "<input type=\"hidden\" name=\"{DEVICEINFO_FIELD}\" value=\"{}\">",
        escape(info_b64)
    );
    sign_in_form(
        "/mdm/enroll/web",
        &hidden,
        "Sign in with your account to set up this device.",
        "User name",
        username,
        error,
    )
}

/// The sign-in page: `intro`, the error if any, and a form posting `username` and
/// `password` (plus `hidden` fields) to `action`.
pub(crate) fn sign_in_form(
    action: &str,
    hidden: &str,
    intro: &str,
    user_label: &str,
    username: &str,
    error: Option<&str>,
) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    document(
        "Sign in to enroll",
        &format!(
            "<p>{intro}</p>{error}\
<form method=\"post\" action=\"{action}\">{hidden}\
<label for=\"username\">{label}</label>\
<input id=\"username\" name=\"username\" autocomplete=\"username\" autocapitalize=\"none\" \
autocorrect=\"off\" required value=\"{user}\">\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>",
            intro = escape(intro),
            action = escape(action),
            label = escape(user_label),
            user = escape(username),
        ),
    )
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space); undecodable pairs skipped.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((form_decode(k)?, form_decode(v)?))
        })
        .collect()
}

fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

//! Account-driven enrollment as a device runs it from Settings (Apple: "Onboarding
//! users with account sign-in"): service discovery on the Managed Apple ID's domain, the enrollment POST answered
//! 401 with a `Bearer method="apple-as-web"` challenge, the web sign-in (the simulator
//! plays the person: it fills in the form) ending in Apple's callback URL with an access
//! token, the POST again with the token, then the profile, SCEP and check-ins as for any
//! enrollment. A `mdm-byod` answer makes this a User Enrollment: the device then speaks
//! with a fresh `EnrollmentID` and never sends its UDID, serial or IMEI.

use crate::http::{Http, HttpResponse};
use crate::{Device, SimError};

/// Apple's callback scheme the sign-in page must end on.
pub const CALLBACK_PREFIX: &str =
    "apple-remotemanagement-user-login://authentication-results?access-token=";

/// What the discovery said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// `mdm-byod` (User Enrollment) or `mdm-adde` (account-driven Device Enrollment).
    pub version: String,
    pub base_url: String,
}

/// The steps of one account-driven enrollment, for tests to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEnrollment {
    pub discovery: Discovery,
    /// The `url` of the 401's `WWW-Authenticate` challenge.
    pub sign_in_url: String,
    pub access_token: String,
}

fn status(what: &str, r: &HttpResponse) -> SimError {
    SimError::Status {
        what: what.into(),
        status: r.status,
        body: r.body_text(),
    }
}

/// `url="..."` out of a `WWW-Authenticate: Bearer method="apple-as-web", url="..."`.
pub fn challenge_url(header: &str) -> Option<String> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") || !params.contains("method=\"apple-as-web\"") {
        return None;
    }
    let start = params.find("url=\"")? + 5;
    let end = params[start..].find('"')? + start;
    Some(params[start..end].to_owned())
}

fn form_encode(s: &str) -> String {
    crate::scep::url_encode(s)
}

impl Device {
    /// `GET <server>/.well-known/com.apple.remotemanagement?user-identifier=..&model-family=..`
    /// (`server` stands for the Managed Apple ID's domain, which redirects to us).
    pub async fn discover(
        &self,
        http: &impl Http,
        server: &str,
        managed_apple_id: &str,
    ) -> Result<Discovery, SimError> {
        let family = match self.kind {
            crate::DeviceKind::Mac => "Mac",
            crate::DeviceKind::Ipad => "iPad",
            _ => "iPhone",
        };
        let url = format!(
            "{}/.well-known/com.apple.remotemanagement?user-identifier={}&model-family={family}",
            server.trim_end_matches('/'),
            form_encode(managed_apple_id)
        );
        let r = http.send("GET", &url, &[], Vec::new()).await?;
        if r.status != 200 {
            return Err(status("service discovery", &r));
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| SimError::Crypto(format!("discovery answer is not JSON: {e}")))?;
        let server = &v["Servers"][0];
        match (server["Version"].as_str(), server["BaseURL"].as_str()) {
            (Some(version), Some(base)) if base.starts_with("http") => Ok(Discovery {
                version: version.to_owned(),
                base_url: base.to_owned(),
            }),
            _ => Err(SimError::Status {
                what: "service discovery: no usable Servers entry".into(),
                status: r.status,
                body: r.body_text(),
            }),
        }
    }

    /// The whole account-driven enrollment with the person's credentials. Installs the
    /// profile, gets the identity over SCEP and checks in (Authenticate, TokenUpdate).
    pub async fn user_enroll(
        &mut self,
        http: &impl Http,
        server: &str,
        managed_apple_id: &str,
        username: &str,
        password: &str,
    ) -> Result<AccountEnrollment, SimError> {
        let flow = self
            .account_profile(http, server, managed_apple_id, username, password)
            .await?;
        self.finish_enrollment(http).await?;
        Ok(flow)
    }

    /// The account-driven steps up to the installed profile: discovery, the challenge, the
    /// sign-in and the enrollment POST with the access token. A `BYOD` profile gives the
    /// device a fresh EnrollmentID. The rest is [`Device::finish_enrollment`] (tests may
    /// change the device's identifiers in between, as a hostile device would).
    pub async fn account_profile(
        &mut self,
        http: &impl Http,
        server: &str,
        managed_apple_id: &str,
        username: &str,
        password: &str,
    ) -> Result<AccountEnrollment, SimError> {
        let discovery = self.discover(http, server, managed_apple_id).await?;
        // The enrollment POST carries no device identifier; the server must ask for
        // authentication.
        let r = http
            .send("POST", &discovery.base_url, &[], b"{}".to_vec())
            .await?;
        if r.status != 401 {
            return Err(status("enrollment without a token (401 expected)", &r));
        }
        let sign_in_url = r
            .header("www-authenticate")
            .and_then(challenge_url)
            .ok_or_else(|| status("401 without an apple-as-web challenge", &r))?;
        let page = http.send("GET", &sign_in_url, &[], Vec::new()).await?;
        if page.status != 200 || !page.body_text().contains("<form") {
            return Err(status("sign-in page", &page));
        }
        let form = format!(
            "username={}&password={}",
            form_encode(username),
            form_encode(password)
        );
        let r = http
            .send(
                "POST",
                &sign_in_url,
                &[("content-type", "application/x-www-form-urlencoded")],
                form.into_bytes(),
            )
            .await?;
        let access_token = r
            .header("location")
            .and_then(|l| l.strip_prefix(CALLBACK_PREFIX))
            .map(str::to_owned)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| status("sign-in (redirect to the callback expected)", &r))?;
        self.account_profile_with(http, &discovery.base_url, &access_token)
            .await?;
        Ok(AccountEnrollment {
            discovery,
            sign_in_url,
            access_token,
        })
    }

    /// The enrollment POST with an access token; installs the profile it answers.
    pub async fn account_profile_with(
        &mut self,
        http: &impl Http,
        base_url: &str,
        access_token: &str,
    ) -> Result<(), SimError> {
        let bearer = format!("Bearer {access_token}");
        let r = http
            .send(
                "POST",
                base_url,
                &[("authorization", &bearer)],
                b"{}".to_vec(),
            )
            .await?;
        if r.status != 200 {
            return Err(status("enrollment with the token", &r));
        }
        let mode = self.install_profile(&r.body)?.mdm.enrollment_mode.clone();
        if mode.as_deref() == Some("BYOD") {
            // A new EnrollmentID for every User Enrollment.
            self.enrollment_id = Some(crate::random_uuid());
        }
        Ok(())
    }

    /// After the profile: the identity over SCEP, Authenticate and TokenUpdate.
    pub async fn finish_enrollment(&mut self, http: &impl Http) -> Result<(), SimError> {
        self.scep_enroll(http).await?;
        self.authenticate(http).await?;
        self.token_update(http, false).await
    }
}

//! The Device Assignment API's endpoints as [`DepClient`] methods: account, device
//! listing and details, profile definition and assignment. Each builds its request body
//! and parses the answer; the session, retries and error mapping are the client's.

use std::collections::BTreeMap;

use http::Method;
use serde_json::{Map, Value, json};

use super::client::DepClient;
use super::error::DepError;
use super::oauth;
use super::wire::{
    Account, DefinedProfile, DevicePage, ProfileDevices, parse_device_details, parse_object,
};
use crate::platform::{Clock, HttpClient};

/// Serials per assign/remove/details request.
pub const MAX_SERIALS: usize = 1000;

impl<H: HttpClient, C: Clock> DepClient<'_, H, C> {
    /// `GET /account`.
    pub async fn account(&mut self) -> Result<Account, DepError> {
        let path = "/account";
        let body = self.call(Method::GET, path, None).await?;
        Account::parse(&body).map_err(|e| self.bad_json(path, &e))
    }

    /// `POST /server/devices`: the full device list, a page at a time (no cursor = from
    /// the start).
    pub async fn fetch_devices(
        &mut self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<DevicePage, DepError> {
        let mut body = Map::new();
        if let Some(cursor) = cursor {
            body.insert("cursor".into(), cursor.into());
        }
        if let Some(limit) = limit {
            body.insert("limit".into(), limit.into());
        }
        self.device_page("/server/devices", Value::Object(body))
            .await
    }

    /// `POST /devices/sync`: changes since `cursor`.
    pub async fn sync_devices(
        &mut self,
        cursor: &str,
        limit: Option<u32>,
    ) -> Result<DevicePage, DepError> {
        let mut body = Map::new();
        body.insert("cursor".into(), cursor.into());
        if let Some(limit) = limit {
            body.insert("limit".into(), limit.into());
        }
        self.device_page("/devices/sync", Value::Object(body)).await
    }

    async fn device_page(&mut self, path: &str, body: Value) -> Result<DevicePage, DepError> {
        let body = self.call(Method::POST, path, Some(body)).await?;
        DevicePage::parse(&body).map_err(|e| self.bad_json(path, &e))
    }

    /// `POST /devices`: details of up to [`MAX_SERIALS`] devices, each with its
    /// `response_status`.
    pub async fn device_details<S: AsRef<str>>(
        &mut self,
        serials: &[S],
    ) -> Result<BTreeMap<String, Map<String, Value>>, DepError> {
        let path = "/devices";
        let body = json!({ "devices": serial_list(serials)? });
        let body = self.call(Method::POST, path, Some(body)).await?;
        parse_device_details(&body).map_err(|e| self.bad_json(path, &e))
    }

    /// `POST /profile`: defines a profile (Apple's profile JSON, `dep-api.md` §6).
    pub async fn define_profile(&mut self, profile: &Value) -> Result<DefinedProfile, DepError> {
        let path = "/profile";
        if !profile.is_object() {
            return Err(DepError::InvalidRequest(
                "a profile is a JSON object".into(),
            ));
        }
        let body = self.call(Method::POST, path, Some(profile.clone())).await?;
        let answer = ProfileDevices::parse(&body).map_err(|e| self.bad_json(path, &e))?;
        match answer.profile_uuid {
            Some(profile_uuid) if !profile_uuid.is_empty() => Ok(DefinedProfile {
                profile_uuid,
                devices: answer.devices,
            }),
            _ => Err(self.bad_json(path, "no profile_uuid")),
        }
    }

    /// `GET /profile?profile_uuid=`: a defined profile as Apple keeps it.
    pub async fn get_profile(
        &mut self,
        profile_uuid: &str,
    ) -> Result<Map<String, Value>, DepError> {
        let path = format!(
            "/profile?profile_uuid={}",
            oauth::percent_encode(profile_uuid)
        );
        let body = self.call(Method::GET, &path, None).await?;
        parse_object(&body).map_err(|e| self.bad_json(&path, &e))
    }

    /// `POST /profile/devices`: assigns a profile to up to [`MAX_SERIALS`] devices.
    pub async fn assign_profile<S: AsRef<str>>(
        &mut self,
        profile_uuid: &str,
        serials: &[S],
    ) -> Result<ProfileDevices, DepError> {
        let path = "/profile/devices";
        let body = json!({ "profile_uuid": profile_uuid, "devices": serial_list(serials)? });
        let body = self.call(Method::POST, path, Some(body)).await?;
        ProfileDevices::parse(&body).map_err(|e| self.bad_json(path, &e))
    }

    /// `DELETE /profile/devices` (with a body): removes the profile assignment of up to
    /// [`MAX_SERIALS`] devices.
    pub async fn remove_profile<S: AsRef<str>>(
        &mut self,
        serials: &[S],
        profile_uuid: Option<&str>,
    ) -> Result<ProfileDevices, DepError> {
        let path = "/profile/devices";
        let mut body = json!({ "devices": serial_list(serials)? });
        if let Some(uuid) = profile_uuid {
            body["profile_uuid"] = uuid.into();
        }
        let body = self.call(Method::DELETE, path, Some(body)).await?;
        ProfileDevices::parse(&body).map_err(|e| self.bad_json(path, &e))
    }
}

fn serial_list<S: AsRef<str>>(serials: &[S]) -> Result<Vec<&str>, DepError> {
    if serials.len() > MAX_SERIALS {
        return Err(DepError::InvalidRequest(format!(
            "{} serials in one request; at most {MAX_SERIALS}",
            serials.len()
        )));
    }
    Ok(serials.iter().map(AsRef::as_ref).collect())
}

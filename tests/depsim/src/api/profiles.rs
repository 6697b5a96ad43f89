//! The profile endpoints: `POST`/`GET /profile`, assigning and removing profiles
//! (`/profile/devices`), `/device/activationlock` and the account-driven enrollment
//! profile, with the checks Apple makes on a profile definition.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::request::{Reply, Req, query_param};
use crate::state::{State, fill_profile_defaults};

impl State {
    fn url_ok(&self, url: &str) -> bool {
        if url.len() > 2000 {
            return false;
        }
        let Ok(uri) = url.parse::<http::Uri>() else {
            return false;
        };
        let Some(host) = uri.host() else {
            return false;
        };
        match uri.scheme_str() {
            Some("https") => true,
            Some("http") => {
                self.cfg.allow_loopback_http_profile_url
                    && (host == "localhost" || host == "[::1]" || host.starts_with("127."))
            }
            _ => false,
        }
    }

    /// The 400 code a profile definition earns, if any (`dep-api.md` §6).
    fn validate_profile(&self, p: &Map<String, Value>) -> Result<(), &'static str> {
        const MALFORMED: &str = "MALFORMED_REQUEST_BODY";
        let text = |key: &str| -> Result<Option<&str>, &'static str> {
            match p.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(MALFORMED),
            }
        };
        let flag = |key: &str| -> Result<Option<bool>, &'static str> {
            match p.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(MALFORMED),
            }
        };
        let strings = |key: &str| -> Result<(), &'static str> {
            match p.get(key) {
                None | Some(Value::Null) => Ok(()),
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
                Some(_) => Err(MALFORMED),
            }
        };
        let len = |s: Option<&str>| s.map_or(0, |s| s.chars().count());
        match text("profile_name")? {
            None | Some("") => return Err("CONFIG_NAME_REQUIRED"),
            Some(n) if n.chars().count() > 125 => return Err("CONFIG_NAME_INVALID"),
            Some(_) => {}
        }
        match text("url")? {
            None | Some("") => return Err("CONFIG_URL_REQUIRED"),
            Some(u) if !self.url_ok(u) => return Err("CONFIG_URL_INVALID"),
            Some(_) => {}
        }
        if let Some(u) = text("configuration_web_url")?.filter(|u| !u.is_empty())
            && !self.url_ok(u)
        {
            return Err("CONFIG_URL_INVALID");
        }
        for key in [
            "is_supervised",
            "allow_pairing",
            "is_mandatory",
            "await_device_configured",
            "auto_advance_setup",
            "is_multi_user",
            "do_not_use_profile_from_backup",
            "is_return_to_service",
        ] {
            flag(key)?;
        }
        if flag("is_mdm_removable")? == Some(false) && flag("is_supervised")? != Some(true) {
            return Err("FLAGS_INVALID");
        }
        if len(text("department")?) > 125 {
            return Err("DEPARTMENT_INVALID");
        }
        if len(text("support_phone_number")?) > 50 {
            return Err("SUPPORT_PHONE_INVALID");
        }
        let email = text("support_email_address")?;
        if len(email) > 250 || email.is_some_and(|e| !e.is_empty() && !e.contains('@')) {
            return Err("SUPPORT_EMAIL_INVALID");
        }
        if len(text("org_magic")?) > 256 {
            return Err("MAGIC_INVALID");
        }
        let letters = |s: &str, lens: std::ops::RangeInclusive<usize>| {
            lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic())
        };
        if text("language")?.is_some_and(|l| !l.is_empty() && !letters(l, 2..=3)) {
            return Err("LOCALE_INVALID");
        }
        if text("region")?.is_some_and(|r| !r.is_empty() && !letters(r, 2..=2)) {
            return Err("LOCALE_INVALID");
        }
        for key in [
            "skip_setup_items",
            "anchor_certs",
            "supervising_host_certs",
            "devices",
        ] {
            strings(key)?;
        }
        Ok(())
    }

    fn assign_all(&mut self, serials: &[String], profile: &Arc<str>, version: u32) -> Reply {
        let mut out = Map::new();
        let mut throttled = false;
        for serial in serials {
            let status = self.assign_serial(serial, profile, version);
            throttled |= status == "THROTTLED";
            out.insert(serial.clone(), status.into());
        }
        self.stats.device_results += out.len() as u64;
        let mut v = json!({ "profile_uuid": profile.as_ref(), "devices": out });
        if throttled && version >= 10 {
            v["retry_after_seconds"] = self.cfg.throttle_retry_after.into();
        }
        Reply::json(200, &v)
    }

    /// `POST /profile`.
    pub(super) fn define_profile(&mut self, req: &Req, version: u32) -> Reply {
        let mut p = match self.object(req.body, false) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if let Err(code) = self.validate_profile(&p) {
            return self.err(400, code);
        }
        let serials = match p.remove("devices") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() > self.cfg.max_serials => {
                return self.malformed();
            }
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(|s| s.trim().to_owned()))
                .collect(),
            Some(_) => return self.malformed(),
        };
        p.remove("profile_uuid");
        fill_profile_defaults(&mut p);
        let uuid = self.new_profile_uuid();
        p.insert("profile_uuid".into(), uuid.as_ref().into());
        self.profiles.insert(uuid.clone(), p);
        self.assign_all(&serials, &uuid, version)
    }

    /// `GET /profile?profile_uuid=`.
    pub(super) fn get_profile(&mut self, req: &Req) -> Reply {
        let Some(uuid) = query_param(req.query, "profile_uuid").filter(|u| !u.is_empty()) else {
            return self.err(400, "PROFILE_UUID_REQUIRED");
        };
        match self.profiles.get(uuid.as_str()) {
            Some(p) => Reply::json(200, p),
            None => self.err(404, "NOT_FOUND"),
        }
    }

    /// `POST` / `PUT /profile/devices`.
    pub(super) fn assign(&mut self, req: &Req, version: u32) -> Reply {
        let body = match self.object(req.body, false) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let uuid = match body.get("profile_uuid") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => return self.err(400, "PROFILE_UUID_REQUIRED"),
        };
        let serials = match self.serials(&body) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let Some((uuid, _)) = self.profiles.get_key_value(uuid.as_str()) else {
            return self.err(404, "NOT_FOUND");
        };
        let uuid = uuid.clone();
        self.assign_all(&serials, &uuid, version)
    }

    /// `DELETE /profile/devices`.
    pub(super) fn remove_profile(&mut self, req: &Req) -> Reply {
        let serials = match self.object(req.body, false).and_then(|b| self.serials(&b)) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let mut out = Map::new();
        for serial in serials {
            let status = self.unassign_serial(&serial);
            out.insert(serial, status.into());
        }
        self.stats.device_results += out.len() as u64;
        Reply::json(200, &json!({ "devices": out }))
    }

    /// `POST /device/activationlock`.
    pub(super) fn activation_lock(&mut self, req: &Req) -> Reply {
        let body = match self.object(req.body, false) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let serial = match body.get("device") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => return self.malformed(),
        };
        for key in ["escrow_key", "lost_message"] {
            if !matches!(body.get(key), None | Some(Value::Null | Value::String(_))) {
                return self.malformed();
            }
        }
        let status = if self.devices.live(&serial).is_some() {
            self.activation_locks
                .insert(serial.clone(), Value::Object(body));
            "SUCCESS"
        } else {
            "NOT_ACCESSIBLE"
        };
        Reply::json(
            200,
            &json!({ "serial_number": serial, "response_status": status }),
        )
    }

    /// `POST /account-driven-enrollment/profile`.
    pub(super) fn ade_profile(&mut self, req: &Req) -> Reply {
        let body = match self.object(req.body, false) {
            Ok(b) => b,
            Err(r) => return r,
        };
        match body.get("mdm_service_discovery_url") {
            None | Some(Value::Null) => self.err(400, "MDM_SERVICE_DISCOVERY_URL_REQUIRED"),
            Some(Value::String(s)) if s.is_empty() => {
                self.err(400, "MDM_SERVICE_DISCOVERY_URL_REQUIRED")
            }
            Some(Value::String(s)) if self.url_ok(s) => {
                self.discovery_url = Some(s.clone());
                Reply::empty(200)
            }
            Some(_) => self.err(400, "MDM_SERVICE_DISCOVERY_URL_NOT_VALID"),
        }
    }
}

//! `GET /account`: the organisation and the endpoints it may call, with their page
//! limits.

use serde_json::{Value, json};

use super::request::{ROUTES, Reply};
use crate::state::State;

impl State {
    /// `GET /account`.
    pub fn account_json(&self) -> Value {
        let a = &self.cfg.account;
        let limit =
            |l: crate::config::PageLimit| json!({"default": l.default, "maximum": l.maximum});
        let urls: Vec<Value> = ROUTES
            .iter()
            .map(|(uri, methods)| {
                let mut u = json!({ "uri": uri, "http_method": methods });
                match *uri {
                    "/server/devices" => u["limit"] = limit(self.cfg.fetch_limit),
                    "/devices/sync" => u["limit"] = limit(self.cfg.sync_limit),
                    _ => {}
                }
                u
            })
            .collect();
        let mut v = json!({
            "server_name": a.server_name,
            "server_uuid": a.server_uuid,
            "admin_id": a.admin_id,
            "org_name": a.org_name,
            "org_email": a.org_email,
            "org_phone": a.org_phone,
            "org_address": a.org_address,
            "org_id": a.org_id,
            "org_id_hash": a.org_id_hash,
            "org_type": a.org_type,
            "org_version": a.org_version,
            "urls": urls,
        });
        if let Some(f) = &a.facilitator_id {
            v["facilitator_id"] = f.as_str().into();
        }
        v
    }

    pub(super) fn account(&self) -> Reply {
        Reply::json(200, &self.account_json())
    }
}

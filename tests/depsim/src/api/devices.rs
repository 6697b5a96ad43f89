//! The device endpoints: `POST /server/devices` (fetch), `/devices/sync`, `/devices`
//! (details) and `/devices/disown`, with the devices as they go on the wire and the
//! cursors that page through them.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::request::{Reply, Req, limit_of};
use crate::cursor::{Cursor, Kind};
use crate::devgen::{Device, iso};
use crate::state::{Op, State};

/// A device on the wire. Borrowed, so a 1000-device page allocates nothing per field.
#[derive(Serialize)]
struct Wire<'a> {
    serial_number: &'a str,
    model: &'a str,
    description: &'a str,
    color: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    asset_tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_family: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    os: Option<&'a str>,
    profile_status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_uuid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_assign_time: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_push_time: Option<&'a str>,
    device_assigned_by: &'a str,
    device_assigned_date: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    op_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<&'static str>,
}

impl<'a> Wire<'a> {
    fn new(d: &'a Device, version: u32) -> Self {
        let os = match (d.os.as_str(), version) {
            (_, v) if v < 2 => None,
            ("iPadOS", v) if v < 7 => Some("iOS"),
            (os, _) => Some(os),
        };
        Wire {
            serial_number: &d.serial_number,
            model: &d.model,
            description: &d.description,
            color: &d.color,
            asset_tag: d.asset_tag.as_deref(),
            device_family: (version >= 2).then_some(d.device_family.as_str()),
            os,
            profile_status: &d.profile_status,
            profile_uuid: d.profile_uuid.as_deref(),
            profile_assign_time: d.profile_assign_time.as_deref(),
            profile_push_time: d.profile_push_time.as_deref(),
            device_assigned_by: &d.device_assigned_by,
            device_assigned_date: &d.device_assigned_date,
            op_type: None,
            op_date: None,
            response_status: None,
        }
    }
}

#[derive(Serialize)]
struct Page<'a> {
    devices: Vec<Wire<'a>>,
    cursor: String,
    more_to_follow: bool,
    fetched_until: String,
}

impl State {
    fn decode_cursor(&self, s: &str) -> Option<Cursor> {
        let c = Cursor::decode(self.cursor_key, s)?;
        (c.event <= self.events.len() as u64 && c.position <= self.devices.end()).then_some(c)
    }

    /// A fetch cursor at device index `position` (for benchmarks and tests).
    pub fn fetch_cursor_at(&self, position: u64) -> String {
        Cursor {
            kind: Kind::Fetch,
            position: position.min(self.devices.end()),
            event: self.events.len() as u64,
            issued_ms: self.now_ms(),
            exhausted: false,
        }
        .encode(self.cursor_key)
    }

    fn page_reply(
        &mut self,
        devices: &[(Device, Option<(Op, u64)>)],
        cursor: Cursor,
        more: bool,
        version: u32,
    ) -> Reply {
        self.stats.devices_served += devices.len() as u64;
        let page = Page {
            devices: devices
                .iter()
                .map(|(d, event)| {
                    let mut w = Wire::new(d, version);
                    if let Some((op, at)) = event {
                        w.op_type = Some(op.as_str());
                        w.op_date = Some(iso(*at));
                    }
                    w
                })
                .collect(),
            cursor: cursor.encode(self.cursor_key),
            more_to_follow: more,
            fetched_until: iso(self.now_secs()),
        };
        Reply::json(200, &page)
    }

    /// `POST /server/devices`.
    pub(super) fn fetch(&mut self, req: &Req, version: u32) -> Reply {
        let body = match self.object(req.body, true) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Ok(limit) = limit_of(&body) else {
            return self.malformed();
        };
        let limit = self.cfg.fetch_limit.resolve(limit);
        let (start, event) = match body.get("cursor") {
            None | Some(Value::Null) => (0, self.events.len() as u64),
            Some(Value::String(s)) if s.is_empty() => (0, self.events.len() as u64),
            Some(Value::String(s)) => match self.decode_cursor(s) {
                None => return self.err(400, "INVALID_CURSOR"),
                Some(c) if c.exhausted || c.kind == Kind::Sync => {
                    return self.err(400, "EXHAUSTED_CURSOR");
                }
                Some(c) => (c.position, c.event),
            },
            Some(_) => return self.err(400, "INVALID_CURSOR"),
        };
        let mut devices = Vec::with_capacity(limit.min(4096));
        let end = self.devices.end();
        let mut i = start;
        while i < end && devices.len() < limit {
            if self.devices.is_live(i) {
                devices.push((self.devices.render(i), None));
            }
            i += 1;
        }
        let more = self.devices.live_from(i) > 0;
        self.stats.devices_fetched += devices.len() as u64;
        let cursor = Cursor {
            kind: Kind::Fetch,
            position: i,
            event,
            issued_ms: self.now_ms(),
            exhausted: !more,
        };
        self.page_reply(&devices, cursor, more, version)
    }

    /// `POST /devices/sync`.
    pub(super) fn sync(&mut self, req: &Req, version: u32) -> Reply {
        let body = match self.object(req.body, false) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Ok(limit) = limit_of(&body) else {
            return self.malformed();
        };
        let limit = self.cfg.sync_limit.resolve(limit);
        let cursor = match body.get("cursor") {
            None | Some(Value::Null) => return self.err(400, "CURSOR_REQUIRED"),
            Some(Value::String(s)) if s.trim().is_empty() => {
                return self.err(400, "CURSOR_REQUIRED");
            }
            Some(Value::String(s)) => match self.decode_cursor(s) {
                Some(c) => c,
                None => return self.err(400, "INVALID_CURSOR"),
            },
            Some(_) => return self.err(400, "INVALID_CURSOR"),
        };
        let now = self.now_ms();
        if now.saturating_sub(cursor.issued_ms) > self.cfg.cursor_max_age.as_millis() as u64 {
            return self.err(400, "EXPIRED_CURSOR");
        }
        let start = cursor.event as usize;
        let end = (start + limit).min(self.events.len());
        let devices: Vec<_> = self.events[start..end]
            .iter()
            .map(|e| (self.devices.render(e.index), Some((e.op, e.at))))
            .collect();
        let more = end < self.events.len();
        self.stats.devices_synced += devices.len() as u64;
        let next = Cursor {
            kind: Kind::Sync,
            position: 0,
            event: end as u64,
            issued_ms: now,
            exhausted: true,
        };
        self.page_reply(&devices, next, more, version)
    }

    /// `POST /devices`.
    pub(super) fn details(&mut self, req: &Req, version: u32) -> Reply {
        let serials = match self.object(req.body, false).and_then(|b| self.serials(&b)) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let mut out = Map::new();
        for serial in serials {
            let v = match self.devices.live(&serial) {
                Some(i) => {
                    let d = self.devices.render(i);
                    let mut w = Wire::new(&d, version);
                    w.response_status = Some("SUCCESS");
                    self.stats.devices_served += 1;
                    serde_json::to_value(w).expect("serialisable")
                }
                None => json!({ "serial_number": serial, "response_status": "NOT_ACCESSIBLE" }),
            };
            out.insert(serial, v);
        }
        Reply::json(200, &json!({ "devices": out }))
    }

    /// `POST /devices/disown`.
    pub(super) fn disown(&mut self, req: &Req) -> Reply {
        let serials = match self.object(req.body, false).and_then(|b| self.serials(&b)) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let mut out = Map::new();
        for serial in serials {
            let status = if self.delete_device(&serial) {
                "SUCCESS"
            } else {
                "NOT_ACCESSIBLE"
            };
            out.insert(serial, status.into());
        }
        self.stats.device_results += out.len() as u64;
        Reply::json(200, &json!({ "devices": out }))
    }
}

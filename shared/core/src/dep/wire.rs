//! The documents of Apple's Device Assignment API as we read them: the account, pages of
//! devices, per-serial results of profile and device calls, defined profiles. Apple formats
//! some fields loosely (numbers as strings, nulls for empty lists), so the readers here are
//! lenient where Apple is, strict where a wrong value would mislead.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Page size when `/account` does not advertise one (Apple's field documentation).
pub const DOCUMENTED_DEFAULT_LIMIT: u32 = 100;
pub const DOCUMENTED_MAX_LIMIT: u32 = 1000;

/// `/account` (AccountDetail). Missing or null fields read as empty; unknown fields are
/// kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Account {
    #[serde(default, deserialize_with = "lenient_string")]
    pub server_name: String,
    /// The `iss` of the GetToken JWT.
    #[serde(default, deserialize_with = "lenient_string")]
    pub server_uuid: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub admin_id: String,
    /// Deprecated by Apple.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub facilitator_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub org_name: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub org_email: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub org_phone: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub org_address: String,
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_id_hash: Option<String>,
    /// `edu`, `org` or `tvprovider`.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_type: Option<String>,
    /// `v1` or `v2`.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_version: Option<String>,
    #[serde(default, deserialize_with = "lenient_urls")]
    pub urls: Vec<AccountUrl>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `/account`'s `urls`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountUrl {
    #[serde(default, deserialize_with = "lenient_string")]
    pub uri: String,
    #[serde(default, deserialize_with = "lenient_strings")]
    pub http_method: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<UrlLimit>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Page sizes Apple advertises for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UrlLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<u32>,
}

impl Account {
    /// The advertised limits of `uri` (e.g. `/server/devices`).
    pub fn limit(&self, uri: &str) -> Option<UrlLimit> {
        self.urls
            .iter()
            .find(|u| u.uri == uri)
            .and_then(|u| u.limit)
    }

    /// The page size to ask `uri` for: `wanted` or the advertised default, clamped to
    /// `1..=` the advertised maximum (Apple's documented 100/1000 when not advertised).
    pub fn page_size(&self, uri: &str, wanted: Option<u32>) -> u32 {
        let limit = self.limit(uri).unwrap_or_default();
        let maximum = limit.maximum.unwrap_or(DOCUMENTED_MAX_LIMIT).max(1);
        wanted
            .or(limit.default)
            .unwrap_or(DOCUMENTED_DEFAULT_LIMIT)
            .clamp(1, maximum)
    }

    /// Parses an `/account` body.
    pub fn parse(body: &[u8]) -> Result<Account, String> {
        let value = parse_object(body)?;
        serde_json::from_value(Value::Object(value)).map_err(|e| e.to_string())
    }
}

/// One page of `POST /server/devices` (fetch) or `POST /devices/sync`. Devices stay
/// JSON objects so no field Apple adds or changes can make a page unreadable.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DevicePage {
    pub devices: Vec<Map<String, Value>>,
    pub cursor: Option<String>,
    pub more_to_follow: bool,
    /// ISO-8601, as Apple sent it.
    pub fetched_until: Option<String>,
}

impl DevicePage {
    /// Parses a FetchDeviceResponse. `devices` must be an array of objects (missing or
    /// null = none); `more_to_follow` may be a boolean or `"true"`/`"false"`.
    pub fn parse(body: &[u8]) -> Result<DevicePage, String> {
        let mut value = parse_object(body)?;
        let devices = match value.remove("devices") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Value::Object(m) => Ok(m),
                    _ => Err(format!("devices[{i}] is not an object")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("`devices` is not an array".into()),
        };
        let more_to_follow = match value.get("more_to_follow") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err("`more_to_follow` is not a boolean".into()),
        };
        Ok(DevicePage {
            devices,
            cursor: opt_str(&value, "cursor")?,
            more_to_follow,
            fetched_until: opt_str(&value, "fetched_until")?,
        })
    }
}

/// Per-device result of profile and device calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum DeviceStatus {
    Success,
    /// The serial is not in this server's scope.
    NotAccessible,
    Failed,
    /// Assign, protocol 9+: retry after the response's `retry_after_seconds`.
    Throttled,
    Other(String),
}

impl DeviceStatus {
    pub fn as_str(&self) -> &str {
        match self {
            DeviceStatus::Success => "SUCCESS",
            DeviceStatus::NotAccessible => "NOT_ACCESSIBLE",
            DeviceStatus::Failed => "FAILED",
            DeviceStatus::Throttled => "THROTTLED",
            DeviceStatus::Other(s) => s,
        }
    }
}

impl From<String> for DeviceStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "SUCCESS" => DeviceStatus::Success,
            "NOT_ACCESSIBLE" => DeviceStatus::NotAccessible,
            "FAILED" => DeviceStatus::Failed,
            "THROTTLED" => DeviceStatus::Throttled,
            _ => DeviceStatus::Other(s),
        }
    }
}

impl From<DeviceStatus> for String {
    fn from(s: DeviceStatus) -> Self {
        match s {
            DeviceStatus::Other(s) => s,
            known => known.as_str().to_owned(),
        }
    }
}

/// Answer of assign and remove (`{"profile_uuid"?, "devices": {serial: status},
/// "retry_after_seconds"?}`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileDevices {
    pub profile_uuid: Option<String>,
    pub devices: BTreeMap<String, DeviceStatus>,
    pub retry_after_seconds: Option<u64>,
}

impl ProfileDevices {
    pub fn parse(body: &[u8]) -> Result<ProfileDevices, String> {
        let value = parse_object(body)?;
        let devices = match value.get("devices") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(serial, status)| match status {
                    Value::String(s) => Ok((serial.clone(), DeviceStatus::from(s.clone()))),
                    _ => Err(format!("status of {serial} is not a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("`devices` is not an object".into()),
        };
        let retry_after_seconds = match value.get("retry_after_seconds") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        Ok(ProfileDevices {
            profile_uuid: opt_str(&value, "profile_uuid")?,
            devices,
            retry_after_seconds,
        })
    }

    /// Serials with this status.
    pub fn with_status<'s>(&'s self, status: &'s DeviceStatus) -> impl Iterator<Item = &'s str> {
        self.devices
            .iter()
            .filter(move |(_, s)| *s == status)
            .map(|(serial, _)| serial.as_str())
    }
}

/// Answer of `POST /profile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinedProfile {
    pub profile_uuid: String,
    /// Results for the profile's `devices`, if it listed any.
    pub devices: BTreeMap<String, DeviceStatus>,
}

/// Answer of `POST /devices` (details): serial → device fields plus `response_status`.
pub fn parse_device_details(body: &[u8]) -> Result<BTreeMap<String, Map<String, Value>>, String> {
    let mut value = parse_object(body)?;
    match value.remove("devices") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(serial, d)| match d {
                Value::Object(d) => Ok((serial, d)),
                _ => Err(format!("details of {serial} are not an object")),
            })
            .collect(),
        Some(_) => Err("`devices` is not an object".into()),
    }
}

pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not JSON ({e})")),
    }
}

fn opt_str(value: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{key}` is not a string")),
    }
}

fn scalar_string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(scalar_string(Value::deserialize(d)?).unwrap_or_default())
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(scalar_string(Value::deserialize(d)?))
}

fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.into_iter().filter_map(scalar_string).collect(),
        other => scalar_string(other).into_iter().collect(),
    })
}

fn lenient_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AccountUrl>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|u| serde_json::from_value(u).ok())
            .collect(),
        _ => vec![],
    })
}

fn lenient_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<UrlLimit>, D::Error> {
    let number = |v: Option<&Value>| match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => Some(UrlLimit {
            default: number(m.get("default")),
            maximum: number(m.get("maximum")),
        }),
        _ => None,
    })
}

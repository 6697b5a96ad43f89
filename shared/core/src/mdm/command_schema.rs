//! The payload keys of every MDM command (RequestType), and checking an admin's payload
//! against them.
//!
//! [`SCHEMAS`] (`command_schema_table.rs`, included) is generated from Apple's
//! `mdm/commands/*.yaml` (`payloadkeys`): each key's name, type, presence, allowed values
//! (`rangelist`) and subkeys. The test
//! `tests/command_schema.rs` re-derives it from the YAML and fails when it differs;
//! `UPDATE_COMMAND_SCHEMA=1 cargo test -p mdm-core --test command_schema` rewrites it.
//!
//! How the schema reads (Apple's conventions, kept as they are in the table):
//! - an `<array>` key's single subkey is the element schema (its name, e.g.
//!   `IdentifiersItem`, means nothing). `Settings.Settings` has several subkeys instead:
//!   alternative element dictionaries told apart by their `Item` value (the
//!   *discriminator*: a key every alternative requires with a `rangelist`).
//! - a `<dictionary>` whose subkeys include one named `ANY` takes any further keys with
//!   values of that subkey's type (app configurations, manifests).
//! - a scalar with subkeys (`DeviceInformation.Queries` elements) takes the subkey names as
//!   its allowed values.
//!
//! Deviations from the YAML's `presence`, by hand and listed in [`NOT_REQUIRED`] and
//! [`RULES`]:
//! - `ScheduleOSUpdate.Updates` is marked required, but its text says that without it the
//!   device applies its default update behaviour: optional here.
//! - keys required only together or in the absence of another ("either `Message` or
//!   `PhoneNumber`") are optional in the YAML; [`RULES`] enforces the documented ones.
//! - `ClearPasscode.UnlockToken` stays required: it is the token the device gave in its
//!   TokenUpdate, so a caller that fills it in from the enrollment must do so before
//!   checking.
//!
//! Apple ignores keys it does not know; we refuse them, to catch typos.

use plist::{Dictionary, Integer, Value as Plist};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// A payload key's type: Apple's `<string>`, `<integer>`, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    String,
    Integer,
    Boolean,
    Real,
    Date,
    Data,
    Array,
    Dictionary,
    Any,
}

impl KeyType {
    /// The name in Apple's YAML, without the angle brackets.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::Integer => "integer",
            KeyType::Boolean => "boolean",
            KeyType::Real => "real",
            KeyType::Date => "date",
            KeyType::Data => "data",
            KeyType::Array => "array",
            KeyType::Dictionary => "dictionary",
            KeyType::Any => "any",
        }
    }
}

/// One value of a key's `rangelist`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    Str(&'static str),
    Int(i64),
}

/// One payload key, with its subkeys (dictionary keys, or an array's element schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub ty: KeyType,
    /// `presence: required` in the YAML (see the module notes for the exceptions).
    pub required: bool,
    /// The `rangelist`; empty when any value of the type goes.
    pub values: &'static [Allowed],
    pub keys: &'static [Key],
}

/// The payload keys of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    pub request_type: &'static str,
    pub keys: &'static [Key],
}

pub fn schema(request_type: &str) -> Option<&'static Schema> {
    SCHEMAS.iter().find(|s| s.request_type == request_type)
}

/// What is wrong with one key of a payload. `key` is a path into the payload, e.g.
/// `Settings[0].Item`; `RequestType` for an unknown command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadError {
    pub key: String,
    pub problem: String,
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Keys the YAML marks required that are not: (RequestType, key path with `[]` for array
/// elements).
pub const NOT_REQUIRED: &[(&str, &str)] = &[
    // "If this value is missing, the device applies the default behavior for handling updates."
    ("ScheduleOSUpdate", "Updates"),
];

/// A documented requirement the YAML's `presence` cannot express.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// At least one of these keys.
    AnyOf(&'static [&'static str]),
    /// `key` unless `flag` is true.
    RequiredUnlessTrue {
        key: &'static str,
        flag: &'static str,
    },
    /// `needs` whenever `key` is given.
    Requires {
        key: &'static str,
        needs: &'static str,
    },
}

/// Conditional requirements from the keys' descriptions: (RequestType, path of the
/// dictionary they apply to, `""` for the payload itself and `[]` for array elements, rule).
pub const RULES: &[(&str, &str, Rule)] = &[
    (
        "DeleteUser",
        "",
        Rule::RequiredUnlessTrue {
            key: "UserName",
            flag: "DeleteAllUsers",
        },
    ),
    (
        "EnableLostMode",
        "",
        Rule::AnyOf(&["Message", "PhoneNumber"]),
    ),
    (
        "InstallApplication",
        "",
        Rule::AnyOf(&["iTunesStoreID", "Identifier", "ManifestURL"]),
    ),
    (
        "InstallEnterpriseApplication",
        "",
        Rule::AnyOf(&["Manifest", "ManifestURL"]),
    ),
    (
        "RotateFileVaultKey",
        "FileVaultUnlock",
        Rule::AnyOf(&["Password", "PrivateKeyExport"]),
    ),
    (
        "RotateFileVaultKey",
        "FileVaultUnlock",
        Rule::Requires {
            key: "PrivateKeyExport",
            needs: "PrivateKeyExportPassword",
        },
    ),
    (
        "ScheduleOSUpdate",
        "Updates[]",
        Rule::AnyOf(&["ProductKey", "ProductVersion"]),
    ),
];

/// Converts an admin's JSON payload (the keys next to `RequestType`, without it) to the
/// command's plist payload, typed by the schema: `<data>` from base64 strings, `<date>` from
/// RFC 3339 strings, `<integer>` from JSON integers, `<real>` from any number, `<any>`
/// naturally (JSON `null` has no plist form and is refused everywhere). A `RequestType`
/// key equal to `request_type` is dropped; any other unknown key is refused.
pub fn payload_from_json(
    request_type: &str,
    json: &Map<String, Json>,
) -> Result<Dictionary, Vec<PayloadError>> {
    let entries: Vec<(&str, &Json)> = json.iter().map(|(k, v)| (k.as_str(), v)).collect();
    check_payload(request_type, entries)
}

/// Converts one JSON value by one key's schema, as [`payload_from_json`] does for each key
/// (without the command-specific [`RULES`]); error paths start at `key.name`.
pub fn value_from_json(key: &Key, json: &Json) -> Result<Plist, Vec<PayloadError>> {
    let mut cx = Cx {
        request_type: "",
        errs: Vec::new(),
    };
    match cx.value(key, json, key.name) {
        Some(v) if cx.errs.is_empty() => Ok(v),
        _ => Err(cx.errs),
    }
}

/// The same checks as [`payload_from_json`] for a payload already in plist form (the keys
/// next to `RequestType`; a `RequestType` equal to `request_type` is allowed).
pub fn validate_plist(request_type: &str, payload: &Dictionary) -> Result<(), Vec<PayloadError>> {
    let entries: Vec<(&str, &Plist)> = payload.iter().map(|(k, v)| (k.as_str(), v)).collect();
    check_payload(request_type, entries).map(|_| ())
}

/// Reads a command plist an admin uploads (XML or binary): either a full command
/// `{CommandUUID, Command: {RequestType, …}}` or just the inner `{RequestType, …}`. Returns
/// the RequestType, the payload without it, and the CommandUUID if given, after
/// [`validate_plist`]. Error keys are paths into the payload, as for JSON; `Command`,
/// `CommandUUID` and `RequestType` for the envelope, `plist` when it does not parse.
pub fn parse_raw_command(
    bytes: &[u8],
) -> Result<(String, Dictionary, Option<String>), Vec<PayloadError>> {
    let err = |key: &str, problem: String| {
        vec![PayloadError {
            key: key.into(),
            problem,
        }]
    };
    let top = match plist::from_bytes::<Plist>(bytes) {
        Ok(Plist::Dictionary(d)) => d,
        Ok(other) => {
            return Err(err(
                "plist",
                format!("expected a dictionary, found {}", plist_kind(&other)),
            ));
        }
        Err(e) => return Err(err("plist", format!("not a property list: {e}"))),
    };
    let (mut command, uuid) = if top.contains_key("Command") {
        let mut errs = Vec::new();
        for k in top
            .keys()
            .filter(|k| *k != "Command" && *k != "CommandUUID")
        {
            errs.push(PayloadError {
                key: k.clone(),
                problem: unknown_key_problem(),
            });
        }
        let uuid = match top.get("CommandUUID") {
            None => None,
            Some(Plist::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Plist::String(_)) => {
                errs.push(PayloadError {
                    key: "CommandUUID".into(),
                    problem: "empty".into(),
                });
                None
            }
            Some(v) => {
                errs.push(PayloadError {
                    key: "CommandUUID".into(),
                    problem: format!("expected string, found {}", plist_kind(v)),
                });
                None
            }
        };
        let command = match top.get("Command") {
            Some(Plist::Dictionary(d)) => d.clone(),
            Some(v) => {
                errs.push(PayloadError {
                    key: "Command".into(),
                    problem: format!("expected dictionary, found {}", plist_kind(v)),
                });
                Dictionary::new()
            }
            None => unreachable!("checked above"),
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        (command, uuid)
    } else {
        (top, None)
    };
    let request_type = match command.remove("RequestType") {
        Some(Plist::String(s)) => s,
        Some(v) => {
            return Err(err(
                "RequestType",
                format!("expected string, found {}", plist_kind(&v)),
            ));
        }
        None => return Err(err("RequestType", MISSING.into())),
    };
    validate_plist(&request_type, &command)?;
    Ok((request_type, command, uuid))
}

const MISSING: &str = "missing required key";

fn unknown_key_problem() -> String {
    "unknown key (Apple ignores keys it does not know; refused here to catch typos)".into()
}

fn check_payload<V: Source>(
    request_type: &str,
    mut entries: Vec<(&str, &V)>,
) -> Result<Dictionary, Vec<PayloadError>> {
    let Some(schema) = schema(request_type) else {
        return Err(vec![PayloadError {
            key: "RequestType".into(),
            problem: format!("unknown RequestType {request_type:?}"),
        }]);
    };
    let mut cx = Cx {
        request_type: schema.request_type,
        errs: Vec::new(),
    };
    if let Some(i) = entries.iter().position(|(k, _)| *k == "RequestType") {
        match entries[i].1.string() {
            Some(s) if s == request_type => {}
            _ => cx.err(
                "RequestType",
                format!("does not match the command's {request_type}"),
            ),
        }
        entries.remove(i);
    }
    let out = cx.dict(schema.keys, &entries, "");
    if cx.errs.is_empty() {
        Ok(out)
    } else {
        Err(cx.errs)
    }
}

struct Cx {
    request_type: &'static str,
    errs: Vec<PayloadError>,
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// `Settings[3].Item` → `Settings[].Item`.
fn schema_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// What a string or integer is checked against: the `rangelist`, or the subkey names of a
/// scalar (DeviceInformation queries).
fn allowed_list(key: &Key) -> Option<Vec<String>> {
    if !key.values.is_empty() {
        Some(
            key.values
                .iter()
                .map(|a| match a {
                    Allowed::Str(s) => s.to_string(),
                    Allowed::Int(i) => i.to_string(),
                })
                .collect(),
        )
    } else if !key.keys.is_empty() && !matches!(key.ty, KeyType::Array | KeyType::Dictionary) {
        Some(key.keys.iter().map(|k| k.name.to_string()).collect())
    } else {
        None
    }
}

fn not_allowed(allowed: &[String]) -> String {
    if allowed.len() <= 30 {
        format!("not one of the allowed values: {}", allowed.join(", "))
    } else {
        format!(
            "not one of the {} values Apple's schema lists",
            allowed.len()
        )
    }
}

/// The key every alternative element form requires with a `rangelist` (`Item`).
fn discriminator(alts: &[Key]) -> Option<&'static str> {
    let first = alts.first()?;
    first.keys.iter().map(|k| k.name).find(|name| {
        alts.iter().all(|a| {
            a.ty == KeyType::Dictionary
                && a.keys
                    .iter()
                    .any(|k| k.name == *name && k.required && !k.values.is_empty())
        })
    })
}

impl Cx {
    fn err(&mut self, key: &str, problem: impl Into<String>) {
        self.errs.push(PayloadError {
            key: key.to_string(),
            problem: problem.into(),
        });
    }

    fn wrong_type<V: Source>(&mut self, path: &str, ty: KeyType, v: &V) {
        let problem = format!("expected {}{}, found {}", ty.name(), V::hint(ty), v.kind());
        self.err(path, problem);
    }

    fn dict<V: Source>(&mut self, keys: &[Key], entries: &[(&str, &V)], path: &str) -> Dictionary {
        let any = keys.iter().find(|k| k.name == "ANY");
        let mut out = Dictionary::new();
        for (name, v) in entries {
            let p = join(path, name);
            let key = keys
                .iter()
                .find(|k| k.name == *name && k.name != "ANY")
                .or(any);
            match key {
                Some(key) => {
                    if let Some(value) = self.value(key, *v, &p) {
                        out.insert((*name).to_string(), value);
                    }
                }
                None => self.err(&p, unknown_key_problem()),
            }
        }
        let present = |n: &str| entries.iter().any(|(k, _)| *k == n);
        let sp = schema_path(path);
        for key in keys.iter().filter(|k| k.required && !present(k.name)) {
            let optional = NOT_REQUIRED
                .iter()
                .any(|(rt, kp)| *rt == self.request_type && *kp == join(&sp, key.name));
            if !optional {
                self.err(&join(path, key.name), MISSING);
            }
        }
        let request_type = self.request_type;
        for (_, _, rule) in RULES
            .iter()
            .filter(|(rt, p, _)| *rt == request_type && *p == sp)
        {
            match *rule {
                Rule::AnyOf(names) if !names.iter().any(|n| present(n)) => {
                    let paths: Vec<String> = names.iter().map(|n| join(path, n)).collect();
                    self.err(&paths.join(" or "), "one of these keys is required");
                }
                Rule::RequiredUnlessTrue { key, flag } if !present(key) => {
                    let set = entries
                        .iter()
                        .any(|(k, v)| *k == flag && v.boolean() == Some(true));
                    if !set {
                        self.err(
                            &join(path, key),
                            format!("{MISSING} (unless {flag} is true)"),
                        );
                    }
                }
                Rule::Requires { key, needs } if present(key) && !present(needs) => {
                    self.err(&join(path, needs), format!("{MISSING} (with {key})"));
                }
                _ => {}
            }
        }
        out
    }

    fn check_allowed(
        &mut self,
        key: &Key,
        path: &str,
        shown: &str,
        matches: impl Fn(&Allowed) -> bool,
    ) -> bool {
        let Some(allowed) = allowed_list(key) else {
            return true;
        };
        let ok = if key.values.is_empty() {
            key.keys.iter().any(|k| k.name == shown)
        } else {
            key.values.iter().any(matches)
        };
        if !ok {
            self.err(path, format!("{shown:?} {}", not_allowed(&allowed)));
        }
        ok
    }

    fn value<V: Source>(&mut self, key: &Key, v: &V, path: &str) -> Option<Plist> {
        match key.ty {
            KeyType::String => {
                let Some(s) = v.string() else {
                    self.wrong_type(path, key.ty, v);
                    return None;
                };
                self.check_allowed(key, path, s, |a| matches!(a, Allowed::Str(x) if *x == s))
                    .then(|| Plist::String(s.to_string()))
            }
            KeyType::Integer => {
                let Some(i) = v.integer() else {
                    self.wrong_type(path, key.ty, v);
                    return None;
                };
                let shown = i.to_string();
                let signed = i.as_signed();
                self.check_allowed(key, path, &shown, |a| Some(*a) == signed.map(Allowed::Int))
                    .then_some(Plist::Integer(i))
            }
            KeyType::Boolean => match v.boolean() {
                Some(b) => Some(Plist::Boolean(b)),
                None => {
                    self.wrong_type(path, key.ty, v);
                    None
                }
            },
            KeyType::Real => match v.real() {
                Some(r) => Some(Plist::Real(r)),
                None => {
                    self.wrong_type(path, key.ty, v);
                    None
                }
            },
            KeyType::Data => match v.data() {
                Some(Ok(d)) => Some(Plist::Data(d)),
                Some(Err(e)) => {
                    self.err(path, format!("expected data: {e}"));
                    None
                }
                None => {
                    self.wrong_type(path, key.ty, v);
                    None
                }
            },
            KeyType::Date => match v.date() {
                Some(Ok(d)) => Some(Plist::Date(d)),
                Some(Err(e)) => {
                    self.err(path, format!("expected date: {e}"));
                    None
                }
                None => {
                    self.wrong_type(path, key.ty, v);
                    None
                }
            },
            KeyType::Array => {
                let Some(items) = v.array() else {
                    self.wrong_type(path, key.ty, v);
                    return None;
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    let converted = match key.keys {
                        [] => self.any(item, &p),
                        [element] => self.value(element, item, &p),
                        alts => self.alternative(alts, item, &p),
                    };
                    out.extend(converted);
                }
                Some(Plist::Array(out))
            }
            KeyType::Dictionary => {
                let Some(entries) = v.dict() else {
                    self.wrong_type(path, key.ty, v);
                    return None;
                };
                if key.keys.is_empty() {
                    return self.any(v, path);
                }
                Some(Plist::Dictionary(self.dict(key.keys, &entries, path)))
            }
            KeyType::Any => self.any(v, path),
        }
    }

    fn any<V: Source>(&mut self, v: &V, path: &str) -> Option<Plist> {
        match v.any() {
            Ok(p) => Some(p),
            Err((sub, problem)) => {
                self.err(&format!("{path}{sub}"), problem);
                None
            }
        }
    }

    /// An array element with several possible forms (Settings items).
    fn alternative<V: Source>(&mut self, alts: &[Key], v: &V, path: &str) -> Option<Plist> {
        let Some(entries) = v.dict() else {
            self.wrong_type(path, KeyType::Dictionary, v);
            return None;
        };
        if let Some(disc) = discriminator(alts) {
            let dpath = join(path, disc);
            let Some((_, dv)) = entries.iter().find(|(k, _)| *k == disc) else {
                self.err(&dpath, MISSING);
                return None;
            };
            let Some(s) = dv.string() else {
                self.wrong_type(&dpath, KeyType::String, *dv);
                return None;
            };
            let form = alts.iter().find(|a| {
                a.keys.iter().any(|k| {
                    k.name == disc
                        && k.values
                            .iter()
                            .any(|a| matches!(a, Allowed::Str(x) if *x == s))
                })
            });
            let Some(form) = form else {
                let allowed: Vec<String> = alts
                    .iter()
                    .flat_map(|a| a.keys.iter().filter(|k| k.name == disc))
                    .flat_map(|k| k.values.iter())
                    .map(|a| match a {
                        Allowed::Str(s) => s.to_string(),
                        Allowed::Int(i) => i.to_string(),
                    })
                    .collect();
                self.err(&dpath, format!("{s:?} {}", not_allowed(&allowed)));
                return None;
            };
            return Some(Plist::Dictionary(self.dict(form.keys, &entries, path)));
        }
        // No discriminator (none in Apple's schema today): the first form that fits.
        for form in alts {
            let mut trial = Cx {
                request_type: self.request_type,
                errs: Vec::new(),
            };
            let out = trial.dict(form.keys, &entries, path);
            if trial.errs.is_empty() {
                return Some(Plist::Dictionary(out));
            }
        }
        self.err(path, "matches none of the element forms");
        None
    }
}

/// A value being checked: admin JSON or an uploaded plist.
trait Source: Sized {
    fn kind(&self) -> &'static str;
    /// How the type is written in this source, when not obvious.
    fn hint(ty: KeyType) -> &'static str;
    fn boolean(&self) -> Option<bool>;
    fn integer(&self) -> Option<Integer>;
    fn real(&self) -> Option<f64>;
    fn string(&self) -> Option<&str>;
    /// `None` when the value cannot be data at all.
    fn data(&self) -> Option<Result<Vec<u8>, String>>;
    fn date(&self) -> Option<Result<plist::Date, String>>;
    fn array(&self) -> Option<&[Self]>;
    fn dict(&self) -> Option<Vec<(&str, &Self)>>;
    /// The natural plist form; on failure the path below this value and the problem.
    fn any(&self) -> Result<Plist, (String, String)>;
}

impl Source for Json {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(n) if n.is_f64() => "number",
            Json::Number(_) => "integer",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
    fn hint(ty: KeyType) -> &'static str {
        match ty {
            KeyType::Data => " (a base64 string)",
            KeyType::Date => " (an RFC 3339 string)",
            KeyType::Dictionary => " (an object)",
            _ => "",
        }
    }
    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }
    fn integer(&self) -> Option<Integer> {
        let n = self.as_number()?;
        n.as_i64()
            .map(Integer::from)
            .or_else(|| n.as_u64().map(Integer::from))
    }
    fn real(&self) -> Option<f64> {
        self.as_number()?.as_f64()
    }
    fn string(&self) -> Option<&str> {
        self.as_str()
    }
    fn data(&self) -> Option<Result<Vec<u8>, String>> {
        use base64::Engine;
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        const B64: GeneralPurpose = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let s = self.as_str()?;
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        Some(
            B64.decode(compact)
                .map_err(|e| format!("not valid base64 ({e})")),
        )
    }
    fn date(&self) -> Option<Result<plist::Date, String>> {
        let s = self.as_str()?;
        Some(
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| plist::Date::from(std::time::SystemTime::from(t)))
                .map_err(|e| format!("not an RFC 3339 date-time ({e})")),
        )
    }
    fn array(&self) -> Option<&[Self]> {
        self.as_array().map(Vec::as_slice)
    }
    fn dict(&self) -> Option<Vec<(&str, &Self)>> {
        self.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
    }
    fn any(&self) -> Result<Plist, (String, String)> {
        Ok(match self {
            Json::Null => return Err((String::new(), "null has no plist form".into())),
            Json::Bool(b) => Plist::Boolean(*b),
            Json::Number(_) => match self.integer() {
                Some(i) => Plist::Integer(i),
                None => Plist::Real(self.real().unwrap_or_default()),
            },
            Json::String(s) => Plist::String(s.clone()),
            Json::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(item.any().map_err(|(p, e)| (format!("[{i}]{p}"), e))?);
                }
                Plist::Array(out)
            }
            Json::Object(m) => {
                let mut out = Dictionary::new();
                for (k, v) in m {
                    out.insert(
                        k.clone(),
                        v.any().map_err(|(p, e)| (format!(".{k}{p}"), e))?,
                    );
                }
                Plist::Dictionary(out)
            }
        })
    }
}

impl Source for Plist {
    fn kind(&self) -> &'static str {
        plist_kind(self)
    }
    fn hint(_: KeyType) -> &'static str {
        ""
    }
    fn boolean(&self) -> Option<bool> {
        self.as_boolean()
    }
    fn integer(&self) -> Option<Integer> {
        match self {
            Plist::Integer(i) => Some(*i),
            _ => None,
        }
    }
    fn real(&self) -> Option<f64> {
        match self {
            Plist::Real(r) => Some(*r),
            // A whole number written as <integer> where <real> is expected reads the same.
            Plist::Integer(i) => i
                .as_signed()
                .map(|i| i as f64)
                .or(i.as_unsigned().map(|u| u as f64)),
            _ => None,
        }
    }
    fn string(&self) -> Option<&str> {
        self.as_string()
    }
    fn data(&self) -> Option<Result<Vec<u8>, String>> {
        self.as_data().map(|d| Ok(d.to_vec()))
    }
    fn date(&self) -> Option<Result<plist::Date, String>> {
        self.as_date().map(Ok)
    }
    fn array(&self) -> Option<&[Self]> {
        self.as_array().map(Vec::as_slice)
    }
    fn dict(&self) -> Option<Vec<(&str, &Self)>> {
        self.as_dictionary()
            .map(|d| d.iter().map(|(k, v)| (k.as_str(), v)).collect())
    }
    fn any(&self) -> Result<Plist, (String, String)> {
        Ok(self.clone())
    }
}

fn plist_kind(v: &Plist) -> &'static str {
    match v {
        Plist::Array(_) => "array",
        Plist::Dictionary(_) => "dictionary",
        Plist::Boolean(_) => "boolean",
        Plist::Data(_) => "data",
        Plist::Date(_) => "date",
        Plist::Real(_) => "real",
        Plist::Integer(_) => "integer",
        Plist::String(_) => "string",
        Plist::Uid(_) => "uid",
        _ => "unknown value",
    }
}

// Shorthands for the generated table.
const STRING: KeyType = KeyType::String;
const INTEGER: KeyType = KeyType::Integer;
const BOOLEAN: KeyType = KeyType::Boolean;
#[allow(dead_code)] // no <real> key in Apple's command schema today
const REAL: KeyType = KeyType::Real;
#[allow(dead_code)] // no <date> key in Apple's command schema today
const DATE: KeyType = KeyType::Date;
const DATA: KeyType = KeyType::Data;
const ARRAY: KeyType = KeyType::Array;
const DICT: KeyType = KeyType::Dictionary;
const ANY: KeyType = KeyType::Any;
const REQ: bool = true;
const OPT: bool = false;
use Allowed::{Int as I, Str as S};

const fn k(
    name: &'static str,
    ty: KeyType,
    required: bool,
    values: &'static [Allowed],
    keys: &'static [Key],
) -> Key {
    Key {
        name,
        ty,
        required,
        values,
        keys,
    }
}

// The table, generated (its own file, included here so that it shares this module's
// types and shorthands).
include!("command_schema_table.rs");

//! Checking an admin's command payload against the command's schema
//! (`schema.rs`), and converting admin JSON to the plist the device receives.
//!
//! Apple ignores keys it does not know; we refuse them, to catch typos.

use plist::{Dictionary, Value as Plist};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::command::payload_source::Source;
use crate::command::schema::{Allowed, Key, KeyType, NOT_REQUIRED, RULES, Rule, schema};

/// What is wrong with one key of a payload. `key` is a path into the payload, e.g.
/// `Settings[0].Item`; `RequestType` for an unknown command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadError {
    pub key: String,
    pub problem: String,
}

/// A payload problem in the admin API's answer: the key is the field at fault.
impl From<PayloadError> for crate::api::FieldError {
    fn from(e: PayloadError) -> Self {
        crate::api::FieldError::new(e.key, e.problem)
    }
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

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

pub(super) const MISSING: &str = "missing required key";

pub(super) fn unknown_key_problem() -> String {
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

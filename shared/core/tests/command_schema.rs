//! The payload-key table is Apple's YAML (re-derived here; `UPDATE_COMMAND_SCHEMA=1`
//! rewrites the generated `src/mdm/command_schema_table.rs`, included by `command_schema.rs`), and admin payloads are
//! converted and checked by it.

use base64::Engine;
use mdm_core::mdm::command;
use mdm_core::mdm::command_payload::{
    PayloadError, payload_from_json, validate_plist, value_from_json,
};
use mdm_core::mdm::command_schema::{
    self, Allowed, Key, KeyType, NOT_REQUIRED, RULES, Rule, SCHEMAS,
};
use mdm_core::mdm::command_upload::parse_raw_command;
use plist::{Dictionary, Value as Plist};
use serde_json::{Map, Value as Json, json};
use serde_yaml_ng::Value as Yaml;

// ---------------------------------------------------------------------------------------
// The table against the YAML

const MARKER: &str = "// @generated from tests/vectors/apple-device-management/mdm/commands/*.yaml";

#[derive(Debug)]
enum Val {
    S(String),
    I(i64),
}

#[derive(Debug)]
struct K {
    name: String,
    ty: &'static str,
    required: bool,
    values: Vec<Val>,
    keys: Vec<K>,
}

fn yaml_str(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn derive_keys(list: &Yaml, path: &str) -> Vec<K> {
    let Some(list) = list.as_sequence() else {
        assert!(list.is_null(), "{path}: keys are not a list");
        return Vec::new();
    };
    list.iter()
        .map(|k| {
            let name = yaml_str(&k["key"]);
            let p = format!("{path}.{name}");
            let ty = match k["type"].as_str() {
                Some("<string>") => "STRING",
                Some("<integer>") => "INTEGER",
                Some("<boolean>") => "BOOLEAN",
                Some("<real>") => "REAL",
                Some("<date>") => "DATE",
                Some("<data>") => "DATA",
                Some("<array>") => "ARRAY",
                Some("<dictionary>") => "DICT",
                Some("<any>") => "ANY",
                other => panic!("{p}: type {other:?}"),
            };
            let required = match k["presence"].as_str() {
                Some("required") => true,
                Some("optional") | None => false,
                other => panic!("{p}: presence {other:?}"),
            };
            let values = match &k["rangelist"] {
                Yaml::Null => Vec::new(),
                Yaml::Sequence(vs) => vs
                    .iter()
                    .map(|v| match v {
                        Yaml::String(s) => Val::S(s.clone()),
                        Yaml::Number(n) => {
                            Val::I(n.as_i64().unwrap_or_else(|| panic!("{p}: rangelist {n}")))
                        }
                        other => panic!("{p}: rangelist value {other:?}"),
                    })
                    .collect(),
                other => panic!("{p}: rangelist {other:?}"),
            };
            K {
                keys: derive_keys(&k["subkeys"], &p),
                name,
                ty,
                required,
                values,
            }
        })
        .collect()
}

/// (RequestType, payload keys) per YAML file, in file-name order like commands_table.
fn derive() -> Vec<(String, Vec<K>)> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/apple-device-management/mdm/commands"
    );
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let doc: Yaml =
                serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let rt = doc["payload"]["requesttype"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no requesttype", path.display()))
                .to_string();
            let keys = derive_keys(&doc["payloadkeys"], &rt);
            (rt, keys)
        })
        .collect()
}

fn render_keys(keys: &[K], depth: usize, out: &mut String) {
    let ind = "    ".repeat(depth);
    for k in keys {
        let values: Vec<String> = k
            .values
            .iter()
            .map(|v| match v {
                Val::S(s) => format!("S({s:?})"),
                Val::I(i) => format!("I({i})"),
            })
            .collect();
        let req = if k.required { "REQ" } else { "OPT" };
        let head = format!(
            "{ind}k({:?}, {}, {req}, &[{}], &[",
            k.name,
            k.ty,
            values.join(", ")
        );
        if k.keys.is_empty() {
            out.push_str(&format!("{head}]),\n"));
        } else {
            out.push_str(&format!("{head}\n"));
            render_keys(&k.keys, depth + 1, out);
            out.push_str(&format!("{ind}]),\n"));
        }
    }
}

fn render(cmds: &[(String, Vec<K>)]) -> String {
    let mut out = String::from("#[rustfmt::skip]\npub const SCHEMAS: &[Schema] = &[\n");
    for (rt, keys) in cmds {
        if keys.is_empty() {
            out.push_str(&format!(
                "    Schema {{ request_type: {rt:?}, keys: &[] }},\n"
            ));
        } else {
            out.push_str(&format!("    Schema {{ request_type: {rt:?}, keys: &[\n"));
            render_keys(keys, 2, &mut out);
            out.push_str("    ] },\n");
        }
    }
    out.push_str("];\n");
    out
}

fn type_token(t: KeyType) -> &'static str {
    match t {
        KeyType::String => "STRING",
        KeyType::Integer => "INTEGER",
        KeyType::Boolean => "BOOLEAN",
        KeyType::Real => "REAL",
        KeyType::Date => "DATE",
        KeyType::Data => "DATA",
        KeyType::Array => "ARRAY",
        KeyType::Dictionary => "DICT",
        KeyType::Any => "ANY",
    }
}

fn compare(table: &[Key], yaml: &[K], path: &str) {
    let names = |ks: &[Key]| ks.iter().map(|k| k.name.to_string()).collect::<Vec<_>>();
    let ynames = yaml.iter().map(|k| k.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(table), ynames, "{path}: key names");
    for (t, y) in table.iter().zip(yaml) {
        let p = format!("{path}.{}", y.name);
        assert_eq!(type_token(t.ty), y.ty, "{p}: type");
        assert_eq!(t.required, y.required, "{p}: required");
        let yvalues: Vec<Allowed> = y
            .values
            .iter()
            .map(|v| match v {
                Val::S(s) => Allowed::Str(Box::leak(s.clone().into_boxed_str())),
                Val::I(i) => Allowed::Int(*i),
            })
            .collect();
        assert_eq!(t.values, yvalues.as_slice(), "{p}: rangelist");
        compare(t.keys, &y.keys, &p);
    }
}

#[test]
fn schema_table_matches_apple_yaml() {
    let derived = derive();
    assert_eq!(SCHEMAS.len(), derived.len(), "one schema per YAML file");
    for (s, (rt, keys)) in SCHEMAS.iter().zip(&derived) {
        assert_eq!(s.request_type, rt);
        compare(s.keys, keys, rt);
    }
    // Same order and coverage as the capability table.
    let rts: Vec<_> = SCHEMAS.iter().map(|s| s.request_type).collect();
    let caps: Vec<_> = mdm_core::mdm::commands_table::COMMANDS
        .iter()
        .map(|c| c.request_type)
        .collect();
    assert_eq!(rts, caps);
}

/// The committed text is exactly what the YAML renders to (so the table is generated, not
/// hand-edited); `UPDATE_COMMAND_SCHEMA=1` rewrites it.
#[test]
fn generated_text_is_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/mdm/command_schema_table.rs"
    );
    let source = std::fs::read_to_string(path).unwrap();
    let at = source.find(MARKER).expect("generated marker");
    let body_start = at + source[at..].find('\n').unwrap() + 1;
    let want = render(&derive());
    if source[body_start..] == want {
        return;
    }
    if std::env::var_os("UPDATE_COMMAND_SCHEMA").is_some() {
        std::fs::write(path, format!("{}{want}", &source[..body_start])).unwrap();
        eprintln!("rewrote {path}");
        return;
    }
    let line = source[body_start..]
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    panic!(
        "the generated table in {path} is stale (first difference at generated line {}: {:?} \
         should be {:?}); run UPDATE_COMMAND_SCHEMA=1 cargo test -p mdm-core --test command_schema",
        line + 1,
        source[body_start..].lines().nth(line),
        want.lines().nth(line)
    );
}

#[test]
fn overrides_name_real_keys() {
    fn find<'a>(keys: &'a [Key], path: &str) -> Option<&'a Key> {
        let (head, rest) = path.split_once('.').unwrap_or((path, ""));
        let (name, element) = match head.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (head, false),
        };
        let key = keys.iter().find(|k| k.name == name)?;
        let key = if element { key.keys.first()? } else { key };
        if rest.is_empty() {
            Some(key)
        } else {
            find(key.keys, rest)
        }
    }
    for (rt, path) in NOT_REQUIRED {
        let s = command_schema::schema(rt).unwrap();
        assert!(
            find(s.keys, path).is_some_and(|k| k.required),
            "{rt} {path}"
        );
    }
    for (rt, path, rule) in RULES {
        let s = command_schema::schema(rt).unwrap();
        let dict = if path.is_empty() {
            s.keys
        } else {
            find(s.keys, path).unwrap().keys
        };
        let names: Vec<&str> = match rule {
            Rule::AnyOf(n) => n.to_vec(),
            Rule::RequiredUnlessTrue { key, flag } => vec![key, flag],
            Rule::Requires { key, needs } => vec![key, needs],
        };
        for n in names {
            assert!(dict.iter().any(|k| k.name == n), "{rt} {path}: {n}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Minimal valid payloads from the schema, and every required key enforced

/// A valid value for `key`, with paths in `required` of every key in it that must be
/// there: the required ones, the ones RULES ask for, and, so that their required keys are
/// checked too, optional containers holding required keys (not themselves listed).
struct Sampler<'a> {
    rt: &'a str,
    required: Vec<String>,
}

fn has_required(key: &Key) -> bool {
    key.keys.iter().any(|k| k.required || has_required(k))
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.into()
    } else {
        format!("{path}.{name}")
    }
}

impl Sampler<'_> {
    fn value(&mut self, key: &Key, path: &str, schema_path: &str) -> Json {
        if let Some(v) = key.values.first() {
            return match v {
                Allowed::Str(s) => json!(s),
                Allowed::Int(i) => json!(i),
            };
        }
        match key.ty {
            KeyType::String if !key.keys.is_empty() => json!(key.keys[0].name),
            KeyType::String => json!("x"),
            KeyType::Integer => json!(1),
            KeyType::Boolean => json!(true),
            KeyType::Real => json!(1.5),
            KeyType::Date => json!("2024-05-01T12:00:00Z"),
            KeyType::Data => json!("AAEC"),
            KeyType::Any => json!("x"),
            // One element per form when there are several (each Settings item).
            KeyType::Array => Json::Array(
                key.keys
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        self.value(e, &format!("{path}[{i}]"), &format!("{schema_path}[]"))
                    })
                    .collect(),
            ),
            KeyType::Dictionary => Json::Object(self.dict(key.keys, path, schema_path)),
        }
    }

    fn dict(&mut self, keys: &[Key], path: &str, schema_path: &str) -> Map<String, Json> {
        let rt = self.rt;
        let mut m = Map::new();
        let mut must = Vec::new();
        for k in keys {
            let sp = join(schema_path, k.name);
            let required = k.required && !NOT_REQUIRED.iter().any(|(r, p)| *r == rt && *p == sp);
            if required {
                must.push(k.name);
            }
            if required || has_required(k) {
                m.insert(k.name.into(), self.value(k, &join(path, k.name), &sp));
            }
        }
        for (_, _, rule) in RULES
            .iter()
            .filter(|(r, p, _)| *r == rt && *p == schema_path)
        {
            let name = match rule {
                Rule::AnyOf(names) => names[0],
                Rule::RequiredUnlessTrue { key, .. } => key,
                Rule::Requires { .. } => continue,
            };
            let k = keys.iter().find(|k| k.name == name).unwrap();
            must.push(name);
            m.insert(
                name.into(),
                self.value(k, &join(path, name), &join(schema_path, name)),
            );
        }
        self.required.extend(must.iter().map(|n| join(path, n)));
        m
    }
}

/// A valid payload, and the paths of the keys it must have.
fn minimal_with(rt: &str) -> (Map<String, Json>, Vec<String>) {
    let mut s = Sampler {
        rt,
        required: Vec::new(),
    };
    let m = s.dict(command_schema::schema(rt).unwrap().keys, "", "");
    (m, s.required)
}

fn minimal(rt: &str) -> Map<String, Json> {
    minimal_with(rt).0
}

fn errors(rt: &str, payload: Json) -> Vec<PayloadError> {
    payload_from_json(rt, payload.as_object().unwrap()).expect_err("should be refused")
}

fn has(errs: &[PayloadError], key: &str, problem: &str) -> bool {
    errs.iter()
        .any(|e| e.key == key && e.problem.contains(problem))
}

#[test]
fn every_command_accepts_its_minimal_payload() {
    for s in SCHEMAS {
        let m = minimal(s.request_type);
        let out = payload_from_json(s.request_type, &m)
            .unwrap_or_else(|e| panic!("{}: {e:?} for {m:?}", s.request_type));
        assert_eq!(out.len(), m.len(), "{}", s.request_type);
        validate_plist(s.request_type, &out)
            .unwrap_or_else(|e| panic!("{} as plist: {e:?}", s.request_type));
    }
}

/// Each key a payload must have, at any depth, removed in turn is reported at its path,
/// the same from JSON and from plist.
#[test]
fn every_required_key_is_enforced() {
    fn parts(path: &str) -> Vec<(&str, Option<usize>)> {
        path.split('.')
            .map(|part| match part.split_once('[') {
                Some((n, r)) => (n, Some(r.trim_end_matches(']').parse::<usize>().unwrap())),
                None => (part, None),
            })
            .collect()
    }
    fn remove_json(v: &mut Json, path: &str) {
        let parts = parts(path);
        let mut cur = v;
        for (name, index) in &parts[..parts.len() - 1] {
            cur = &mut cur[*name];
            if let Some(i) = index {
                cur = &mut cur[*i];
            }
        }
        cur.as_object_mut()
            .unwrap()
            .remove(parts[parts.len() - 1].0)
            .unwrap();
    }
    fn remove_plist(d: &mut Dictionary, path: &str) {
        let parts = parts(path);
        let mut cur = d;
        for (name, index) in &parts[..parts.len() - 1] {
            let mut v = cur.get_mut(name).unwrap();
            if let Some(i) = index {
                v = &mut v.as_array_mut().unwrap()[*i];
            }
            cur = v.as_dictionary_mut().unwrap();
        }
        cur.remove(parts[parts.len() - 1].0).unwrap();
    }
    /// Keys Apple marks required, at any depth (array element schemas are not keys).
    fn count_required(keys: &[Key], element_schemas: bool) -> usize {
        keys.iter()
            .map(|k| {
                usize::from(k.required && !element_schemas)
                    + count_required(k.keys, k.ty == KeyType::Array)
            })
            .sum()
    }

    let mut checked = 0;
    for s in SCHEMAS {
        let rt = s.request_type;
        let (full, required) = minimal_with(rt);
        let full = Json::Object(full);
        let as_plist = payload_from_json(rt, full.as_object().unwrap()).unwrap();
        for p in &required {
            let mut v = full.clone();
            remove_json(&mut v, p);
            let errs = errors(rt, v);
            let reported = errs
                .iter()
                .any(|e| e.key.split(" or ").any(|k| k == p) && e.problem.contains("required"));
            assert!(reported, "{rt}: without {p}: {errs:?}");
            let mut d = as_plist.clone();
            remove_plist(&mut d, p);
            assert_eq!(
                validate_plist(rt, &d).unwrap_err(),
                errs,
                "{rt} {p} as plist"
            );
            checked += 1;
        }
    }
    let apple: usize = SCHEMAS.iter().map(|s| count_required(s.keys, false)).sum();
    let conditional = RULES
        .iter()
        .filter(|(_, _, r)| !matches!(r, Rule::Requires { .. }))
        .count();
    assert_eq!(apple, 76);
    assert_eq!(checked, apple - NOT_REQUIRED.len() + conditional);
}

#[test]
fn settings_requires_settings_and_the_others_their_keys() {
    assert!(has(
        &errors("Settings", json!({})),
        "Settings",
        "missing required key"
    ));
    assert!(has(
        &errors("InstallProfile", json!({})),
        "Payload",
        "missing required key"
    ));
    assert!(has(
        &errors("RemoveProfile", json!({})),
        "Identifier",
        "missing required key"
    ));
    // Optional despite the YAML (see NOT_REQUIRED).
    assert!(payload_from_json("ScheduleOSUpdate", &Map::new()).is_ok());
    // Commands without keys take an empty payload.
    assert!(
        payload_from_json("DeviceConfigured", &Map::new())
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------
// Conversions

fn key(ty: KeyType) -> Key {
    Key {
        name: "K",
        ty,
        required: true,
        values: &[],
        keys: &[],
    }
}

#[test]
fn scalar_conversions() {
    let ok = |ty, v: Json| value_from_json(&key(ty), &v).unwrap();
    let bad = |ty, v: Json| {
        value_from_json(&key(ty), &v).unwrap_err()[0]
            .problem
            .clone()
    };

    assert_eq!(ok(KeyType::String, json!("hi")), Plist::String("hi".into()));
    assert_eq!(
        bad(KeyType::String, json!(1)),
        "expected string, found integer"
    );

    assert_eq!(ok(KeyType::Integer, json!(-7)), Plist::Integer((-7).into()));
    assert_eq!(
        ok(KeyType::Integer, json!(u64::MAX)),
        Plist::Integer(u64::MAX.into())
    );
    assert_eq!(
        bad(KeyType::Integer, json!(1.5)),
        "expected integer, found number"
    );
    assert_eq!(
        bad(KeyType::Integer, json!("1")),
        "expected integer, found string"
    );

    assert_eq!(ok(KeyType::Boolean, json!(false)), Plist::Boolean(false));
    assert_eq!(
        bad(KeyType::Boolean, json!("true")),
        "expected boolean, found string"
    );
    assert_eq!(
        bad(KeyType::Boolean, json!(null)),
        "expected boolean, found null"
    );

    assert_eq!(ok(KeyType::Real, json!(2.5)), Plist::Real(2.5));
    assert_eq!(ok(KeyType::Real, json!(3)), Plist::Real(3.0));
    assert_eq!(
        bad(KeyType::Real, json!(true)),
        "expected real, found boolean"
    );

    assert_eq!(
        ok(KeyType::Data, json!("AAEC/w==")),
        Plist::Data(vec![0, 1, 2, 255])
    );
    assert_eq!(
        ok(KeyType::Data, json!("AAEC\n/w")),
        Plist::Data(vec![0, 1, 2, 255])
    );
    assert!(
        bad(KeyType::Data, json!("not base64!")).starts_with("expected data: not valid base64")
    );
    assert_eq!(
        bad(KeyType::Data, json!(5)),
        "expected data (a base64 string), found integer"
    );

    let date = ok(KeyType::Date, json!("2024-05-01T14:00:00+02:00"));
    assert_eq!(
        date.as_date().unwrap().to_xml_format(),
        "2024-05-01T12:00:00Z"
    );
    assert!(bad(KeyType::Date, json!("May 1st")).starts_with("expected date: not an RFC 3339"));
    assert_eq!(
        bad(KeyType::Date, json!(1)),
        "expected date (an RFC 3339 string), found integer"
    );

    let any = ok(KeyType::Any, json!({"a": [1, 2.5, "s", true, {"b": {}}]}));
    let mut inner = Dictionary::new();
    inner.insert("b".into(), Plist::Dictionary(Dictionary::new()));
    let mut want = Dictionary::new();
    want.insert(
        "a".into(),
        Plist::Array(vec![
            Plist::Integer(1.into()),
            Plist::Real(2.5),
            Plist::String("s".into()),
            Plist::Boolean(true),
            Plist::Dictionary(inner),
        ]),
    );
    assert_eq!(any, Plist::Dictionary(want));
    let e = value_from_json(&key(KeyType::Any), &json!({"a": [1, null]})).unwrap_err();
    assert_eq!(e[0].key, "K.a[1]");
}

#[test]
fn settings_items_by_their_item() {
    let out = payload_from_json(
        "Settings",
        json!({"Settings": [
            {"Item": "DeviceName", "DeviceName": "Lab iPad 7"},
            {"Item": "MaximumResidentUsers", "MaximumResidentUsers": 4},
            {"Item": "Wallpaper", "Image": "iVBORw0K", "Where": 3},
            {"Item": "ApplicationConfiguration", "Identifier": "com.example.app",
             "Configuration": {"server": "https://x", "retries": 3, "nested": {"on": true}}},
            {"Item": "OrganizationInfo", "OrganizationInfo": {"OrganizationName": "Example"}},
        ]})
        .as_object()
        .unwrap(),
    )
    .unwrap();
    let items = out["Settings"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let d0 = items[0].as_dictionary().unwrap();
    assert_eq!(d0["Item"].as_string(), Some("DeviceName"));
    assert_eq!(d0["DeviceName"].as_string(), Some("Lab iPad 7"));
    let d1 = items[1].as_dictionary().unwrap();
    assert_eq!(d1["MaximumResidentUsers"].as_signed_integer(), Some(4));
    let d2 = items[2].as_dictionary().unwrap();
    assert_eq!(
        d2["Image"].as_data(),
        Some(&[0x89, b'P', b'N', b'G', 13, 10][..])
    );
    let cfg = items[3].as_dictionary().unwrap()["Configuration"]
        .as_dictionary()
        .unwrap();
    assert_eq!(cfg["retries"].as_signed_integer(), Some(3));
    assert_eq!(
        cfg["nested"].as_dictionary().unwrap()["on"].as_boolean(),
        Some(true)
    );

    // Errors carry the element's path.
    let errs = errors(
        "Settings",
        json!({"Settings": [
            {"Item": "DeviceName", "DeviceName": "ok"},
            {"Item": "MaximumResidentUsers", "MaximumResidentUsers": "4"},
            {"Item": "DeviceName"},
            {"DeviceName": "no item"},
            {"Item": "DeviceNmae", "DeviceName": "typo"},
            {"Item": "DeviceName", "DeviceName": "x", "Colour": "red"},
            {"Item": "Wallpaper", "Image": "iVBORw0K", "Where": 4},
            "DeviceName",
        ]}),
    );
    assert!(has(
        &errs,
        "Settings[1].MaximumResidentUsers",
        "expected integer, found string"
    ));
    assert!(has(&errs, "Settings[2].DeviceName", "missing required key"));
    assert!(has(&errs, "Settings[3].Item", "missing required key"));
    assert!(has(
        &errs,
        "Settings[4].Item",
        "not one of the allowed values: Wallpaper, "
    ));
    assert!(has(&errs, "Settings[5].Colour", "unknown key"));
    assert!(has(
        &errs,
        "Settings[6].Where",
        "\"4\" not one of the allowed values: 1, 2, 3"
    ));
    assert!(has(
        &errs,
        "Settings[7]",
        "expected dictionary (an object), found string"
    ));
    assert_eq!(errs.len(), 7, "{errs:?}");
    assert!(!errs.iter().any(|e| e.key.starts_with("Settings[0]")));
}

#[test]
fn device_lock_and_erase() {
    let lock = payload_from_json(
        "DeviceLock",
        json!({"Message": "Return to IT", "PhoneNumber": "+1 555 0100", "PIN": "123456"})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(lock["Message"].as_string(), Some("Return to IT"));
    assert_eq!(lock["PhoneNumber"].as_string(), Some("+1 555 0100"));
    assert_eq!(lock["PIN"].as_string(), Some("123456"));
    assert!(
        payload_from_json("DeviceLock", &Map::new())
            .unwrap()
            .is_empty()
    );
    assert!(has(
        &errors("DeviceLock", json!({"PIN": 123456})),
        "PIN",
        "expected string"
    ));

    let erase = payload_from_json(
        "EraseDevice",
        json!({"PIN": "654321", "ObliterationBehavior": "DoNotObliterate",
               "ReturnToService": {"Enabled": true, "WiFiProfileData": "PD94"}})
        .as_object()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(erase["PIN"].as_string(), Some("654321"));
    let rts = erase["ReturnToService"].as_dictionary().unwrap();
    assert_eq!(rts["WiFiProfileData"].as_data(), Some(&b"<?x"[..]));
    let errs = errors(
        "EraseDevice",
        json!({"ObliterationBehavior": "Sometimes", "ReturnToService": {"WiFiProfileData": "PD94"}}),
    );
    assert!(has(
        &errs,
        "ObliterationBehavior",
        "not one of the allowed values: Default, DoNotObliterate, ObliterateWithWarning, Always"
    ));
    assert!(has(
        &errs,
        "ReturnToService.Enabled",
        "missing required key"
    ));
    assert_eq!(errs.len(), 2);
}

#[test]
fn install_profile_payload_is_base64_data() {
    let profile = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict/></plist>";
    let b64 = base64::engine::general_purpose::STANDARD.encode(profile);
    let out = payload_from_json(
        "InstallProfile",
        json!({"Payload": b64}).as_object().unwrap(),
    )
    .unwrap();
    assert_eq!(out["Payload"], Plist::Data(profile.to_vec()));
    assert!(has(
        &errors("InstallProfile", json!({"Payload": "%%%"})),
        "Payload",
        "not valid base64"
    ));
    assert!(has(
        &errors(
            "InstallProfile",
            json!({"Payload": {"PayloadType": "Configuration"}})
        ),
        "Payload",
        "expected data (a base64 string), found object"
    ));
}

#[test]
fn rangelists_unknown_keys_and_request_types() {
    assert!(has(
        &errors("InstallMedia", json!({"MediaType": "Film"})),
        "MediaType",
        "\"Film\" not one of the allowed values: Book"
    ));
    assert!(has(
        &errors(
            "InstallApplication",
            json!({"Identifier": "a.b", "ManagementFlags": 2})
        ),
        "ManagementFlags",
        "not one of the allowed values: 1, 4, 5"
    ));
    // Array elements with a rangelist, and DeviceInformation queries (their subkeys).
    assert!(has(
        &errors(
            "InstalledApplicationList",
            json!({"Items": ["Name", "Nmae"]})
        ),
        "Items[1]",
        "not one of the allowed values"
    ));
    let q = payload_from_json(
        "DeviceInformation",
        json!({"Queries": ["UDID", "OSVersion", "SerialNumber"]})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(q["Queries"].as_array().unwrap().len(), 3);
    assert!(has(
        &errors("DeviceInformation", json!({"Queries": ["SerialNumbr"]})),
        "Queries[0]",
        "not one of the"
    ));

    let errs = errors("RestartDevice", json!({"NotifyUsr": true}));
    assert_eq!(
        errs,
        vec![PayloadError {
            key: "NotifyUsr".into(),
            problem:
                "unknown key (Apple ignores keys it does not know; refused here to catch typos)"
                    .into()
        }]
    );
    assert_eq!(
        errors("Frobnicate", json!({})),
        vec![PayloadError {
            key: "RequestType".into(),
            problem: "unknown RequestType \"Frobnicate\"".into()
        }]
    );
    // RequestType in the payload: dropped when it agrees, refused when it does not.
    let out = payload_from_json(
        "RestartDevice",
        json!({"RequestType": "RestartDevice"}).as_object().unwrap(),
    )
    .unwrap();
    assert!(out.is_empty());
    assert!(has(
        &errors("RestartDevice", json!({"RequestType": "EraseDevice"})),
        "RequestType",
        "does not match"
    ));
    // Serialises as JSON for the admin API.
    assert_eq!(
        serde_json::to_value(&errs[0]).unwrap(),
        json!({"key": "NotifyUsr", "problem": errs[0].problem})
    );
}

#[test]
fn conditional_requirements() {
    assert!(has(
        &errors("EnableLostMode", json!({"Footnote": "x"})),
        "Message or PhoneNumber",
        "one of"
    ));
    assert!(
        payload_from_json(
            "EnableLostMode",
            json!({"PhoneNumber": "1"}).as_object().unwrap()
        )
        .is_ok()
    );
    assert!(has(
        &errors("DeleteUser", json!({})),
        "UserName",
        "unless DeleteAllUsers is true"
    ));
    assert!(
        payload_from_json(
            "DeleteUser",
            json!({"DeleteAllUsers": true}).as_object().unwrap()
        )
        .is_ok()
    );
    assert!(has(
        &errors("DeleteUser", json!({"DeleteAllUsers": false})),
        "UserName",
        "missing"
    ));
    assert!(has(
        &errors(
            "ScheduleOSUpdate",
            json!({"Updates": [{"InstallAction": "InstallASAP"}]})
        ),
        "Updates[0].ProductKey or Updates[0].ProductVersion",
        "one of these keys is required"
    ));
    assert!(has(
        &errors(
            "RotateFileVaultKey",
            json!({"KeyType": "institutional", "FileVaultUnlock": {"PrivateKeyExport": "AA=="}})
        ),
        "FileVaultUnlock.PrivateKeyExportPassword",
        "with PrivateKeyExport"
    ));
}

// ---------------------------------------------------------------------------------------
// Raw plists

#[test]
fn raw_command_round_trip_xml_and_binary() {
    let payload = payload_from_json(
        "Settings",
        json!({"Settings": [{"Item": "DeviceName", "DeviceName": "A"},
                            {"Item": "Wallpaper", "Image": "AAEC", "Where": 1}]})
        .as_object()
        .unwrap(),
    )
    .unwrap();
    let xml = command::build("6F1C-UUID", "Settings", payload.clone());
    let (rt, back, uuid) = parse_raw_command(&xml).unwrap();
    assert_eq!(
        (rt.as_str(), uuid.as_deref()),
        ("Settings", Some("6F1C-UUID"))
    );
    assert_eq!(back, payload);

    let value: Plist = plist::from_bytes(&xml).unwrap();
    let mut binary = Vec::new();
    plist::to_writer_binary(&mut binary, &value).unwrap();
    assert_eq!(
        parse_raw_command(&binary).unwrap(),
        (rt, back.clone(), uuid)
    );

    // Just the inner command dictionary.
    let mut inner = back.clone();
    inner.insert("RequestType".into(), Plist::String("Settings".into()));
    let mut bytes = Vec::new();
    plist::to_writer_xml(&mut bytes, &Plist::Dictionary(inner)).unwrap();
    assert_eq!(
        parse_raw_command(&bytes).unwrap(),
        ("Settings".into(), back, None)
    );
}

#[test]
fn raw_command_refusals() {
    let raw = |body: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict>{body}</dict></plist>"
        )
    };
    let parse = |body: &str| parse_raw_command(raw(body).as_bytes()).unwrap_err();

    // Wrong types in the plist are refused just as in JSON: here a string for <data>.
    let e = parse(
        "<key>Command</key><dict><key>RequestType</key><string>InstallProfile</string>\
                   <key>Payload</key><string>AAEC</string></dict>",
    );
    assert_eq!(
        e,
        vec![PayloadError {
            key: "Payload".into(),
            problem: "expected data, found string".into()
        }]
    );
    let ok = parse_raw_command(
        raw("<key>CommandUUID</key><string>u1</string><key>Command</key><dict><key>RequestType</key>\
             <string>InstallProfile</string><key>Payload</key><data>AAEC</data></dict>")
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(ok.1["Payload"].as_data(), Some(&[0u8, 1, 2][..]));

    assert!(has(
        &parse("<key>Command</key><dict/>"),
        "RequestType",
        "missing required key"
    ));
    assert!(has(
        &parse("<key>Command</key><dict><key>RequestType</key><string>Nope</string></dict>"),
        "RequestType",
        "unknown RequestType"
    ));
    assert!(has(
        &parse(
            "<key>CommandUUID</key><integer>1</integer><key>Command</key><dict>\
                <key>RequestType</key><string>RestartDevice</string></dict><key>Extra</key><true/>"
        ),
        "CommandUUID",
        "expected string, found integer"
    ));
    assert!(has(
        &parse(
            "<key>Command</key><dict><key>RequestType</key><string>RestartDevice</string></dict><key>Extra</key><true/>"
        ),
        "Extra",
        "unknown key"
    ));
    assert!(has(
        &parse(
            "<key>Command</key><dict><key>RequestType</key><string>Settings</string>\
                <key>Settings</key><array><dict><key>Item</key><string>MaximumResidentUsers</string>\
                <key>MaximumResidentUsers</key><string>3</string></dict></array></dict>"
        ),
        "Settings[0].MaximumResidentUsers",
        "expected integer, found string"
    ));
    assert!(has(
        &parse_raw_command(b"not a plist").unwrap_err(),
        "plist",
        "not a property list"
    ));
    // validate_plist directly, with a real given as <integer> (accepted) and a bad rangelist.
    let mut d = Dictionary::new();
    d.insert("KeyType".into(), Plist::String("corporate".into()));
    d.insert(
        "FileVaultUnlock".into(),
        Plist::Dictionary(Dictionary::new()),
    );
    let e = validate_plist("RotateFileVaultKey", &d).unwrap_err();
    assert!(has(
        &e,
        "KeyType",
        "not one of the allowed values: personal, institutional"
    ));
    assert!(has(
        &e,
        "FileVaultUnlock.Password or FileVaultUnlock.PrivateKeyExport",
        "one of"
    ));
}

//! Minimal valid payloads sampled from the schema, and every required key enforced.

use super::*;

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
    let m = s.dict(command::schema::schema(rt).unwrap().keys, "", "");
    (m, s.required)
}

fn minimal(rt: &str) -> Map<String, Json> {
    minimal_with(rt).0
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

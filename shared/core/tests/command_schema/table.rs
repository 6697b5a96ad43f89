//! The table against Apple's YAML: re-derived from it and compared key by key, and the
//! generated text of `src/command/schema_table.rs` current (`UPDATE_COMMAND_SCHEMA=1`
//! rewrites it).

use super::*;

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
    let caps: Vec<_> = mdm_core::command::table::COMMANDS
        .iter()
        .map(|c| c.request_type)
        .collect();
    assert_eq!(rts, caps);
}

/// The committed text is exactly what the YAML renders to (so the table is generated, not
/// hand-edited); `UPDATE_COMMAND_SCHEMA=1` rewrites it.
#[test]
fn generated_text_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/command/schema_table.rs");
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
        let s = command::schema::schema(rt).unwrap();
        assert!(
            find(s.keys, path).is_some_and(|k| k.required),
            "{rt} {path}"
        );
    }
    for (rt, path, rule) in RULES {
        let s = command::schema::schema(rt).unwrap();
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

//! The skip-key table is Apple's YAML, not a hand copy.

use mdm_core::dep::skipkeys::{self, Avail, Platform, SKIP_KEYS};
use serde_yaml_ng::Value;

fn yaml() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/apple-device-management/other/skipkeys.yaml"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (shared/ must sit beside the checkout)"));
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Apple's rule (docs/schema.md): a key inherits the payload's `supportedOS` and its own
/// entries override field by field.
fn avail(doc: &Value, key: &Value, platform: &str) -> Avail {
    let field = |name: &str| {
        let own = &key["supportedOS"][platform][name];
        if own.is_null() {
            doc["payload"]["supportedOS"][platform][name].clone()
        } else {
            own.clone()
        }
    };
    let (introduced, deprecated) = (field("introduced"), field("deprecated"));
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match text(&introduced).filter(|s| s != "n/a") {
        None => Avail {
            introduced: None,
            deprecated: None,
        },
        Some(i) => Avail {
            introduced: Some(Box::leak(i.into_boxed_str())),
            deprecated: text(&deprecated).map(|d| &*Box::leak(d.into_boxed_str())),
        },
    }
}

#[test]
fn skipkeys_table_matches_apple_yaml() {
    let doc = yaml();
    let keys = doc["payloadkeys"].as_sequence().unwrap();
    assert_eq!(
        keys.len(),
        SKIP_KEYS.len(),
        "number of skip keys differs from the YAML"
    );
    for (k, row) in keys.iter().zip(SKIP_KEYS) {
        assert_eq!(k["key"].as_str(), Some(row.key));
        assert_eq!(avail(&doc, k, "iOS"), row.ios, "{} iOS", row.key);
        assert_eq!(avail(&doc, k, "macOS"), row.macos, "{} macOS", row.key);
        assert_eq!(avail(&doc, k, "tvOS"), row.tvos, "{} tvOS", row.key);
    }
}

#[test]
fn lookup_by_platform() {
    let k = skipkeys::lookup("FileVault").unwrap();
    assert!(k.on(Platform::Macos).introduced.is_some());
    assert!(k.on(Platform::Ios).introduced.is_none());
    // Location names only macOS itself; iOS and tvOS come from the payload level.
    let loc = skipkeys::lookup("Location").unwrap();
    assert_eq!(loc.on(Platform::Ios).introduced, Some("7.0"));
    assert_eq!(loc.on(Platform::Tvos).introduced, Some("10.2"));
    assert!(skipkeys::lookup("NoSuchPane").is_none());
}

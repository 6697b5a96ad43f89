//! Input files: raw bytes (`-` is standard input), and documents in YAML, JSON or a
//! property list, read as JSON values (plist data as base64, dates as RFC 3339, the way
//! the API takes them).

use std::path::Path;

use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::CliError;

pub fn read_bytes(ctx: &mut Ctx, path: &Path) -> Result<Vec<u8>, CliError> {
    if path.as_os_str() == "-" {
        return ctx
            .env
            .read_stdin()
            .map_err(|e| CliError::local(format!("standard input: {e}")));
    }
    std::fs::read(path).map_err(|e| CliError::local(format!("{}: {e}", path.display())))
}

/// A property list (XML or binary)?
pub fn is_plist(bytes: &[u8]) -> bool {
    let start = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).to_string();
    let start = start.trim_start();
    bytes.starts_with(b"bplist") || start.starts_with("<?xml") || start.starts_with("<plist")
}

/// A YAML, JSON or plist document as JSON.
pub fn document(name: &str, bytes: &[u8]) -> Result<Value, CliError> {
    if is_plist(bytes) {
        let v: plist::Value = plist::from_bytes(bytes)
            .map_err(|e| CliError::local(format!("{name}: not a property list: {e}")))?;
        return Ok(mdm_core::mdm::connect::to_json(&v));
    }
    // YAML 1.2 reads JSON too; JSON first for its clearer messages.
    serde_json::from_slice(bytes).or_else(|_| {
        serde_yaml_ng::from_slice(bytes)
            .map_err(|e| CliError::local(format!("{name}: neither JSON nor YAML: {e}")))
    })
}

pub fn read_document(ctx: &mut Ctx, path: &Path) -> Result<Value, CliError> {
    let bytes = read_bytes(ctx, path)?;
    document(&path.display().to_string(), &bytes)
}

/// Checks a document against the type the server reads it into, so that a typo is
/// named with its place before anything is sent.
pub fn check_as<T: serde::de::DeserializeOwned>(
    name: &str,
    what: &str,
    v: &Value,
) -> Result<(), CliError> {
    serde_json::from_value::<T>(v.clone())
        .map(|_| ())
        .map_err(|e| CliError::local(format!("{name}: not a valid {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_json_and_plist() {
        assert_eq!(
            document("a", b"name: x\nn: 1\n").unwrap(),
            json!({"name": "x", "n": 1})
        );
        assert_eq!(document("a", br#"{"a": [1]}"#).unwrap(), json!({"a": [1]}));
        let plist = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>RequestType</key><string>ProfileList</string>
<key>Data</key><data>AAE=</data></dict></plist>"#;
        assert_eq!(
            document("a", plist).unwrap(),
            json!({"RequestType": "ProfileList", "Data": "AAE="})
        );
        assert!(document("a", b"{ not: [valid").is_err());
    }
}

//! Building command plists: `{CommandUUID, Command: {RequestType, <payload keys>}}`.

use plist::{Dictionary, Value};

/// The XML plist of a command. Payload keys sit next to `RequestType`.
pub fn build(uuid: &str, request_type: &str, payload: Dictionary) -> Vec<u8> {
    let mut command = Dictionary::new();
    command.insert("RequestType".into(), Value::String(request_type.into()));
    for (k, v) in payload {
        command.insert(k, v);
    }
    let mut top = Dictionary::new();
    top.insert("CommandUUID".into(), Value::String(uuid.into()));
    top.insert("Command".into(), Value::Dictionary(command));
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &Value::Dictionary(top)).expect("plist to memory");
    out
}

/// A Settings command item: `{Item: <name>, <fields>}`.
pub fn settings_item(item: &str, fields: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    let mut d = Dictionary::new();
    d.insert("Item".into(), Value::String(item.into()));
    for (k, v) in fields {
        d.insert(k.into(), v);
    }
    Value::Dictionary(d)
}

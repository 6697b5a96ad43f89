//! Raw command plists: round trips in XML and binary, and refusals.

use super::*;

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
    let xml = command::build::build("6F1C-UUID", "Settings", payload.clone());
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

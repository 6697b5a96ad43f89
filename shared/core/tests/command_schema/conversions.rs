//! Conversions of admin JSON to plist values: scalars, Settings items by their Item,
//! DeviceLock and EraseDevice, base64 data, range lists, unknown keys and request types, and
//! conditional requirements.

use super::*;

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

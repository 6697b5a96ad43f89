//! Enrollment profile validation (every rule) and the JSON Apple receives.

use mdm_core::dep::profile_setup::device_name;
use mdm_core::dep::profiles::ProfileSpec;
use serde_json::{Value, json};

/// A real certificate (Apple's root CA) as base64 DER.
fn cert() -> String {
    let pem = include_str!("../../../tests/vectors/apple-ca/apple-root-ca.pem");
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

fn spec(v: Value) -> ProfileSpec {
    let mut base =
        json!({ "name": "Staff iPhones", "platform": "ios", "user_affinity": "with_user" });
    for (k, val) in v.as_object().unwrap() {
        base[k] = val.clone();
    }
    serde_json::from_value(base).unwrap()
}

fn errors(v: Value) -> Vec<(String, String)> {
    match spec(v).validate() {
        Ok(_) => vec![],
        Err(e) => e.into_iter().map(|f| (f.field, f.rule)).collect(),
    }
}

fn fields(v: Value) -> Vec<String> {
    errors(v).into_iter().map(|(f, _)| f).collect()
}

#[test]
fn defaults_are_valid_and_map_to_apple_keys() {
    let s = spec(json!({}));
    assert!(s.validate().is_ok());
    let p = s.apple_profile(
        "https://mdm.example.com/mdm/enroll/ade",
        "https://mdm.example.com/mdm/enroll/web",
    );
    assert_eq!(p["profile_name"], "Staff iPhones");
    assert_eq!(p["url"], "https://mdm.example.com/mdm/enroll/ade");
    assert_eq!(
        p["configuration_web_url"],
        "https://mdm.example.com/mdm/enroll/web"
    );
    assert_eq!(p["is_supervised"], true);
    assert_eq!(p["is_mdm_removable"], true);
    assert_eq!(p["await_device_configured"], true);
    assert_eq!(p["is_multi_user"], false);
    assert!(
        p.get("allow_pairing").is_none(),
        "deprecated: sent only to say no"
    );
    assert_eq!(p["skip_setup_items"], json!([]));
    assert!(p.get("supervising_host_certs").is_none());
}

#[test]
fn every_setting_reaches_the_apple_json() {
    let s = spec(json!({
        "platform": "macos", "user_affinity": "without_user", "locked_enrollment": true,
        "pairing": "certificates", "pairing_certificates": [cert()],
        "department": "IT", "support_phone_number": "+44 20 1234", "support_email_address": "it@example.com",
        "language": "en", "region": "GB", "org_magic": "m4g1c",
        "setup_assistant": { "FileVault": "hide", "Location": "show", "Siri": "hide" },
        "anchor_certificates": [cert()],
    }));
    assert_eq!(s.validate(), Ok(Default::default()));
    let p = s.apple_profile("https://x/e", "https://x/w");
    assert!(
        p.get("configuration_web_url").is_none(),
        "no user affinity, no web URL"
    );
    assert_eq!(p["is_mdm_removable"], false);
    assert_eq!(p["supervising_host_certs"], json!([cert()]));
    assert_eq!(p["skip_setup_items"], json!(["FileVault", "Siri"]));
    for (k, v) in [
        ("department", "IT"),
        ("support_phone_number", "+44 20 1234"),
        ("support_email_address", "it@example.com"),
        ("language", "en"),
        ("region", "GB"),
        ("org_magic", "m4g1c"),
    ] {
        assert_eq!(p[k], v, "{k}");
    }
    assert_eq!(p["anchor_certs"], json!([cert()]));
    let deny = spec(json!({ "pairing": "deny_all" })).apple_profile("https://x/e", "https://x/w");
    assert_eq!(deny["allow_pairing"], false);
}

#[test]
fn unsupervised_ios_is_noted_as_supervised_anyway() {
    let notices = spec(json!({ "supervised": false })).validate().unwrap();
    assert!(notices.0[0].contains("always supervised"));
    assert_eq!(
        fields(json!({ "platform": "macos", "supervised": false, "locked_enrollment": true })),
        ["locked_enrollment"]
    );
}

#[test]
fn shared_ipad_rules() {
    let ok = json!({ "user_affinity": "shared", "await_device_configured": false,
        "shared_ipad": { "maximum_cached_users": 8, "passcode_lock_grace_period": 300, "user_session_timeout": 0 } });
    assert!(errors(ok.clone()).is_empty());
    assert_eq!(
        spec(ok).apple_profile("https://x/e", "https://x/w")["is_multi_user"],
        true
    );
    assert_eq!(
        fields(json!({ "user_affinity": "shared", "await_device_configured": false })),
        ["shared_ipad"]
    );
    assert_eq!(
        fields(
            json!({ "user_affinity": "shared", "shared_ipad": { "maximum_cached_users": 25, "passcode_lock_grace_period": 61, "user_session_timeout": 29, "temporary_session_timeout": 5 } })
        ),
        [
            "shared_ipad.maximum_cached_users",
            "shared_ipad.passcode_lock_grace_period",
            "shared_ipad.user_session_timeout",
            "shared_ipad.temporary_session_timeout"
        ]
    );
    let mac = fields(
        json!({ "platform": "macos", "supervised": false, "user_affinity": "shared", "await_device_configured": false, "shared_ipad": { "maximum_cached_users": 1, "passcode_lock_grace_period": 0, "user_session_timeout": 30 } }),
    );
    assert_eq!(mac, ["user_affinity", "user_affinity"]);
    assert_eq!(
        fields(
            json!({ "shared_ipad": { "maximum_cached_users": 1, "passcode_lock_grace_period": 0, "user_session_timeout": 0 } })
        ),
        ["shared_ipad"]
    );
}

#[test]
fn pairing_certificate_rules() {
    assert_eq!(
        fields(json!({ "pairing": "certificates" })),
        ["pairing_certificates"]
    );
    assert_eq!(
        fields(json!({ "pairing_certificates": [cert()] })),
        ["pairing_certificates"]
    );
    assert_eq!(
        fields(json!({ "pairing": "certificates", "pairing_certificates": ["bm90IGEgY2VydA=="] })),
        ["pairing_certificates[0]"]
    );
    assert_eq!(
        fields(
            json!({ "platform": "tvos", "supervised": false, "pairing": "certificates", "pairing_certificates": [cert()] })
        ),
        ["pairing"]
    );
    assert_eq!(
        fields(json!({ "anchor_certificates": ["%%%"] })),
        ["anchor_certificates[0]"]
    );
}

#[test]
fn device_name_template_rules() {
    assert!(
        errors(json!({ "device_name_template": "Staff-{{SERIAL}}-{{DEVICETYPE}}" })).is_empty()
    );
    assert_eq!(
        device_name("Staff-{{SERIAL}}-{{DEVICETYPE}}", "F9FXX1", "iPad"),
        "Staff-F9FXX1-iPad"
    );
    let long = format!("{}{{{{SERIAL}}}}", "x".repeat(54));
    assert_eq!(long.chars().count(), 64);
    assert_eq!(
        fields(json!({ "device_name_template": long })),
        ["device_name_template"]
    );
    let e = errors(json!({ "device_name_template": "Dev-{{USER}}" }));
    assert!(e[0].1.contains("unknown variable {{USER}}"), "{e:?}");
    assert_eq!(
        fields(json!({ "device_name_template": "Dev-{{SERIAL" })),
        ["device_name_template"]
    );
    assert_eq!(
        fields(json!({ "device_name_template": "  " })),
        ["device_name_template"]
    );
}

#[test]
fn lengths_urls_locale_and_platform_rules() {
    let e = fields(json!({
        "name": "",
        "department": "d".repeat(126), "support_phone_number": "1".repeat(51),
        "support_email_address": "not-an-email", "org_magic": "m".repeat(257),
        "esim_server_url": "http://esim.example.com", "language": "en", "region": "GBR",
    }));
    assert_eq!(
        e,
        [
            "name",
            "esim_server_url",
            "department",
            "support_phone_number",
            "support_email_address",
            "org_magic",
            "language",
            "region",
            "region"
        ]
    );
    assert_eq!(
        fields(json!({ "platform": "macos", "esim_server_url": "https://esim.example.com/x" })),
        ["esim_server_url"]
    );
    assert_eq!(fields(json!({ "name": "n".repeat(126) })), ["name"]);
    assert!(errors(json!({ "esim_server_url": "https://esim.example.com/activate" })).is_empty());
}

#[test]
fn skip_keys_are_checked_against_the_platform() {
    let e = errors(
        json!({ "setup_assistant": { "FileVault": "hide", "NoSuchPane": "hide", "Location": "hide" } }),
    );
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].0, "setup_assistant.FileVault");
    assert!(e[0].1.contains("not available on Ios"));
    assert_eq!(
        e[1],
        (
            "setup_assistant.NoSuchPane".into(),
            "not a Setup Assistant skip key".into()
        )
    );
}

#[test]
fn unknown_fields_are_rejected_by_the_parser() {
    let r: Result<ProfileSpec, _> = serde_json::from_value(
        json!({ "name": "x", "platform": "ios", "user_affinity": "with_user", "is_supervised": true }),
    );
    assert!(r.unwrap_err().to_string().contains("is_supervised"));
}

fn settings_items(cmd: &plist::Dictionary) -> Vec<plist::Dictionary> {
    cmd["Settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_dictionary().unwrap().clone())
        .collect()
}

fn item_names(items: &[plist::Dictionary]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["Item"].as_string().unwrap().to_owned())
        .collect()
}

/// Every key the enrollment commands use exists in Apple's command schemas, and Shared
/// iPad settings use the keys the device's iPadOS version takes.
#[test]
fn enrollment_commands_use_apple_keys() {
    let s = spec(json!({
        "user_affinity": "shared",
        "shared_ipad": { "maximum_cached_users": 8, "passcode_lock_grace_period": 300, "user_session_timeout": 3600, "temporary_session_only": true, "temporary_session_timeout": 600, "quota_size_mb": 4096, "online_authentication_grace_period_days": 7 },
        "device_name_template": "Cart-{{SERIAL}}", "esim_server_url": "https://esim.example.com/plans",
    }));
    s.validate().unwrap();
    let cmds = s.enrollment_commands("F9FXX1", "iPad", Some("17.4"));
    assert_eq!(
        cmds.iter().map(|(rt, _)| *rt).collect::<Vec<_>>(),
        ["Settings", "RefreshCellularPlans"]
    );
    let items = settings_items(&cmds[0].1);
    assert_eq!(
        item_names(&items),
        ["DeviceName", "SharedDeviceConfiguration"]
    );
    assert_eq!(items[0]["DeviceName"].as_string(), Some("Cart-F9FXX1"));
    let shared = &items[1];
    let int = |k: &str| shared[k].as_signed_integer();
    assert_eq!(int("ResidentUsers"), Some(8));
    assert_eq!(int("QuotaSize"), Some(4096));
    assert_eq!(int("UserSessionTimeout"), Some(3600));
    assert_eq!(int("TemporarySessionTimeout"), Some(600));
    assert_eq!(int("OnlineAuthenticationGracePeriod"), Some(7));
    assert_eq!(shared["TemporarySessionOnly"].as_boolean(), Some(true));
    assert_eq!(
        shared["PasscodePolicy"].as_dictionary().unwrap()["PasscodeLockGracePeriod"]
            .as_signed_integer(),
        Some(300)
    );

    // Older iPadOS: only what it knows, deprecated keys only where still needed.
    let v16 = settings_items(&s.enrollment_commands("S", "iPad", Some("16.2"))[0].1);
    assert_eq!(
        item_names(&v16),
        [
            "DeviceName",
            "PasscodeLockGracePeriod",
            "SharedDeviceConfiguration"
        ]
    );
    assert!(!v16[2].contains_key("PasscodePolicy"));
    assert!(v16[2].contains_key("OnlineAuthenticationGracePeriod"));
    let v14 = settings_items(&s.enrollment_commands("S", "iPad", Some("14.4"))[0].1);
    assert!(!v14[2].contains_key("UserSessionTimeout"));
    assert!(!v14[2].contains_key("OnlineAuthenticationGracePeriod"));
    assert_eq!(v14[2]["ResidentUsers"].as_signed_integer(), Some(8));
    let v13 = settings_items(&s.enrollment_commands("S", "iPad", Some("13.3"))[0].1);
    assert_eq!(
        item_names(&v13),
        [
            "DeviceName",
            "MaximumResidentUsers",
            "PasscodeLockGracePeriod"
        ]
    );
    assert_eq!(v13[1]["MaximumResidentUsers"].as_signed_integer(), Some(8));
    // Unknown version: both forms (a device ignores an item it does not know).
    let unknown = settings_items(&s.enrollment_commands("S", "iPad", None)[0].1);
    assert_eq!(
        item_names(&unknown),
        [
            "DeviceName",
            "MaximumResidentUsers",
            "PasscodeLockGracePeriod",
            "SharedDeviceConfiguration"
        ]
    );

    // Names checked against the YAML: every key we emit is a key Apple defines.
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/apple-device-management/mdm/commands/"
    );
    let settings_yaml = std::fs::read_to_string(format!("{dir}settings.yaml")).unwrap();
    let esim_yaml = std::fs::read_to_string(format!("{dir}device.esim.yaml")).unwrap();
    fn keys(d: &plist::Dictionary, out: &mut Vec<String>) {
        for (k, v) in d {
            out.push(k.clone());
            if let Some(inner) = v.as_dictionary() {
                keys(inner, out);
            }
            for e in v.as_array().into_iter().flatten() {
                if let Some(inner) = e.as_dictionary() {
                    keys(inner, out);
                }
            }
        }
    }
    let mut used = Vec::new();
    {
        let cmd = &cmds[0].1;
        keys(cmd, &mut used);
    }
    keys(&s.enrollment_commands("S", "iPad", None)[0].1, &mut used);
    for k in used {
        assert!(
            settings_yaml.contains(&format!("key: {k}\n")),
            "Settings key {k} not in Apple's schema"
        );
    }
    assert!(
        esim_yaml.contains("key: eSIMServerURL\n")
            && esim_yaml.contains("requesttype: RefreshCellularPlans")
    );
    for name in [
        "DeviceName",
        "MaximumResidentUsers",
        "SharedDeviceConfiguration",
        "PasscodeLockGracePeriod",
    ] {
        assert!(
            settings_yaml.contains(&format!("      - {name}\n")),
            "Item {name} not in Apple's rangelist"
        );
    }
    // A plain profile needs no enrollment commands.
    assert!(
        spec(json!({}))
            .enrollment_commands("S", "iPhone", Some("17.0"))
            .is_empty()
    );
}

/// Pairing with computers: certificates go in `supervising_host_certs`; `allow_pairing`
/// (deprecated, honoured before iOS 13) only says no, and current devices get the
/// Restrictions payload that does the same at enrollment. macOS has neither.
#[test]
fn host_pairing_is_expressed_the_way_each_os_honours() {
    let cert = cert();
    let allow = spec(json!({}));
    assert!(
        allow
            .apple_profile("https://x/e", "https://x/w")
            .get("allow_pairing")
            .is_none()
    );
    let deny = spec(json!({ "pairing": "deny_all" }));
    let p = deny.apple_profile("https://x/e", "https://x/w");
    assert_eq!(p["allow_pairing"], false);
    assert!(p.get("supervising_host_certs").is_none());
    let by_cert = spec(json!({ "pairing": "certificates", "pairing_certificates": [cert] }));
    let p = by_cert.apple_profile("https://x/e", "https://x/w");
    assert_eq!(p["allow_pairing"], false);
    assert_eq!(p["supervising_host_certs"].as_array().unwrap().len(), 1);
    let mac = spec(json!({ "platform": "macos", "pairing": "deny_all" }));
    assert!(
        mac.apple_profile("https://x/e", "https://x/w")
            .get("allow_pairing")
            .is_none()
    );
    assert!(mac.enrollment_commands("S", "Mac", Some("14.0")).is_empty());
    assert!(
        allow
            .enrollment_commands("S", "iPhone", Some("17.0"))
            .is_empty()
    );

    for s in [&deny, &by_cert] {
        let cmds = s.enrollment_commands("S", "iPhone", Some("17.0"));
        assert_eq!(
            cmds.iter().map(|c| c.0).collect::<Vec<_>>(),
            ["InstallProfile"]
        );
        let xml = cmds[0].1["Payload"].as_data().unwrap();
        let profile = plist::Value::from_reader_xml(xml).unwrap();
        let profile = profile.as_dictionary().unwrap();
        assert_eq!(profile["PayloadType"].as_string(), Some("Configuration"));
        let inner = profile["PayloadContent"].as_array().unwrap()[0]
            .as_dictionary()
            .unwrap();
        assert_eq!(
            inner["PayloadType"].as_string(),
            Some("com.apple.applicationaccess")
        );
        assert_eq!(inner["allowHostPairing"].as_boolean(), Some(false));
    }
}

#[test]
fn command_plists_have_apple_shape() {
    let mut payload = plist::Dictionary::new();
    payload.insert(
        "Queries".into(),
        plist::Value::Array(vec!["OSVersion".into()]),
    );
    let xml = mdm_core::command::build::build("uuid-1", "DeviceInformation", payload);
    let v = plist::Value::from_reader_xml(&xml[..]).unwrap();
    let d = v.as_dictionary().unwrap();
    assert_eq!(d["CommandUUID"].as_string(), Some("uuid-1"));
    let c = d["Command"].as_dictionary().unwrap();
    assert_eq!(c["RequestType"].as_string(), Some("DeviceInformation"));
    assert_eq!(
        c["Queries"].as_array().unwrap()[0].as_string(),
        Some("OSVersion")
    );
}

#[test]
fn setup_commands_are_checked_against_apples_schemas_and_the_platform() {
    let ok = json!([
        { "RequestType": "InstallProfile", "Payload": "PHBsaXN0Lz4=" },
        { "RequestType": "Settings", "Settings": [{ "Item": "TimeZone", "TimeZone": "Europe/Paris" }] },
    ]);
    assert_eq!(
        fields(json!({ "setup_commands": ok })),
        Vec::<String>::new()
    );
    // Setup commands never reach Apple.
    let s = spec(json!({ "setup_commands": ok }));
    let p = s.apple_profile("https://a.example/e", "https://a.example/w");
    assert!(!p.to_string().contains("InstallProfile"));
    let (cmds, skipped) = s.admin_setup_commands();
    assert!(skipped.is_empty());
    assert_eq!(cmds[0].0, "InstallProfile");
    assert_eq!(cmds[0].1["Payload"].as_data(), Some(&b"<plist/>"[..]));

    let errs = errors(json!({ "setup_commands": [
        { "Payload": "AA==" },
        { "RequestType": "NoSuchCommand" },
        { "RequestType": "EraseDevice" },
        { "RequestType": "DeviceConfigured" },
        { "RequestType": "InstallProfile" },
        { "RequestType": "InstallProfile", "Payload": "not base64!" },
        { "RequestType": "InstallProfile", "Payload": "AA==", "Bogus": 1 },
    ]}));
    let f: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        f,
        [
            "setup_commands[0].RequestType",
            "setup_commands[1].RequestType",
            "setup_commands[2].RequestType",
            "setup_commands[3].RequestType",
            "setup_commands[4].Payload",
            "setup_commands[5].Payload",
            "setup_commands[6].Bogus",
        ],
        "{errs:?}"
    );
    assert!(errs[2].1.contains("Setup Assistant"), "{errs:?}");

    // Platform, channel and supervision.
    let errs = errors(json!({ "platform": "tvos", "user_affinity": "without_user",
        "setup_commands": [{ "RequestType": "InstallEnterpriseApplication", "ManifestURL": "https://a.example/m.plist" }] }));
    assert_eq!(errs[0].0, "setup_commands[0].RequestType");
    assert!(errs[0].1.contains("not available on tvOS"), "{errs:?}");
    let errs = errors(
        json!({ "platform": "macos", "user_affinity": "without_user",
        "setup_commands": [{ "RequestType": "ActiveNSExtensions" }] }),
    );
    assert!(errs[0].1.contains("user channel"), "{errs:?}");
    let errs = errors(
        json!({ "platform": "macos", "user_affinity": "without_user", "supervised": false,
        "setup_commands": [{ "RequestType": "ClearActivationLockBypassCode" }] }),
    );
    assert!(errs[0].1.contains("requires supervision"), "{errs:?}");

    // Bounds.
    let many: Vec<Value> = (0..21)
        .map(|_| json!({ "RequestType": "ProfileList" }))
        .collect();
    assert_eq!(
        fields(json!({ "setup_commands": many })),
        ["setup_commands"]
    );
}

//! The command capability table is Apple's YAML, and agrees with the spec's list of
//! commands allowed under User Enrollment.

use mdm_core::command;
use mdm_core::command::table::{COMMANDS, OsFamily};
use serde_yaml_ng::Value;

fn os_matches(so: &Value, row: Option<command::table::Os>, what: &str) {
    let intro = match &so["introduced"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
    .filter(|s| s != "n/a");
    let Some(intro) = intro else {
        assert!(row.is_none(), "{what}: not in the YAML");
        return;
    };
    let row = row.unwrap_or_else(|| panic!("{what}: missing from the table"));
    let flag = |k: &str, default: bool| so[k].as_bool().unwrap_or(default);
    let ue = matches!(
        so["userenrollment"]["mode"].as_str(),
        Some("allowed" | "required")
    );
    assert_eq!(row.introduced, intro, "{what} introduced");
    assert_eq!(
        row.supervised,
        flag("supervised", false),
        "{what} supervised"
    );
    assert_eq!(
        row.requires_dep,
        flag("requiresdep", false),
        "{what} requiresdep"
    );
    assert_eq!(row.user_enrollment, ue, "{what} userenrollment");
    assert_eq!(
        row.device_channel,
        flag("devicechannel", true),
        "{what} devicechannel"
    );
    assert_eq!(
        row.user_channel,
        flag("userchannel", false),
        "{what} userchannel"
    );
}

#[test]
fn command_table_matches_apple_yaml() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/apple-device-management/mdm/commands"
    );
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), COMMANDS.len());
    for (path, row) in files.iter().zip(COMMANDS) {
        let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(
            doc["payload"]["requesttype"].as_str(),
            Some(row.request_type),
            "{}",
            path.display()
        );
        let so = &doc["payload"]["supportedOS"];
        os_matches(&so["iOS"], row.ios, &format!("{} iOS", row.request_type));
        os_matches(
            &so["macOS"],
            row.macos,
            &format!("{} macOS", row.request_type),
        );
        os_matches(&so["tvOS"], row.tvos, &format!("{} tvOS", row.request_type));
        os_matches(
            &so["visionOS"],
            row.visionos,
            &format!("{} visionOS", row.request_type),
        );
        os_matches(
            &so["watchOS"],
            row.watchos,
            &format!("{} watchOS", row.request_type),
        );
    }
}

/// Apple's "User Enrollment" command list: i = iOS, m = macOS, v = visionOS; all others forbidden.
#[test]
fn user_enrollment_allows_exactly_the_spec_list() {
    let spec = [
        ("CertificateList", "imv"),
        ("ManagedApplicationList", "imv"),
        ("DeclarativeManagement", "imv"),
        ("ManagedApplicationConfiguration", "imv"),
        ("DeviceInformation", "imv"),
        ("ManagedApplicationAttributes", "iv"),
        ("DeviceLock", "iv"),
        ("ManagedApplicationFeedback", "iv"),
        ("InstallApplication", "imv"),
        ("InstallMedia", "i"),
        ("ManagedMediaList", "i"),
        ("RemoveMedia", "i"),
        ("InstallEnterpriseApplication", "m"),
        ("RequestMirroring", "im"),
        ("InstalledApplicationList", "iv"),
        ("SecurityInfo", "imv"),
        ("InstallProfile", "imv"),
        ("ProfileList", "imv"),
        ("RemoveProfile", "imv"),
        ("Settings", "imv"),
        ("InstallProvisioningProfile", "imv"),
        ("RemoveProvisioningProfile", "imv"),
        ("ProvisioningProfileList", "imv"),
        ("ValidateApplications", "iv"),
        ("RemoveApplication", "iv"),
    ];
    for c in COMMANDS {
        let allowed = spec
            .iter()
            .find(|(rt, _)| *rt == c.request_type)
            .map_or("", |(_, p)| *p);
        for (letter, os) in [
            ('i', OsFamily::Ios),
            ('m', OsFamily::Macos),
            ('v', OsFamily::Visionos),
        ] {
            let ue = c.on(os).is_some_and(|o| o.user_enrollment);
            assert_eq!(ue, allowed.contains(letter), "{} on {os:?}", c.request_type);
        }
        for os in [OsFamily::Tvos, OsFamily::Watchos] {
            assert!(
                !c.on(os).is_some_and(|o| o.user_enrollment),
                "{} on {os:?}",
                c.request_type
            );
        }
    }
    assert!(
        command::table::lookup("EraseDevice")
            .unwrap()
            .on(OsFamily::Ios)
            .is_some()
    );
    assert!(command::table::lookup("Frobnicate").is_none());
}

/// User Enrollment's forbidden DeviceInformation queries are exactly Apple's YAML.
#[test]
fn user_enrollment_query_limits_match_apple_yaml() {
    use mdm_core::command::user_enrollment::FORBIDDEN_QUERIES;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/apple-device-management/mdm/commands/information.device.yaml"
    );
    let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let queries = doc["payloadkeys"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|k| k["key"].as_str() == Some("Queries"))
        .unwrap();
    let items = queries["subkeys"][0]["subkeys"].as_sequence().unwrap();
    let os_name = |os: &OsFamily| match os {
        OsFamily::Ios => "iOS",
        OsFamily::Macos => "macOS",
        OsFamily::Tvos => "tvOS",
        OsFamily::Visionos => "visionOS",
        OsFamily::Watchos => "watchOS",
    };
    let mut from_yaml: Vec<(String, Vec<String>)> = Vec::new();
    for item in items {
        let mut forbidden = Vec::new();
        if let Some(so) = item["supportedOS"].as_mapping() {
            for (os, v) in so {
                if v["userenrollment"]["mode"].as_str() == Some("forbidden") {
                    forbidden.push(os.as_str().unwrap().to_owned());
                }
            }
        }
        if !forbidden.is_empty() {
            forbidden.sort();
            from_yaml.push((item["key"].as_str().unwrap().to_owned(), forbidden));
        }
    }
    let ours: Vec<(String, Vec<String>)> = FORBIDDEN_QUERIES
        .iter()
        .map(|(k, on)| {
            let mut v: Vec<String> = on.iter().map(|o| os_name(o).to_owned()).collect();
            v.sort();
            ((*k).to_owned(), v)
        })
        .collect();
    assert_eq!(ours, from_yaml);
    assert!(ours.iter().any(|(k, _)| k == "UDID"));
}

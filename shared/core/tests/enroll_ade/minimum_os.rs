//! The minimum OS: capable devices are asked to update, older ones refused; the
//! comparison and its validation.

use super::*;

#[test]
fn minimum_os_asks_capable_devices_to_update_and_refuses_older_ones() {
    let s = Server::new();
    let mut settings = default_profile();
    settings["minimum_os_version"] = json!("17.4");
    settings["minimum_os_build"] = json!("21E219");
    s.add_profile(1, UUID, settings);
    s.sync_device(assigned(SERIAL, UUID));
    let before = s.dump();

    let r = s.enroll_request(signed_info(&s, Some("17.2"), true));
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{}", text(&r));
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc = json_body(&r);
    assert_eq!(doc["code"], "com.apple.softwareupdate.required");
    assert_eq!(
        doc["details"],
        json!({ "OSVersion": "17.4", "BuildVersion": "21E219" })
    );
    assert!(doc["message"].is_string() && doc["description"].is_string());
    // Exactly the keys of Apple's schema.
    let schema = yaml("mdm/errors/softwareupdate.required.yaml");
    let allowed = keys_of(&schema["payloadkeys"]);
    for k in doc.as_object().unwrap().keys() {
        assert!(allowed.contains(k), "{k}");
    }
    let detail_keys = keys_of(&schema["payloadkeys"][3]["subkeys"]);
    for k in doc["details"].as_object().unwrap().keys() {
        assert!(detail_keys.contains(k), "{k}");
    }

    // Cannot update on request: refused with a reason.
    let r = s.enroll_request(signed_info(&s, Some("17.2"), false));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let doc = json_body(&r);
    assert_eq!(doc["code"], "os.too_old");
    assert!(doc["message"].as_str().unwrap().contains("17.4"));
    // Pre-17 devices do not send OS_VERSION: older than a 17.4 minimum for sure.
    let r = s.enroll_request(signed_info(&s, None, false));
    assert_eq!(json_body(&r)["code"], "os.too_old");
    assert_eq!(fingerprint(&s.dump()), fingerprint(&before));

    // At or above the minimum: enrolled.
    for os in ["17.4", "17.4.1", "18.0"] {
        let r = s.enroll_request(signed_info(&s, Some(os), true));
        assert_eq!(r.status(), StatusCode::OK, "{os}: {}", text(&r));
    }
}

#[test]
fn minimum_os_comparison_and_validation() {
    use mdm_core::dep::profile_validation::{os_build_is_valid, os_version_is_valid};
    use mdm_core::dep::skipkeys::Platform;
    use mdm_core::enroll::ade::below_minimum;
    let ios = Platform::Ios;
    assert!(below_minimum(Some("17.3.1"), None, "17.4", ios));
    assert!(!below_minimum(Some("17.10"), None, "17.4", ios));
    assert!(!below_minimum(Some("17.4"), None, "17.4", ios));
    assert!(below_minimum(Some("17.4"), None, "17.4 (a)", ios));
    assert!(!below_minimum(Some("17.4"), Some("(a)"), "17.4 (a)", ios));
    assert!(!below_minimum(Some("17.4 (b)"), None, "17.4 (a)", ios));
    // No OS_VERSION: below 17.0 (iOS) / 14.0 (macOS); undecidable for lower minimums.
    assert!(below_minimum(None, None, "17.0", ios));
    assert!(!below_minimum(None, None, "16.4", ios));
    assert!(below_minimum(None, None, "14.1", Platform::Macos));
    for ok in ["17", "17.4", "14.4.1", "17.4 (a)", "10.15"] {
        assert!(os_version_is_valid(ok), "{ok}");
    }
    for bad in [
        "", "17.", ".4", "17.04", "0.1", "17.4.1.2", "17.4 a", "v17", "17.4 (A)",
    ] {
        assert!(!os_version_is_valid(bad), "{bad}");
    }
    for ok in ["21E219", "20A242a", "9A1"] {
        assert!(os_build_is_valid(ok), "{ok}");
    }
    for bad in ["", "21", "21e219", "21E", "21E219ab", "E219"] {
        assert!(!os_build_is_valid(bad), "{bad}");
    }
    // The admin API refuses bad values, naming the field.
    let s = Server::new();
    let (st, body) = s.admin(
        Method::POST,
        &format!("/api/v1/tokens/{}/profiles", s.token),
        &json!({ "name": "x", "platform": "ios", "user_affinity": "without_user",
                 "minimum_os_version": "seventeen", "minimum_os_build": "21E219" })
        .to_string(),
    );
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["minimum_os_version"]);
}

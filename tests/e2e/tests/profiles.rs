//! Enrollment profiles and assignment end to end: the real `admin` and `sync` components
//! against the Device Assignment API simulator, checking what Apple receives and stores.

use std::time::{Duration, Instant};

use base64::Engine;
use mdm_depsim::{AssignOutcome, SimConfig, Simulator};
use mdm_e2e::dep::{connect_token, start_app, tick_until_idle};
use mdm_e2e::{App, Method, SYNC_KEY, StatusCode};
use serde_json::{Value, json};

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn test_certificate(cn: &str) -> Vec<u8> {
    let key = mdm_crypto::KeyPair::generate().unwrap();
    mdm_crypto::self_signed_certificate(&key, cn, 1_700_000_000, 2_000_000_000)
        .unwrap()
        .der()
        .to_vec()
}

async fn create_profile(app: &App, token: u64, spec: Value) -> Value {
    let (s, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{token}/profiles"),
            Some(spec),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

/// Every setting an admin can give, and the JSON Apple's service ends up holding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_setting_reaches_apple_and_edits_redefine_and_reassign() {
    let sim = Simulator::start(SimConfig::new(40, 5)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), &sim).await;
    let token = connect_token(&app, &sim, "Profiles").await;
    let anchor = test_certificate("enroll.example.com");
    let pairing = test_certificate("Configurator Mac");

    let full = json!({
        "name": "Staff iPads",
        "description": "internal note for admins 7f3a",
        "platform": "ios",
        "user_affinity": "with_user",
        "supervised": true,
        "locked_enrollment": true,
        "await_device_configured": true,
        "pairing": "certificates",
        "pairing_certificates": [b64(&pairing)],
        "device_name_template": "{{DEVICETYPE}}-{{SERIAL}}",
        "esim_server_url": "https://esim.example.com/activate",
        "department": "IT",
        "support_phone_number": "+1 555 0100",
        "support_email_address": "help@example.com",
        "org_magic": "magic-1",
        "setup_assistant": {"Siri": "hide", "Privacy": "hide", "Diagnostics": "hide", "Location": "show"},
        "anchor_certificates": [b64(&anchor)],
    });
    let a = create_profile(&app, token, full.clone()).await;
    let uuid = a["apple_uuid"].as_str().unwrap().to_owned();
    let held = Value::Object(
        sim.control()
            .profile(&uuid)
            .expect("Apple holds the profile"),
    );
    assert_eq!(held["profile_name"], "Staff iPads", "{held:#}");
    assert_eq!(held["url"], "http://127.0.0.1:3000/mdm/enroll/ade");
    assert_eq!(
        held["configuration_web_url"],
        "http://127.0.0.1:3000/mdm/enroll/web"
    );
    assert_eq!(held["is_supervised"], true);
    assert_eq!(held["is_mdm_removable"], false);
    assert_eq!(held["await_device_configured"], true);
    // Only the supervising hosts pair: `allow_pairing` false for devices before iOS 13,
    // which still honour it; newer ones get a restriction at enrollment.
    assert_eq!(held["allow_pairing"], false);
    assert_eq!(held["supervising_host_certs"], json!([b64(&pairing)]));
    assert_eq!(held["anchor_certs"], json!([b64(&anchor)]));
    assert_eq!(held["department"], "IT");
    assert_eq!(held["support_phone_number"], "+1 555 0100");
    assert_eq!(held["support_email_address"], "help@example.com");
    assert_eq!(held["org_magic"], "magic-1");
    let skipped: Vec<&str> = held["skip_setup_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for k in ["Siri", "Privacy", "Diagnostics"] {
        assert!(skipped.contains(&k), "{k} not skipped: {skipped:?}");
    }
    assert!(!skipped.contains(&"Location"), "{skipped:?}");
    // Devices never see the admins' description.
    assert!(!held.to_string().contains("7f3a"), "{held:#}");

    // Language and region are macOS/tvOS settings.
    let mac = create_profile(
        &app,
        token,
        json!({"name": "Macs", "platform": "macos", "user_affinity": "with_user",
               "language": "fr", "region": "CA"}),
    )
    .await;
    let held_mac = sim
        .control()
        .profile(mac["apple_uuid"].as_str().unwrap())
        .unwrap();
    assert_eq!(held_mac["language"], "fr");
    assert_eq!(held_mac["region"], "CA");

    // Invalid combinations never reach Apple.
    let defined_before = sim.control().profile_uuids().len();
    let (s, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{token}/profiles"),
            Some(json!({
                // iOS is always supervised; on macOS locked enrollment needs supervision.
                "name": "Broken", "platform": "macos", "user_affinity": "without_user",
                "supervised": false, "locked_enrollment": true,
                "setup_assistant": {"NoSuchPane": "hide"},
                "device_name_template": "{{SERIAL}}-{{UNKNOWN}}",
            })),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let fields = b["fields"].to_string();
    for f in [
        "setup_assistant",
        "device_name_template",
        "locked_enrollment",
    ] {
        assert!(fields.contains(f), "{f} not named: {b:#}");
    }
    assert_eq!(sim.control().profile_uuids().len(), defined_before);

    // Assign it to a few devices, then edit: Apple gets a new profile and those devices
    // move to it.
    let serials: Vec<String> = sim.control().serials().into_iter().take(5).collect();
    let (s, b) = app
        .admin(Method::POST, &format!("/api/v1/tokens/{token}/sync"), None)
        .await;
    assert!(s.is_success(), "{b}");
    tick_until_idle(&app, token, 10).await;
    let pid = a["id"].as_u64().unwrap();
    let (s, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{token}/profiles/{pid}/devices"),
            Some(json!({ "serials": serials })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for sn in &serials {
        assert_eq!(
            sim.control().device(sn).unwrap().profile_uuid.as_deref(),
            Some(uuid.as_str())
        );
    }
    let mut edited = full.clone();
    edited["department"] = json!("Facilities");
    let (s, b) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/tokens/{token}/profiles/{pid}"),
            Some(edited),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let new_uuid = b["apple_uuid"].as_str().unwrap().to_owned();
    assert_ne!(new_uuid, uuid);
    assert_eq!(
        sim.control().profile(&new_uuid).unwrap()["department"],
        "Facilities"
    );
    // Only a device reset picks up a changed profile; the admin is told which fields.
    assert_eq!(b["effective_after_reset"], json!(["department"]), "{b:#}");
    for sn in &serials {
        assert_eq!(
            sim.control().device(sn).unwrap().profile_uuid.as_deref(),
            Some(new_uuid.as_str()),
            "{sn} was not moved to the redefined profile"
        );
    }

    // Deleting is refused while devices carry it, unless the admin unassigns them.
    let (s, b) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/tokens/{token}/profiles/{pid}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, b) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/tokens/{token}/profiles/{pid}?unassign=true"),
            None,
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    for sn in &serials {
        let d = sim.control().device(sn).unwrap();
        assert_ne!(d.profile_uuid.as_deref(), Some(new_uuid.as_str()), "{sn}");
    }
    app.shutdown().await;
}

/// The default profile and the rules apply to the devices a sync brings; Apple's
/// per-serial THROTTLED answer is retried after its `retry_after_seconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_profile_rules_and_throttled_retries_during_sync() {
    let config = SimConfig {
        throttle_retry_after: 2,
        ..SimConfig::new(300, 9)
    };
    let sim = Simulator::start(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), &sim).await;
    let token = connect_token(&app, &sim, "Auto").await;
    let basic =
        |name: &str| json!({"name": name, "platform": "ios", "user_affinity": "without_user"});
    let ipads = create_profile(&app, token, basic("iPads")).await;
    let other = create_profile(&app, token, basic("Everything else")).await;
    let (s, b) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/tokens/{token}/default-profile"),
            Some(json!({ "profile": other["id"] })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/tokens/{token}/assignment-rules"),
            Some(json!({"rules": [{"name": "iPads", "match": {"device_family": "iPad"}, "profile": ipads["id"]}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Which devices arrive without a profile, and one of them Apple will throttle once.
    let unassigned: Vec<(String, String)> = sim
        .control()
        .serials()
        .into_iter()
        .filter_map(|sn| {
            let d = sim.control().device(&sn).unwrap();
            matches!(d.profile_status.as_str(), "empty" | "removed").then(|| (sn, d.device_family))
        })
        .collect();
    assert!(unassigned.iter().any(|(_, f)| f == "iPad"));
    assert!(unassigned.iter().any(|(_, f)| f != "iPad"));
    let throttled = unassigned[0].0.clone();
    sim.control()
        .script_assign(&throttled, AssignOutcome::Throttled, 1);

    let (s, b) = app
        .admin(Method::POST, &format!("/api/v1/tokens/{token}/sync"), None)
        .await;
    assert!(s.is_success(), "{b}");
    tick_until_idle(&app, token, 10).await;

    let (_, d) = app
        .admin(
            Method::GET,
            &format!("/api/v1/tokens/{token}/devices/{throttled}"),
            None,
        )
        .await;
    assert_eq!(d["assignment"]["status"], "THROTTLED", "{d:#}");
    assert!(d["assignment"]["retry_at"].is_string(), "{d:#}");

    // The scheduler retries it once Apple's delay has passed, not before.
    let started = Instant::now();
    loop {
        let (s, _) = app
            .call(Method::POST, "/internal/tick", Some(SYNC_KEY), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let (_, d) = app
            .admin(
                Method::GET,
                &format!("/api/v1/tokens/{token}/devices/{throttled}"),
                None,
            )
            .await;
        if d["assignment"]["status"] == "SUCCESS" {
            assert!(
                started.elapsed() >= Duration::from_secs(1),
                "retried too soon"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{d:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let uuid_of = |v: &Value| v["apple_uuid"].as_str().unwrap().to_owned();
    for (sn, family) in &unassigned {
        let want = if family == "iPad" {
            uuid_of(&ipads)
        } else {
            uuid_of(&other)
        };
        assert_eq!(
            sim.control().device(sn).unwrap().profile_uuid.as_deref(),
            Some(want.as_str()),
            "{sn} ({family})"
        );
    }

    // The default profile cannot be deleted.
    let (s, b) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/tokens/{token}/profiles/{}", other["id"]),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    app.shutdown().await;
}

//! Zero-touch (ADE) enrollment end to end, through the real components: devices that
//! Apple's Device Assignment API (depsim) lists, assigned our profile through the admin
//! API, enroll as Setup Assistant does (signed MachineInfo to the DEP profile's `url`,
//! the signed profile, SCEP, Authenticate, TokenUpdate awaiting configuration); APNs
//! (apnssim) wakes them when commands are queued; they fetch the commands on Idle and
//! answer; the inventory shows the answers; DeviceConfigured releases Setup Assistant.

mod lab;

use std::time::Duration;

use lab::{Lab, PushCert};
use mdm_devicesim::{Device, Digest, SimError, Status};
use mdm_e2e::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn device_view(lab: &Lab, d: &Device) -> Value {
    let (s, v) = lab
        .app
        .admin(Method::GET, &format!("/api/v1/devices/{}", d.udid), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigned_devices_enroll_zero_touch_and_answer_commands() {
    let lab = Lab::start(60, PushCert::Trusted).await;
    let app = &lab.app;
    let http = lab.http();
    let iphones = lab.serials("iPhone", 3);
    let ipads = lab.serials("iPad", 1);
    assert_eq!((iphones.len(), ipads.len()), (3, 1), "depsim's mix");
    // The third iPhone stays unassigned.
    let assigned: Vec<String> = [&iphones[..2], &ipads[..]].concat();
    lab.assign(&assigned).await;

    // Not assigned to us: refused before anything is stored.
    let mut stranger = lab.device(&iphones[2]);
    match stranger.enroll_ade(&http, &lab.enroll_url(), true).await {
        Err(SimError::Status {
            status: 403, body, ..
        }) => {
            assert!(body.contains("com.") || body.contains("device"), "{body}")
        }
        other => panic!("an unassigned device enrolled: {other:?}"),
    }
    let (s, _) = app
        .admin(
            Method::GET,
            &format!("/api/v1/devices/{}", stranger.udid),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Zero-touch, with the MachineInfo forms devices send: BER + SHA-1 (the default),
    // DER + SHA-256, BER + SHA-256.
    let mut devices = Vec::new();
    for (i, serial) in assigned.iter().enumerate() {
        let mut d = lab.device(serial);
        match i {
            1 => {
                d.machine_info_options.ber = false;
                d.machine_info_options.digest = Digest::Sha256;
            }
            2 => d.machine_info_options.digest = Digest::Sha256,
            _ => {}
        }
        lab.enroll(&mut d).await;
        lab.check_profile(&d);

        let v = device_view(&lab, &d).await;
        assert_eq!(v["enrolled"], true, "{v}");
        assert_eq!(v["serial_number"], serial.as_str(), "{v}");
        assert_eq!(v["platform"], "ios", "{v}");
        // Released from Setup Assistant by the server's own DeviceConfigured.
        assert_eq!(v["awaiting_configuration"], false, "{v}");
        assert_eq!(v["product_name"], d.product.as_str(), "{v}");
        devices.push(d);
    }
    let (_, list) = app
        .admin(Method::GET, "/api/v1/devices?enrolled=true", None)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "{list}");
    // Each device was pushed once at enrollment, for its setup work.
    assert_eq!(lab.apns.pushes().len(), 3, "one setup push per device");
    tokio::time::sleep(std::time::Duration::from_secs(6)).await; // past the coalescing window

    // An admin queues DeviceInformation: APNs wakes the device, which fetches it on Idle.
    for (n, d) in devices.iter_mut().enumerate() {
        let (s, b) = app
            .admin(
                Method::POST,
                &format!("/api/v1/devices/{}/commands", d.udid),
                Some(json!({
                    "RequestType": "DeviceInformation",
                    "Queries": ["SerialNumber", "OSVersion", "ProductName", "ModelName", "IsSupervised", "WiFiMAC"],
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["push"]["outcome"], "delivered", "{b}");
        let uuid = b["command_uuid"].as_str().unwrap().to_owned();
        let pushes = lab.apns.wait_for_pushes(3 + n + 1, WAIT).expect("push");
        let p = pushes.last().unwrap();
        assert_eq!(p.path, format!("/3/device/{}", d.push_token_hex()));
        assert_eq!(p.push_magic.as_deref(), Some(d.push_magic.as_str()));
        assert_eq!(p.topic.as_deref(), Some(lab.apns.topic()));

        let cmd = d.idle(&http).await.unwrap().expect("the queued command");
        assert_eq!(
            (cmd.uuid.as_str(), cmd.request_type.as_str()),
            (uuid.as_str(), "DeviceInformation")
        );
        let (status, keys) = d.respond(&cmd);
        assert_eq!(status, Status::Acknowledged);
        assert_eq!(d.answer(&http, &cmd, status, keys).await.unwrap(), None);

        let (_, r) = app
            .admin(
                Method::GET,
                &format!("/api/v1/devices/{}/commands/{uuid}", d.udid),
                None,
            )
            .await;
        assert_eq!(r["status"], "acknowledged", "{r}");
        let v = device_view(&lab, d).await;
        let info = &v["inventory"]["DeviceInformation"]["data"];
        assert_eq!(info["SerialNumber"], d.serial.as_str(), "{v:#}");
        assert_eq!(info["OSVersion"], d.os_version.as_str());
        assert_eq!(info["ModelName"], d.model_name.as_str());
        assert_eq!(info["IsSupervised"], true);
        assert_eq!(v["supervised"], true);
        assert_eq!(v["push"]["delivered"], 2, "{v}");
    }

    // One command for every device: the scheduler's tick pushes them.
    let udids: Vec<&str> = devices.iter().map(|d| d.udid.as_str()).collect();
    let (s, b) = app
        .admin(
            Method::POST,
            "/api/v1/commands",
            Some(json!({ "devices": udids, "command": {"RequestType": "ProfileList"} })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["queued"], 3, "{b}");
    let before = lab.apns.pushes().len();
    let tick = lab.tick().await;
    assert_eq!(tick["push"]["delivered"], 3, "{tick}");
    let pushes = lab.apns.wait_for_pushes(before + 3, WAIT).unwrap();
    for d in &devices {
        assert!(
            pushes[before..]
                .iter()
                .any(|p| p.token == d.push_token_hex()),
            "{} pushed",
            d.udid
        );
    }

    // Setup ends with DeviceConfigured; the session answers everything queued.
    for d in devices.iter_mut() {
        let (s, b) = app
            .admin(
                Method::POST,
                &format!("/api/v1/devices/{}/commands", d.udid),
                Some(json!({"RequestType": "DeviceConfigured"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let answered = d.run_until_idle(&http).await.unwrap();
        let types: Vec<&str> = answered
            .iter()
            .map(|a| a.command.request_type.as_str())
            .collect();
        // DeviceConfigured skips the queue (the device no longer awaits configuration, so
        // ProfileList waits in the normal lane).
        assert_eq!(types, ["DeviceConfigured", "ProfileList"]);
        assert!(!d.awaiting_configuration);
        assert!(answered.iter().all(|a| a.status == Status::Acknowledged));
        let v = device_view(&lab, d).await;
        let profiles = &v["inventory"]["ProfileList"]["data"];
        assert_eq!(
            profiles[0]["PayloadIdentifier"],
            d.profile().unwrap().payload_identifier.as_str(),
            "{v:#}"
        );
    }

    // A device that enrolls again (e.g. after an erase) gets a new identity and works.
    let d = &mut devices[0];
    let old = d.mdm_identity().unwrap().certificate.serial_hex();
    lab.enroll(d).await;
    assert_ne!(d.mdm_identity().unwrap().certificate.serial_hex(), old);
    assert_eq!(d.idle(&http).await.unwrap(), None);
    lab.shutdown().await;
}

/// The default profile is how most organisations enroll: a device Apple lists for the
/// first time is assigned it during the sync, and must enroll at once, before any later
/// sync reports the assignment back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_the_default_profile_assigns_during_sync_enrolls_at_once() {
    let lab = Lab::start_unsynced(40, PushCert::Trusted).await;
    let app = &lab.app;
    let (s, b) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/tokens/{}/default-profile", lab.token),
            Some(json!({ "profile": lab.profile })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // An iPhone that nobody assigned a profile to yet.
    let serial = lab
        .serials("iPhone", 40)
        .into_iter()
        .find(|s| lab.dep.control().device(s).unwrap().profile_status == "empty")
        .expect("an unassigned iPhone");

    let (s, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{}/sync", lab.token),
            None,
        )
        .await;
    assert!(s.is_success(), "{b}");
    mdm_e2e::dep::tick_until_idle(app, lab.token, 10).await;
    let uuid = lab.apple_uuid(lab.profile).await;
    assert_eq!(
        lab.dep
            .control()
            .device(&serial)
            .unwrap()
            .profile_uuid
            .as_deref(),
        Some(uuid.as_str()),
        "Apple has the default profile on it"
    );

    // The inventory says so at once, as after a manual assignment.
    let d = lab.inventory_device(&serial).await;
    assert_eq!(d["profile_status"], "assigned", "{d:#}");
    assert_eq!(d["profile_uuid"], uuid.as_str(), "{d:#}");
    assert!(d["profile_assign_time"].is_string(), "{d:#}");
    assert_eq!(d["assignment"]["status"], "SUCCESS", "{d:#}");
    let (_, assigned) = app
        .admin(
            Method::GET,
            &format!(
                "/api/v1/tokens/{}/devices?assignment={uuid}&limit=1000",
                lab.token
            ),
            None,
        )
        .await;
    assert!(
        assigned["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["serial_number"] == serial.as_str()),
        "{assigned:#}"
    );

    // No delta sync in between: the device enrolls zero-touch right away.
    assert_eq!(lab.dep.control().requests_to("/devices/sync"), 0);
    let mut d = lab.device(&serial);
    lab.enroll(&mut d).await;
    lab.check_profile(&d);
    let v = device_view(&lab, &d).await;
    assert_eq!(v["enrolled"], true, "{v}");
    lab.shutdown().await;
}

/// Enrollment-time settings reach every device whose profile has them, awaiting
/// configuration or not: a Shared iPad profile (which does not await) gets its Shared iPad
/// settings with the keys its iPadOS takes, the device name from the template, the eSIM
/// refresh and the host-pairing restriction after its first TokenUpdate; a device that
/// reports another name later is given the templated one again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_time_settings_reach_devices_that_do_not_await_configuration() {
    let lab = Lab::start(60, PushCert::Trusted).await;
    let app = &lab.app;
    let http = lab.http();
    let (s, p) = app
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{}/profiles", lab.token),
            Some(json!({
                "name": "Shared carts",
                "platform": "ios",
                "user_affinity": "shared",
                "await_device_configured": false,
                "pairing": "deny_all",
                "shared_ipad": {
                    "maximum_cached_users": 6, "passcode_lock_grace_period": 300,
                    "user_session_timeout": 1800, "quota_size_mb": 8192,
                    "online_authentication_grace_period_days": 3,
                },
                "device_name_template": "Cart-{{SERIAL}}",
                "esim_server_url": "https://esim.example.com/plans",
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let profile = p["id"].as_u64().unwrap();
    let serial = lab.serials("iPad", 1).pop().expect("an iPad");
    lab.assign_to(profile, std::slice::from_ref(&serial)).await;
    let mut d = lab.device(&serial);
    d.enroll_ade(&http, &lab.enroll_url(), false).await.unwrap();
    lab.apns
        .wait_for_pushes(1, WAIT)
        .expect("pushed for its settings");

    let answered = d.run_until_idle(&http).await.unwrap();
    let kinds: Vec<&str> = answered
        .iter()
        .map(|a| a.command.request_type.as_str())
        .collect();
    assert_eq!(
        kinds,
        ["Settings", "InstallProfile", "RefreshCellularPlans"],
        "{answered:#?}"
    );
    let settings = answered[0].command.payload["Settings"].as_array().unwrap();
    let item = |name: &str| {
        settings
            .iter()
            .map(|i| i.as_dictionary().unwrap())
            .find(|i| i["Item"].as_string() == Some(name))
            .cloned()
    };
    assert_eq!(
        item("DeviceName").unwrap()["DeviceName"].as_string(),
        Some(format!("Cart-{serial}").as_str())
    );
    // iPadOS 17.4: the current keys, none of the deprecated ones.
    let shared = item("SharedDeviceConfiguration").expect("SharedDeviceConfiguration");
    assert_eq!(shared["ResidentUsers"].as_signed_integer(), Some(6));
    assert_eq!(shared["QuotaSize"].as_signed_integer(), Some(8192));
    assert_eq!(shared["UserSessionTimeout"].as_signed_integer(), Some(1800));
    assert_eq!(
        shared["OnlineAuthenticationGracePeriod"].as_signed_integer(),
        Some(3)
    );
    assert!(shared["PasscodePolicy"].as_dictionary().is_some());
    assert!(item("MaximumResidentUsers").is_none());
    assert!(item("PasscodeLockGracePeriod").is_none());
    assert_eq!(
        answered[2].command.payload["eSIMServerURL"].as_string(),
        Some("https://esim.example.com/plans")
    );
    assert_eq!(d.device_name, format!("Cart-{serial}"));
    assert!(
        d.installed_profiles
            .iter()
            .any(|p| p.identifier == "com.mdm.enrollment.host-pairing"),
        "the host-pairing restriction is installed"
    );

    // Someone renames the device; the next inventory brings the template's name back.
    tokio::time::sleep(Duration::from_secs(6)).await; // past the coalescing window
    d.device_name = "Bob's iPad".into();
    let (s, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/commands", d.udid),
            Some(json!({"RequestType": "DeviceInformation", "Queries": ["DeviceName"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let answered = d.run_until_idle(&http).await.unwrap();
    let kinds: Vec<&str> = answered
        .iter()
        .map(|a| a.command.request_type.as_str())
        .collect();
    assert_eq!(kinds, ["DeviceInformation", "Settings"], "{answered:#?}");
    assert_eq!(d.device_name, format!("Cart-{serial}"));
    lab.shutdown().await;
}

/// The signed MachineInfo of an enrolled device, replayed (it carries no freshness),
/// gets a profile and an identity, and that identity's Authenticate is accepted: but the
/// live enrollment is not broken by it. The device keeps working, the admin sees a
/// pending re-enrollment, and the new identity acts for nothing until its TokenUpdate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_enrollment_request_does_not_break_the_live_enrollment() {
    let lab = Lab::start(30, PushCert::Trusted).await;
    let app = &lab.app;
    let http = lab.http();
    let serial = lab.serials("iPhone", 1).pop().unwrap();
    lab.assign(std::slice::from_ref(&serial)).await;
    let mut d = lab.device(&serial);
    lab.enroll(&mut d).await;

    // The replay: same UDID and serial, signed by the same (Apple) device identity.
    let mut replay = lab.device(&serial);
    replay.udid = d.udid.clone();
    let resp = replay
        .request_enrollment(&http, &lab.enroll_url())
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    replay.install_profile(&resp.body).unwrap();
    replay.scep_enroll(&http).await.unwrap();
    replay
        .authenticate(&http)
        .await
        .expect("Authenticate accepted");

    // The live enrollment works on: a queued command reaches the device.
    tokio::time::sleep(Duration::from_secs(6)).await; // past the coalescing window
    let (s, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/commands", d.udid),
            Some(json!({"RequestType": "ProfileList"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let cmd = d.idle(&http).await.unwrap().expect("the command");
    let (status, keys) = d.respond(&cmd);
    assert_eq!(d.answer(&http, &cmd, status, keys).await.unwrap(), None);
    let v = device_view(&lab, &d).await;
    assert_eq!(v["enrolled"], true, "{v}");
    assert!(
        v["reenrollment"]["started_at"].is_string(),
        "the admin sees it: {v}"
    );
    // The new identity acts for nothing before its TokenUpdate.
    match replay.idle(&http).await {
        Err(SimError::Status {
            status: 400, body, ..
        }) => {
            assert!(body.contains("re-enrollment is not complete"), "{body}")
        }
        other => panic!("the replayed identity was served: {other:?}"),
    }

    // Its TokenUpdate completes the re-enrollment: only then is the old one replaced.
    replay.token_update(&http, false).await.unwrap();
    assert!(d.idle(&http).await.is_err(), "the old identity still works");
    let v = device_view(&lab, &replay).await;
    assert!(v["reenrollment"].is_null(), "{v}");
    assert_eq!(
        v["identity_serial"],
        replay.mdm_identity().unwrap().certificate.serial_hex(),
        "{v}"
    );
    lab.shutdown().await;
}

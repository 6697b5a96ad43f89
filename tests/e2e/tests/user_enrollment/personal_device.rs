//! A personal iPhone and Mac through User Enrollment, start to finish: the group and the
//! user, discovery, the sign-in challenge, enrollment by EnrollmentID, what is refused
//! and what is answered, logs and history as for ADE, re-enrollment after the group
//! switched, and a store that never saw the devices' identifiers.

use std::time::Instant;

use mdm_devicesim::account::{CALLBACK_PREFIX, challenge_url};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_iphone_user_enrolls_through_the_components() {
    let started = Instant::now();
    let lab = Lab::start(12, PushCert::Trusted).await;
    let app = &lab.app;
    let http = lab.http();

    // 1. A user group set to User Enrollment, and ann in it with a Managed Apple ID.
    let (s, g) = app
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({
                "id": GROUP,
                "name": "Personal devices",
                "enrollment_type": "user",
                "priority": 1,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(g["enrollment_type"], "user", "{g}");
    let (s, u) = app
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({
                "username": USER,
                "password": PASSWORD,
                "managed_apple_id": MAID,
                "groups": [GROUP],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["managed_apple_id"], MAID, "{u}");
    assert_eq!(u["enrollment_type"], "user", "{u}");
    assert_eq!(u["enrollment_type_group"], GROUP, "{u}");
    assert_eq!(u["has_password"], true, "{u}");
    assert!(
        !u.to_string().contains(PASSWORD),
        "the password is write-only"
    );

    // 2. Service discovery: ann's Managed Apple ID leads to the User Enrollment URL;
    //    anyone else gets Apple's refusal.
    let r = http
        .send("GET", &discovery_url(MAID, "iPhone"), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    let servers: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(
        servers,
        json!({ "Servers": [{ "Version": "mdm-byod", "BaseURL": byod_url() }] })
    );
    let mut d = personal(&lab, DeviceKind::Iphone, "17.4", Some("35 209900 176148 1"));
    let found = d.discover(&http, SERVER_URL, MAID).await.unwrap();
    assert_eq!(
        (found.version.as_str(), found.base_url.as_str()),
        ("mdm-byod", byod_url().as_str())
    );
    match d
        .discover(&http, SERVER_URL, "nobody@appleid.example.com")
        .await
    {
        Err(SimError::Status {
            status: 403, body, ..
        }) => {
            let b: Value = serde_json::from_str(&body).expect("JSON refusal");
            assert_eq!(b["code"], "com.apple.well-known.failed", "{b}");
        }
        other => panic!("an unknown user was answered: {other:?}"),
    }

    // 3. The enrollment POST without a token (or with one we never issued) is challenged
    //    to sign in on our page.
    for auth in [None, Some("Bearer not-a-token-we-issued")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = http
            .send("POST", &byod_url(), &headers, b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body_text());
        let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("method=\"apple-as-web\""),
            "{challenge}"
        );
        assert_eq!(challenge_url(challenge), Some(signin_url()), "{challenge}");
    }
    let page = http
        .send("GET", &signin_url(), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body_text().contains("<form"), "{}", page.body_text());
    // A wrong password: the page says so and sends the browser nowhere.
    let r = http
        .send(
            "POST",
            &signin_url(),
            &[("content-type", "application/x-www-form-urlencoded")],
            format!(
                "username={}&password=wrong+password",
                MAID.replace('@', "%40")
            )
            .into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.header("location"),
        None,
        "no redirect on a wrong password"
    );
    assert!(r.body_text().contains("incorrect"), "{}", r.body_text());
    assert!(!r.body_text().contains(CALLBACK_PREFIX));
    match d
        .user_enroll(&http, SERVER_URL, MAID, MAID, "wrong password")
        .await
    {
        Err(SimError::Status { status, body, .. }) => {
            assert_eq!(status, 200);
            assert!(body.contains("incorrect"), "{body}");
        }
        other => panic!("a wrong password enrolled: {other:?}"),
    }
    assert!(d.enrollment_id.is_none() && d.profile().is_none());
    let list = get(&lab, "/api/v1/devices").await;
    assert_eq!(list["items"], json!([]), "nothing enrolled yet: {list}");

    // The right password: token, profile, SCEP, Authenticate, TokenUpdate.
    let flow = d
        .user_enroll(&http, SERVER_URL, MAID, MAID, PASSWORD)
        .await
        .expect("user enrollment");
    assert_eq!(flow.discovery.version, "mdm-byod");
    assert_eq!(flow.sign_in_url, signin_url());
    assert!(!flow.access_token.is_empty());

    // 4. The admin API knows the device by its EnrollmentID only.
    let eid = check_user_enrollment(&lab, &d, "ios").await;
    let list = get(&lab, "/api/v1/devices?enrolled=true").await;
    let listed = list["items"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["device_id"], eid.as_str(), "{list}");
    assert_eq!(listed[0]["enrollment_type"], "user", "{list}");
    assert_withheld("the device list", &list.to_string(), &d);

    // 5. What User Enrollment forbids is refused with the reason, and never queued.
    for (cmd, reason) in [
        (
            json!({"RequestType": "EraseDevice"}),
            &["EraseDevice is not allowed under User Enrollment"][..],
        ),
        (
            json!({"RequestType": "EnableLostMode", "Message": "Lost"}),
            &["EnableLostMode is not allowed under User Enrollment"],
        ),
        (
            json!({"RequestType": "DeviceInformation", "Queries": ["SerialNumber"]}),
            &["not allowed under User Enrollment", "SerialNumber"],
        ),
        (
            json!({"RequestType": "DeviceInformation", "Queries": ["UDID"]}),
            &["not allowed under User Enrollment", "UDID"],
        ),
        (
            json!({"RequestType": "DeviceInformation", "Queries": ["IMEI"]}),
            &["not allowed under User Enrollment", "IMEI"],
        ),
        // Not silently narrowed to the allowed part.
        (
            json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion", "SerialNumber", "WiFiMAC"]}),
            &["SerialNumber", "WiFiMAC"],
        ),
        // A configuration with a payload User Enrollment does not take, next to one it does.
        (
            json!({"RequestType": "InstallProfile", "Payload": configuration(&["com.apple.wifi.managed", "com.apple.vpn.managed"])}),
            &[
                "VPN (com.apple.vpn.managed) - this is not a valid payload under User Enrollment on iOS/iPadOS",
            ],
        ),
    ] {
        refused(&lab, &eid, cmd, reason).await;
    }
    assert_eq!(history(&lab, &eid).await, Vec::<Value>::new());

    // What it allows is queued, pushed, fetched on Idle and answered. DeviceLock is
    // allowed on iOS under User Enrollment (the spec's table; refused on macOS below).
    let pushes_before = lab.apns.pushes().len();
    let allowed = [
        json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion", "BuildVersion", "ProductName", "ModelName"]}),
        json!({"RequestType": "InstalledApplicationList", "ManagedAppsOnly": true}),
        json!({"RequestType": "ProfileList"}),
        json!({"RequestType": "DeviceLock", "Message": "Returned to ann"}),
    ];
    let (s, b) = queue(&lab, &eid, &allowed[0]).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["push"]["outcome"], "delivered", "{b}");
    let mut uuids = BTreeMap::new();
    uuids.insert(
        b["command_uuid"].as_str().unwrap().to_owned(),
        "DeviceInformation",
    );
    for cmd in &allowed[1..] {
        let rt = cmd["RequestType"].as_str().unwrap();
        uuids.insert(queue_ok(&lab, &eid, cmd.clone()).await, rt);
    }
    let pushes = lab
        .apns
        .wait_for_pushes(pushes_before + 1, WAIT)
        .expect("push");
    let p = &pushes[pushes_before];
    assert_eq!(p.path, format!("/3/device/{}", d.push_token_hex()));
    assert_eq!(p.push_magic.as_deref(), Some(d.push_magic.as_str()));
    let answered = d.run_until_idle(&http).await.unwrap();
    let got: BTreeMap<String, &str> = answered
        .iter()
        .map(|a| (a.command.uuid.clone(), a.command.request_type.as_str()))
        .collect();
    assert_eq!(got, uuids, "the device got exactly what was allowed");
    assert!(answered.iter().all(|a| a.status == Status::Acknowledged));
    assert_eq!(d.idle(&http).await.unwrap(), None, "nothing else queued");
    for uuid in uuids.keys() {
        let r = get(&lab, &format!("/api/v1/devices/{eid}/commands/{uuid}")).await;
        assert_eq!(r["status"], "acknowledged", "{r}");
        assert_withheld("a command result", &r.to_string(), &d);
    }
    let v = get(&lab, &format!("/api/v1/devices/{eid}")).await;
    let info = &v["inventory"]["DeviceInformation"]["data"];
    assert_eq!(info["OSVersion"], d.os_version.as_str(), "{v:#}");
    assert_eq!(info["ModelName"], d.model_name.as_str(), "{v:#}");
    assert_eq!(info["SerialNumber"], Value::Null, "{v:#}");
    let apps = &v["inventory"]["InstalledApplicationList"]["data"];
    assert!(apps.to_string().contains("com.example.notes"), "{v:#}");
    assert_withheld("the device view with inventory", &v.to_string(), &d);

    // The same person's Mac: User Enrollment there forbids DeviceLock as well.
    let mut mac = personal(&lab, DeviceKind::Mac, "14.4", None);
    let flow = mac
        .user_enroll(&http, SERVER_URL, MAID, USER, PASSWORD)
        .await
        .expect("the Mac's user enrollment");
    assert_eq!(flow.discovery.version, "mdm-byod");
    let mac_eid = check_user_enrollment(&lab, &mac, "macos").await;
    assert_ne!(mac_eid, eid);
    refused(
        &lab,
        &mac_eid,
        json!({"RequestType": "DeviceLock", "PIN": "123456"}),
        &["DeviceLock is not allowed under User Enrollment on macOS"],
    )
    .await;
    refused(
        &lab,
        &mac_eid,
        json!({"RequestType": "EraseDevice", "PIN": "123456"}),
        &["EraseDevice is not allowed under User Enrollment on macOS"],
    )
    .await;
    refused(
        &lab,
        &mac_eid,
        json!({"RequestType": "InstallProfile", "Payload": configuration(&["com.apple.applicationaccess"])}),
        &["Restrictions (com.apple.applicationaccess) - this is not a valid payload under User Enrollment on macOS"],
    )
    .await;
    refused(
        &lab,
        &mac_eid,
        json!({"RequestType": "DeviceInformation", "Queries": ["SerialNumber", "UDID"]}),
        &["SerialNumber", "UDID"],
    )
    .await;
    assert_eq!(
        mac.idle(&http).await.unwrap(),
        None,
        "nothing reached the Mac"
    );
    assert_eq!(history(&lab, &mac_eid).await, Vec::<Value>::new());

    // 6. Logs and command history read as for a zero-touch device.
    let serials = lab.serials("iPhone", 1);
    assert_eq!(serials.len(), 1, "depsim has an iPhone");
    lab.assign(&serials).await;
    let mut ade = lab.device(&serials[0]);
    lab.enroll(&mut ade).await;
    let ade_uuid = queue_ok(&lab, &ade.udid, json!({"RequestType": "ProfileList"})).await;
    let answered = ade.run_until_idle(&http).await.unwrap();
    assert_eq!(answered.len(), 1);
    let ade_history = history(&lab, &ade.udid).await;
    let ue_history = history(&lab, &eid).await;
    let ue_listed: BTreeSet<&str> = ue_history
        .iter()
        .map(|c| c["command_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(
        ue_listed,
        uuids.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        "the history lists what was queued, nothing refused"
    );
    let ade_entry = ade_history
        .iter()
        .find(|c| c["command_uuid"] == ade_uuid.as_str())
        .expect("the ADE device's ProfileList");
    for c in &ue_history {
        assert_eq!(c["status"], "acknowledged", "{c}");
        assert_eq!(
            keys(c),
            keys(ade_entry),
            "same shape as ADE history: {c} / {ade_entry}"
        );
    }
    let ue_profile_list = ue_history
        .iter()
        .find(|c| c["request_type"] == "ProfileList")
        .expect("ProfileList in the history");
    assert_eq!(ue_profile_list["status"], ade_entry["status"]);
    let (ue_log, ade_log) = (logs(&lab, &eid).await, logs(&lab, &ade.udid).await);
    let (ue_sum, ade_sum) = (log_summary(&ue_log), log_summary(&ade_log));
    for (action, status) in [
        ("Authenticate", "ok"),
        ("TokenUpdate", "ok"),
        ("ProfileList", "Acknowledged"),
    ] {
        assert!(has(&ue_sum, action, status), "UE log {ue_sum:?}");
        assert!(has(&ade_sum, action, status), "ADE log {ade_sum:?}");
    }
    for rt in uuids.values() {
        assert!(has(&ue_sum, rt, "Acknowledged"), "{rt}: {ue_sum:?}");
    }
    for rt in ["EraseDevice", "EnableLostMode"] {
        assert!(
            ue_sum.keys().all(|(a, _)| a != rt),
            "{rt} in the log: {ue_sum:?}"
        );
    }
    let shape = keys(&ade_log[0]);
    for e in ue_log.iter() {
        assert_eq!(keys(e), shape, "same log entry shape as ADE: {e}");
    }
    let filtered = get(
        &lab,
        &format!("/api/v1/devices/{eid}/logs?action=DeviceLock"),
    )
    .await;
    let filtered = filtered["items"].as_array().unwrap();
    assert!(!filtered.is_empty());
    assert!(filtered.iter().all(|e| e["action"] == "DeviceLock"));
    assert_withheld("the logs", &Value::Array(ue_log).to_string(), &d);
    assert_withheld("the history", &Value::Array(ue_history).to_string(), &d);

    // 7. The group switches to device enrollment: new people now get account-driven
    //    Device Enrollment, but ann, who enrolled as a User Enrollment, keeps it.
    let (s, g) = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/groups/{GROUP}"),
            Some(json!({ "enrollment_type": "device" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(g["enrollment_type"], "device", "{g}");
    let (s, b) = app
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({
                "username": "bob",
                "password": PASSWORD,
                "managed_apple_id": "bob.ray@appleid.example.com",
                "groups": [GROUP],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let bob = d
        .discover(&http, SERVER_URL, "bob.ray@appleid.example.com")
        .await
        .unwrap();
    assert_eq!(bob.version, "mdm-adde", "the group's new setting applies");
    // ann removes the enrollment from Settings (CheckOut), then enrolls again.
    d.checkout(&http).await.unwrap();
    let v = get(&lab, &format!("/api/v1/devices/{eid}")).await;
    assert_eq!(v["enrolled"], false, "{v}");
    d.enrollment_id = None;
    let flow = d
        .user_enroll(&http, SERVER_URL, MAID, MAID, PASSWORD)
        .await
        .expect("re-enrollment");
    assert_eq!(flow.discovery.version, "mdm-byod");
    assert_eq!(flow.discovery.base_url, byod_url());
    let eid2 = check_user_enrollment(&lab, &d, "ios").await;
    assert_ne!(eid2, eid, "a new EnrollmentID for the new enrollment");
    refused(
        &lab,
        &eid2,
        json!({"RequestType": "EraseDevice"}),
        &["EraseDevice is not allowed under User Enrollment"],
    )
    .await;
    let uuid = queue_ok(&lab, &eid2, json!({"RequestType": "ProfileList"})).await;
    let answered = d.run_until_idle(&http).await.unwrap();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].command.uuid, uuid);
    assert_eq!(answered[0].status, Status::Acknowledged);

    // The Mac is wiped (no CheckOut: its old enrollment stays on record) and enrolled
    // again: a User Enrollment too.
    mac.enrollment_id = None;
    let flow = mac
        .user_enroll(&http, SERVER_URL, MAID, USER, PASSWORD)
        .await
        .expect("the Mac's re-enrollment");
    assert_eq!(flow.discovery.version, "mdm-byod");
    let mac_eid2 = check_user_enrollment(&lab, &mac, "macos").await;
    assert_ne!(mac_eid2, mac_eid);
    refused(
        &lab,
        &mac_eid2,
        json!({"RequestType": "DeviceLock", "PIN": "123456"}),
        &["DeviceLock is not allowed under User Enrollment on macOS"],
    )
    .await;

    // The store never saw the personal devices' identifiers (the ADE iPhone's are
    // there, which shows the dump would find them).
    let dump = dump_store(&lab);
    let ade_imei = ade.imei.clone().expect("an iPhone has an IMEI");
    for id in [
        &eid,
        &eid2,
        &mac_eid,
        &mac_eid2,
        &ade.udid,
        &ade.serial,
        &ade_imei,
    ] {
        assert!(dump.contains(id.as_str()), "the dump holds {id}");
    }
    // Command results are there in base64 (the device's plist), and would be seen.
    assert!(contains_base64(&dump, "<string>Notes Example</string>"));
    assert_withheld("the store", &dump, &d);
    assert_withheld("the store", &dump, &mac);

    let took = started.elapsed();
    eprintln!("user_enrollment: {:.1} s", took.as_secs_f64());
    lab.shutdown().await;
}

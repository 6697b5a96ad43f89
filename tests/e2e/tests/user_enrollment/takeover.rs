//! A signed-in user plays the attacker: an account-driven enrollment naming another
//! device's UDID, and one access token used for more than one enrollment.

use super::*;

/// The victim's identity still works and its record is the one it had.
async fn assert_untouched(lab: &Lab, victim: &Device, before: &Value) {
    assert_eq!(victim.idle(&lab.http()).await.unwrap(), None);
    let now = get(lab, &format!("/api/v1/devices/{}", victim.udid)).await;
    for k in [
        "enrolled",
        "enrolled_via",
        "enrollment_type",
        "serial_number",
        "user",
    ] {
        assert_eq!(now[k], before[k], "{k}: {now:#}");
    }
}

/// A signed-in user plays the attacker: their account-driven enrollment names the UDID of
/// a device enrolled through ADE (as an ADDE Authenticate, and as a User Enrollment's
/// EnrollmentID). Neither touches the victim's enrollment; the access token enrolls one
/// device, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_cannot_take_over_another_devices_enrollment() {
    let lab = Lab::start(12, PushCert::Trusted).await;
    let app = &lab.app;
    let http = lab.http();
    let serial = lab.serials("iPhone", 1).pop().unwrap();
    lab.assign(std::slice::from_ref(&serial)).await;
    let mut victim = lab.device(&serial);
    lab.enroll(&mut victim).await;
    let before = get(&lab, &format!("/api/v1/devices/{}", victim.udid)).await;
    assert_eq!(before["enrolled_via"], "ade", "{before}");

    for (group, kind, priority) in [("company-owned", "device", 1), ("personal", "user", 2)] {
        let (s, b) = app
            .admin(
                Method::POST,
                "/api/v1/groups",
                Some(json!({ "id": group, "name": group, "enrollment_type": kind, "priority": priority })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    for (user, group) in [("mallory", "company-owned"), ("eve", "personal")] {
        let (s, b) = app
            .admin(
                Method::POST,
                "/api/v1/users",
                Some(json!({
                    "username": user, "password": PASSWORD,
                    "managed_apple_id": format!("{user}@appleid.example.com"),
                    "groups": [group],
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    // Account-driven Device Enrollment naming the victim's UDID.
    let maid = "mallory@appleid.example.com";
    let mut m = personal(&lab, DeviceKind::Iphone, "17.4", None);
    let flow = m
        .account_profile(&http, SERVER_URL, maid, maid, PASSWORD)
        .await
        .unwrap();
    assert_eq!(flow.discovery.version, "mdm-adde");
    m.udid = victim.udid.clone();
    match m.finish_enrollment(&http).await {
        Err(SimError::Status {
            status: 400, body, ..
        }) => {
            assert!(body.contains("cannot replace"), "{body}")
        }
        other => panic!("the takeover went through: {other:?}"),
    }
    assert_untouched(&lab, &victim, &before).await;

    // User Enrollment with the victim's UDID as EnrollmentID: a separate enrollment.
    let maid = "eve@appleid.example.com";
    let mut e = personal(&lab, DeviceKind::Iphone, "17.4", None);
    let flow = e
        .account_profile(&http, SERVER_URL, maid, maid, PASSWORD)
        .await
        .unwrap();
    assert_eq!(flow.discovery.version, "mdm-byod");
    e.enrollment_id = Some(victim.udid.clone());
    e.finish_enrollment(&http)
        .await
        .expect("its own User Enrollment");
    assert_untouched(&lab, &victim, &before).await;
    let own = get(&lab, &format!("/api/v1/devices/ue:{}", victim.udid)).await;
    assert_eq!(own["enrollment_type"], "user", "{own:#}");
    assert_eq!(own["user"], "eve", "{own:#}");

    // The access token was used up by that enrollment.
    let r = http
        .send(
            "POST",
            &flow.discovery.base_url,
            &[("authorization", &format!("Bearer {}", flow.access_token))],
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.status,
        401,
        "a used token enrolled again: {}",
        r.body_text()
    );

    // One token, one enrollment: a second device posting the same token gets a profile for
    // the same enrollment reference, and only the first to Authenticate enrolls.
    let mut first = personal(&lab, DeviceKind::Iphone, "17.4", None);
    let flow = first
        .account_profile(&http, SERVER_URL, maid, maid, PASSWORD)
        .await
        .unwrap();
    let mut second = personal(&lab, DeviceKind::Iphone, "17.4", None);
    second
        .account_profile_with(&http, &flow.discovery.base_url, &flow.access_token)
        .await
        .unwrap();
    let reference = |d: &Device| {
        d.profile()
            .unwrap()
            .scep
            .subject_attr(&["CN"])
            .map(str::to_owned)
    };
    assert!(reference(&first).is_some());
    assert_eq!(reference(&first), reference(&second));
    first
        .finish_enrollment(&http)
        .await
        .expect("the first enrolls");
    assert!(
        second.finish_enrollment(&http).await.is_err(),
        "a second device enrolled with one token"
    );
    lab.shutdown().await;
}

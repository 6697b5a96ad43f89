//! APNs push through the real components: the `admin` component pushes over the host's
//! outbound HTTP/2 with the runtime config's `[[client_tls]]` push certificate to apnssim,
//! after a command is queued and on demand; the push routes; a push certificate APNs
//! refuses. The device is a simulated one that enrolled the ADE way (MachineInfo, profile,
//! SCEP, Authenticate, TokenUpdate).

mod lab;

use std::time::Duration;

use lab::{Lab, PushCert};
use mdm_apnssim::Scripted;
use mdm_e2e::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_commands_and_admins_push_the_device_through_apns() {
    let lab = Lab::start(40, PushCert::Trusted).await;
    let app = &lab.app;

    // Before any device: the routes answer.
    let (s, c) = app
        .admin(Method::GET, "/api/v1/push/certificate", None)
        .await;
    assert_eq!(
        (s, c["apns"]["state"].as_str()),
        (StatusCode::OK, Some("unknown")),
        "{c}"
    );
    for m in [Method::POST, Method::GET] {
        let (s, b) = app
            .admin(m, "/api/v1/devices/NO-SUCH-UDID/push", None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }

    let serial = lab
        .serials("iPhone", 1)
        .pop()
        .expect("an iPhone in the org");
    lab.assign(std::slice::from_ref(&serial)).await;
    let mut d = lab.device(&serial);
    lab.enroll(&mut d).await;
    // Enrolled awaiting configuration: pushed once for its setup work.
    let setup = lab.apns.wait_for_pushes(1, WAIT).expect("the setup push");
    assert_eq!(setup[0].token, d.push_token_hex());
    tokio::time::sleep(Duration::from_secs(6)).await; // past the coalescing window

    // Queueing a command pushes the device.
    let (s, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/commands", d.udid),
            Some(json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["push"]["outcome"], "delivered", "{b}");
    let pushes = lab.apns.wait_for_pushes(2, WAIT).expect("a push");
    let p = &pushes[1];
    assert_eq!(p.method, "POST");
    assert_eq!(p.path, format!("/3/device/{}", d.push_token_hex()));
    assert_eq!(p.token, d.push_token_hex());
    assert_eq!(p.topic.as_deref(), Some(lab.apns.topic()));
    assert_eq!(p.push_type.as_deref(), Some("mdm"));
    assert_eq!(p.priority.as_deref(), Some("10"));
    assert!(
        p.expiration
            .as_deref()
            .is_some_and(|e| e.parse::<u64>().is_ok())
    );
    assert!(p.http2);
    assert_eq!(p.status, 200);
    assert_eq!(p.push_magic.as_deref(), Some(d.push_magic.as_str()));
    let body: Value = serde_json::from_slice(&p.body).unwrap();
    assert_eq!(body, json!({ "mdm": d.push_magic }));
    assert_eq!(
        p.identity_topic,
        lab.apns.topic(),
        "the runtime config's certificate"
    );

    // The woken device fetches and answers it.
    let answered = d.run_until_idle(&lab.http()).await.unwrap();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].command.request_type, "DeviceInformation");

    // On demand.
    let (s, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/push", d.udid),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["outcome"], "delivered", "{b}");
    assert_eq!(b["push"]["last_reason"], "admin");
    assert_eq!(lab.apns.wait_for_pushes(3, WAIT).unwrap().len(), 3);
    let (s, st) = app
        .admin(
            Method::GET,
            &format!("/api/v1/devices/{}/push", d.udid),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(
        (st["attempts"].as_u64(), st["delivered"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(st["reachable"], true);
    let (_, dev) = app
        .admin(Method::GET, &format!("/api/v1/devices/{}", d.udid), None)
        .await;
    assert_eq!(dev["push"]["delivered"], 3, "{dev}");
    assert!(
        !dev.to_string().contains(&d.push_magic),
        "no PushMagic in views"
    );

    // APNs says the token is dead: unreachable until the next TokenUpdate.
    lab.apns
        .script(&d.push_token_hex(), Scripted::unregistered());
    let (_, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/push", d.udid),
            None,
        )
        .await;
    assert_eq!(b["result"]["outcome"], "unreachable", "{b}");
    let (_, st) = app
        .admin(
            Method::GET,
            &format!("/api/v1/devices/{}/push", d.udid),
            None,
        )
        .await;
    assert_eq!(st["reachable"], false, "{st}");
    tokio::time::sleep(Duration::from_secs(6)).await; // past the coalescing window
    let (s, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/commands", d.udid),
            Some(json!({"RequestType": "ProfileList"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "queued anyway: {b}");
    assert_eq!(b["push"]["why"], "unreachable", "{b}");
    let before = lab.apns.pushes().len();
    d.rotate_push_token(&lab.http()).await.unwrap();
    let (_, st) = app
        .admin(
            Method::GET,
            &format!("/api/v1/devices/{}/push", d.udid),
            None,
        )
        .await;
    assert_eq!(st["reachable"], true, "a new token: {st}");
    let (_, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/push", d.udid),
            None,
        )
        .await;
    assert_eq!(b["result"]["outcome"], "delivered", "{b}");
    let pushes = lab.apns.wait_for_pushes(before + 1, WAIT).unwrap();
    assert_eq!(pushes.last().unwrap().token, d.push_token_hex());

    // APNs refuses the certificate (403): marked failing, and ok after the next success.
    lab.apns.script_any(Scripted::bad_certificate());
    let (_, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/push", d.udid),
            None,
        )
        .await;
    assert_eq!(b["result"]["outcome"], "certificate_rejected", "{b}");
    let (_, c) = app
        .admin(Method::GET, "/api/v1/push/certificate", None)
        .await;
    assert_eq!(c["apns"]["state"], "failing", "{c}");
    assert_eq!(c["apns"]["last_failure_reason"], "BadCertificate");
    let (_, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/push", d.udid),
            None,
        )
        .await;
    assert_eq!(b["result"]["outcome"], "delivered", "{b}");
    let (_, c) = app
        .admin(Method::GET, "/api/v1/push/certificate", None)
        .await;
    assert_eq!(c["apns"]["state"], "ok", "{c}");
    lab.shutdown().await;
}

/// Enrolls one iPhone in `lab` and queues a command for it; the enqueue's answer.
async fn enrolled_and_queued(lab: &Lab) -> Value {
    let serial = lab
        .serials("iPhone", 1)
        .pop()
        .expect("an iPhone in the org");
    lab.assign(std::slice::from_ref(&serial)).await;
    let mut d = lab.device(&serial);
    lab.enroll(&mut d).await;
    let (s, b) = lab
        .app
        .admin(
            Method::POST,
            &format!("/api/v1/devices/{}/commands", d.udid),
            Some(json!({"RequestType": "SecurityInfo"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "queued although the push fails: {b}"
    );
    b
}

/// APNs refuses the push certificate in the TLS handshake (TLS 1.2): the push is retried
/// later and the certificate is marked failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_push_certificate_is_marked_failing() {
    let apns = mdm_apnssim::SimConfig {
        tls12_only: true,
        ..Default::default()
    };
    let lab = Lab::start_with(20, PushCert::Untrusted, apns).await;
    let b = enrolled_and_queued(&lab).await;
    // The setup push at enrollment already failed: a retry is pending.
    assert_eq!(b["push"]["outcome"], "retry_pending", "{b}");
    let refused = lab
        .apns
        .wait_for_tls_failures(1, WAIT)
        .expect("apnssim refused the handshake");
    assert!(refused[0].contains("UnknownIssuer"), "{refused:?}");
    assert!(lab.apns.pushes().is_empty(), "no push got through");
    let (_, c) = lab
        .app
        .admin(Method::GET, "/api/v1/push/certificate", None)
        .await;
    assert_eq!(c["apns"]["state"], "failing", "{c}");
    assert_eq!(c["apns"]["last_failure_status"], Value::Null, "{c}");
    assert!(c["apns"]["failures"].as_u64().unwrap() >= 1);
    lab.shutdown().await;
}

/// Under TLS 1.3 the client's handshake completes before APNs checks its certificate; the
/// refusal arrives as a failed read, which the component sees as a plain protocol error:
/// the push is retried like any transport failure, and the certificate status cannot
/// tell (it stays as it was). Pins that behaviour (see shared/core/src/push/mod.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tls13_a_refused_certificate_is_a_transport_failure() {
    let lab = Lab::start(20, PushCert::Untrusted).await;
    let b = enrolled_and_queued(&lab).await;
    assert_eq!(b["push"]["outcome"], "retry_pending", "{b}");
    lab.apns
        .wait_for_tls_failures(1, WAIT)
        .expect("apnssim refused the certificate");
    assert!(lab.apns.pushes().is_empty());
    let (_, c) = lab
        .app
        .admin(Method::GET, "/api/v1/push/certificate", None)
        .await;
    assert_eq!(c["apns"]["state"], "unknown", "{c}");
    lab.shutdown().await;
}

/// Apple's protocol: a command the device answers NotNow is retried when the device next
/// checks in, and only a push makes it check in. An exchange that ends with deferred
/// commands therefore owes a push, which the scheduler's tick sends with backoff (1 min,
/// doubling) and at most 4 times in any hour. No admin action is needed for the deferred
/// command to be delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_deferred_with_not_now_is_delivered_without_admin_action() {
    let lab = Lab::start(40, PushCert::Trusted).await;
    let app = &lab.app;
    let http = lab.http();
    let serial = lab.ios_serials(1).pop().expect("an iPhone");
    let profile = lab.profile_without_setup().await;
    lab.assign_to(profile, std::slice::from_ref(&serial)).await;
    let mut d = lab.device(&serial);
    d.enroll_ade(&http, &lab.enroll_url(), false).await.unwrap();
    let udid = d.udid.clone();
    let queue = |body: Value| {
        let udid = udid.clone();
        async move {
            let (s, b) = app
                .admin(
                    Method::POST,
                    &format!("/api/v1/devices/{udid}/commands"),
                    Some(body),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            b["command_uuid"].as_str().unwrap().to_owned()
        }
    };
    let first = queue(json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion"]})).await;
    let second = queue(json!({"RequestType": "SecurityInfo"})).await;
    let push_state = || async {
        let (s, b) = app
            .admin(Method::GET, &format!("/api/v1/devices/{udid}/push"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    };

    // The second enqueue fell in the first one's coalescing window: its follow-up push
    // goes out first, so that what follows is about NotNow alone.
    app.advance_clock(Duration::from_secs(6));
    lab.tick().await;
    assert_eq!(push_state().await["last_reason"], "follow_up");

    // The device defers the first command, acknowledges the second, and the exchange ends.
    let cmd = d.idle(&http).await.unwrap().expect("the first command");
    assert_eq!(cmd.uuid, first);
    let next = d
        .answer(
            &http,
            &cmd,
            mdm_devicesim::Status::NotNow,
            Default::default(),
        )
        .await
        .unwrap()
        .expect("the second command");
    assert_eq!(next.uuid, second);
    let (status, keys) = d.respond(&next);
    assert_eq!(d.answer(&http, &next, status, keys).await.unwrap(), None);
    let owed = push_state().await;
    assert!(
        owed["not_now_at"].is_string() || owed["not_now_at"].is_u64(),
        "{owed:#}"
    );

    // Nothing is pushed before the backoff's first minute; then the tick wakes it.
    let before = lab.apns.pushes().len();
    lab.tick().await;
    assert_eq!(lab.apns.pushes().len(), before, "pushed before its time");
    app.advance_clock(Duration::from_secs(61));
    lab.tick().await;
    let pushes = lab
        .apns
        .wait_for_pushes(before + 1, WAIT)
        .expect("the owed push");
    assert_eq!(pushes.last().unwrap().token, d.push_token_hex());
    assert_eq!(push_state().await["last_reason"], "not_now");

    // Woken, the device asks again and gets the deferred command first.
    let again = d.idle(&http).await.unwrap().expect("the deferred command");
    assert_eq!(again.uuid, first);
    let (status, keys) = d.respond(&again);
    assert_eq!(d.answer(&http, &again, status, keys).await.unwrap(), None);
    let (_, r) = app
        .admin(
            Method::GET,
            &format!("/api/v1/devices/{udid}/commands/{first}"),
            None,
        )
        .await;
    assert_eq!(r["status"], "acknowledged", "{r:#}");
    assert!(push_state().await["not_now_at"].is_null());

    // A device that keeps deferring is woken with growing delays, 4 times an hour at most.
    let stubborn = queue(json!({"RequestType": "ProfileList"})).await;
    let mut woken_at = Vec::new();
    let mut elapsed = 0u64;
    let base = lab.apns.pushes().len();
    while elapsed < 3_600 {
        let got = d.idle(&http).await.unwrap();
        if let Some(cmd) = got {
            assert_eq!(cmd.uuid, stubborn);
            assert_eq!(
                d.answer(
                    &http,
                    &cmd,
                    mdm_devicesim::Status::NotNow,
                    Default::default()
                )
                .await
                .unwrap(),
                None
            );
        }
        // Minute by minute until the owed push goes out (or the hour is over).
        loop {
            app.advance_clock(Duration::from_secs(60));
            elapsed += 60;
            let n = lab.apns.pushes().len();
            lab.tick().await;
            if lab.apns.pushes().len() > n {
                woken_at.push(elapsed);
                break;
            }
            if elapsed >= 3_600 {
                break;
            }
        }
    }
    assert_eq!(lab.apns.pushes().len() - base, woken_at.len());
    assert!(woken_at.len() <= 4, "woken {woken_at:?} within an hour");
    assert!(woken_at.len() >= 3, "woken only at {woken_at:?}");
    let gaps: Vec<u64> = woken_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0]),
        "delays shrink: {woken_at:?}"
    );
    lab.shutdown().await;
}

/// A command queued right after the device emptied its queue wakes it at once: the
/// coalescing window of the push before does not hold it back until the scheduler's
/// follow-up, minutes later. A command behind one still to be fetched shares its push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_after_the_device_emptied_its_queue_is_pushed_at_once() {
    let lab = Lab::start(8, PushCert::Trusted).await;
    let serial = lab.serials("iPhone", 1).pop().unwrap();
    lab.assign(std::slice::from_ref(&serial)).await;
    let mut d = lab.device(&serial);
    // Enrolling pushes the setup work, which the device fetches (DeviceConfigured last).
    lab.enroll(&mut d).await;
    let mut pushed = lab.apns.wait_for_pushes(1, WAIT).expect("setup push").len();
    let path = format!("/api/v1/devices/{}/commands", d.udid);
    let queue = |request_type: &str| {
        let body = json!({ "RequestType": request_type });
        let (path, app) = (path.clone(), lab.app.client());
        async move { app.admin(Method::POST, &path, Some(body)).await }
    };
    for i in 0..3 {
        let (s, b) = queue("ProfileList").await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["push"]["outcome"], "delivered", "command {i}: {b}");
        pushed += 1;
        lab.apns.wait_for_pushes(pushed, WAIT).expect("pushed");
        let answered = d.run_until_idle(&lab.http()).await.unwrap();
        assert_eq!(answered.len(), 1, "command {i}");
    }
    let (_, first) = queue("ProfileList").await;
    assert_eq!(first["push"]["outcome"], "delivered", "{first}");
    let (_, second) = queue("CertificateList").await;
    assert_eq!(second["push"]["outcome"], "coalesced", "{second}");
    let answered = d.run_until_idle(&lab.http()).await.unwrap();
    assert_eq!(
        answered
            .iter()
            .map(|a| a.command.request_type.as_str())
            .collect::<Vec<_>>(),
        ["ProfileList", "CertificateList"]
    );
    assert_eq!(
        lab.apns.wait_for_pushes(pushed + 1, WAIT).unwrap().len(),
        pushed + 1
    );
    lab.shutdown().await;
}

//! The command loop: Idle, the command, its result, the next; the exact plist queued,
//! NotNow, deliveries sent again, error results and response keys kept.

use super::*;

#[test]
fn idle_command_acknowledged_next_then_empty() {
    let e = env();
    let d = enrolled(&e);
    assert_eq!(
        d.idle(),
        None,
        "nothing queued: empty 200 ends the exchange"
    );
    let a = queue(
        &e,
        UDID,
        r#"{"RequestType":"DeviceInformation","Queries":["OSVersion"]}"#,
    );
    let b = queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(d.idle(), Some((a.clone(), "DeviceInformation".into())));
    assert_eq!(d.ack(&a), Some((b.clone(), "ProfileList".into())));
    assert_eq!(d.ack(&b), None);
    assert_eq!(d.idle(), None);
    assert_eq!(command(&e, &a)["status"], "acknowledged");
    assert_eq!(command(&e, &b)["status"], "acknowledged");
    // POST is accepted like PUT.
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let r = block_on(commands::handle(
        &e,
        device_request(Method::POST, "/mdm/connect", &body, Some(&d.id.sign(&body))),
    ));
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn a_delivered_command_is_the_exact_plist_queued() {
    let e = env();
    let d = enrolled(&e);
    let profile = base64::engine::general_purpose::STANDARD.encode(b"<profile bytes>");
    let uuid = queue(
        &e,
        UDID,
        &format!(r#"{{"RequestType":"InstallProfile","Payload":"{profile}"}}"#),
    );
    let body = xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{UDID}</string>"
    ));
    let r = d.connect_raw(&body);
    let v: plist::Value = plist::from_bytes(r.body()).unwrap();
    let top = v.as_dictionary().unwrap();
    assert_eq!(top["CommandUUID"].as_string(), Some(uuid.as_str()));
    let cmd = top["Command"].as_dictionary().unwrap();
    assert_eq!(cmd["RequestType"].as_string(), Some("InstallProfile"));
    assert_eq!(cmd["Payload"].as_data(), Some(&b"<profile bytes>"[..]));
}

#[test]
fn not_now_waits_for_the_next_idle_then_comes_first() {
    let e = env();
    let d = enrolled(&e);
    let a = queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    let b = queue(&e, UDID, r#"{"RequestType":"SecurityInfo"}"#);
    let c = queue(&e, UDID, r#"{"RequestType":"CertificateList"}"#);
    assert_eq!(d.idle().unwrap().0, a);
    assert_eq!(d.not_now(&a).unwrap().0, b, "a is skipped in this exchange");
    assert_eq!(d.not_now(&b).unwrap().0, c);
    assert_eq!(command(&e, &a)["status"], "not_now");
    assert_eq!(command(&e, &a)["delivery"]["state"], "not_now");
    assert_eq!(
        d.ack(&c),
        None,
        "a and b are not resent in the same exchange"
    );
    // A command queued meanwhile is new: it may go out in this exchange...
    let f = queue(
        &e,
        UDID,
        r#"{"RequestType":"ProfileList","ManagedOnly":true}"#,
    );
    // ...but a repeated Idle-less report does not resend the deferred ones.
    assert_eq!(
        d.report("Acknowledged", Some(&c), ""),
        Some((f.clone(), "ProfileList".into()))
    );
    assert_eq!(d.not_now(&f), None);
    // The next exchange: deferred commands first, in their order.
    assert_eq!(d.idle().unwrap().0, a);
    assert_eq!(d.ack(&a).unwrap().0, b);
    assert_eq!(d.not_now(&b).unwrap().0, f);
    assert_eq!(d.ack(&f), None);
    assert_eq!(d.idle().unwrap().0, b);
    assert_eq!(d.ack(&b), None);
    let r = command(&e, &b);
    assert_eq!(r["status"], "acknowledged");
    assert_eq!(r["not_now_count"], 2);
    assert_eq!(r["delivery"], serde_json::Value::Null);
    assert_eq!(d.idle(), None);
}

#[test]
fn unanswered_delivery_is_sent_again() {
    let e = env();
    let d = enrolled(&e);
    let a = queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    assert_eq!(d.idle().unwrap().0, a);
    // The reply never reached the device: it polls again.
    assert_eq!(d.idle().unwrap().0, a);
    assert_eq!(command(&e, &a)["delivery"]["deliveries"], 2);
    assert_eq!(d.ack(&a), None);
}

#[test]
fn error_and_command_format_error_results_are_kept() {
    let e = env();
    let d = enrolled(&e);
    let a = queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    let b = queue(&e, UDID, r#"{"RequestType":"SecurityInfo"}"#);
    assert_eq!(d.idle().unwrap().0, a);
    let chain = "<key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>12021</integer>\
        <key>ErrorDomain</key><string>MCMDMErrorDomain</string>\
        <key>LocalizedDescription</key><string>Commande inconnue</string>\
        <key>USEnglishDescription</key><string>Unknown command</string></dict></array>";
    assert_eq!(d.report("Error", Some(&a), chain).unwrap().0, b);
    assert_eq!(d.report("CommandFormatError", Some(&b), ""), None);
    let r = command(&e, &a);
    assert_eq!(r["status"], "error");
    assert_eq!(r["error_chain"][0]["code"], 12021);
    assert_eq!(r["error_chain"][0]["domain"], "MCMDMErrorDomain");
    assert_eq!(r["error_chain"][0]["description"], "Unknown command");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(r["raw"].as_str().unwrap())
        .unwrap();
    let v: plist::Value = plist::from_bytes(&raw).unwrap();
    assert_eq!(
        v.as_dictionary().unwrap()["Status"].as_string(),
        Some("Error")
    );
    assert!(r["answered_at"].is_string());
    let r = command(&e, &b);
    assert_eq!(r["status"], "command_format_error");
    // Neither is sent again.
    assert_eq!(d.idle(), None);
}

#[test]
fn response_keys_are_returned_as_json() {
    let e = env();
    let d = enrolled(&e);
    let a = queue(&e, UDID, r#"{"RequestType":"ProfileList"}"#);
    d.idle();
    let resp = "<key>ProfileList</key><array><dict><key>PayloadIdentifier</key><string>com.example.wifi</string>\
        <key>PayloadContent</key><data>AAEC</data></dict></array>";
    assert_eq!(d.report("Acknowledged", Some(&a), resp), None);
    let r = command(&e, &a);
    assert_eq!(
        r["response"]["ProfileList"][0]["PayloadIdentifier"],
        "com.example.wifi"
    );
    assert_eq!(r["response"]["ProfileList"][0]["PayloadContent"], "AAEC");
    assert!(r["response"].get("UDID").is_none() && r["response"].get("Status").is_none());
}

//! Device actions (`POST /api/v1/devices/{device}/actions/{action}`): each becomes the
//! MDM command(s) Apple defines, queued with the same checks as any command, and the
//! device receives them.

mod mdmdevice;

use http::{Method, StatusCode};
use mdmdevice::{Device, E, Identity, admin_call, env};
use serde_json::Value;

const IPHONE: &str = "00008110-000A1C2E3E88401E";

fn action(e: &E, device: &str, name: &str, body: &str) -> (StatusCode, Value) {
    admin_call(
        e,
        Method::POST,
        &format!("/api/v1/devices/{device}/actions/{name}"),
        body,
    )
}

fn fields(b: &Value) -> Vec<String> {
    b["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn actions_become_commands_the_device_receives() {
    let e = env();
    let d = Device::new(&e, Identity::self_signed(), IPHONE);
    d.enroll(
        "iPhone15,2",
        "17.4",
        "<key>UnlockToken</key><data>dW5sb2Nr</data>",
    );

    let (s, b) = action(&e, IPHONE, "rename", r#"{"name": "Front desk"}"#);
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let rename = b["commands"][0]["command_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(b["commands"][0]["request_type"], "Settings");
    // Lock skips the queue: it is delivered before the rename queued earlier.
    let (s, b) = action(
        &e,
        IPHONE,
        "lock",
        r#"{"message": "Lost, call us", "phone_number": "+1 555 0100"}"#,
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["commands"][0]["lane"], "priority");
    let lock = b["commands"][0]["command_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, b) = action(&e, IPHONE, "refresh-inventory", "");
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let kinds: Vec<&str> = b["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["request_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "DeviceInformation",
            "SecurityInfo",
            "InstalledApplicationList",
            "CertificateList",
            "ProfileList"
        ]
    );
    let (s, b) = action(&e, IPHONE, "clear-passcode", "");
    assert_eq!(s, StatusCode::CREATED, "{b}");

    let mut got = Vec::new();
    let mut next = d.idle();
    while let Some((uuid, rt)) = next {
        got.push((uuid.clone(), rt));
        next = d.ack(&uuid);
    }
    let order: Vec<&str> = got.iter().map(|(_, rt)| rt.as_str()).collect();
    assert_eq!(
        order,
        [
            "DeviceLock",
            "Settings",
            "DeviceInformation",
            "SecurityInfo",
            "InstalledApplicationList",
            "CertificateList",
            "ProfileList",
            "ClearPasscode"
        ]
    );
    assert_eq!(got[0].0, lock);
    assert_eq!(got[1].0, rename);
}

#[test]
fn bad_actions_are_refused_by_name() {
    let e = env();
    let d = Device::new(&e, Identity::self_signed(), IPHONE);
    d.enroll("iPhone15,2", "17.4", "");

    let (s, b) = action(&e, IPHONE, "explode", "");
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = action(&e, IPHONE, "lock", r#"{"mesage": "typo"}"#);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&b), ["mesage"]);
    let (s, b) = action(&e, IPHONE, "wipe", r#"{"pin": "12ab"}"#);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&b), ["pin"]);
    let (s, b) = action(&e, IPHONE, "rename", "{}");
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&b), ["name"]);
    let (s, b) = action(&e, IPHONE, "enable-lost-mode", "{}");
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&b), ["message"]);
    let (s, b) = action(&e, IPHONE, "restart", r#"{"notify_user": "yes"}"#);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&b), ["notify_user"]);
    let (s, _) = action(&e, IPHONE, "lock", "[1]");
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Lost mode needs a supervised device; this one says it is not.
    let u = mdmdevice::queue(
        &e,
        IPHONE,
        r#"{"RequestType":"DeviceInformation","Queries":["IsSupervised"]}"#,
    );
    assert_eq!(d.idle().unwrap().0, u);
    let answer = "<key>QueryResponses</key><dict><key>IsSupervised</key><false/></dict>";
    assert_eq!(d.report("Acknowledged", Some(&u), answer), None);
    let (s, b) = action(&e, IPHONE, "enable-lost-mode", r#"{"message": "hi"}"#);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b.to_string().to_lowercase().contains("supervis"), "{b}");
    // Unknown device.
    let (s, _) = action(&e, "NOPE", "lock", "");
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Nothing of the refused actions reached the device.
    assert_eq!(d.idle(), None);
}

#[test]
fn device_logs_record_check_ins_and_answered_commands() {
    let e = env();
    let d = Device::new(&e, Identity::self_signed(), IPHONE);
    d.enroll("iPhone15,2", "17.4", "");
    let (s, _) = action(&e, IPHONE, "lock", r#"{"message": "hi"}"#);
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = action(&e, IPHONE, "restart", "");
    assert_eq!(s, StatusCode::CREATED);
    let (uuid, _) = d.idle().unwrap();
    let (uuid2, _) = d.ack(&uuid).unwrap();
    assert_eq!(d.report("Error", Some(&uuid2), ""), None);

    let logs = |q: &str| {
        let (s, b) = admin_call(
            &e,
            Method::GET,
            &format!("/api/v1/devices/{IPHONE}/logs{q}"),
            "",
        );
        assert_eq!(s, StatusCode::OK, "{b}");
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                format!(
                    "{} {}",
                    x["action"].as_str().unwrap(),
                    x["status"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        logs(""),
        [
            "RestartDevice Error",
            "DeviceLock Acknowledged",
            "TokenUpdate ok",
            "Authenticate ok"
        ]
    );
    assert_eq!(logs("?action=devicelock"), ["DeviceLock Acknowledged"]);
    // A refused check-in of a known device is logged with the reason.
    let r = d.checkin(
        "TokenUpdate",
        "<key>Topic</key><string>com.apple.mgmt.External.other</string>\
         <key>PushMagic</key><string>m</string><key>Token</key><data>AQ==</data>",
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(logs("?status=refused"), ["TokenUpdate refused"]);
    assert_eq!(logs("?status=ok&limit=1"), ["TokenUpdate ok"]);
    assert!(logs("?from=2100-01-01T00:00:00Z").is_empty());
    let (s, b) = admin_call(
        &e,
        Method::GET,
        &format!("/api/v1/devices/{IPHONE}/logs?limit=0&colour=red"),
        "",
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&b), ["limit", "colour"]);
}

#[test]
fn a_device_awaiting_configuration_is_released_with_device_configured() {
    let e = env();
    let d = Device::new(&e, Identity::self_signed(), IPHONE);
    d.enroll(
        "iPhone15,2",
        "17.4",
        "<key>AwaitingConfiguration</key><true/>",
    );
    let device = |e: &E| admin_call(e, Method::GET, &format!("/api/v1/devices/{IPHONE}"), "").1;
    assert_eq!(device(&e)["awaiting_configuration"], true);
    // A later TokenUpdate (a new push token) does not queue the work again.
    let again = d.checkin(
        "TokenUpdate",
        &format!(
            "<key>Topic</key><string>{}</string><key>Token</key><data>dG9rZW4y</data>\
             <key>PushMagic</key><string>magic-2</string><key>AwaitingConfiguration</key><true/>",
            mdmdevice::TOPIC
        ),
    );
    assert_eq!(again.status(), StatusCode::OK);
    let (uuid, rt) = d.idle().expect("DeviceConfigured queued");
    assert_eq!(rt, "DeviceConfigured");
    assert_eq!(d.ack(&uuid), None, "queued once only");
    assert_eq!(device(&e)["awaiting_configuration"], false);
}

#[test]
fn retiring_removes_our_profile_then_deletes_the_record() {
    let e = env();
    let d = Device::new(&e, Identity::self_signed(), IPHONE);
    d.enroll("iPhone15,2", "17.4", "");
    let pending = mdmdevice::queue(&e, IPHONE, r#"{"RequestType":"ProfileList"}"#);
    let path = format!("/api/v1/devices/{IPHONE}");
    assert_eq!(
        admin_call(&e, Method::DELETE, "/api/v1/devices/NOPE", "").0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin_call(&e, Method::DELETE, &format!("{path}?force=perhaps"), "").0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let (s, b) = admin_call(&e, Method::DELETE, &path, "");
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let uuid = b["command_uuid"].as_str().unwrap().to_owned();
    // Asking again changes nothing.
    let (s, again) = admin_call(&e, Method::DELETE, &path, "");
    assert_eq!(
        (s, &again["command_uuid"]),
        (StatusCode::ACCEPTED, &b["command_uuid"])
    );
    let (_, v) = admin_call(&e, Method::GET, &path, "");
    assert_eq!(v["retire"]["command_uuid"], uuid.as_str(), "{v}");
    let (_, c) = admin_call(&e, Method::GET, &format!("{path}/commands/{uuid}"), "");
    assert_eq!(c["request_type"], "RemoveProfile", "{c}");

    // The device refuses at first: still managed, retire cleared, the error on record.
    let (first, rt) = d.idle().expect("RemoveProfile skips the queue");
    assert_eq!(
        (first.as_str(), rt.as_str()),
        (uuid.as_str(), "RemoveProfile")
    );
    let next = d.report(
        "Error",
        Some(&uuid),
        "<key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>4001</integer>\
         <key>ErrorDomain</key><string>MCProfileErrorDomain</string></dict></array>",
    );
    assert_eq!(next.map(|n| n.0), Some(pending.clone()));
    let (_, v) = admin_call(&e, Method::GET, &path, "");
    assert_eq!(
        (v["enrolled"].as_bool(), &v["retire"]),
        (Some(true), &Value::Null),
        "{v}"
    );

    // Retried and acknowledged: the record and the queue are gone.
    let (s, b) = admin_call(&e, Method::DELETE, &path, "");
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let uuid = b["command_uuid"].as_str().unwrap().to_owned();
    let (got, _) = d.idle().unwrap();
    assert_eq!(got, uuid);
    assert_eq!(d.ack(&uuid), None, "nothing more is sent");
    assert_eq!(
        admin_call(&e, Method::GET, &path, "").0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = admin_call(&e, Method::GET, "/api/v1/devices", "");
    assert_eq!(list["items"], serde_json::json!([]), "{list}");
    // What the device still sends (its CheckOut) is refused as unknown.
    let r = d.checkin("CheckOut", "");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let left: Vec<String> = mdmdevice::dump(&e)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| {
            k.contains(IPHONE)
                && (k.starts_with("enr") || k.starts_with("certb") || k.starts_with("q"))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_forced_retire_deletes_at_once_and_the_device_can_enroll_again() {
    let e = env();
    let d = Device::new(&e, Identity::self_signed(), IPHONE);
    d.enroll("iPhone15,2", "17.4", "");
    let path = format!("/api/v1/devices/{IPHONE}");
    let (s, b) = admin_call(&e, Method::DELETE, &format!("{path}?force=true"), "");
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("deleted")),
        "{b}"
    );
    assert_eq!(
        admin_call(&e, Method::GET, &path, "").0,
        StatusCode::NOT_FOUND
    );
    // The device is a stranger now: told so, which makes it drop its enrollment.
    let idle = mdmdevice::xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{IPHONE}</string>"
    ));
    assert_eq!(d.connect_raw(&idle).status(), StatusCode::FORBIDDEN);
    // Enrolling again lists it once.
    let d = Device::new(&e, Identity::self_signed(), IPHONE);
    d.enroll("iPhone15,2", "17.4", "");
    let (_, list) = admin_call(&e, Method::GET, "/api/v1/devices", "");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(admin_call(&e, Method::GET, &path, "").0, StatusCode::OK);
}

//! Commands that carry secrets: ClearPasscode gets the escrowed UnlockToken, PINs and
//! tokens rest sealed, and the history keeps no copy of them.

use super::*;

#[test]
fn clear_passcode_takes_the_escrowed_unlock_token() {
    let e = env();
    let d = iphone(&e);
    let u = queue(&e, IPHONE, r#"{"RequestType":"ClearPasscode"}"#);
    let body = mdmdevice::xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{IPHONE}</string>"
    ));
    let r = d.connect_raw(&body);
    let v: plist::Value = plist::from_bytes(r.body()).unwrap();
    let cmd = v.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap();
    assert_eq!(cmd["UnlockToken"].as_data(), Some(&b"unlock"[..]));
    d.ack(&u);
    // A device that escrowed none: 422 naming the key.
    let m = mac(&e);
    let (s, b) = post(&e, &m.udid, r#"{"RequestType":"ClearPasscode"}"#);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}

/// Whether any stored value holds `needle` in the clear.
fn stored_anywhere(e: &E, needle: &[u8]) -> Vec<String> {
    mdmdevice::dump(e)
        .into_iter()
        .filter(|(_, v)| v.windows(needle.len()).any(|w| w == needle))
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn secrets_rest_sealed_and_are_not_kept_in_history() {
    let e = env();
    let d = iphone(&e);
    let pin = queue(&e, IPHONE, r#"{"RequestType":"DeviceLock","PIN":"918273"}"#);
    let clear = queue(&e, IPHONE, r#"{"RequestType":"ClearPasscode"}"#);
    let token = queue(&e, IPHONE, r#"{"RequestType":"RequestUnlockToken"}"#);
    // Queued: neither the PIN nor the UnlockToken is in any stored value.
    assert_eq!(stored_anywhere(&e, b"918273"), Vec::<String>::new());
    assert_eq!(stored_anywhere(&e, b"dW5sb2Nr"), Vec::<String>::new());
    // The device gets them in the clear.
    let body = mdmdevice::xml(&format!(
        "<key>Status</key><string>Idle</string><key>UDID</key><string>{IPHONE}</string>"
    ));
    let r = d.connect_raw(&body);
    let v: plist::Value = plist::from_bytes(r.body()).unwrap();
    let v = v.as_dictionary().unwrap();
    assert_eq!(v["CommandUUID"].as_string(), Some(pin.as_str()));
    assert_eq!(
        v["Command"].as_dictionary().unwrap()["PIN"].as_string(),
        Some("918273")
    );
    assert_eq!(d.ack(&pin).unwrap().0, clear);
    assert_eq!(d.ack(&clear).unwrap().0, token);
    // The device answers with a fresh UnlockToken: the history keeps no copy of it.
    let answer = "<key>UnlockToken</key><data>c2VjcmV0LXRva2Vu</data>";
    assert_eq!(d.report("Acknowledged", Some(&token), answer), None);
    assert_eq!(
        stored_anywhere(&e, b"c2VjcmV0LXRva2Vu"),
        Vec::<String>::new()
    );
    assert_eq!(stored_anywhere(&e, b"secret-token"), Vec::<String>::new());
    let (s, b) = get(&e, &format!("{}/{token}", commands_path(IPHONE)));
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "acknowledged");
    assert_eq!(
        b["response"]["UnlockToken"],
        mdm_core::command::secrets::REDACTED
    );
}

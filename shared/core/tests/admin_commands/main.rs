//! The command and device admin API: queueing (JSON and raw plists), validation against
//! the schema and the device, the queue bound, lanes, cancel, history, retention,
//! inventory and the device views.
//!
//! This file holds the two enrolled devices and the request helpers; the tests are in one
//! module per concern: `queueing`, `secrets`, `validation`, `cancel`, `history`,
//! `retention`, `devices`.

mod cancel;
mod devices;
mod history;
mod queueing;
mod retention;
mod secrets;
mod validation;

#[path = "../mdmdevice/mod.rs"]
mod mdmdevice;

use std::time::Duration;

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdmdevice::{Device, E, Identity, SYNC_KEY, admin_call, admin_raw, env, queue, vector};
use serde_json::{Value, json};

const IPHONE: &str = "00008110-000A1C2E3E88401E";
const MAC: &str = "66ADE930-5FDF-5EC4-8429-15640684C489";

fn commands_path(d: &str) -> String {
    format!("/api/v1/devices/{d}/commands")
}

fn post(e: &E, d: &str, body: &str) -> (StatusCode, Value) {
    admin_call(e, Method::POST, &commands_path(d), body)
}

fn get(e: &E, path: &str) -> (StatusCode, Value) {
    admin_call(e, Method::GET, path, "")
}

fn iphone(e: &E) -> Device<'_> {
    let d = Device::new(e, Identity::self_signed(), IPHONE);
    d.enroll(
        "iPhone15,2",
        "17.4",
        "<key>UnlockToken</key><data>dW5sb2Nr</data>",
    );
    d
}

fn mac(e: &E) -> Device<'_> {
    let d = Device::new(e, Identity::ca_issued(), MAC);
    d.enroll("iMac14,2", "10.12.6", "");
    d
}

/// The device answers DeviceInformation with these query responses.
fn report_device_information(e: &E, d: &Device, responses: &str) {
    let u = queue(
        e,
        &d.udid,
        r#"{"RequestType":"DeviceInformation","Queries":["IsSupervised"]}"#,
    );
    assert_eq!(d.idle().unwrap().0, u);
    let extra = format!("<key>QueryResponses</key><dict>{responses}</dict>");
    assert_eq!(d.report("Acknowledged", Some(&u), &extra), None);
}

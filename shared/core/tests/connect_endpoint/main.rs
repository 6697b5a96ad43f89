//! `PUT /mdm/connect` end to end: the command loop with signed reports, NotNow,
//! results, store work per request, and admins queueing while the device polls.
//!
//! This file holds the enrolled device and the queueing helper; the tests are in one
//! module per concern: `command_loop`, `identity`, `load`.

mod command_loop;
mod identity;
mod load;

#[path = "../mdmdevice/mod.rs"]
mod mdmdevice;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::command::records::{self, NewCommand};
use mdm_core::config::Secret;
use mdm_core::mdm::checkin_message::CheckinMessage;
use mdm_core::mdm::connect::{self, Next};
use mdm_core::mdm::enrollments;
use mdm_core::mdm::report::Report;
use mdm_core::queue::{Channel, Lane};
use mdm_core::routes::commands;
use mdm_kv::{Backend, KvError, MemoryBackend, Store};
use mdmdevice::{Device, Identity, admin_call, device_request, env, queue, xml};

const UDID: &str = "00008110-000A1C2E3E88401E";

fn enrolled(e: &mdmdevice::E) -> Device<'_> {
    let d = Device::new(e, Identity::self_signed(), UDID);
    d.enroll("iPhone15,2", "17.4", "");
    d
}

fn command(e: &mdmdevice::E, uuid: &str) -> serde_json::Value {
    let (s, b) = admin_call(
        e,
        Method::GET,
        &format!("/api/v1/devices/{UDID}/commands/{uuid}"),
        "",
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

//! `POST /mdm/enroll/ade` end to end: MachineInfo signed as devices sign it (fake Apple
//! device CA, RSA-1024 identities, SHA-1/SHA-256, DER and BER), every refusal (storing
//! nothing), the signed enrollment profile checked against Apple's schemas, minimum OS.
//!
//! This file holds the server with an assigned device and the schema helpers; the tests
//! are in one module per concern: `device`, `profile`, `refusals`, `minimum_os`.

mod device;
mod minimum_os;
mod profile;
mod refusals;

#[path = "../enrollsupport/mod.rs"]
mod enrollsupport;

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::dep::inventory;
use mdm_core::enroll::enrollment_profile::PROFILE_IDENTIFIER;
use mdm_core::enroll::machineinfo::{self, APPLE_IPHONE_DEVICE_CA_PEM};
use mdm_core::enroll::pending;
use mdm_core::record::Record;
use mdm_core::scep::ca;
use mdm_crypto::Certificate;
use serde_json::json;

use enrollsupport::*;

const UUID: &str = "7C64A6E2E3D94C7F9B8F6E0C0D4D3B21";
const UDID: &str = "00008030-001A2B3C4D5E802E";
const SERIAL: &str = "F9FXK0ABCDEF";

fn server() -> Server {
    let s = Server::new();
    s.add_profile(1, UUID, default_profile());
    s.sync_device(assigned(SERIAL, UUID));
    s
}

fn signed_info(s: &Server, os: Option<&str>, can_update: bool) -> Vec<u8> {
    let dev = s.apple.device("6001A957-6FC5-4856-8C5E-DC2E32C61CB9", true);
    dev.sign(
        &machine_info(UDID, SERIAL, os, can_update),
        Hash::Sha1,
        Form::Ber,
        &[],
    )
}

fn yaml(path: &str) -> serde_yaml_ng::Value {
    let full = format!(
        "{}/../../tests/vectors/apple-device-management/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_yaml_ng::from_str(&std::fs::read_to_string(&full).unwrap()).unwrap()
}

fn keys_of(list: &serde_yaml_ng::Value) -> Vec<String> {
    list.as_sequence()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_owned())
        .collect()
}

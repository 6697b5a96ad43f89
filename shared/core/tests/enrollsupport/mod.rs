//! Test material for enrollment: a fake Apple device CA (expired, like Apple's), device
//! identities (RSA-1024 with `CN=<UUID>`, like devices'), MachineInfo plists signed as
//! devices sign them (attached CMS, SHA-1 or SHA-256, DER or Apple's BER with indefinite
//! lengths and a chunked content), a server with a synced device assigned a profile, and
//! the device side of SCEP and check-in.
//!
//! `apple` holds the fake Apple CA, device identities and MachineInfo; `server` the
//! server with its synced device; `device` the device side (profile, SCEP, check-in).
//! Everything is re-exported here, for `use enrollsupport::*`.

#![allow(dead_code)]

mod apple;
mod device;
mod server;

pub use apple::*;
pub use device::*;
pub use server::*;

use mdm_core::platform::testing::{ManualClock, MapVariables, NoHttp};
use mdm_core::{Env, Response};
use mdm_crypto::KeyPair;
use mdm_kv::MemoryBackend;
use serde_json::Value;
use sha2::Digest as _;

pub const START: u64 = 1_800_000_000;
pub const TOPIC: &str = "com.apple.mgmt.External.3f1c1a1e-2b7d-4a57-9c0e-5e1a3c2b9d10";
pub const SERVER: &str = "https://mdm.example.com";
pub const ADMIN_KEY: &str = "admin-key-for-enrollment-tests";

pub type E = Env<MemoryBackend, NoHttp, ManualClock, MapVariables>;

pub fn text(r: &Response) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

pub fn json_body(r: &Response) -> Value {
    serde_json::from_slice(r.body()).unwrap_or(Value::Null)
}

/// One RSA-2048 key per role, shared by the tests of a binary (generation is slow).
pub fn device_mdm_key(n: usize) -> KeyPair {
    use std::sync::{Mutex, OnceLock};
    static KEYS: OnceLock<Mutex<Vec<KeyPair>>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| Mutex::new(Vec::new()));
    let mut k = keys.lock().unwrap();
    while k.len() <= n {
        k.push(KeyPair::generate().unwrap());
    }
    k[n].clone()
}

/// Digest of a store dump, for "nothing changed" checks.
pub fn fingerprint(d: &[(String, Vec<u8>)]) -> String {
    let mut h = sha2::Sha256::new();
    for (k, v) in d {
        h.update(k.as_bytes());
        h.update(v);
    }
    hex::encode(h.finalize())
}

//! The server under test: the fake Apple CA as `apple_device_ca`, a push topic, and a
//! token whose inventory holds a synced device assigned a profile.

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::dep::TokenId;
use mdm_core::dep::inventory_apply::{self, ApplyMode, PageContext};
use mdm_core::dep::profile_store::{self, ProfileRecord};
use mdm_core::dep::profiles::ProfileSpec;
use mdm_core::dep::tokens::{self, KeyPair as SlotKey, TokenRecord};
use mdm_core::platform::testing::{ManualClock, MapVariables, NoHttp};
use mdm_core::{Clock, Env, Response, routes::checkin};
use mdm_kv::{Defects, MemoryBackend, Store};
use serde_json::{Value, json};

use super::{ADMIN_KEY, E, FakeCa, SERVER, START, TOPIC};

/// The server: fake Apple CA as `apple_device_ca`, a push topic, a token whose inventory
/// holds devices.
pub struct Server {
    pub e: E,
    pub apple: FakeCa,
    pub token: TokenId,
}

pub fn env_with_vars(vars: &[(&str, &str)]) -> E {
    Env {
        store: Store::new(MemoryBackend::with_defects(Defects::spin_sqlite())),
        http: NoHttp,
        clock: ManualClock::at_unix(START),
        vars: MapVariables::new(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
    }
}

impl Server {
    pub fn new() -> Self {
        let apple = FakeCa::new("Apple iPhone Device CA");
        let pem = apple.pem();
        let e = env_with_vars(&[
            ("admin_api_key", ADMIN_KEY),
            ("storage_key", "storage-key-for-enrollment-tests-0123456789"),
            ("server_url", SERVER),
            ("apns_topic", TOPIC),
            ("apple_device_ca", &pem),
        ]);
        let token = block_on(tokens::allocate(&e.store)).unwrap().unwrap();
        let key = SlotKey {
            certificate: String::new(),
            sealed_key: String::new(),
            created_at: 0,
        };
        let mut rec = TokenRecord::new(token, "Main".into(), key, 0);
        let mut account = serde_json::Map::new();
        account.insert("org_name".into(), json!("Example Org"));
        rec.account = Some(account);
        block_on(tokens::create(&e.store, &rec)).unwrap();
        Server { e, apple, token }
    }

    pub fn now(&self) -> u64 {
        self.e.clock.unix_seconds()
    }

    /// Our profile `id` with Apple UUID `uuid` and `settings` (JSON of ProfileSpec).
    pub fn add_profile(&self, id: u64, uuid: &str, settings: Value) {
        let spec: ProfileSpec = serde_json::from_value(settings).unwrap();
        spec.validate().unwrap();
        let r = ProfileRecord {
            id,
            token: self.token,
            spec,
            apple_uuid: uuid.into(),
            previous_uuids: vec![],
            created_at: START,
            updated_at: START,
        };
        block_on(profile_store::save(&self.e.store, &r)).unwrap();
    }

    /// A synced device (Apple's record fields).
    pub fn sync_device(&self, fields: Value) {
        let rec = fields.as_object().unwrap().clone();
        block_on(inventory_apply::apply_page(
            &self.e.store,
            self.token,
            vec![rec],
            PageContext::at(ApplyMode::Upsert, START),
        ))
        .unwrap();
    }

    pub fn enroll_request(&self, body: Vec<u8>) -> Response {
        let req = http::Request::builder()
            .method(Method::POST)
            .uri("/mdm/enroll/ade")
            .header("content-type", "application/pkcs7-signature")
            .body(body)
            .unwrap();
        block_on(checkin::handle(&self.e, req))
    }

    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut d = self.e.store.backend().dump();
        d.sort();
        d
    }

    pub fn admin(&self, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {ADMIN_KEY}"));
        if !body.is_empty() {
            b = b.header("content-type", "application/json");
        }
        let resp = block_on(mdm_core::routes::admin::handle(
            &self.e,
            b.body(body.as_bytes().to_vec()).unwrap(),
        ));
        let v = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        (resp.status(), v)
    }
}

pub fn default_profile() -> Value {
    json!({ "name": "Staff iPhones", "platform": "ios", "user_affinity": "without_user" })
}

pub fn assigned(serial: &str, uuid: &str) -> Value {
    json!({
        "serial_number": serial, "model": "iPhone 13", "os": "iOS", "device_family": "iPhone",
        "profile_uuid": uuid, "profile_status": "assigned", "op_type": "added",
        "op_date": "2027-01-01T00:00:00Z",
    })
}

//! APNs push (`push`) without a network: request building, answer classification,
//! backoff, coalescing, the retry wheel and its drain, on strict and defective stores.
//! The same paths over real HTTP/2 + TLS run in `tests/apnssim/tests/`.
//!
//! This file holds the fake APNs and the test environment; the tests are in one module
//! per concern: `request`, `outcomes`, `coalescing`, `drain`, `not_now`.

mod coalescing;
mod drain;
mod not_now;
mod outcomes;
mod request;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use futures::executor::block_on;
use http::{Request, Response};
use mdm_core::Env;
use mdm_core::mdm::enrollment_record::{EnrollmentRecord, Push};
use mdm_core::platform::TransportError;
use mdm_core::platform::testing::{FnHttp, ManualClock, MapVariables};
use mdm_core::push::apns::EXPIRATION_SECS;
use mdm_core::push::outcome::{PushOutcome, SkipReason, Verdict};
use mdm_core::push::send::{BACKOFF_MAX_SECS, GIVE_UP_SECS};
use mdm_core::push::state::PushReason;
use mdm_core::push::{self, COALESCE_WINDOW_SECS};
use mdm_core::queue::{self, Channel, Lane};
use mdm_core::record::Record;
use mdm_kv::{Defects, MemoryBackend, Store};

const T0: u64 = 1_800_000_000;
const TOKEN: &str = "6e3f0a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab";
const TOPIC: &str = "com.apple.mgmt.External.2f1b6d3c-3c55-4c7d-9a0e-6b1f2e3d4c5b";
const MAGIC: &str = "5C0D3A7E-1111-4AAA-8BBB-123456789ABC";

type Reply = Result<Response<Vec<u8>>, TransportError>;

/// A scripted APNs: answers from a queue (200 when it is empty), records every request.
#[derive(Default)]
struct FakeApns {
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Request<Vec<u8>>>>,
}

impl FakeApns {
    fn answer(&self, req: Request<Vec<u8>>) -> Reply {
        self.seen.lock().unwrap().push(req);
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok(ok()))
    }
    fn then(&self, r: Reply) {
        self.script.lock().unwrap().push_back(r);
    }
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn ok() -> Response<Vec<u8>> {
    Response::builder()
        .status(200)
        .header("apns-id", "0F2B6E6A-0000-4000-8000-000000000001")
        .body(vec![])
        .unwrap()
}

fn err(status: u16, reason: &str) -> Reply {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(format!(r#"{{"reason":"{reason}"}}"#).into_bytes())
        .unwrap())
}

fn err_retry_after(status: u16, reason: &str, after: &str) -> Reply {
    let mut r = err(status, reason).unwrap();
    r.headers_mut()
        .insert("retry-after", after.parse().unwrap());
    Ok(r)
}

type TestEnv<'a> = Env<
    MemoryBackend,
    FnHttp<Box<dyn Fn(Request<Vec<u8>>) -> Reply + Sync + 'a>>,
    ManualClock,
    MapVariables,
>;

fn env_with(apns: &FakeApns, defects: Defects) -> TestEnv<'_> {
    Env {
        store: Store::new(MemoryBackend::with_defects(defects)),
        http: FnHttp(Box::new(move |r| apns.answer(r))),
        clock: ManualClock::at_unix(T0),
        vars: MapVariables::new([("apns_base_url", "https://apns.test:2197/")]),
    }
}

fn env(apns: &FakeApns) -> TestEnv<'_> {
    env_with(apns, Defects::strict())
}

fn push_data(token: &str) -> Push {
    Push {
        token_hex: token.into(),
        push_magic: MAGIC.into(),
        topic: TOPIC.into(),
    }
}

/// An enrollment as TokenUpdate leaves it.
fn enroll(store: &Store<MemoryBackend>, id: &str, token: &str) {
    let rec = EnrollmentRecord {
        device_id: id.into(),
        topic: TOPIC.into(),
        enrolled: true,
        enrolled_at: Some(T0),
        push: Some(push_data(token)),
        ..EnrollmentRecord::default()
    };
    block_on(store.set(
        &EnrollmentRecord::key(id),
        &serde_json::to_vec(&rec).unwrap(),
    ))
    .unwrap();
}

fn advance(e: &TestEnv<'_>, secs: u64) {
    e.clock.advance(Duration::from_secs(secs));
}

fn now(e: &TestEnv<'_>) -> u64 {
    use mdm_core::Clock;
    e.clock.unix_seconds()
}

fn state(e: &TestEnv<'_>, id: &str) -> push::status::PushStatus {
    block_on(push::status::push_state(&e.store, id))
        .unwrap()
        .expect("pushed before")
}

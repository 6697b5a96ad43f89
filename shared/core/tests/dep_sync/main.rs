//! The sync engine with a scripted device feed: policy, leases, kill-and-resume, errors.
//!
//! This file holds the scripted feed and the helpers; the tests are in one module per
//! concern: `schedule` (when runs happen and how long they last), `cursors` (Apple's
//! refusals), `resume` (kills and a full listing's end).

mod cursors;
mod resume;
mod schedule;

use std::collections::VecDeque;
use std::time::Duration;

use futures::FutureExt;
use futures::executor::block_on;
use mdm_core::Clock;
use mdm_core::dep::TokenId;
use mdm_core::dep::inventory;
use mdm_core::dep::inventory_list::{self, ListQuery};
use mdm_core::dep::sync::{self, DeviceFeed, FeedError, FeedPage, Outcome};
use mdm_core::dep::sync_state::{self, ManualRefusal, Plan, Policy, SyncKind};
use mdm_core::platform::testing::ManualClock;
use mdm_core::record::Stored;
use mdm_kv::{Defects, MemoryBackend, Store};
use serde_json::{Map, Value, json};

const T: TokenId = TokenId(1);
const DAY: u64 = 86400;

fn dev(serial: &str) -> Map<String, Value> {
    json!({ "serial_number": serial, "model": "iPhone" })
        .as_object()
        .unwrap()
        .clone()
}

/// Apple's full fetch over `devices`, `page` at a time; cursors are offsets. Records the
/// cursors it was called with. `stall_after` makes the call after that many pages hang
/// forever (the process is killed while waiting for Apple).
struct Feed {
    devices: Vec<String>,
    page: usize,
    calls: Vec<Option<String>>,
    stall_after: Option<usize>,
    sync_script: VecDeque<Result<FeedPage, FeedError>>,
    fetch_error: Option<FeedError>,
}

impl Feed {
    fn new(n: usize, page: usize) -> Self {
        Feed {
            devices: (0..n).map(|i| format!("SER{i:06}")).collect(),
            page,
            calls: vec![],
            stall_after: None,
            sync_script: VecDeque::new(),
            fetch_error: None,
        }
    }
}

impl DeviceFeed for Feed {
    async fn fetch(&mut self, cursor: Option<&str>) -> Result<FeedPage, FeedError> {
        self.calls.push(cursor.map(str::to_owned));
        if let Some(e) = self.fetch_error.clone() {
            return Err(e);
        }
        if self.stall_after == Some(self.calls.len() - 1) {
            std::future::pending::<()>().await;
        }
        let from: usize = cursor.map_or(0, |c| c.parse().unwrap());
        if from >= self.devices.len() && cursor.is_some() {
            return Err(FeedError::ExhaustedCursor);
        }
        let to = (from + self.page).min(self.devices.len());
        Ok(FeedPage {
            devices: self.devices[from..to].iter().map(|s| dev(s)).collect(),
            cursor: Some(to.to_string()),
            more_to_follow: to < self.devices.len(),
        })
    }

    async fn sync(&mut self, cursor: &str) -> Result<FeedPage, FeedError> {
        self.calls.push(Some(format!("sync:{cursor}")));
        self.sync_script.pop_front().unwrap_or(Ok(FeedPage {
            devices: vec![],
            cursor: Some(cursor.to_owned()),
            more_to_follow: false,
        }))
    }
}

fn setup() -> (Store<MemoryBackend>, ManualClock) {
    let s = Store::new(MemoryBackend::with_defects(Defects::spin_sqlite()));
    block_on(sync_state::init(&s, T)).unwrap();
    (s, ManualClock::at_unix(1_800_000_000))
}

fn state(s: &Store<MemoryBackend>) -> sync_state::SyncState {
    block_on(sync_state::load(s, T)).unwrap().unwrap()
}

fn serials(s: &Store<MemoryBackend>) -> Vec<String> {
    let mut q = ListQuery {
        limit: 1000,
        ..Default::default()
    };
    let mut out = vec![];
    loop {
        let p = block_on(inventory_list::list(s, T, &q)).unwrap();
        out.extend(p.devices.into_iter().map(|d| d.serial_number));
        match p.next {
            Some(n) => q.after = n,
            None => return out,
        }
    }
}

fn full() -> Plan {
    Plan {
        kind: SyncKind::Full,
        add_only: false,
        manual: false,
    }
}

fn record(s: &Store<MemoryBackend>, serial: &str) -> inventory::DeviceRecord {
    block_on(inventory::get(s, T, serial)).unwrap().unwrap()
}

/// Runs scheduled syncs (as the scheduler's ticks would) until the state is idle.
fn until_idle(
    s: &Store<MemoryBackend>,
    clock: &ManualClock,
    feed: &mut impl DeviceFeed,
    p: &Policy,
) {
    for _ in 0..1000 {
        let Some(plan) = state(s).scheduled_plan(clock.unix_seconds(), p) else {
            assert!(state(s).run.is_none(), "{:?}", state(s));
            return;
        };
        block_on(sync::run(s, clock, T, feed, plan, p)).unwrap();
    }
    panic!("never idle: {:?}", state(s));
}

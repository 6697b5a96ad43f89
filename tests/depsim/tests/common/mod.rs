//! Shared helpers: a simulator, our real client over hyper, raw requests.

#![allow(dead_code)]

use http::{Method, Request, Response};
use mdm_core::dep::client::{DepClient, MEDIA_TYPE, PROTOCOL_HEADER, SESSION_HEADER};
use mdm_core::dep::wire::DevicePage;
use mdm_core::platform::Clock;
use mdm_depsim::client::HyperHttp;
use mdm_depsim::{RunningSim, SimConfig, Simulator};
use serde_json::{Map, Value};

pub fn start(cfg: SimConfig) -> RunningSim {
    Simulator::start(cfg).expect("simulator starts")
}

pub fn client<'a, C: Clock>(
    http: &'a HyperHttp,
    clock: &'a C,
    sim: &RunningSim,
) -> DepClient<'a, HyperHttp, C> {
    DepClient::new(http, clock, &sim.base_url(), sim.credentials())
}

/// Fetches every page from the start: devices, final cursor, page count.
pub async fn fetch_all<C: Clock>(
    c: &mut DepClient<'_, HyperHttp, C>,
    limit: Option<u32>,
) -> (Vec<Map<String, Value>>, String, usize) {
    let mut cursor: Option<String> = None;
    let mut devices = Vec::new();
    let mut pages = 0;
    loop {
        let page: DevicePage = c
            .fetch_devices(cursor.as_deref(), limit)
            .await
            .expect("fetch page");
        pages += 1;
        devices.extend(page.devices);
        cursor = Some(page.cursor.expect("every page has a cursor"));
        if !page.more_to_follow {
            break;
        }
    }
    (devices, cursor.unwrap(), pages)
}

/// Syncs from `cursor` until `more_to_follow` is false: records and the last cursor.
pub async fn sync_all<C: Clock>(
    c: &mut DepClient<'_, HyperHttp, C>,
    cursor: &str,
    limit: Option<u32>,
) -> (Vec<Map<String, Value>>, String) {
    let mut cursor = cursor.to_owned();
    let mut devices = Vec::new();
    loop {
        let page = c.sync_devices(&cursor, limit).await.expect("sync page");
        devices.extend(page.devices);
        cursor = page.cursor.expect("cursor");
        if !page.more_to_follow {
            break;
        }
    }
    (devices, cursor)
}

pub fn serial(d: &Map<String, Value>) -> &str {
    d["serial_number"].as_str().expect("serial_number")
}

/// A request with our client's headers (User-Agent, protocol, media type) and, when
/// given, a session.
pub fn request(
    sim: &RunningSim,
    method: Method,
    path: &str,
    session: Option<&str>,
    body: &[u8],
) -> Request<Vec<u8>> {
    let mut r = Request::builder()
        .method(method)
        .uri(format!("{}{path}", sim.base_url()))
        .header("User-Agent", "depsim-tests/1")
        .header(PROTOCOL_HEADER, "3")
        .header("Content-Type", MEDIA_TYPE)
        .header("Accept", MEDIA_TYPE);
    if let Some(s) = session {
        r = r.header(SESSION_HEADER, s);
    }
    r.body(body.to_vec()).expect("request")
}

pub async fn send(http: &HyperHttp, r: Request<Vec<u8>>) -> Response<Vec<u8>> {
    http.request(r).await.expect("answer")
}

pub fn text(r: &Response<Vec<u8>>) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

//! The admin API natively, on the in-memory store.

use futures::executor::block_on;
use http::{Method, StatusCode};
use mdm_core::platform::testing::{ManualClock, MapVariables, NoHttp};
use mdm_core::{Env, Response, routes::admin};
use mdm_kv::{Defects, MemoryBackend, Store};
use serde_json::Value;

const KEY: &str = "test-admin-key-0123456789";

fn env(defects: Defects) -> Env<MemoryBackend, NoHttp, ManualClock, MapVariables> {
    Env {
        store: Store::new(MemoryBackend::with_defects(defects)),
        http: NoHttp,
        clock: ManualClock::at_unix(1_790_000_000),
        vars: MapVariables::new([("admin_api_key", KEY)]),
    }
}

fn call(
    e: &Env<MemoryBackend, NoHttp, ManualClock, MapVariables>,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (StatusCode, Value, Response) {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        b = b.header("authorization", format!("Bearer {a}"));
    }
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    let resp = block_on(admin::handle(e, b.body(body.as_bytes().to_vec()).unwrap()));
    let json = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (resp.status(), json, resp)
}

#[test]
fn every_route_requires_the_api_key() {
    let e = env(Defects::strict());
    for (method, path, _) in admin::ROUTES {
        let path = path.replace("{run}", "0123456789abcdef");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        for auth in [None, Some("wrong"), Some("")] {
            let (status, body, resp) = call(&e, m.clone(), &path, auth, "");
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}"
            );
            assert_eq!(body["error"], "unauthorized");
            assert!(resp.headers().get("www-authenticate").is_some());
        }
    }
    // Unknown routes do not reveal themselves to unauthenticated callers either.
    assert_eq!(
        call(&e, Method::GET, "/api/v1/nope", None, "").0,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn missing_key_variable_is_a_deployment_error_not_an_open_door() {
    let mut e = env(Defects::strict());
    e.vars = MapVariables::new([("admin_api_key", "")]);
    let (status, body, _) = call(&e, Method::GET, "/api/v1/health", Some(""), "");
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "server_misconfigured");
    assert!(body["message"].as_str().unwrap().contains("admin_api_key"));
}

#[test]
fn health_round_trips_the_store_and_leaves_nothing() {
    let e = env(Defects::strict());
    let (status, body, resp) = call(&e, Method::GET, "/api/v1/health", Some(KEY), "");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"]["ok"], true);
    assert_eq!(body["time"], 1_790_000_000u64);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(e.store.backend().is_empty());
}

#[test]
fn not_found_and_method_not_allowed_are_json() {
    let e = env(Defects::strict());
    let (status, body, _) = call(&e, Method::GET, "/api/v1/nope", Some(KEY), "");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, _, resp) = call(&e, Method::DELETE, "/api/v1/health", Some(KEY), "");
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "GET");
}

#[test]
fn battery_endpoint_passes_on_every_backend_profile() {
    for defects in [Defects::strict(), Defects::spin_sqlite(), Defects::redis()] {
        let e = env(defects);
        let (status, body, _) = call(&e, Method::POST, "/api/v1/diagnostics/kv", Some(KEY), "");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["passed"], true, "{defects:?}: {body:#}");
        assert!(e.store.backend().is_empty(), "{defects:?} left keys");
    }
}

#[test]
fn contention_run_lifecycle_and_bad_input() {
    let e = env(Defects::spin_sqlite());
    let (status, body, _) = call(
        &e,
        Method::POST,
        "/api/v1/diagnostics/kv/contention",
        Some(KEY),
        "",
    );
    assert_eq!(status, StatusCode::CREATED);
    let run = body["run"].as_str().unwrap().to_owned();
    let work = format!("/api/v1/diagnostics/kv/contention/{run}/work");
    for _ in 0..3 {
        let (s, b, _) = call(
            &e,
            Method::POST,
            &work,
            Some(KEY),
            r#"{"increments":5,"swaps":2}"#,
        );
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let total = format!("/api/v1/diagnostics/kv/contention/{run}");
    let (_, body, _) = call(&e, Method::GET, &total, Some(KEY), "");
    assert_eq!(
        (body["increments"].as_i64(), body["swaps"].as_i64()),
        (Some(15), Some(6))
    );

    assert_eq!(
        call(&e, Method::POST, &work, Some(KEY), "{").0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &e,
            Method::POST,
            &work,
            Some(KEY),
            r#"{"increments":1,"swaps":1,"x":1}"#
        )
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        call(
            &e,
            Method::POST,
            &work,
            Some(KEY),
            r#"{"increments":10001,"swaps":0}"#
        )
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        call(
            &e,
            Method::GET,
            "/api/v1/diagnostics/kv/contention/0123456789abcdef",
            Some(KEY),
            ""
        )
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &e,
            Method::GET,
            "/api/v1/diagnostics/kv/contention/..%2F..",
            Some(KEY),
            ""
        )
        .0,
        StatusCode::NOT_FOUND
    );
    // Nothing was damaged by the refused requests.
    assert_eq!(
        call(&e, Method::GET, &total, Some(KEY), "").1["increments"],
        15
    );

    assert_eq!(
        call(&e, Method::DELETE, &total, Some(KEY), "").0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&e, Method::GET, &total, Some(KEY), "").0,
        StatusCode::NOT_FOUND
    );
    assert!(e.store.backend().is_empty());
}

/// docs/openapi.yaml documents exactly the routes the admin component serves.
#[test]
fn openapi_document_matches_the_routes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let mut documented = Vec::new();
    for (p, item) in doc["paths"].as_mapping().unwrap() {
        for (m, _) in item.as_mapping().unwrap() {
            let m = m.as_str().unwrap();
            if ["get", "put", "post", "delete", "patch"].contains(&m) {
                documented.push((m.to_uppercase(), p.as_str().unwrap().to_owned()));
            }
        }
    }
    let mut served: Vec<_> = admin::ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .chain(
            admin::probes::PROBES
                .iter()
                .map(|(m, p, _)| (m.to_string(), p.to_string())),
        )
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
}

/// Ids too long to be a key name nothing the server holds: 404 (or another 4xx with its
/// reason), never a store error or a crash, on every route that takes them.
#[test]
fn ids_too_long_for_a_key_are_not_found() {
    let e = env(Defects::strict());
    let long = "A".repeat(300);
    let paths = [
        format!("/api/v1/devices/{long}"),
        format!("/api/v1/devices/{long}/commands"),
        format!("/api/v1/devices/{long}/commands/{long}"),
        format!("/api/v1/devices/{long}/logs"),
        format!("/api/v1/devices/{long}/push"),
        format!("/api/v1/users/{}", "a".repeat(300)),
        format!("/api/v1/groups/{}", "a".repeat(300)),
        format!("/api/v1/tokens/1/devices/{long}"),
        format!("/api/v1/diagnostics/kv/contention/{long}"),
    ];
    for p in &paths {
        for m in [Method::GET, Method::DELETE, Method::POST, Method::PATCH] {
            let (s, b, _) = call(&e, m.clone(), p, Some(KEY), "{}");
            // A device's log is listed (empty) for any device id.
            let listed = m == Method::GET && p.ends_with("/logs");
            assert!(s.is_client_error() || listed, "{m} {p}: {s} {b}");
            assert!(b["error"].is_string() || listed, "{m} {p}: {b}");
        }
        let (s, b, _) = call(
            &e,
            Method::GET,
            &format!("{p}?user={}", "u".repeat(300)),
            Some(KEY),
            "",
        );
        assert!(!s.is_server_error(), "{p}?user=...: {s} {b}");
    }
    for p in [&paths[0], &paths[5], &paths[6], &paths[7]] {
        assert_eq!(
            call(&e, Method::GET, p, Some(KEY), "").0,
            StatusCode::NOT_FOUND,
            "{p}"
        );
    }
    let stored: Vec<String> = e
        .store
        .backend()
        .dump()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        stored.iter().all(|k| !k.to_lowercase().contains("aaaa")),
        "nothing stored under the ids: {stored:?}"
    );
}

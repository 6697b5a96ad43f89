//! docs/openapi.yaml keeps the admin API's conventions: every error answer is the one
//! Error schema (the health checks' 503 state reports aside), every operation with a body documents 400 and 422, every list answer is
//! a Page, and the paged routes take `limit` and `cursor` (the routes themselves are kept
//! in step by tests/admin.rs).

use serde_yaml_ng::Value;

fn doc() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (method, path, operation) for every operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (p, item) in doc["paths"].as_mapping().unwrap() {
        for (m, op) in item.as_mapping().unwrap() {
            let m = m.as_str().unwrap();
            if ["get", "put", "post", "delete", "patch"].contains(&m) {
                out.push((m.to_uppercase(), p.as_str().unwrap().to_owned(), op.clone()));
            }
        }
    }
    out
}

/// A response object, through its `$ref` when it has one.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => r
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |at, key| &at[key]),
        None => v,
    }
}

fn schema_ref(response: &Value) -> Option<&str> {
    response["content"]["application/json"]["schema"]["$ref"].as_str()
}

#[test]
fn every_error_answer_is_the_error_schema() {
    let doc = doc();
    let mut wrong = Vec::new();
    for (m, p, op) in operations(&doc) {
        for (status, r) in op["responses"].as_mapping().unwrap() {
            let status = status.as_str().unwrap();
            let r = resolve(&doc, r);
            // The health checks' 503 is their state report (the 200's shape), not an error.
            let report = status == "503" && ["/readyz", "/api/v1/health"].contains(&p.as_str());
            if status >= "400" && !report && schema_ref(r) != Some("#/components/schemas/Error") {
                wrong.push(format!("{m} {p} {status}"));
            }
        }
    }
    assert!(wrong.is_empty(), "not the Error schema: {wrong:#?}");
}

#[test]
fn every_body_can_be_refused_with_400_and_422() {
    let doc = doc();
    let mut missing = Vec::new();
    for (m, p, op) in operations(&doc) {
        let takes_json = op["requestBody"]["content"]["application/json"].is_mapping();
        for status in ["400", "422"] {
            if takes_json && op["responses"][status].is_null() {
                missing.push(format!("{m} {p} {status}"));
            }
        }
    }
    assert!(missing.is_empty(), "undocumented: {missing:#?}");
}

#[test]
fn lists_are_pages_and_the_big_ones_take_limit_and_cursor() {
    let doc = doc();
    let paged = [
        "/api/v1/devices",
        "/api/v1/tokens/{token}/devices",
        "/api/v1/devices/{device}/commands",
        "/api/v1/devices/{device}/logs",
        "/api/v1/users",
    ];
    let whole = [
        "/api/v1/tokens",
        "/api/v1/tokens/{token}/profiles",
        "/api/v1/groups",
    ];
    for (m, p, op) in operations(&doc) {
        let ok = resolve(&doc, &op["responses"]["200"]);
        let schema = &ok["content"]["application/json"]["schema"];
        let is_page = schema["allOf"][0]["$ref"].as_str() == Some("#/components/schemas/Page");
        let params: Vec<&str> = op["parameters"]
            .as_sequence()
            .map(|s| s.iter().filter_map(|v| v["$ref"].as_str()).collect())
            .unwrap_or_default();
        let pages = params.contains(&"#/components/parameters/Limit")
            && params.contains(&"#/components/parameters/Cursor");
        let listed = m == "GET" && (paged.contains(&p.as_str()) || whole.contains(&p.as_str()));
        assert_eq!(
            is_page, listed,
            "{m} {p}: a Page exactly on the list routes"
        );
        assert_eq!(
            pages,
            m == "GET" && paged.contains(&p.as_str()),
            "{m} {p}: limit and cursor exactly on the paged routes"
        );
        if whole.contains(&p.as_str()) && m == "GET" {
            let next = &schema["allOf"][1]["properties"]["next"]["type"];
            assert_eq!(next.as_str(), Some("null"), "{p} is one page");
        }
    }
}

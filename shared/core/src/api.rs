//! HTTP plumbing shared by the components: buffered request/response types, JSON bodies
//! in and out (errors in the one shape of [`crate::api_error`]), bearer authentication
//! and a small path router.

use http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use crate::api_error::{ApiError, FieldError};

pub type Request = http::Request<Vec<u8>>;
pub type Response = http::Response<Vec<u8>>;

impl ApiError {
    /// The answer: [`ApiError::body`] as JSON, with the error's headers.
    pub fn into_response(self) -> Response {
        let mut resp = json(self.status, &self.body());
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(name, v);
            }
        }
        resp
    }
}

/// A response no cache may keep: what we answer is a device's, a user's or the
/// server's state, or a secret.
pub fn uncached(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut resp = http::Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("serialising JSON to memory cannot fail");
    uncached(status, "application/json", bytes)
}

pub fn ok_json(body: &impl Serialize) -> Response {
    json(StatusCode::OK, body)
}

/// Parses a JSON request body: 415 for another media type, 400 when the body is empty or
/// not JSON, 422 naming the field when it is JSON of the wrong form (unknown or missing
/// field, wrong type or value). Integral numbers written as floats (`3.0`) count as
/// integers, as in JSON Schema.
pub fn parse_json<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !ct.starts_with("application/json") && !ct.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected application/json",
            ));
        }
    }
    if req.body().iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty body: expected a JSON document",
        ));
    }
    let mut value: Value = serde_json::from_slice(req.body())
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    integral_floats_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(vec![field_error(&path, &e.into_inner().to_string())])
    })
}

/// The field and rule of a serde data error at `path` (`.` for the top level).
fn field_error(path: &str, message: &str) -> FieldError {
    let at = |name: &str| match path {
        "." | "" => name.to_owned(),
        p => format!("{p}.{name}"),
    };
    let quoted = |m: &str| m.split('`').nth(1).map(str::to_owned);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let name = quoted(rest).unwrap_or_default();
        // serde's path already ends at the unknown key.
        let field = if path.ends_with(&name) {
            path.to_owned()
        } else {
            at(&name)
        };
        let expected = rest.split_once(", ").map_or("", |(_, e)| e);
        return FieldError::new(field, format!("unknown field; {expected}"));
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return FieldError::new(at(&quoted(rest).unwrap_or_default()), "required");
    }
    let field = if path == "." { "body" } else { path };
    FieldError::new(field, message)
}

/// `3.0` → `3`: JSON Schema's integers include integral floats, serde's do not.
fn integral_floats_as_integers(v: &mut Value) {
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
            {
                if f >= 0.0 && f < u64::MAX as f64 {
                    *v = json!(f as u64);
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    *v = json!(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(m) => m.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// Checks `Authorization: Bearer <key>` against the configured key in constant time
/// (both sides hashed first, so not even the length leaks).
pub fn bearer_matches(req: &Request, expected: &str) -> bool {
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    else {
        return false;
    };
    let a = Sha256::digest(given.trim().as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    !expected.is_empty() && bool::from(a.ct_eq(&b))
}

/// Path parameters captured by [`route`], in pattern order, percent-decoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Query-string pairs, percent-decoded (`+` is a space). Undecodable pairs are a 400.
pub fn query(req: &Request) -> Result<Vec<(String, String)>, ApiError> {
    let Some(q) = req.uri().query() else {
        return Ok(Vec::new());
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| percent_decode(&s.replace('+', " "));
            match (dec(k), dec(v)) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(ApiError::bad_request(format!(
                    "malformed query parameter {pair:?}"
                ))),
            }
        })
        .collect()
}

fn match_pattern(pattern: &str, path: &str) -> Option<Params> {
    let mut params = Vec::new();
    let mut pat = pattern.trim_end_matches('/').split('/');
    let mut got = path.trim_end_matches('/').split('/');
    loop {
        match (pat.next(), got.next()) {
            (None, None) => return Some(Params(params)),
            (Some(p), Some(g)) => {
                if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    if g.is_empty() {
                        return None;
                    }
                    params.push((name.to_owned(), percent_decode(g)?));
                } else if p != g {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// One entry of a component's route table: method, path pattern with `{name}`
/// segments, and what to dispatch to.
pub type Route<T> = (&'static str, &'static str, T);

/// Finds the route for a request: 404 when no pattern matches the path, 405 (with
/// `Allow`) when patterns match but not for this method.
pub fn route<T: Copy>(
    table: &[Route<T>],
    method: &Method,
    path: &str,
) -> Result<(T, Params), ApiError> {
    let mut allowed = Vec::new();
    for (m, pattern, target) in table {
        if let Some(params) = match_pattern(pattern, path) {
            if *m == method.as_str() {
                return Ok((*target, params));
            }
            allowed.push(*m);
        }
    }
    if allowed.is_empty() {
        Err(ApiError::not_found(format!("no route for {path}")))
    } else {
        Err(ApiError::method_not_allowed(&allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_capture_decode_and_distinguish_405() {
        let table: &[Route<u8>] = &[
            ("GET", "/a/{id}", 1),
            ("DELETE", "/a/{id}", 2),
            ("GET", "/a", 3),
        ];
        let (t, p) = route(table, &Method::GET, "/a/C02%2FX").unwrap();
        assert_eq!((t, p.get("id")), (1, Some("C02/X")));
        assert_eq!(route(table, &Method::GET, "/a/").unwrap().0, 3);
        let e = route(table, &Method::POST, "/a/x").unwrap_err();
        assert_eq!(e.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            route(table, &Method::GET, "/b").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert!(route(table, &Method::GET, "/a/%zz").is_err());
    }

    fn body(b: &str) -> Request {
        http::Request::builder()
            .header("content-type", "application/json")
            .body(b.as_bytes().to_vec())
            .unwrap()
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        name: String,
        count: u32,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        level: u8,
    }

    /// Empty or not JSON: 400; JSON of the wrong form: 422 naming the field.
    #[test]
    fn json_bodies_are_refused_with_the_field_at_fault() {
        for b in ["", "  \n", "{", "nope"] {
            let e = parse_json::<Shape>(&body(b)).unwrap_err();
            assert_eq!(
                (e.status, e.code.as_str()),
                (StatusCode::BAD_REQUEST, "bad_request"),
                "{b:?}"
            );
        }
        let cases = [
            (
                r#"{"name":"a","count":1,"colour":1}"#,
                "colour",
                "unknown field; expected",
            ),
            (r#"{"count":1}"#, "name", "required"),
            (r#"{"name":"a","count":"x"}"#, "count", "invalid type"),
            (r#"{"name":"a","count":-1}"#, "count", "invalid value"),
            (
                r#"{"name":"a","count":1,"inner":{"level":1000}}"#,
                "inner.level",
                "invalid value",
            ),
            (
                r#"{"name":"a","count":1,"inner":{"x":1}}"#,
                "inner.x",
                "unknown field",
            ),
            (r#""text""#, "body", "invalid type"),
        ];
        for (b, field, rule) in cases {
            let e = parse_json::<Shape>(&body(b)).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            assert_eq!(e.code, "validation_failed");
            assert_eq!(e.fields.len(), 1, "{b}: {:?}", e.fields);
            assert_eq!(e.fields[0].field, field, "{b}");
            assert!(e.fields[0].rule.starts_with(rule), "{b}: {:?}", e.fields[0]);
            assert_eq!(e.message, format!("invalid input: {field}"));
        }
        // JSON Schema's integers include 3.0; fractions stay refused.
        let s: Shape = parse_json(&body(r#"{"name":"a","count":3.0}"#)).unwrap();
        assert_eq!(s.count, 3);
        assert!(parse_json::<Shape>(&body(r#"{"name":"a","count":3.5}"#)).is_err());
        let mut other = body("{}");
        other
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(
            parse_json::<Value>(&other).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn bearer_comparison() {
        let req = |h: &str| {
            http::Request::builder()
                .header("authorization", h)
                .body(vec![])
                .unwrap()
        };
        assert!(bearer_matches(&req("Bearer k3y"), "k3y"));
        assert!(!bearer_matches(&req("Bearer k3"), "k3y"));
        assert!(!bearer_matches(&req("Basic k3y"), "k3y"));
        assert!(!bearer_matches(&req("Bearer "), ""));
        assert!(!bearer_matches(&http::Request::new(vec![]), "k3y"));
    }
}

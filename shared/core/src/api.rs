//! HTTP plumbing shared by the components: buffered request/response types, the JSON
//! error shape `{"error": ..., "detail": ...}`, bearer authentication and a small
//! path router.

use http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use mdm_kv::KvError;

pub type Request = http::Request<Vec<u8>>;
pub type Response = http::Response<Vec<u8>>;

/// An error answer. `error` is a short, stable message; `detail` says what exactly was
/// wrong (a string, or structured data such as a list of offending fields).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub detail: Value,
    headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>, detail: impl Into<Value>) -> Self {
        ApiError {
            status,
            error: error.into(),
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(detail: impl Into<Value>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad request", detail)
    }

    pub fn unauthorized(realm: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer API key",
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            format!("Bearer realm=\"{realm}\""),
        )
    }

    pub fn not_found(detail: impl Into<Value>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found", detail)
    }

    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            format!("allowed: {}", allowed.join(", ")),
        )
        .with_header(header::ALLOW, allowed.join(", "))
    }

    pub fn unprocessable(detail: impl Into<Value>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation failed",
            detail,
        )
    }

    pub fn conflict(detail: impl Into<Value>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload too large",
            format!("limit is {limit} bytes"),
        )
    }

    /// The deployment is wrong (a variable is missing); says which, never a value.
    pub fn misconfigured(detail: impl Into<Value>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server misconfigured",
            detail,
        )
    }

    pub fn store(e: KvError) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable",
            e.to_string(),
        )
        .with_header(header::RETRY_AFTER, "5")
    }

    pub fn into_response(self) -> Response {
        let mut resp = json(
            self.status,
            &json!({ "error": self.error, "detail": self.detail }),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(name, v);
            }
        }
        resp
    }
}

impl From<KvError> for ApiError {
    fn from(e: KvError) -> Self {
        ApiError::store(e)
    }
}

pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("serialising JSON to memory cannot fail");
    let mut resp = http::Response::new(bytes);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub fn ok_json(body: &impl Serialize) -> Response {
    json(StatusCode::OK, body)
}

/// Parses a JSON request body, answering 415/400 with the parser's reason.
pub fn parse_json<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !ct.starts_with("application/json") && !ct.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported media type",
                "expected application/json",
            ));
        }
    }
    serde_json::from_slice(req.body())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
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

/// One broken rule of an input's fields (users, groups): the items of their 422 answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
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

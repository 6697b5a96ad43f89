//! The one error shape of the admin API (`components/schemas/Error` in
//! docs/openapi.yaml): `{"error": "<code>", "message": "...", "fields": [{"field",
//! "rule"}], ...facts}`, and the items of its `fields`. Every handler answers its errors
//! through [`ApiError`]; refused inputs through [`ApiError::invalid`].

use http::{StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value, json};

use mdm_kv::KvError;

/// An error answer, the one shape of every error of the admin API (`components/schemas/Error`
/// in docs/openapi.yaml): `{"error": "<code>", "message": "...", "fields": [{"field",
/// "rule"}], ...facts}`. `error` is a stable snake_case code for programs, `message` says
/// what was wrong for people, `fields` (only when inputs are at fault) names each input
/// with the rule it breaks, and a few errors add facts (e.g. `blocked_by`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub fields: Vec<FieldError>,
    pub facts: Box<Map<String, Value>>,
    pub(crate) headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            fields: Vec::new(),
            facts: Box::default(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A fact next to the message (documented in the Error schema), e.g. `blocked_by`.
    pub fn with_fact(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.facts.insert(name.to_owned(), value.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
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

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("allowed: {}", allowed.join(", ")),
        )
        .with_header(header::ALLOW, allowed.join(", "))
    }

    /// 422 `validation_failed`: each input at fault with the rule it breaks. The one way
    /// handlers refuse inputs (body fields, query parameters, command payload keys).
    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let mut names: Vec<&str> = Vec::new();
        for f in &fields {
            if !names.contains(&f.field.as_str()) {
                names.push(&f.field);
            }
        }
        let message = format!("invalid input: {}", names.join(", "));
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        );
        e.fields = fields;
        e
    }

    /// [`ApiError::invalid`] for one input.
    pub fn field(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, rule)])
    }

    /// 422 for a request whose inputs are each valid but which cannot be done (the device
    /// cannot run the command, ...): `code` says which kind.
    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("limit is {limit} bytes"),
        )
    }

    /// The deployment is wrong (a variable is missing); says which, never a value.
    pub fn misconfigured(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_misconfigured",
            message,
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// The store failed: 503, retry later. A key it refuses (too long) was built from an
    /// id in the request, as keys of our own making are valid: 422, nothing to retry.
    pub fn store(e: KvError) -> Self {
        if let KvError::InvalidKey(_) = e {
            return ApiError::unprocessable(
                "invalid_id",
                "an id in the request is longer than the server can hold",
            );
        }
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
        .with_header(header::RETRY_AFTER, "5")
    }

    /// The answer's body, as documented in the Error schema (the response is
    /// [`ApiError::into_response`], in [`crate::api`]).
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), json!(self.code));
        body.insert("message".into(), json!(self.message));
        if !self.fields.is_empty() {
            body.insert("fields".into(), json!(self.fields));
        }
        for (k, v) in self.facts.iter() {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

impl From<KvError> for ApiError {
    fn from(e: KvError) -> Self {
        ApiError::store(e)
    }
}

/// One input that breaks a rule: the items of an error's `fields`. `field` names a body
/// field (a path such as `rules[0].match` or `Settings[0].Item`) or a query parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// A query parameter the route does not take.
    pub fn unknown_parameter(name: &str) -> Self {
        FieldError::new(name, "unknown query parameter")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one error shape: code, message, fields when inputs are at fault, facts.
    #[test]
    fn errors_have_one_shape() {
        let e = ApiError::invalid(vec![
            FieldError::new("a", "x"),
            FieldError::new("a", "y"),
            FieldError::unknown_parameter("b"),
        ]);
        assert_eq!(
            e.body(),
            json!({
                "error": "validation_failed",
                "message": "invalid input: a, b",
                "fields": [
                    { "field": "a", "rule": "x" },
                    { "field": "a", "rule": "y" },
                    { "field": "b", "rule": "unknown query parameter" },
                ],
            })
        );
        let e = ApiError::conflict("held").with_fact("blocked_by", json!([{ "what": "devices" }]));
        assert_eq!(
            e.body(),
            json!({ "error": "conflict", "message": "held", "blocked_by": [{ "what": "devices" }] })
        );
        let resp = ApiError::not_found("no such thing").into_response();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let v: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(
            v,
            json!({ "error": "not_found", "message": "no such thing" })
        );
    }
}

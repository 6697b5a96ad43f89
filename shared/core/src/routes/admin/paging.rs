//! The one paging convention of the admin API's list routes (devices, DEP devices, users,
//! a device's commands and log): `limit` (1-1000, default 100) and `cursor` (the `next`
//! of the previous page) in, `{"items": [...], "next": "<cursor>" | null}` out; and the
//! time-range filters the history routes share. Unknown parameters are refused (422).

use serde_json::{Map, Value, json};

use crate::api::{self, ApiError, FieldError, Request};
use crate::time::parse_rfc3339;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Where a page starts and how long it is. `cursor` is a position in the collection's
/// order (positive), as the previous page's `next` gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub cursor: Option<u64>,
}

/// The page a request asks for, with the problems found in its query so far.
pub struct Query {
    pub page: Page,
    pub bad: Vec<FieldError>,
}

impl Query {
    /// Reads `limit` and `cursor`, and hands every other parameter to `filter`, which
    /// answers whether the route takes it (pushing a [`FieldError`] when its value is
    /// wrong).
    pub fn read(
        req: &Request,
        mut filter: impl FnMut(&str, String, &mut Vec<FieldError>) -> bool,
    ) -> Result<Query, ApiError> {
        let mut q = Query {
            page: Page {
                limit: DEFAULT_LIMIT,
                cursor: None,
            },
            bad: Vec::new(),
        };
        for (k, v) in api::query(req)? {
            match k.as_str() {
                "limit" => match v.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.page.limit = n,
                    _ => q.bad.push(FieldError::new(
                        "limit",
                        format!("an integer from 1 to {MAX_LIMIT}"),
                    )),
                },
                "cursor" => match v.parse::<u64>() {
                    Ok(n) if n > 0 => q.page.cursor = Some(n),
                    _ => q.bad.push(FieldError::new(
                        "cursor",
                        "the `next` value of the previous page",
                    )),
                },
                other => {
                    if !filter(other, v, &mut q.bad) {
                        q.bad.push(FieldError::unknown_parameter(other));
                    }
                }
            }
        }
        Ok(q)
    }

    /// [`Query::finish`] for a route with the `from` and `to` time filters, which must
    /// not be the wrong way round.
    fn finish_in_range(mut self, from: Option<u64>, to: Option<u64>) -> Result<Page, ApiError> {
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            self.bad.push(FieldError::new("from", "not after `to`"));
        }
        self.finish()
    }

    /// The page, or every problem at once (422).
    pub fn finish(self) -> Result<Page, ApiError> {
        if self.bad.is_empty() {
            Ok(self.page)
        } else {
            Err(ApiError::invalid(self.bad))
        }
    }
}

/// [`Query::read`] then [`Query::finish`], for routes without checks across parameters.
pub fn query(
    req: &Request,
    filter: impl FnMut(&str, String, &mut Vec<FieldError>) -> bool,
) -> Result<Page, ApiError> {
    Query::read(req, filter)?.finish()
}

/// A page's answer: its items and the cursor of the next page (null on the last one),
/// then the route's `extra` facts about the whole collection (e.g. `total`).
pub fn answer(items: Vec<Value>, next: Option<u64>, extra: Map<String, Value>) -> Value {
    let mut body = Map::new();
    body.insert("items".into(), Value::Array(items));
    body.insert("next".into(), json!(next.map(|n| n.to_string())));
    body.extend(extra);
    Value::Object(body)
}

/// A time filter (`from`, `to`): Unix seconds or an RFC 3339 timestamp.
pub fn time(name: &str, v: &str) -> Result<u64, FieldError> {
    v.parse::<u64>()
        .ok()
        .or_else(|| parse_rfc3339(v).and_then(|t| u64::try_from(t).ok()))
        .ok_or_else(|| FieldError::new(name, "Unix seconds or an RFC 3339 timestamp"))
}

/// [`Query::read`] then [`Query::finish_in_range`], for the history routes: `from` and
/// `to` are read into `from` and `to`, every other parameter goes to `filter`.
pub fn query_in_range(
    req: &Request,
    from: &mut Option<u64>,
    to: &mut Option<u64>,
    mut filter: impl FnMut(&str, String, &mut Vec<FieldError>) -> bool,
) -> Result<Page, ApiError> {
    let read = Query::read(req, |k, v, bad| {
        time_filter(k, &v, from, to, bad) || filter(k, v, bad)
    })?;
    read.finish_in_range(*from, *to)
}

/// Reads the `from` and `to` time filters; false for any other parameter.
fn time_filter(
    k: &str,
    v: &str,
    from: &mut Option<u64>,
    to: &mut Option<u64>,
    bad: &mut Vec<FieldError>,
) -> bool {
    let slot = match k {
        "from" => from,
        "to" => to,
        _ => return false,
    };
    match time(k, v) {
        Ok(t) => *slot = Some(t),
        Err(e) => bad.push(e),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(q: &str) -> Request {
        http::Request::builder()
            .uri(format!("/x?{q}"))
            .body(Vec::new())
            .unwrap()
    }

    #[test]
    fn limit_cursor_and_the_route_filters() {
        let mut seen = Vec::new();
        let page = query(&get("limit=7&cursor=42&colour=red"), |k, v, _| {
            seen.push((k.to_owned(), v));
            k == "colour"
        })
        .unwrap();
        assert_eq!(
            page,
            Page {
                limit: 7,
                cursor: Some(42)
            }
        );
        assert_eq!(seen, [("colour".to_owned(), "red".to_owned())]);
        assert_eq!(
            query(&get(""), |_, _, _| false).unwrap(),
            Page {
                limit: DEFAULT_LIMIT,
                cursor: None
            }
        );
    }

    #[test]
    fn every_bad_parameter_is_named_at_once() {
        let e = query(&get("limit=0&cursor=x&shape=2&size=9"), |k, _, bad| {
            if k == "size" {
                bad.push(FieldError::new("size", "at most 5"));
                return true;
            }
            false
        })
        .unwrap_err();
        let fields: Vec<&str> = e.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["limit", "cursor", "shape", "size"]);
        for bad in ["limit=1001", "limit=3.5", "cursor=0", "cursor=-1"] {
            assert!(query(&get(bad), |_, _, _| false).is_err(), "{bad}");
        }
        let range = |from, to| {
            Query::read(&get(""), |_, _, _| false)
                .unwrap()
                .finish_in_range(from, to)
        };
        assert_eq!(range(Some(5), Some(4)).unwrap_err().fields[0].field, "from");
        assert!(range(Some(4), Some(4)).is_ok() && range(None, Some(1)).is_ok());
        assert!(time("from", "2025-06-20T08:00:00Z").is_ok() && time("to", "x").is_err());
    }

    #[test]
    fn a_page_is_items_and_next() {
        let mut extra = Map::new();
        extra.insert("total".into(), json!(3));
        assert_eq!(
            answer(vec![json!(1)], Some(9), extra),
            json!({ "items": [1], "next": "9", "total": 3 })
        );
        assert_eq!(
            answer(Vec::new(), None, Map::new()),
            json!({ "items": [], "next": null })
        );
    }
}

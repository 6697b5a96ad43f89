//! How answers are shown: a table for people (columns chosen per resource, or a
//! field/value table for one object), or the API's JSON, YAML or CSV for scripts.

use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::{Map, Value};

use crate::error::CliError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
    Csv,
}

/// A column of a list: its header and how a row's cell is found.
pub struct Column {
    pub header: &'static str,
    cell: Cell,
}

enum Cell {
    /// A dotted path into the row (`apple.model`).
    Path(&'static str),
    Computed(fn(&Value) -> String),
}

pub const fn col(header: &'static str, path: &'static str) -> Column {
    Column {
        header,
        cell: Cell::Path(path),
    }
}

pub const fn computed(header: &'static str, f: fn(&Value) -> String) -> Column {
    Column {
        header,
        cell: Cell::Computed(f),
    }
}

/// The value at a dotted path (`null` when absent).
pub fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, k| v.get(k).unwrap_or(&Value::Null))
}

/// A value in one cell: strings bare, lists of strings joined, objects as JSON.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(cell_text).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

impl Column {
    fn text(&self, row: &Value) -> String {
        match self.cell {
            Cell::Path(p) => cell_text(at(row, p)),
            Cell::Computed(f) => f(row),
        }
    }
}

fn io(e: std::io::Error) -> CliError {
    CliError::local(format!("writing output: {e}"))
}

fn table(headers: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers);
    for r in rows {
        t.add_row(r);
    }
    // The preset pads each column with a space on both sides; lines start at the margin.
    t.lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn csv_text(headers: &[String], rows: &[Vec<String>]) -> Result<String, CliError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| CliError::local(format!("writing CSV: {e}"));
    w.write_record(headers).map_err(fail)?;
    for r in rows {
        w.write_record(r).map_err(fail)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| CliError::local(format!("writing CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub fn json_text(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON to memory") + "\n"
}

pub fn yaml_text(v: &Value) -> Result<String, CliError> {
    serde_yaml_ng::to_string(v).map_err(|e| CliError::local(format!("writing YAML: {e}")))
}

/// Items of a list: the columns as a table or CSV, the items whole as JSON or YAML.
pub fn list(
    out: &mut dyn Write,
    format: Format,
    items: &[Value],
    columns: &[Column],
) -> Result<(), CliError> {
    let headers: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
    let rows = || -> Vec<Vec<String>> {
        items
            .iter()
            .map(|i| columns.iter().map(|c| c.text(i)).collect())
            .collect()
    };
    let text = match format {
        Format::Table if items.is_empty() => "No resources found.\n".to_owned(),
        Format::Table => table(headers, rows()) + "\n",
        Format::Csv => csv_text(&headers, &rows())?,
        Format::Json => json_text(&Value::Array(items.to_vec())),
        Format::Yaml => yaml_text(&Value::Array(items.to_vec()))?,
    };
    out.write_all(text.as_bytes()).map_err(io)
}

/// Nested objects as dotted keys, in the answer's order.
pub fn flatten(v: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => out.push((prefix.to_owned(), cell_text(other))),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

/// One object: FIELD/VALUE rows (nested fields dotted), one CSV row, or JSON/YAML whole.
pub fn object(out: &mut dyn Write, format: Format, v: &Value) -> Result<(), CliError> {
    let text = match format {
        Format::Table => {
            let rows = flatten(v).into_iter().map(|(k, v)| vec![k, v]).collect();
            table(vec!["FIELD".into(), "VALUE".into()], rows) + "\n"
        }
        Format::Csv => {
            let (keys, values): (Vec<_>, Vec<_>) = flatten(v).into_iter().unzip();
            csv_text(&keys, &[values])?
        }
        Format::Json => json_text(v),
        Format::Yaml => yaml_text(v)?,
    };
    out.write_all(text.as_bytes()).map_err(io)
}

/// The outcome of a change: a sentence in a table run, `value` in a script's format.
pub fn done(
    out: &mut dyn Write,
    format: Format,
    sentence: &str,
    value: &Value,
) -> Result<(), CliError> {
    match format {
        Format::Table => writeln!(out, "{sentence}").map_err(io),
        _ => object(out, format, value),
    }
}

/// The list under `key` of an answer.
pub fn items<'v>(v: &'v Value, key: &str) -> Result<&'v [Value], CliError> {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| CliError::BadAnswer(format!("no `{key}` list in the answer")))
}

/// A JSON object from pairs, leaving out those without a value.
pub fn obj(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(format: Format, items: &[Value]) -> String {
        let mut out = Vec::new();
        let cols = [
            col("ID", "id"),
            col("MODEL", "apple.model"),
            col("TAGS", "tags"),
        ];
        list(&mut out, format, items, &cols).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lists_in_each_format() {
        let items = [json!({ "id": 1, "apple": { "model": "iPad, Air" }, "tags": ["a", "b"] })];
        let t = render(Format::Table, &items);
        assert!(t.lines().next().unwrap().starts_with("ID"), "{t}");
        assert!(t.contains("iPad, Air"), "{t}");
        assert_eq!(
            render(Format::Csv, &items),
            "ID,MODEL,TAGS\n1,\"iPad, Air\",\"a, b\"\n"
        );
        let j: Value = serde_json::from_str(&render(Format::Json, &items)).unwrap();
        assert_eq!(j, json!(items));
        assert!(render(Format::Yaml, &items).contains("model: iPad, Air"));
        assert_eq!(render(Format::Table, &[]), "No resources found.\n");
    }

    #[test]
    fn objects_flatten() {
        let v = json!({ "a": 1, "b": { "c": null, "d": [1, 2] }, "e": {} });
        assert_eq!(
            flatten(&v),
            vec![
                ("a".into(), "1".into()),
                ("b.c".into(), "".into()),
                ("b.d".into(), "1, 2".into()),
                ("e".into(), "{}".into()),
            ]
        );
    }
}

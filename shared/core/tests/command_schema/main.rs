//! The payload-key table is Apple's YAML (re-derived here; `UPDATE_COMMAND_SCHEMA=1`
//! rewrites the generated `src/command/schema_table.rs`, included by `command/schema.rs`), and admin payloads are
//! converted and checked by it.
//!
//! This file holds what the checks share; the tests are in one module per concern:
//! `table` (the table against the YAML, and the generator), `required`, `conversions`,
//! `raw_plists`.

mod conversions;
mod raw_plists;
mod required;
mod table;

use base64::Engine;
use mdm_core::command;
use mdm_core::command::payload::{
    PayloadError, payload_from_json, validate_plist, value_from_json,
};
use mdm_core::command::schema::{Allowed, Key, KeyType, NOT_REQUIRED, RULES, Rule, SCHEMAS};
use mdm_core::command::upload::parse_raw_command;
use plist::{Dictionary, Value as Plist};
use serde_json::{Map, Value as Json, json};
use serde_yaml_ng::Value as Yaml;

fn errors(rt: &str, payload: Json) -> Vec<PayloadError> {
    payload_from_json(rt, payload.as_object().unwrap()).expect_err("should be refused")
}

fn has(errs: &[PayloadError], key: &str, problem: &str) -> bool {
    errs.iter()
        .any(|e| e.key == key && e.problem.contains(problem))
}

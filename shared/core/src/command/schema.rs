//! The payload keys of every MDM command (RequestType), as Apple's schema gives them, and
//! the requirements we add by hand; [`schema`] looks one command up.
//!
//! [`SCHEMAS`] (`schema_table.rs`, included) is generated from Apple's
//! `mdm/commands/*.yaml` (`payloadkeys`): each key's name, type, presence, allowed values
//! (`rangelist`) and subkeys. The test
//! `tests/command_schema/table.rs` re-derives it from the YAML and fails when it differs;
//! `UPDATE_COMMAND_SCHEMA=1 cargo test -p mdm-core --test command_schema` rewrites it.
//!
//! How the schema reads (Apple's conventions, kept as they are in the table):
//! - an `<array>` key's single subkey is the element schema (its name, e.g.
//!   `IdentifiersItem`, means nothing). `Settings.Settings` has several subkeys instead:
//!   alternative element dictionaries told apart by their `Item` value (the
//!   *discriminator*: a key every alternative requires with a `rangelist`).
//! - a `<dictionary>` whose subkeys include one named `ANY` takes any further keys with
//!   values of that subkey's type (app configurations, manifests).
//! - a scalar with subkeys (`DeviceInformation.Queries` elements) takes the subkey names as
//!   its allowed values.
//!
//! Deviations from the YAML's `presence`, by hand and listed in [`NOT_REQUIRED`] and
//! [`RULES`]:
//! - `ScheduleOSUpdate.Updates` is marked required, but its text says that without it the
//!   device applies its default update behaviour: optional here.
//! - keys required only together or in the absence of another ("either `Message` or
//!   `PhoneNumber`") are optional in the YAML; [`RULES`] enforces the documented ones.
//! - `ClearPasscode.UnlockToken` stays required: it is the token the device gave in its
//!   TokenUpdate, so a caller that fills it in from the enrollment must do so before
//!   checking.
//!
//! Checking a payload against the schema is `payload.rs`.

/// A payload key's type: Apple's `<string>`, `<integer>`, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    String,
    Integer,
    Boolean,
    Real,
    Date,
    Data,
    Array,
    Dictionary,
    Any,
}

impl KeyType {
    /// The name in Apple's YAML, without the angle brackets.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::Integer => "integer",
            KeyType::Boolean => "boolean",
            KeyType::Real => "real",
            KeyType::Date => "date",
            KeyType::Data => "data",
            KeyType::Array => "array",
            KeyType::Dictionary => "dictionary",
            KeyType::Any => "any",
        }
    }
}

/// One value of a key's `rangelist`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    Str(&'static str),
    Int(i64),
}

/// One payload key, with its subkeys (dictionary keys, or an array's element schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub ty: KeyType,
    /// `presence: required` in the YAML (see the module notes for the exceptions).
    pub required: bool,
    /// The `rangelist`; empty when any value of the type goes.
    pub values: &'static [Allowed],
    pub keys: &'static [Key],
}

/// The payload keys of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    pub request_type: &'static str,
    pub keys: &'static [Key],
}

pub fn schema(request_type: &str) -> Option<&'static Schema> {
    SCHEMAS.iter().find(|s| s.request_type == request_type)
}

/// Keys the YAML marks required that are not: (RequestType, key path with `[]` for array
/// elements).
pub const NOT_REQUIRED: &[(&str, &str)] = &[
    // "If this value is missing, the device applies the default behavior for handling updates."
    ("ScheduleOSUpdate", "Updates"),
];

/// A documented requirement the YAML's `presence` cannot express.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// At least one of these keys.
    AnyOf(&'static [&'static str]),
    /// `key` unless `flag` is true.
    RequiredUnlessTrue {
        key: &'static str,
        flag: &'static str,
    },
    /// `needs` whenever `key` is given.
    Requires {
        key: &'static str,
        needs: &'static str,
    },
}

/// Conditional requirements from the keys' descriptions: (RequestType, path of the
/// dictionary they apply to, `""` for the payload itself and `[]` for array elements, rule).
pub const RULES: &[(&str, &str, Rule)] = &[
    (
        "DeleteUser",
        "",
        Rule::RequiredUnlessTrue {
            key: "UserName",
            flag: "DeleteAllUsers",
        },
    ),
    (
        "EnableLostMode",
        "",
        Rule::AnyOf(&["Message", "PhoneNumber"]),
    ),
    (
        "InstallApplication",
        "",
        Rule::AnyOf(&["iTunesStoreID", "Identifier", "ManifestURL"]),
    ),
    (
        "InstallEnterpriseApplication",
        "",
        Rule::AnyOf(&["Manifest", "ManifestURL"]),
    ),
    (
        "RotateFileVaultKey",
        "FileVaultUnlock",
        Rule::AnyOf(&["Password", "PrivateKeyExport"]),
    ),
    (
        "RotateFileVaultKey",
        "FileVaultUnlock",
        Rule::Requires {
            key: "PrivateKeyExport",
            needs: "PrivateKeyExportPassword",
        },
    ),
    (
        "ScheduleOSUpdate",
        "Updates[]",
        Rule::AnyOf(&["ProductKey", "ProductVersion"]),
    ),
];

// Shorthands for the generated table.
const STRING: KeyType = KeyType::String;
const INTEGER: KeyType = KeyType::Integer;
const BOOLEAN: KeyType = KeyType::Boolean;
#[allow(dead_code)] // no <real> key in Apple's command schema today
const REAL: KeyType = KeyType::Real;
#[allow(dead_code)] // no <date> key in Apple's command schema today
const DATE: KeyType = KeyType::Date;
const DATA: KeyType = KeyType::Data;
const ARRAY: KeyType = KeyType::Array;
const DICT: KeyType = KeyType::Dictionary;
const ANY: KeyType = KeyType::Any;
const REQ: bool = true;
const OPT: bool = false;
use Allowed::{Int as I, Str as S};

const fn k(
    name: &'static str,
    ty: KeyType,
    required: bool,
    values: &'static [Allowed],
    keys: &'static [Key],
) -> Key {
    Key {
        name,
        ty,
        required,
        values,
        keys,
    }
}

// The table, generated (its own file, included here so that it shares this module's
// types and shorthands).
include!("schema_table.rs");

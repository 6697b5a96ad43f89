//! What an administrator sends to create or change a user, and the checks it must pass
//! (text lengths, email form, group ids).

use serde::Deserialize;

use crate::api::FieldError;

pub(crate) fn check_text(
    field: &str,
    v: &Option<String>,
    max: usize,
    email: bool,
    errors: &mut Vec<FieldError>,
) {
    let Some(v) = v else { return };
    let bad_len = v.chars().count() > max;
    let bad_email = email
        && !v.is_empty()
        && !v.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !v.contains(char::is_whitespace)
        });
    if bad_len || v.chars().any(char::is_control) || bad_email {
        errors.push(FieldError {
            field: field.into(),
            rule: if email {
                format!("an email address of at most {max} characters")
            } else {
                format!("at most {max} characters, no control characters")
            },
        });
    }
}

/// A new user as the admin API takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub managed_apple_id: Option<String>,
    /// Static user group ids ([`crate::groups`]); the admin API checks they exist.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Changes: a field given is set; an empty string clears an optional text field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub managed_apple_id: Option<String>,
    #[serde(default)]
    pub disabled: Option<bool>,
    /// Replaces the user's groups.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

/// Group ids: valid ids, no repeats, at most 100.
pub(crate) fn check_groups(groups: &[String], errors: &mut Vec<FieldError>) {
    if groups.len() > 100 {
        errors.push(FieldError {
            field: "groups".into(),
            rule: "at most 100 groups".into(),
        });
    }
    for (i, g) in groups.iter().enumerate() {
        if !crate::groups::id_is_valid(g) {
            errors.push(FieldError {
                field: format!("groups[{i}]"),
                rule: "a group id".into(),
            });
        } else if groups[..i].contains(g) {
            errors.push(FieldError {
                field: format!("groups[{i}]"),
                rule: "listed twice".into(),
            });
        }
    }
}

pub(crate) fn blank_to_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

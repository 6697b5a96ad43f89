//! Static user groups and their enrollment-type setting ("Device enrollment" or "User
//! enrollment"). A user in several groups gets the setting of the group with the lowest
//! `priority` number among those that have one; a user in none gets device enrollment
//! ([`crate::mdm::enrollment_type::user_setting`]). Priorities of groups with a setting
//! are unique, so the answer never depends on order.
//!
//! Groups are few (at most [`MAX_GROUPS`]) and read whole whenever a user's setting is
//! needed, so they live in one key, changed with compare-and-swap.
//!
//! Key layout:
//! - `ugroups`        JSON map group id → [`Group`]
//! - `ctr:ugroups`    claimed by whoever creates `ugroups` (see [`crate::record::Created`]:
//!   compare-and-swap cannot create a key safely on Spin's SQLite)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use mdm_kv::{Backend, CounterKey, KvError, Store};

use crate::api::FieldError;
use crate::mdm::enrollment_type::{EnrollmentType, GroupSetting, user_setting};
use crate::record::{Created, Record, Stored};

pub const MAX_GROUPS: usize = 1000;
pub const MAX_ID: usize = 64;
pub const DEFAULT_PRIORITY: u32 = 100;
pub const MAX_PRIORITY: u32 = 10_000;

/// Every group, by id (`ugroups`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct Groups(BTreeMap<String, Group>);

impl Record for Groups {
    type Id<'a> = ();
    const NAME: &'static str = "user groups";
    fn key((): ()) -> String {
        "ugroups".into()
    }
    /// A change to a damaged map starts from no groups (readers get the error).
    fn fresh_if_damaged() -> Option<Self> {
        Some(Groups::default())
    }
}

impl Created for Groups {
    fn claim((): ()) -> CounterKey {
        CounterKey::new("ugroups").expect("static")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `None`: the group does not decide the enrollment type.
    pub enrollment_type: Option<EnrollmentType>,
    /// Lower wins among a user's groups that have an enrollment type.
    pub priority: u32,
    pub created_at: u64,
    pub updated_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enrollment_type: Option<EnrollmentType>,
    #[serde(default)]
    pub priority: Option<u32>,
}

/// Changes: a field given is set; `enrollment_type: null` removes the setting, an empty
/// description clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, with = "double_option")]
    pub enrollment_type: Option<Option<EnrollmentType>>,
    #[serde(default)]
    pub priority: Option<u32>,
}

/// `Option<Option<T>>` that tells an absent field (`None`) from `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[derive(Debug)]
pub enum GroupError {
    Invalid(Vec<FieldError>),
    NotFound,
    Conflict(String),
    Store(KvError),
}

impl From<KvError> for GroupError {
    fn from(e: KvError) -> Self {
        GroupError::Store(e)
    }
}

fn field(errors: &mut Vec<FieldError>, field: &str, rule: impl Into<String>) {
    errors.push(FieldError {
        field: field.to_owned(),
        rule: rule.into(),
    });
}

/// A group id: 1-64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn id_is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn check_text(errors: &mut Vec<FieldError>, name: &str, v: &Option<String>, max: usize) {
    if let Some(s) = v
        && (s.chars().count() > max || s.chars().any(char::is_control))
    {
        field(
            errors,
            name,
            format!("at most {max} characters, no control characters"),
        );
    }
}

fn check_priority(errors: &mut Vec<FieldError>, p: Option<u32>) {
    if p.is_some_and(|p| p > MAX_PRIORITY) {
        field(
            errors,
            "priority",
            format!("0 to {MAX_PRIORITY} (lower wins)"),
        );
    }
}

/// Another group with an enrollment type at the same priority.
fn clash<'a>(all: &'a BTreeMap<String, Group>, me: &Group) -> Option<&'a Group> {
    me.enrollment_type?;
    all.values()
        .find(|g| g.id != me.id && g.enrollment_type.is_some() && g.priority == me.priority)
}

pub async fn all<B: Backend>(store: &Store<B>) -> Result<BTreeMap<String, Group>, KvError> {
    Ok(Groups::load(store, ()).await?.unwrap_or_default().0)
}

/// Applies `change` to the group map with compare-and-swap; `change` returns what to
/// answer, or an error that leaves the map untouched.
async fn modify<B: Backend, T>(
    store: &Store<B>,
    mut change: impl FnMut(&mut BTreeMap<String, Group>) -> Result<T, GroupError>,
) -> Result<T, GroupError> {
    let mut out: Option<T> = None;
    Groups::modify_or_create(store, (), true, |groups| {
        out = Some(change(&mut groups.0)?);
        Ok::<_, GroupError>(true)
    })
    .await?;
    out.ok_or_else(|| GroupError::Store(KvError::Contended(Groups::key(()))))
}

pub async fn create<B: Backend>(
    store: &Store<B>,
    new: NewGroup,
    now: u64,
) -> Result<Group, GroupError> {
    let mut errors = Vec::new();
    let id = new.id.trim().to_owned();
    if !id_is_valid(&id) {
        field(
            &mut errors,
            "id",
            format!("1 to {MAX_ID} of a-z 0-9 . _ -, starting with a letter or digit"),
        );
    }
    check_text(&mut errors, "name", &new.name, 128);
    check_text(&mut errors, "description", &new.description, 1000);
    check_priority(&mut errors, new.priority);
    if !errors.is_empty() {
        return Err(GroupError::Invalid(errors));
    }
    let g = Group {
        name: new
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.clone()),
        id,
        description: new.description.filter(|d| !d.trim().is_empty()),
        enrollment_type: new.enrollment_type,
        priority: new.priority.unwrap_or(DEFAULT_PRIORITY),
        created_at: now,
        updated_at: now,
    };
    modify(store, |map| {
        if map.contains_key(&g.id) {
            return Err(GroupError::Conflict(format!("group {:?} exists", g.id)));
        }
        if map.len() >= MAX_GROUPS {
            return Err(GroupError::Conflict(format!(
                "this server already has {MAX_GROUPS} groups, the most it holds"
            )));
        }
        if let Some(other) = clash(map, &g) {
            return Err(GroupError::Invalid(vec![FieldError {
                field: "priority".into(),
                rule: format!(
                    "group {:?} already decides the enrollment type at priority {}: priorities of groups with an enrollment type are unique",
                    other.id, g.priority
                ),
            }]));
        }
        map.insert(g.id.clone(), g.clone());
        Ok(g.clone())
    })
    .await
}

pub async fn update<B: Backend>(
    store: &Store<B>,
    id: &str,
    patch: GroupPatch,
    now: u64,
) -> Result<Group, GroupError> {
    let mut errors = Vec::new();
    check_text(&mut errors, "name", &patch.name, 128);
    check_text(&mut errors, "description", &patch.description, 1000);
    check_priority(&mut errors, patch.priority);
    if patch.name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        field(&mut errors, "name", "must not be empty");
    }
    if !errors.is_empty() {
        return Err(GroupError::Invalid(errors));
    }
    modify(store, |map| {
        let mut g = map.get(id).cloned().ok_or(GroupError::NotFound)?;
        if let Some(n) = &patch.name {
            g.name = n.trim().to_owned();
        }
        if let Some(d) = &patch.description {
            g.description = Some(d.trim().to_owned()).filter(|d| !d.is_empty());
        }
        if let Some(t) = patch.enrollment_type {
            g.enrollment_type = t;
        }
        if let Some(p) = patch.priority {
            g.priority = p;
        }
        g.updated_at = now;
        if let Some(other) = clash(map, &g) {
            return Err(GroupError::Invalid(vec![FieldError {
                field: "priority".into(),
                rule: format!(
                    "group {:?} already decides the enrollment type at priority {}",
                    other.id, g.priority
                ),
            }]));
        }
        map.insert(g.id.clone(), g.clone());
        Ok(g)
    })
    .await
}

/// Removes the group. Users keep the id in their `groups` until changed; unknown ids
/// are ignored when the enrollment type is decided.
pub async fn delete<B: Backend>(store: &Store<B>, id: &str) -> Result<(), GroupError> {
    if !all(store).await?.contains_key(id) {
        return Err(GroupError::NotFound);
    }
    modify(store, |map| {
        map.remove(id).map(|_| ()).ok_or(GroupError::NotFound)
    })
    .await
}

/// The enrollment type for a member of `member_of`, and the group that decided it
/// (`None`: the default, device enrollment).
pub fn effective(
    groups: &BTreeMap<String, Group>,
    member_of: &[String],
) -> (EnrollmentType, Option<String>) {
    let deciding = member_of
        .iter()
        .filter_map(|id| groups.get(id))
        .filter(|g| g.enrollment_type.is_some())
        .min_by_key(|g| (g.priority, g.id.clone()));
    let settings: Vec<GroupSetting> = deciding
        .iter()
        .map(|g| GroupSetting {
            priority: g.priority,
            enrollment_type: g.enrollment_type.expect("filtered"),
        })
        .collect();
    (user_setting(&settings), deciding.map(|g| g.id.clone()))
}

/// Group ids in `ids` that do not exist: `groups[i]` errors.
pub fn unknown(groups: &BTreeMap<String, Group>, ids: &[String]) -> Vec<FieldError> {
    ids.iter()
        .enumerate()
        .filter(|(_, id)| !groups.contains_key(id.as_str()))
        .map(|(i, id)| FieldError {
            field: format!("groups[{i}]"),
            rule: format!("no group {id:?}"),
        })
        .collect()
}

/// A Managed Apple ID as lists show it: the first character of the local part, then
/// `***`, then the domain (`j***@example.com`). Only the user's own record shows it whole.
pub fn mask_managed_apple_id(id: &str) -> String {
    match id.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

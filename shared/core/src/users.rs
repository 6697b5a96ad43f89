//! Local user accounts: people who sign in during web enrollment (user affinity), created
//! by administrators through the admin API, members of static user groups
//! ([`crate::groups`]: the enrollment-type setting), with the Managed Apple ID that User
//! Enrollment needs.
//!
//! Hashes never leave the user records: [`UserView`] is what the API shows. Passwords are
//! `user_password.rs`'s, sign-in and its limits `user_sign_in.rs`'s, the checks of what
//! an administrator sends `user_input.rs`'s.
//!
//! Key layout (`u` = the lowercase username as a key segment):
//! - `user:<u>`          the [`UserRecord`] (JSON). Deleting leaves a tombstone (no
//!   secrets), so the name can be created again with compare-and-swap
//! - `ctr:userc:<u>`     claimed by whoever creates `user:<u>` for the first time
//! - `ctr:user:seq`      last listing slot allocated; `ctr:user:live` live users
//! - `userix:<n>`        the username at listing slot `n` (a slot whose record names
//!   another slot is stale and skipped)
//! - `usermaid:<m>`      username holding Managed Apple ID `m` (lowercase; `=<sha256>` when
//!   too long for a key): account-driven enrollment finds users by it. A hint: the user
//!   record must still name `m`
//!
//! The sign-in counters are `user_sign_in.rs`'s.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CasOutcome, CounterKey, KvError, Store};

use crate::api::FieldError;
use crate::record::{self, Record, Stored};
use crate::user_input::{NewUser, UserPatch, blank_to_none, check_groups, check_text};
use crate::user_password::{check_password, hash_password};

pub const MAX_USERNAME: usize = 64;
pub const MAX_USERS: i64 = 100_000;

fn claim_counter(username: &str) -> CounterKey {
    CounterKey::new(&format!("userc:{}", segment(username))).expect("segment is key-safe")
}

fn seq_counter() -> CounterKey {
    CounterKey::new("user:seq").expect("static")
}

fn live_counter() -> CounterKey {
    CounterKey::new("user:live").expect("static")
}

/// The username at a listing slot (`userix:<n>`, as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct ListedUser(String);

impl Record for ListedUser {
    type Id<'a> = u64;
    const NAME: &'static str = "user list entry";
    fn key(n: u64) -> String {
        format!("userix:{n}")
    }
    record::stored_as_text!();
}

/// The username holding a Managed Apple ID (`usermaid:<m>`, as is): a hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct MaidHolder(String);

impl Record for MaidHolder {
    /// The Managed Apple ID, any case.
    type Id<'a> = &'a str;
    const NAME: &'static str = "Managed Apple ID index";
    /// A Managed Apple ID may be 254 characters, up to three bytes each once a key
    /// segment: one too long for a key goes by its SHA-256 (`=` never appears in a segment).
    fn key(maid: &str) -> String {
        const PREFIX: &str = "usermaid:";
        let seg = segment(&maid.trim().to_lowercase());
        if PREFIX.len() + seg.len() <= mdm_kv::key::MAX_KEY_LEN {
            format!("{PREFIX}{seg}")
        } else {
            format!("{PREFIX}={}", hex::encode(Sha256::digest(seg.as_bytes())))
        }
    }
    record::stored_as_text!();
}

/// The live user whose Managed Apple ID is `maid` (any case).
pub async fn by_managed_apple_id<B: Backend>(
    store: &Store<B>,
    maid: &str,
) -> Result<Option<UserRecord>, KvError> {
    if maid.trim().is_empty() {
        return Ok(None);
    }
    let Some(MaidHolder(username)) = MaidHolder::load_valid(store, maid).await? else {
        return Ok(None);
    };
    Ok(get(store, &username).await?.filter(|u| {
        u.managed_apple_id
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(maid.trim()))
    }))
}

/// 409 when another live user holds `maid`.
async fn maid_free<B: Backend>(
    store: &Store<B>,
    maid: Option<&str>,
    me: &str,
) -> Result<(), UserError> {
    if let Some(m) = maid.map(str::trim).filter(|m| !m.is_empty())
        && let Some(other) = by_managed_apple_id(store, m).await?
        && other.username != me
    {
        return Err(UserError::Conflict(format!(
            "Managed Apple ID {m:?} belongs to user {:?}",
            other.username
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Lowercase; the user's id everywhere (immutable).
    pub username: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub managed_apple_id: Option<String>,
    /// Static user group ids ([`crate::groups`]).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Argon2id PHC string. `None`: the user cannot sign in.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    pub slot: u64,
    pub created_at: u64,
    pub updated_at: u64,
    #[serde(default)]
    pub password_changed_at: Option<u64>,
    #[serde(default)]
    pub last_sign_in_at: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tombstone: bool,
}

impl Record for UserRecord {
    /// The username, normalised ([`normalize_username`]).
    type Id<'a> = &'a str;
    const NAME: &'static str = "user record";
    const ATTEMPTS: usize = 20;
    fn key(username: &str) -> String {
        format!("user:{}", segment(username))
    }
}

/// What the admin API shows of a user: never the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub managed_apple_id: Option<String>,
    pub groups: Vec<String>,
    pub disabled: bool,
    pub has_password: bool,
    pub created_at: u64,
    pub updated_at: u64,
    pub password_changed_at: Option<u64>,
    pub last_sign_in_at: Option<u64>,
}

impl UserRecord {
    pub fn view(&self) -> UserView {
        UserView {
            username: self.username.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
            managed_apple_id: self.managed_apple_id.clone(),
            groups: self.groups.clone(),
            disabled: self.disabled,
            has_password: self.password_hash.is_some(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            password_changed_at: self.password_changed_at,
            last_sign_in_at: self.last_sign_in_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    Invalid(Vec<FieldError>),
    /// The username exists (or is being created right now).
    Conflict(String),
    NotFound,
    /// [`MAX_USERS`] reached.
    Full,
    Store(KvError),
}

impl From<KvError> for UserError {
    fn from(e: KvError) -> Self {
        UserError::Store(e)
    }
}

/// Lowercased username, or why it is not one: 1-64 of `a-z 0-9 . _ - @ +`.
pub fn normalize_username(raw: &str) -> Result<String, String> {
    let u = raw.trim().to_lowercase();
    if u.is_empty() || u.chars().count() > MAX_USERNAME {
        return Err(format!("1 to {MAX_USERNAME} characters"));
    }
    if !u
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
    {
        return Err("letters, digits and . _ - @ + only".into());
    }
    Ok(u)
}

pub async fn create<B: Backend>(
    store: &Store<B>,
    new: NewUser,
    now: u64,
) -> Result<UserRecord, UserError> {
    let mut errors = Vec::new();
    let username = normalize_username(&new.username).unwrap_or_else(|rule| {
        errors.push(FieldError {
            field: "username".into(),
            rule,
        });
        String::new()
    });
    if let Some(p) = &new.password {
        check_password(p, &mut errors);
    }
    check_text("name", &new.name, 128, false, &mut errors);
    check_text("email", &new.email, 254, true, &mut errors);
    check_text(
        "managed_apple_id",
        &new.managed_apple_id,
        254,
        true,
        &mut errors,
    );
    check_groups(&new.groups, &mut errors);
    if !errors.is_empty() {
        return Err(UserError::Invalid(errors));
    }
    maid_free(store, new.managed_apple_id.as_deref(), &username).await?;
    // Kept as read: a tombstone is taken over by compare-and-swap on it.
    let key = UserRecord::key(&username);
    let held = store.get(&key).await?;
    if let Some(raw) = &held
        && !UserRecord::decode_at(&key, raw)?.tombstone
    {
        return Err(UserError::Conflict(format!("user {username:?} exists")));
    }
    if store.increment(&live_counter(), 1).await? > MAX_USERS {
        store.increment(&live_counter(), -1).await?;
        return Err(UserError::Full);
    }
    let slot = store.increment(&seq_counter(), 1).await? as u64;
    let record = UserRecord {
        username: username.clone(),
        name: blank_to_none(new.name),
        email: blank_to_none(new.email),
        managed_apple_id: blank_to_none(new.managed_apple_id),
        groups: new.groups,
        password_changed_at: new.password.as_ref().map(|_| now),
        password_hash: new.password.as_deref().map(hash_password),
        disabled: false,
        slot,
        created_at: now,
        updated_at: now,
        last_sign_in_at: None,
        tombstone: false,
    };
    // Slot first: a crash after it leaves a stale slot (skipped), never an unlisted user.
    ListedUser(username.clone()).save(store, slot).await?;
    let created = match held {
        // A deleted user's name: take the tombstone over, unless someone beat us to it.
        Some(tomb) => matches!(
            store
                .compare_and_swap(&key, &tomb, &record.encode_at(&key)?)
                .await?,
            CasOutcome::Swapped
        ),
        // Never existed: exactly one creator wins the claim (CAS on an absent key is not
        // safe on every backend).
        None => {
            let won = store.claim(&claim_counter(&username)).await?;
            if won {
                record.save(store, &username).await?;
            }
            won
        }
    };
    if !created {
        store.increment(&live_counter(), -1).await?;
        return Err(UserError::Conflict(format!(
            "user {username:?} was created concurrently"
        )));
    }
    if let Some(m) = &record.managed_apple_id {
        MaidHolder(username.clone()).save(store, m).await?;
    }
    Ok(record)
}

/// A live user by username (any case).
pub async fn get<B: Backend>(
    store: &Store<B>,
    username: &str,
) -> Result<Option<UserRecord>, KvError> {
    let Ok(u) = normalize_username(username) else {
        return Ok(None);
    };
    Ok(UserRecord::load(store, &u).await?.filter(|r| !r.tombstone))
}

pub(crate) async fn modify<B: Backend>(
    store: &Store<B>,
    username: &str,
    mut change: impl FnMut(&mut UserRecord) -> Result<(), UserError>,
) -> Result<UserRecord, UserError> {
    let u = normalize_username(username).map_err(|_| UserError::NotFound)?;
    UserRecord::modify(store, &u, |rec| {
        if rec.tombstone {
            return Err(UserError::NotFound);
        }
        change(rec)?;
        Ok(true)
    })
    .await?
    .ok_or(UserError::NotFound)
}

pub async fn update<B: Backend>(
    store: &Store<B>,
    username: &str,
    patch: UserPatch,
    now: u64,
) -> Result<UserRecord, UserError> {
    let mut errors = Vec::new();
    if let Some(p) = &patch.password {
        check_password(p, &mut errors);
    }
    check_text("name", &patch.name, 128, false, &mut errors);
    check_text("email", &patch.email, 254, true, &mut errors);
    check_text(
        "managed_apple_id",
        &patch.managed_apple_id,
        254,
        true,
        &mut errors,
    );
    if let Some(g) = &patch.groups {
        check_groups(g, &mut errors);
    }
    if !errors.is_empty() {
        return Err(UserError::Invalid(errors));
    }
    let before = get(store, username).await?.ok_or(UserError::NotFound)?;
    if patch.managed_apple_id.is_some() {
        maid_free(store, patch.managed_apple_id.as_deref(), &before.username).await?;
    }
    // Hash once, outside the retry loop.
    let new_hash = patch.password.as_deref().map(hash_password);
    let after = modify(store, username, |rec| {
        if let Some(h) = &new_hash {
            rec.password_hash = Some(h.clone());
            rec.password_changed_at = Some(now);
        }
        if patch.name.is_some() {
            rec.name = blank_to_none(patch.name.clone());
        }
        if patch.email.is_some() {
            rec.email = blank_to_none(patch.email.clone());
        }
        if patch.managed_apple_id.is_some() {
            rec.managed_apple_id = blank_to_none(patch.managed_apple_id.clone());
        }
        if let Some(d) = patch.disabled {
            rec.disabled = d;
        }
        if let Some(g) = &patch.groups {
            rec.groups = g.clone();
        }
        rec.updated_at = now;
        Ok(())
    })
    .await?;
    if before.managed_apple_id != after.managed_apple_id {
        if let Some(old) = &before.managed_apple_id {
            MaidHolder::delete(store, old).await?;
        }
        if let Some(m) = &after.managed_apple_id {
            MaidHolder(after.username.clone()).save(store, m).await?;
        }
    }
    Ok(after)
}

/// Deletes a user (a tombstone without secrets stays). Devices keep the username they
/// enrolled with.
pub async fn delete<B: Backend>(
    store: &Store<B>,
    username: &str,
    now: u64,
) -> Result<(), UserError> {
    let before = get(store, username).await?;
    modify(store, username, |rec| {
        *rec = UserRecord {
            username: rec.username.clone(),
            name: None,
            email: None,
            managed_apple_id: None,
            groups: Vec::new(),
            password_hash: None,
            disabled: true,
            slot: rec.slot,
            created_at: rec.created_at,
            updated_at: now,
            password_changed_at: None,
            last_sign_in_at: None,
            tombstone: true,
        };
        Ok(())
    })
    .await?;
    store.increment(&live_counter(), -1).await?;
    if let Some(m) = before.and_then(|b| b.managed_apple_id) {
        MaidHolder::delete(store, &m).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    pub users: Vec<UserRecord>,
    /// The `after` of the next page.
    pub next: Option<u64>,
}

/// Users in creation order after listing slot `after`.
pub async fn list<B: Backend>(
    store: &Store<B>,
    after: u64,
    limit: usize,
) -> Result<UserPage, KvError> {
    let top = store.counter(&seq_counter()).await?.max(0) as u64;
    let limit = limit.max(1);
    let mut users = Vec::new();
    let mut pos = after;
    let budget = (limit as u64 * 5).max(500);
    while pos < top && pos - after < budget {
        let to = (pos + 100).min(top);
        let slots: Vec<u64> = (pos + 1..=to).collect();
        let names: Vec<(u64, String)> = slots
            .iter()
            .zip(ListedUser::load_many_valid(store, &slots).await?)
            .filter_map(|(n, v)| Some((*n, v?.0)))
            .collect();
        let ids: Vec<&str> = names.iter().map(|(_, u)| u.as_str()).collect();
        let records = UserRecord::load_many_valid(store, &ids).await?;
        for ((n, _), rec) in names.iter().zip(records) {
            let Some(rec) = rec else {
                continue;
            };
            if rec.tombstone || rec.slot != *n {
                continue;
            }
            users.push(rec);
            if users.len() == limit {
                return Ok(UserPage {
                    users,
                    next: (*n < top).then_some(*n),
                });
            }
        }
        pos = to;
    }
    Ok(UserPage {
        users,
        next: (pos < top).then_some(pos),
    })
}

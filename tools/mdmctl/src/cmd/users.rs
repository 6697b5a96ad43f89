//! `mdmctl users`: local user accounts (who signs in during web enrollment). Passwords
//! are read from a file or standard input, never from the command line.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{Value, json};

use crate::ctx::Ctx;
use crate::error::CliError;
use crate::input;
use crate::output::{Column, col, obj};
use crate::paging::{self, Listing, PageArgs};

#[derive(clap::Args, Debug)]
pub struct UserFields {
    /// Full name (an empty string clears it on update)
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    /// Managed Apple ID for account-driven enrollment
    #[arg(long)]
    pub managed_apple_id: Option<String>,
    /// A group id (repeat for several; on update, replaces the user's groups)
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// File holding the password (`-`: standard input), 8-256 characters
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// Local users, in creation order
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One user
    Show { user: String },
    /// Create a user
    Create {
        username: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Change a user
    Update {
        user: String,
        #[command(flatten)]
        fields: UserFields,
        /// Remove the user from every group
        #[arg(long, conflicts_with = "groups")]
        no_groups: bool,
        /// The user can no longer sign in
        #[arg(long)]
        disable: bool,
        /// The user can sign in again
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
    },
    /// Delete a user
    Delete { user: String },
}

pub const COLUMNS: &[Column] = &[
    col("USERNAME", "username"),
    col("NAME", "name"),
    col("EMAIL", "email"),
    col("GROUPS", "groups"),
    col("ENROLLMENT", "enrollment_type"),
    col("DISABLED", "disabled"),
    col("PASSWORD", "has_password"),
    col("LAST SIGN-IN", "last_sign_in_at"),
];

const ONE: &str = "/api/v1/users/{user}";

fn password(ctx: &mut Ctx, file: Option<&Path>) -> Result<Option<Value>, CliError> {
    let Some(path) = file else { return Ok(None) };
    let bytes = input::read_bytes(ctx, path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::local(format!("{}: the password is not UTF-8", path.display())))?;
    Ok(Some(json!(text.trim_end_matches(['\r', '\n']))))
}

fn fields(
    ctx: &mut Ctx,
    f: UserFields,
    groups: Option<Vec<String>>,
) -> Result<Vec<(&'static str, Option<Value>)>, CliError> {
    Ok(vec![
        ("password", password(ctx, f.password_file.as_deref())?),
        ("name", f.name.map(Value::from)),
        ("email", f.email.map(Value::from)),
        ("managed_apple_id", f.managed_apple_id.map(Value::from)),
        ("groups", groups.map(|g| json!(g))),
    ])
}

pub fn run(ctx: &mut Ctx, cmd: UsersCmd) -> Result<(), CliError> {
    match cmd {
        UsersCmd::List { page } => {
            let listing = Listing {
                pattern: "/api/v1/users",
                params: &[],
            };
            let items = paging::fetch(ctx, &listing, Vec::new(), &page)?;
            ctx.list(&items, COLUMNS)
        }
        UsersCmd::Show { user } => {
            let v = ctx.api()?.get(ONE, &[&user])?;
            ctx.object(&v)
        }
        UsersCmd::Create {
            username,
            fields: f,
        } => {
            let groups = (!f.groups.is_empty()).then(|| f.groups.clone());
            let mut pairs = vec![("username", Some(json!(username)))];
            pairs.extend(fields(ctx, f, groups)?);
            let v = ctx
                .api()?
                .send("POST", "/api/v1/users", &[], Some(&obj(pairs)))?;
            ctx.object(&v)
        }
        UsersCmd::Update {
            user,
            fields: f,
            no_groups,
            disable,
            enable,
        } => {
            let groups = if no_groups {
                Some(Vec::new())
            } else {
                (!f.groups.is_empty()).then(|| f.groups.clone())
            };
            let mut pairs = fields(ctx, f, groups)?;
            pairs.push(("disabled", (disable || enable).then_some(json!(disable))));
            let body = obj(pairs);
            if body.as_object().is_some_and(|m| m.is_empty()) {
                return Err(CliError::local("nothing to change"));
            }
            let v = ctx.api()?.send("PATCH", ONE, &[&user], Some(&body))?;
            ctx.object(&v)
        }
        UsersCmd::Delete { user } => {
            ctx.api()?.send("DELETE", ONE, &[&user], None)?;
            ctx.done(&format!("user {user} deleted"), &json!({ "deleted": user }))
        }
    }
}

//! `mdmctl groups`: static user groups and the enrollment type each may set for its
//! members.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::ctx::Ctx;
use crate::error::CliError;
use crate::output::{Column, col, items, obj};

#[derive(Subcommand, Debug)]
pub enum GroupsCmd {
    /// Every group, lowest priority number first
    List,
    /// One group
    Show { group: String },
    /// Create a group
    Create {
        /// 1-64 of a-z 0-9 . _ -
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// device or user: the enrollment its members get
        #[arg(long)]
        enrollment_type: Option<String>,
        /// Lower wins among a user's groups with a setting (0-10000, default 100)
        #[arg(long)]
        priority: Option<u32>,
    },
    /// Change a group
    Update {
        group: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// device, user, or none to remove the setting
        #[arg(long)]
        enrollment_type: Option<String>,
        #[arg(long)]
        priority: Option<u32>,
    },
    /// Delete a group (members keep the id, which no longer counts)
    Delete { group: String },
}

pub const COLUMNS: &[Column] = &[
    col("ID", "id"),
    col("NAME", "name"),
    col("ENROLLMENT", "enrollment_type"),
    col("PRIORITY", "priority"),
    col("DESCRIPTION", "description"),
];

const ONE: &str = "/api/v1/groups/{group}";

fn enrollment_type(v: Option<String>) -> Option<Value> {
    v.map(|t| match t.as_str() {
        "none" | "null" => Value::Null,
        _ => Value::String(t),
    })
}

pub fn run(ctx: &mut Ctx, cmd: GroupsCmd) -> Result<(), CliError> {
    let api = ctx.api()?;
    match cmd {
        GroupsCmd::List => {
            let v = api.get("/api/v1/groups", &[])?;
            ctx.list(items(&v, crate::paging::ITEMS)?, COLUMNS)
        }
        GroupsCmd::Show { group } => {
            let v = api.get(ONE, &[&group])?;
            ctx.object(&v)
        }
        GroupsCmd::Create {
            id,
            name,
            description,
            enrollment_type: et,
            priority,
        } => {
            let body = obj(vec![
                ("id", Some(json!(id))),
                ("name", name.map(Value::from)),
                ("description", description.map(Value::from)),
                ("enrollment_type", enrollment_type(et)),
                ("priority", priority.map(Value::from)),
            ]);
            let v = api.send("POST", "/api/v1/groups", &[], Some(&body))?;
            ctx.object(&v)
        }
        GroupsCmd::Update {
            group,
            name,
            description,
            enrollment_type: et,
            priority,
        } => {
            let body = obj(vec![
                ("name", name.map(Value::from)),
                ("description", description.map(Value::from)),
                ("enrollment_type", enrollment_type(et)),
                ("priority", priority.map(Value::from)),
            ]);
            if body.as_object().is_some_and(|m| m.is_empty()) {
                return Err(CliError::local("nothing to change"));
            }
            let v = api.send("PATCH", ONE, &[&group], Some(&body))?;
            ctx.object(&v)
        }
        GroupsCmd::Delete { group } => {
            api.send("DELETE", ONE, &[&group], None)?;
            ctx.done(
                &format!("group {group} deleted"),
                &json!({ "deleted": group }),
            )
        }
    }
}

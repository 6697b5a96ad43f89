//! The admin API's lists: one page (and how to get the next), or every page with `--all`.
//! Every list route answers `{"items": [...], "next": "<cursor>" | null}` and takes
//! `limit` and `cursor` (the `next` of the previous page); lists the server answers
//! whole (tokens, profiles, groups) come as one page whose `next` is null.

use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::CliError;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct PageArgs {
    /// Items per page (1-1000; the server's default is 100)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Start at the page a previous answer's `next` points to
    #[arg(long = "continue", value_name = "NEXT")]
    pub cont: Option<String>,
    /// Follow `next` to the last page
    #[arg(long)]
    pub all: bool,
}

/// The key of a page's items.
pub const ITEMS: &str = "items";

/// A list route: its pattern and the values of its path parameters.
pub struct Listing<'a> {
    pub pattern: &'static str,
    pub params: &'a [&'a str],
}

/// The items of one page (or of every page with `--all`); tells on standard error how to
/// ask for the next one.
pub fn fetch(
    ctx: &mut Ctx,
    listing: &Listing,
    filters: Vec<(&str, String)>,
    page: &PageArgs,
) -> Result<Vec<Value>, CliError> {
    let api = ctx.api()?;
    let mut items = Vec::new();
    let mut next = page.cont.clone();
    loop {
        let mut query = filters.clone();
        if let Some(l) = page.limit {
            query.push(("limit", l.to_string()));
        }
        if let Some(n) = &next {
            query.push(("cursor", n.clone()));
        }
        let v = api.get_query(listing.pattern, listing.params, &query)?;
        match v.get(ITEMS) {
            Some(Value::Array(a)) => items.extend(a.iter().cloned()),
            _ => {
                return Err(CliError::BadAnswer(format!(
                    "{}: no `{ITEMS}` list",
                    listing.pattern
                )));
            }
        }
        next = match v.get("next") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        match &next {
            None => break,
            Some(_) if page.all => continue,
            Some(n) => {
                ctx.note(&format!("more: --continue {n} (or --all)"));
                break;
            }
        }
    }
    Ok(items)
}

//! One module per resource of the admin API, each a clap subcommand and its run.

pub mod actions;
pub mod challenges;
pub mod commands;
pub mod config;
pub mod dep_devices;
pub mod devices;
pub mod diagnostics;
pub mod groups;
pub mod profiles;
pub mod push;
pub mod rules;
pub mod slot;
pub mod sync;
pub mod tokens;
pub mod users;

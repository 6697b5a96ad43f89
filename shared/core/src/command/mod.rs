//! The command service: building command plists, Apple's command schema (with its
//! generated tables) and which device may take which command, enqueueing with the
//! command's record, results and their history and retention, and the sealing of
//! commands that carry secrets.

pub mod availability;
pub mod build;
pub mod enqueue;
pub mod history;
pub mod payload;
mod payload_source;
pub mod records;
pub mod retention;
pub mod schema;
pub mod secrets;
pub mod table;
pub mod upload;
pub mod user_enrollment;

//! The command loop (Apple: "Commands and Queries"): `Idle`, the command in the answer,
//! the device's result, the next command. Default answers come from the device's fake
//! facts; [`Device::set_responder`] scripts others.
//!
//! `command` holds what goes over the wire, `answers` what the device answers,
//! `exchange` the reports to the ServerURL and the loop.

mod answers;
mod command;
mod exchange;

pub use command::{Answered, Command, Responder, SignedReport, Status};

//! The MDM protocol: check-in messages, and (later) the command loop.

pub mod checkin;
pub mod queue;

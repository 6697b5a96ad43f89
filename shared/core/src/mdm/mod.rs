//! The MDM protocol's device side: check-in messages and the enrollment state machine,
//! enrollment records and bindings, the command loop at the ServerURL, device logs, and
//! the `Mdm-Signature` check.

pub mod await_config;
pub mod checkin_message;
pub mod connect;
pub mod devlog;
pub mod enrollment_admission;
pub mod enrollment_binding;
pub mod enrollment_record;
pub mod enrollment_reset;
pub mod enrollment_type;
pub mod enrollments;
pub mod report;
pub mod signature;

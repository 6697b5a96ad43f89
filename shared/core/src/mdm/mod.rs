//! The MDM protocol: check-in messages and the enrollment state machine, enrollment and
//! command records, queues, the command loop at the ServerURL, APNs push, and the
//! `Mdm-Signature` check.

pub mod apns;
pub mod availability;
pub mod await_config;
pub mod checkin;
pub mod command;
pub mod command_enqueue;
pub mod command_history;
pub mod command_payload;
mod command_payload_source;
pub mod command_records;
pub mod command_retention;
pub mod command_schema;
pub mod command_secrets;
pub mod command_upload;
pub mod commands_table;
pub mod connect;
pub mod devlog;
pub mod enrollment_admission;
pub mod enrollment_binding;
pub mod enrollment_record;
pub mod enrollment_reset;
pub mod enrollment_type;
pub mod enrollments;
pub mod push;
pub mod push_drain;
pub mod push_outcome;
pub mod push_send;
pub mod push_state;
pub mod push_status;
pub mod pushcert;
pub mod queue;
pub mod queue_delivery;
pub mod queue_enqueue;
pub mod report;
pub mod signature;
pub mod user_enrollment;

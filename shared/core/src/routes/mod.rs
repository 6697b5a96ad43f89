//! What each Spin component's request paths do: one module per component (`checkin`,
//! `commands`, `admin`, `sync`), translating HTTP into calls of the services beside it.

pub mod admin;
pub mod checkin;
pub mod commands;
pub mod sync;

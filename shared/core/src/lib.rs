//! The MDM server core. Everything here is runtime-independent: the Spin components in
//! `functions/` only translate their requests and host interfaces into the types of
//! [`platform`] and [`api`] and call the entry points below.

pub mod api;
pub mod api_error;
pub mod command;
pub mod config;
pub mod dep;
pub mod device_auth;
pub mod enroll;
pub mod expiry;
pub mod groups;
pub mod log;
pub mod mdm;
pub mod metrics;
pub mod platform;
pub mod push;
pub mod queue;
pub mod random;
pub mod record;
pub mod routes;
pub mod scep;
pub mod seal;
pub mod time;
pub mod user_input;
pub mod user_password;
pub mod user_sign_in;
pub mod users;

pub use api::{Request, Response};
pub use platform::{Clock, Env, HttpClient, Platform, Variables};

//! The admin HTTP API (`/api/v1/...`): bearer-key authentication, routing, handlers.
//! Every route here is described in `docs/openapi.yaml`; a test keeps the two in step.

mod actions;
mod command_history;
mod commands;
pub mod dep;
mod devices;
mod devlogs;
mod diagnostics;
mod health;
mod metrics;
mod paging;
pub mod probes;
mod profile_assignment;
mod profiles;
mod push;
mod tokens;
mod users;

use crate::api::{self, ApiError, Params, Request, Response, Route};
use crate::config::{self, ADMIN_API_KEY};
use crate::{Platform, log};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Health,
    Metrics,
    KvBattery,
    ContentionStart,
    ContentionWork,
    ContentionTotals,
    ContentionDelete,
    ListTokens,
    CreateToken,
    GetToken,
    PatchToken,
    DeleteToken,
    PublicKey,
    UploadToken,
    RotateKey,
    SyncNow,
    ListProfiles,
    CreateProfile,
    GetProfile,
    UpdateProfile,
    DeleteProfile,
    AssignProfile,
    UnassignDevices,
    GetDefaultProfile,
    SetDefaultProfile,
    GetRules,
    SetRules,
    DryRunRules,
    SyncStatus,
    ListDevices,
    GetDevice,
    DeleteDevice,
    ListEnrolledDevices,
    GetEnrolledDevice,
    RetireDevice,
    EnqueueCommand,
    CommandHistory,
    GetCommand,
    CancelCommand,
    EnqueueBulk,
    DeviceLogs,
    DeviceAction,
    CreateChallenge,
    PushDevice,
    PushState,
    PushCertificate,
    UploadPushCertificate,
    ListUsers,
    CreateUser,
    GetUser,
    PatchUser,
    DeleteUser,
    ListGroups,
    CreateGroup,
    GetGroup,
    PatchGroup,
    DeleteGroup,
}

/// The admin API's routes: (method, path pattern, operation).
#[rustfmt::skip]
pub const ROUTES: &[Route<Op>] = &[
    ("GET", "/api/v1/health", Op::Health),
    ("GET", "/metrics", Op::Metrics),
    ("POST", "/api/v1/diagnostics/kv", Op::KvBattery),
    ("POST", "/api/v1/diagnostics/kv/contention", Op::ContentionStart),
    ("GET", "/api/v1/diagnostics/kv/contention/{run}", Op::ContentionTotals),
    ("DELETE", "/api/v1/diagnostics/kv/contention/{run}", Op::ContentionDelete),
    ("POST", "/api/v1/diagnostics/kv/contention/{run}/work", Op::ContentionWork),
    ("GET", "/api/v1/tokens", Op::ListTokens),
    ("POST", "/api/v1/tokens", Op::CreateToken),
    ("GET", "/api/v1/tokens/{token}", Op::GetToken),
    ("PATCH", "/api/v1/tokens/{token}", Op::PatchToken),
    ("DELETE", "/api/v1/tokens/{token}", Op::DeleteToken),
    ("GET", "/api/v1/tokens/{token}/public-key", Op::PublicKey),
    ("PUT", "/api/v1/tokens/{token}/server-token", Op::UploadToken),
    ("POST", "/api/v1/tokens/{token}/rotate-key", Op::RotateKey),
    ("POST", "/api/v1/tokens/{token}/sync", Op::SyncNow),
    ("GET", "/api/v1/tokens/{token}/sync", Op::SyncStatus),
    ("GET", "/api/v1/tokens/{token}/profiles", Op::ListProfiles),
    ("POST", "/api/v1/tokens/{token}/profiles", Op::CreateProfile),
    ("GET", "/api/v1/tokens/{token}/profiles/{profile}", Op::GetProfile),
    ("PUT", "/api/v1/tokens/{token}/profiles/{profile}", Op::UpdateProfile),
    ("DELETE", "/api/v1/tokens/{token}/profiles/{profile}", Op::DeleteProfile),
    ("POST", "/api/v1/tokens/{token}/profiles/{profile}/devices", Op::AssignProfile),
    ("POST", "/api/v1/tokens/{token}/unassign", Op::UnassignDevices),
    ("GET", "/api/v1/tokens/{token}/default-profile", Op::GetDefaultProfile),
    ("PUT", "/api/v1/tokens/{token}/default-profile", Op::SetDefaultProfile),
    ("GET", "/api/v1/tokens/{token}/assignment-rules", Op::GetRules),
    ("PUT", "/api/v1/tokens/{token}/assignment-rules", Op::SetRules),
    ("POST", "/api/v1/tokens/{token}/assignment-rules/dry-run", Op::DryRunRules),
    ("GET", "/api/v1/tokens/{token}/devices", Op::ListDevices),
    ("GET", "/api/v1/tokens/{token}/devices/{serial}", Op::GetDevice),
    ("DELETE", "/api/v1/tokens/{token}/devices/{serial}", Op::DeleteDevice),
    ("GET", "/api/v1/devices", Op::ListEnrolledDevices),
    ("GET", "/api/v1/devices/{device}", Op::GetEnrolledDevice),
    ("DELETE", "/api/v1/devices/{device}", Op::RetireDevice),
    ("POST", "/api/v1/devices/{device}/commands", Op::EnqueueCommand),
    ("GET", "/api/v1/devices/{device}/commands", Op::CommandHistory),
    ("GET", "/api/v1/devices/{device}/commands/{uuid}", Op::GetCommand),
    ("DELETE", "/api/v1/devices/{device}/commands/{uuid}", Op::CancelCommand),
    ("POST", "/api/v1/commands", Op::EnqueueBulk),
    ("GET", "/api/v1/devices/{device}/logs", Op::DeviceLogs),
    ("POST", "/api/v1/devices/{device}/actions/{action}", Op::DeviceAction),
    ("POST", "/api/v1/enrollment/challenges", Op::CreateChallenge),
    ("POST", "/api/v1/devices/{device}/push", Op::PushDevice),
    ("GET", "/api/v1/devices/{device}/push", Op::PushState),
    ("GET", "/api/v1/push/certificate", Op::PushCertificate),
    ("PUT", "/api/v1/push/certificate", Op::UploadPushCertificate),
    ("GET", "/api/v1/users", Op::ListUsers),
    ("POST", "/api/v1/users", Op::CreateUser),
    ("GET", "/api/v1/users/{user}", Op::GetUser),
    ("PATCH", "/api/v1/users/{user}", Op::PatchUser),
    ("DELETE", "/api/v1/users/{user}", Op::DeleteUser),
    ("GET", "/api/v1/groups", Op::ListGroups),
    ("POST", "/api/v1/groups", Op::CreateGroup),
    ("GET", "/api/v1/groups/{group}", Op::GetGroup),
    ("PATCH", "/api/v1/groups/{group}", Op::PatchGroup),
    ("DELETE", "/api/v1/groups/{group}", Op::DeleteGroup),
];

/// Bodies of the admin API: what each route needs at most (read no further: 413).
pub const MAX_BODY_COMMANDS: usize = 8 * 1024 * 1024;
pub const MAX_BODY_PROFILES: usize = 2 * 1024 * 1024;
pub const MAX_BODY_DEFAULT: usize = 256 * 1024;

/// The most bytes of body a request to this component may have.
pub fn body_limit(method: &http::Method, path: &str) -> usize {
    match api::route(ROUTES, method, path) {
        // Commands carry profiles and packages (base64), for one device or many.
        Ok((Op::EnqueueCommand | Op::EnqueueBulk | Op::DeviceAction, _)) => MAX_BODY_COMMANDS,
        // Enrollment profiles may carry up to 1 MiB of setup commands.
        Ok((Op::CreateProfile | Op::UpdateProfile, _)) => MAX_BODY_PROFILES,
        _ => MAX_BODY_DEFAULT,
    }
}

/// Entry point of the admin component.
pub async fn handle(p: &impl Platform, req: Request) -> Response {
    // The probes first, without credentials (a wrong method on one gets its 405).
    match api::route(probes::PROBES, req.method(), req.uri().path()) {
        Ok((probe, _)) => return probes::answer(p, probe).await,
        Err(e) if e.status != http::StatusCode::NOT_FOUND => return e.into_response(),
        Err(_) => {}
    }
    // Authenticate before routing, so unauthenticated callers learn nothing about routes.
    if let Err(e) = config::authorize(p.vars(), ADMIN_API_KEY, "mdm-admin", &req).await {
        return e.into_response();
    }
    let resp = match api::route(ROUTES, req.method(), req.uri().path()) {
        Ok((op, params)) => run(p, op, &params, &req)
            .await
            .unwrap_or_else(ApiError::into_response),
        Err(e) => e.into_response(),
    };
    log::tag(resp, log::Subject::Key(ADMIN_API_KEY))
}

async fn run(
    p: &impl Platform,
    op: Op,
    params: &Params,
    req: &Request,
) -> Result<Response, ApiError> {
    let run_id = || params.get("run").unwrap_or_default();
    match op {
        Op::Health => health::get(p).await,
        Op::Metrics => metrics::get(p).await,
        Op::KvBattery => diagnostics::battery(p).await,
        Op::ContentionStart => diagnostics::contention_start(p).await,
        Op::ContentionWork => diagnostics::contention_work(p, run_id(), req).await,
        Op::ContentionTotals => diagnostics::contention_totals(p, run_id()).await,
        Op::ContentionDelete => diagnostics::contention_delete(p, run_id()).await,
        Op::ListTokens => tokens::list(p).await,
        Op::CreateToken => tokens::create(p, req).await,
        Op::GetToken => tokens::get(p, params).await,
        Op::PatchToken => tokens::patch(p, params, req).await,
        Op::DeleteToken => tokens::delete(p, params).await,
        Op::PublicKey => tokens::public_key(p, params).await,
        Op::UploadToken => tokens::upload(p, params, req).await,
        Op::RotateKey => tokens::rotate_key(p, params).await,
        Op::SyncNow => tokens::sync_now(p, params, req).await,
        Op::ListProfiles => profiles::list(p, params).await,
        Op::CreateProfile => profiles::create(p, params, req).await,
        Op::GetProfile => profiles::get(p, params).await,
        Op::UpdateProfile => profiles::update(p, params, req).await,
        Op::DeleteProfile => profiles::delete(p, params, req).await,
        Op::AssignProfile => profile_assignment::assign(p, params, req).await,
        Op::UnassignDevices => profile_assignment::unassign(p, params, req).await,
        Op::GetDefaultProfile => profile_assignment::get_default(p, params).await,
        Op::SetDefaultProfile => profile_assignment::set_default(p, params, req).await,
        Op::GetRules => profile_assignment::get_rules(p, params).await,
        Op::SetRules => profile_assignment::set_rules(p, params, req).await,
        Op::DryRunRules => profile_assignment::dry_run(p, params, req).await,
        Op::SyncStatus => dep::get_sync(p, params).await,
        Op::ListDevices => dep::list_devices(p, params, req).await,
        Op::GetDevice => dep::get_device(p, params).await,
        Op::DeleteDevice => dep::delete_device(p, params).await,
        Op::ListEnrolledDevices => devices::list(p, req).await,
        Op::GetEnrolledDevice => devices::get(p, params).await,
        Op::RetireDevice => actions::retire(p, params, req).await,
        Op::EnqueueCommand => commands::enqueue(p, params, req).await,
        Op::CommandHistory => command_history::history(p, params, req).await,
        Op::DeviceLogs => devlogs::list(p, params, req).await,
        Op::DeviceAction => actions::run(p, params, req).await,
        Op::GetCommand => command_history::get(p, params, req).await,
        Op::CancelCommand => command_history::cancel(p, params, req).await,
        Op::EnqueueBulk => commands::enqueue_bulk(p, req).await,
        Op::CreateChallenge => crate::scep::admin::create_challenge(p, req).await,
        Op::PushDevice => push::push_now(p, params.get("device").unwrap_or_default()).await,
        Op::PushState => push::get(p, params.get("device").unwrap_or_default()).await,
        Op::PushCertificate => crate::push::certificate::get(p).await,
        Op::UploadPushCertificate => crate::push::certificate::put(p, req).await,
        Op::ListUsers => users::list(p, req).await,
        Op::CreateUser => users::create(p, req).await,
        Op::GetUser => users::get(p, params).await,
        Op::PatchUser => users::patch(p, params, req).await,
        Op::DeleteUser => users::delete(p, params).await,
        Op::ListGroups => users::list_groups(p).await,
        Op::CreateGroup => users::create_group(p, req).await,
        Op::GetGroup => users::get_group(p, params).await,
        Op::PatchGroup => users::patch_group(p, params, req).await,
        Op::DeleteGroup => users::delete_group(p, params).await,
    }
}

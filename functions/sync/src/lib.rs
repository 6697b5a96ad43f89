//! The `sync` Spin component: wiring only, the logic is `mdm_core::routes::sync`.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    mdm_spin::serve(
        "sync",
        req,
        mdm_core::routes::sync::body_limit,
        |env, req| async move { mdm_core::routes::sync::handle(&env, req).await },
    )
    .await
}

//! The `commands` Spin component: wiring only, the logic is `mdm_core::routes::commands`.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    mdm_spin::serve(
        "commands",
        req,
        mdm_core::routes::commands::body_limit,
        |env, req| async move { mdm_core::routes::commands::handle(&env, req).await },
    )
    .await
}

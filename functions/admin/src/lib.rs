//! The `admin` Spin component: wiring only, the logic is `mdm_core::routes::admin`.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    mdm_spin::serve(
        "admin",
        req,
        mdm_core::routes::admin::body_limit,
        |env, req| async move { mdm_core::routes::admin::handle(&env, req).await },
    )
    .await
}

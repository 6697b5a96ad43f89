//! The `checkin` Spin component: wiring only, the logic is `mdm_core::routes::checkin`.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    mdm_spin::serve(
        "checkin",
        req,
        mdm_core::routes::checkin::body_limit,
        |env, req| async move { mdm_core::routes::checkin::handle(&env, req).await },
    )
    .await
}

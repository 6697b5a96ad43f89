//! Scheduled work (`/internal/...`), called by a scheduler with the `sync_api_key`
//! bearer key: Device Assignment sync, push retries, purges. Jobs join the table as
//! they land; an unknown job answers 404 after authentication.

use crate::Platform;
use crate::api::{self, ApiError, Request, Response, Route};
use crate::config::{self, SYNC_API_KEY};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {}

pub const ROUTES: &[Route<Op>] = &[];

pub async fn handle(p: &impl Platform, req: Request) -> Response {
    match dispatch(p, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(p: &impl Platform, req: Request) -> Result<Response, ApiError> {
    let key = config::secret(p.vars(), SYNC_API_KEY).await?;
    if !api::bearer_matches(&req, key.expose()) {
        return Err(ApiError::unauthorized("mdm-internal"));
    }
    let (op, _) = api::route(ROUTES, req.method(), req.uri().path())?;
    match op {}
}

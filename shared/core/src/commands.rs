//! Device-facing endpoints of the `commands` component: command delivery at the
//! MDM ServerURL (`/mdm/connect`). Routes join the table as their
//! protocol handlers land; a path without one answers 404.

use crate::Platform;
use crate::api::{self, Request, Response, Route};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {}

pub const ROUTES: &[Route<Op>] = &[];

pub async fn handle(_p: &impl Platform, req: Request) -> Response {
    match api::route(ROUTES, req.method(), req.uri().path()) {
        Ok((op, _)) => match op {},
        Err(e) => e.into_response(),
    }
}

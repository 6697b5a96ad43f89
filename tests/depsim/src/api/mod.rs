//! The Device Assignment API on top of [`State`]: routing, the session check and
//! rotation around every handler. Everything here runs under the state lock and is
//! synchronous; delays and dropped connections are the server's business. One module per
//! group of endpoints: `session` (OAuth), `account`, `devices`, `profiles`.

mod account;
mod devices;
mod profiles;
mod request;
mod session;

use http::header::USER_AGENT;
use serde_json::json;

use mdm_core::dep::client::SESSION_HEADER;

use crate::config::UnknownSession;
use crate::state::State;

use request::protocol_version;
pub(crate) use request::query_param;
pub use request::{LATEST_PROTOCOL, ROUTES, Reply, Req, error_reply};

impl State {
    /// Answers one API request (faults already applied).
    pub fn handle(&mut self, req: &Req) -> Reply {
        self.stats.requests += 1;
        *self
            .stats
            .requests_by_path
            .entry(req.path.to_owned())
            .or_default() += 1;
        let reply = self.route(req);
        *self
            .stats
            .responses_by_status
            .entry(reply.status)
            .or_default() += 1;
        reply
    }

    /// Counts a request answered by a fault.
    pub fn count_faulted(&mut self, path: &str, status: Option<u16>) {
        self.stats.requests += 1;
        *self
            .stats
            .requests_by_path
            .entry(path.to_owned())
            .or_default() += 1;
        if let Some(status) = status {
            *self.stats.responses_by_status.entry(status).or_default() += 1;
        }
    }

    fn route(&mut self, req: &Req) -> Reply {
        let Some(&(_, methods)) = ROUTES.iter().find(|(p, _)| *p == req.path) else {
            return self.err(404, "NOT_FOUND");
        };
        if !methods.contains(&req.method.as_str()) {
            return self
                .err(405, "METHOD_NOT_ALLOWED")
                .header("Allow", methods.join(", "));
        }
        if self.cfg.require_user_agent {
            match req.headers.get(USER_AGENT).map(|v| v.to_str()) {
                None => return self.err(400, "USER_AGENT_MISSING"),
                Some(Ok(ua)) if ua.trim().is_empty() => {
                    return self.err(400, "USER_AGENT_MISSING");
                }
                Some(Err(_)) => return self.err(400, "USER_AGENT_INVALID"),
                Some(Ok(_)) => {}
            }
        }
        let version = protocol_version(req.headers);
        if req.path == "/session" {
            return self.session(req);
        }

        // The session.
        let token = req
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        let now = self.now_ms();
        match self.sessions.get(&token) {
            None => {
                return match self.cfg.unknown_session {
                    UnknownSession::Unauthorized => self.err(401, "UNAUTHORIZED"),
                    UnknownSession::Forbidden => self.err(403, "FORBIDDEN"),
                };
            }
            Some(s) if s.expires_at_ms <= now => {
                self.sessions.remove(&token);
                return self.err(401, "UNAUTHORIZED");
            }
            Some(_) => {}
        }
        let mut reply = if self.modes.terms_not_signed {
            self.err(403, "T_C_NOT_SIGNED")
        } else if self.modes.access_denied {
            self.err(403, "ACCESS_DENIED")
        } else {
            match (req.method.as_str(), req.path) {
                ("GET", "/account") => self.account(),
                ("POST", "/server/devices") => self.fetch(req, version),
                ("POST", "/devices/sync") => self.sync(req, version),
                ("POST", "/devices") => self.details(req, version),
                ("POST", "/devices/disown") => self.disown(req),
                ("POST", "/profile") => self.define_profile(req, version),
                ("GET", "/profile") => self.get_profile(req),
                ("POST" | "PUT", "/profile/devices") => self.assign(req, version),
                ("DELETE", "/profile/devices") => self.remove_profile(req),
                ("POST", "/device/activationlock") => self.activation_lock(req),
                ("POST", "/account-driven-enrollment/profile") => self.ade_profile(req),
                ("GET", "/os-beta-enrollment/tokens") => {
                    Reply::json(200, &json!({ "betaEnrollmentTokens": [] }))
                }
                _ => self.err(404, "NOT_FOUND"),
            }
        };

        // Rotation.
        let rotate_every = self.cfg.rotate_every.filter(|&n| n > 0);
        let lifetime = self.cfg.session_lifetime.as_millis() as u64;
        if let Some(session) = self.sessions.get_mut(&token) {
            session.requests += 1;
            if rotate_every.is_some_and(|n| session.requests % n == 0) {
                if !self.cfg.keep_rotated_sessions {
                    self.sessions.remove(&token);
                }
                let new = self.issue_session(now + lifetime);
                self.stats.sessions_rotated += 1;
                reply = reply.header(SESSION_HEADER, new);
            }
        }
        reply
    }
}

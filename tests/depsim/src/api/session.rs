//! `GET /session`: OAuth 1.0a HMAC-SHA1 checked as Apple checks it, and the session
//! tokens it issues (also on rotation).

use std::collections::BTreeMap;

use http::header::{AUTHORIZATION, HOST};
use serde_json::json;

use mdm_core::dep::oauth;

use super::request::{Reply, Req};
use crate::state::{Session, State};

impl State {
    pub(super) fn issue_session(&mut self, expires_at_ms: u64) -> String {
        let token = crate::servers::session_token(self.org);
        self.sessions.insert(
            token.clone(),
            Session {
                expires_at_ms,
                requests: 0,
            },
        );
        token
    }

    /// `GET /session`: OAuth 1.0a HMAC-SHA1 as Apple checks it.
    pub(super) fn session(&mut self, req: &Req) -> Reply {
        let reply = self.session_inner(req);
        if reply.status != 200 {
            self.stats.sessions_refused += 1;
        }
        reply
    }

    fn session_inner(&mut self, req: &Req) -> Reply {
        const KNOWN: [&str; 8] = [
            "realm",
            "oauth_consumer_key",
            "oauth_token",
            "oauth_signature_method",
            "oauth_timestamp",
            "oauth_nonce",
            "oauth_version",
            "oauth_signature",
        ];
        let missing = || "Missing required authorization parameter";
        let Some(header) = req.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return self.err(400, missing());
        };
        let Some(params) = oauth::parse_authorization(header) else {
            return self.err(400, missing());
        };
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, v) in &params {
            if !KNOWN.contains(&k.as_str()) {
                return self.err(400, "Unsupported oauth parameters");
            }
            if seen.insert(k, v).is_some() {
                return self.err(400, "Duplicated OAuth protocol parameter");
            }
        }
        match seen.get("oauth_signature_method") {
            None => return self.err(400, missing()),
            Some(&m) if m != oauth::SIGNATURE_METHOD => {
                return self.err(400, "Unsupported signature method");
            }
            Some(_) => {}
        }
        if seen
            .get("oauth_version")
            .is_some_and(|&v| v != oauth::VERSION)
        {
            return self.err(400, "Unsupported oauth parameters");
        }
        let required = [
            "oauth_consumer_key",
            "oauth_token",
            "oauth_timestamp",
            "oauth_nonce",
            "oauth_signature",
        ];
        if required.iter().any(|k| !seen.contains_key(k)) {
            return self.err(400, missing());
        }
        let creds = &self.cfg.credentials;
        if seen["oauth_consumer_key"] != creds.consumer_key {
            return self.err(401, "Unauthorized consumer key");
        }
        if seen["oauth_token"] != creds.access_token || self.modes.token_revoked {
            return self.err(401, "Invalid / expired token");
        }
        if let Some(skew) = self.cfg.max_clock_skew {
            let Ok(ts) = seen["oauth_timestamp"].parse::<u64>() else {
                return self.err(401, "Invalid timestamp");
            };
            if ts.abs_diff(self.now_secs()) > skew.as_secs() {
                return self.err(401, "Invalid timestamp");
            }
        }
        let path = match req.query {
            Some(q) => format!("{}?{q}", req.path),
            None => req.path.to_owned(),
        };
        let url = match &self.cfg.public_base_url {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => {
                let host = req
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("127.0.0.1");
                format!("http://{host}{path}")
            }
        };
        if !oauth::verify_authorization(
            header,
            "GET",
            &url,
            &creds.consumer_secret,
            &creds.access_secret,
        ) {
            return self.err(401, "Invalid signature");
        }
        let nonce = format!("{}\n{}", seen["oauth_consumer_key"], seen["oauth_nonce"]);
        if !self.nonces.insert(nonce) {
            return self.err(401, "Nonce used");
        }
        if self.modes.reject_sessions > 0 {
            self.modes.reject_sessions -= 1;
            return self.err(401, "UNAUTHORIZED");
        }
        if self.modes.terms_not_signed {
            return self.err(403, "T_C_NOT_SIGNED");
        }
        if self.modes.access_denied {
            return self.err(403, "ACCESS_DENIED");
        }
        let expires = self.now_ms() + self.cfg.session_lifetime.as_millis() as u64;
        let token = self.issue_session(expires);
        self.stats.sessions_issued += 1;
        Reply::json(200, &json!({ "auth_session_token": token }))
    }
}

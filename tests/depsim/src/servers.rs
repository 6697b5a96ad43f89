//! Several organisations (MDM servers in Apple Business Manager) on one simulator: the
//! registry, what they share (the clock), and which organisation a request is for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use mdm_core::dep::client::SESSION_HEADER;
use mdm_core::dep::oauth;

use crate::config::{ServerConfig, SimConfig};
use crate::control::SimControl;
use crate::state::State;

/// What [`SimControl::advance_time`] added to the system clock, in nanoseconds. One per
/// simulator: Apple has one clock, so moving it ages every organisation's sessions and
/// cursors alike.
#[derive(Debug, Clone, Default)]
pub(crate) struct SimClock(Arc<AtomicU64>);

impl SimClock {
    pub fn offset(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(by))
            });
    }
}

/// A new session token of organisation `org`. The token names its organisation so a
/// request finds it without a table shared by all organisations, which every expiry,
/// rotation and reset would have to keep in step. The default organisation's tokens
/// look as they always did (`sim_…`).
pub(crate) fn session_token(org: usize) -> String {
    let id = mdm_core::random::hex_id(24);
    match org {
        0 => format!("sim_{id}"),
        n => format!("sim{n}_{id}"),
    }
}

/// The organisation a session token names (it still has to know the token).
fn org_of_session(token: &str) -> Option<usize> {
    let (org, _) = token.strip_prefix("sim")?.split_once('_')?;
    if org.is_empty() {
        Some(0)
    } else {
        org.parse().ok()
    }
}

struct Entry {
    /// Copied out of the organisation's state so routing takes no organisation's lock.
    consumer_key: String,
    control: SimControl,
}

/// A simulator's organisations; index 0 is the one its [`SimConfig`] describes.
pub(crate) struct Orgs {
    /// What added organisations take everything but their own fields from.
    base: SimConfig,
    clock: SimClock,
    list: RwLock<Vec<Entry>>,
}

impl Orgs {
    pub fn new(config: SimConfig) -> Orgs {
        let clock = SimClock::default();
        let entry = Entry {
            consumer_key: config.credentials.consumer_key.clone(),
            control: SimControl {
                state: Arc::new(Mutex::new(State::in_org(config.clone(), 0, clock.clone()))),
            },
        };
        Orgs {
            base: config,
            clock,
            list: RwLock::new(vec![entry]),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<Entry>> {
        self.list.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn control_api(&self) -> bool {
        self.base.control_api
    }

    /// Adds an organisation at the next index. Refused when another organisation has
    /// its consumer key: `/session` finds an organisation by that key.
    pub fn add(&self, config: ServerConfig) -> Result<SimControl, String> {
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        let index = list.len();
        let cfg = config.resolve(&self.base, index);
        let consumer_key = cfg.credentials.consumer_key.clone();
        if list.iter().any(|e| e.consumer_key == consumer_key) {
            return Err(format!("consumer key {consumer_key:?} is taken"));
        }
        let control = SimControl {
            state: Arc::new(Mutex::new(State::in_org(cfg, index, self.clock.clone()))),
        };
        list.push(Entry {
            consumer_key,
            control: control.clone(),
        });
        Ok(control)
    }

    pub fn default_org(&self) -> SimControl {
        self.read()[0].control.clone()
    }

    pub fn get(&self, index: usize) -> Option<SimControl> {
        self.read().get(index).map(|e| e.control.clone())
    }

    pub fn all(&self) -> Vec<SimControl> {
        self.read().iter().map(|e| e.control.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// The organisation that answers (and counts, and applies faults to) a request:
    /// `/session` goes by the OAuth consumer key, everything else by the session token.
    /// What no organisation claims (unknown key, no or unknown session) is the default
    /// organisation's, so a simulator of one organisation behaves as it always did.
    pub fn route(&self, path: &str, headers: &HeaderMap) -> SimControl {
        let list = self.read();
        let found = if path == "/session" {
            let key = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(oauth::parse_authorization)
                .and_then(|params| {
                    params
                        .into_iter()
                        .find_map(|(k, v)| (k == "oauth_consumer_key").then_some(v))
                });
            key.and_then(|key| list.iter().position(|e| e.consumer_key == key))
        } else {
            headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|t| org_of_session(t.trim()))
        };
        let index = found.filter(|&i| i < list.len()).unwrap_or(0);
        list[index].control.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_name_their_organisation() {
        assert!(session_token(0).starts_with("sim_"));
        assert_eq!(org_of_session(&session_token(0)), Some(0));
        assert_eq!(org_of_session(&session_token(17)), Some(17));
        assert_eq!(org_of_session("simx_abc"), None);
        assert_eq!(org_of_session("other"), None);
    }
}

//! The subset of Spin's runtime-config file the local host understands:
//! `[key_value_store.<label>]` of type `spin` (SQLite), `[[client_tls]]`,
//! `[outbound_http]` and `[outbound_redis]`. Anything the host cannot honour is an error,
//! never silently ignored: a test must not pass against a configuration that was not
//! applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    key_value_store: BTreeMap<String, RawStore>,
    #[serde(default)]
    client_tls: Vec<RawClientTls>,
    #[serde(default)]
    outbound_http: Option<RawOutbound>,
    /// Accepted: it only limits connections.
    #[serde(default, rename = "outbound_redis")]
    _outbound_redis: Option<RawOutboundRedis>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutboundRedis {
    /// Accepted and not enforced, as `max_concurrent_requests`: a limit, not a behaviour.
    #[serde(default, rename = "max_connections")]
    _max_connections: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    path: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientTls {
    component_ids: Vec<String>,
    hosts: Vec<String>,
    client_cert_file: Option<String>,
    client_private_key_file: Option<String>,
    ca_roots_file: Option<String>,
    #[serde(default)]
    ca_use_webpki_roots: bool,
    #[serde(default)]
    ca_use_platform_roots: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    #[serde(default)]
    connection_pooling: Option<bool>,
    /// Accepted and not enforced: a limit, not a behaviour the app may rely on.
    #[serde(default, rename = "max_concurrent_requests")]
    _max_concurrent_requests: Option<u64>,
}

/// Where a key-value label keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ClientTls {
    pub component_ids: Vec<String>,
    pub hosts: Vec<String>,
    pub client_cert_file: Option<PathBuf>,
    pub client_private_key_file: Option<PathBuf>,
    pub ca_roots_file: Option<PathBuf>,
    /// Spin drops the public roots when `ca_roots_file` is set unless told to keep them.
    pub use_public_roots: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub stores: BTreeMap<String, StoreConfig>,
    pub client_tls: Vec<ClientTls>,
    /// `[outbound_http] connection_pooling` (Spin's default: on).
    pub connection_pooling: Option<bool>,
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> anyhow::Result<RuntimeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading runtime config {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, dir).with_context(|| format!("in runtime config {}", path.display()))
    }

    pub fn parse(text: &str, dir: &Path) -> anyhow::Result<RuntimeConfig> {
        let raw: Raw = toml::from_str(text)?;
        let mut stores = BTreeMap::new();
        for (label, s) in raw.key_value_store {
            match s.kind.as_str() {
                "spin" => {
                    if let Some(k) = s.rest.keys().next() {
                        bail!("key_value_store.{label}: unknown field {k:?}");
                    }
                    let path = s
                        .path
                        .with_context(|| format!("key_value_store.{label}: `path` is required"))?;
                    stores.insert(
                        label,
                        StoreConfig {
                            path: dir.join(path),
                        },
                    );
                }
                "redis" => bail!(
                    "key_value_store.{label}: type \"redis\" (Spin's Redis key-value backend) \
                     cannot do compare-and-swap and this app does not use it: set the \
                     redis_url variable instead (infra/README.md)"
                ),
                other => bail!(
                    "key_value_store.{label}: type {other:?} is not available in the local host \
                     (it serves SQLite, type \"spin\"); run `spin up` for {other:?}"
                ),
            }
        }
        let resolve = |p: Option<String>| p.map(|p| dir.join(p));
        let client_tls = raw
            .client_tls
            .into_iter()
            .map(|c| {
                if c.client_cert_file.is_some() != c.client_private_key_file.is_some() {
                    bail!("client_tls: client_cert_file and client_private_key_file go together");
                }
                if let Some(h) = c.hosts.iter().find(|h| h.contains(':') || h.contains('/')) {
                    bail!("client_tls: hosts are names only, without scheme or port: {h:?}");
                }
                Ok(ClientTls {
                    use_public_roots: c.ca_roots_file.is_none()
                        || c.ca_use_webpki_roots
                        || c.ca_use_platform_roots,
                    component_ids: c.component_ids,
                    hosts: c.hosts,
                    client_cert_file: resolve(c.client_cert_file),
                    client_private_key_file: resolve(c.client_private_key_file),
                    ca_roots_file: resolve(c.ca_roots_file),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let connection_pooling = raw.outbound_http.and_then(|o| o.connection_pooling);
        Ok(RuntimeConfig {
            stores,
            client_tls,
            connection_pooling,
        })
    }

    /// The TLS settings for a request from `component` to `host`.
    pub fn client_tls_for(&self, component: &str, host: &str) -> Option<&ClientTls> {
        self.client_tls.iter().find(|c| {
            c.component_ids.iter().any(|id| id == component)
                && c.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shipped_examples_it_supports() {
        let c = RuntimeConfig::parse(
            "[key_value_store.default]\ntype = \"spin\"\npath = \"../.spin/kv.db\"\n\
             [[client_tls]]\ncomponent_ids = [\"commands\"]\nhosts = [\"api.push.apple.com\"]\n\
             client_cert_file = \"c.pem\"\nclient_private_key_file = \"k.pem\"\nca_roots_file = \"ca.pem\"\n\
             [outbound_redis]\nmax_connections = 100\n",
            Path::new("/etc/app"),
        )
        .unwrap();
        assert_eq!(
            c.stores["default"].path,
            Path::new("/etc/app/../.spin/kv.db")
        );
        let tls = c.client_tls_for("commands", "API.push.apple.com").unwrap();
        assert!(!tls.use_public_roots);
        assert_eq!(
            tls.client_cert_file.as_deref(),
            Some(Path::new("/etc/app/c.pem"))
        );
        assert!(c.client_tls_for("admin", "api.push.apple.com").is_none());
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for text in [
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://x\"",
            "[key_value_store.default]\ntype = \"spin\"",
            "[[client_tls]]\ncomponent_ids = [\"a\"]\nhosts = [\"h:443\"]",
            "[[client_tls]]\ncomponent_ids = [\"a\"]\nhosts = [\"h\"]\nclient_cert_file = \"c\"",
            "[sqlite_database.default]\ntype = \"spin\"",
        ] {
            assert!(
                RuntimeConfig::parse(text, Path::new(".")).is_err(),
                "{text}"
            );
        }
    }
}

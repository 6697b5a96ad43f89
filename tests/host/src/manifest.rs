//! The parts of a Spin manifest (spin_manifest_version 2) the local host honours: HTTP
//! triggers, components (source, key-value stores, outbound hosts, variables) and
//! application variables. Anything else in the file is ignored, as `spin up` would
//! ignore what a trigger does not use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct RawManifest {
    spin_manifest_version: u32,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Debug, Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Debug, Deserialize)]
struct RawHttpTrigger {
    route: String,
    component: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Debug, Deserialize)]
struct RawComponent {
    source: String,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// An application variable as declared in `[variables]`.
#[derive(Debug, Clone)]
pub struct VariableDecl {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

#[derive(Debug, Clone)]
pub struct ComponentDecl {
    pub id: String,
    pub source: PathBuf,
    pub key_value_stores: Vec<String>,
    /// Unexpanded: entries may hold `{{ variable }}` templates.
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variable name → template over application variables.
    pub variables: BTreeMap<String, String>,
}

/// `route` is either exact (`/mdm/checkin`) or a prefix wildcard (`/api/v1/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Exact(String),
    Prefix(String),
}

impl Route {
    fn parse(route: &str) -> anyhow::Result<Route> {
        if !route.starts_with('/') {
            bail!("route {route:?} must start with '/'");
        }
        Ok(match route.strip_suffix("/...") {
            Some(prefix) => Route::Prefix(prefix.to_owned()),
            None if route == "/..." => Route::Prefix(String::new()),
            None => Route::Exact(route.trim_end_matches('/').to_owned()),
        })
    }

    /// How specific a match is; the longest prefix wins and an exact route beats any
    /// wildcard, as in Spin's router.
    fn matches(&self, path: &str) -> Option<(bool, usize)> {
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        match self {
            Route::Exact(r) => {
                (path == r || (r.is_empty() && path == "/")).then_some((true, r.len()))
            }
            Route::Prefix(p) => {
                let hit = path == p
                    || (path.starts_with(p.as_str()) && path[p.len()..].starts_with('/'))
                    || p.is_empty();
                hit.then_some((false, p.len()))
            }
        }
    }

    /// The route as written in the manifest (for `spin-matched-route`).
    pub fn as_manifest(&self) -> String {
        match self {
            Route::Exact(r) => r.clone(),
            Route::Prefix(p) => format!("{p}/..."),
        }
    }

    pub fn base(&self) -> &str {
        match self {
            Route::Exact(r) | Route::Prefix(r) => r,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub dir: PathBuf,
    pub variables: BTreeMap<String, VariableDecl>,
    pub components: BTreeMap<String, ComponentDecl>,
    pub routes: Vec<(Route, String)>,
}

impl Manifest {
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &dir).with_context(|| format!("in manifest {}", path.display()))
    }

    pub fn parse(text: &str, dir: &Path) -> anyhow::Result<Manifest> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.spin_manifest_version != 2 {
            bail!(
                "spin_manifest_version {} is not supported (only 2)",
                raw.spin_manifest_version
            );
        }
        let variables = raw
            .variables
            .into_iter()
            .map(|(name, v)| {
                check_variable_name(&name)?;
                if v.required && v.default.is_some() {
                    bail!("variable {name:?} cannot be both required and have a default");
                }
                Ok((
                    name,
                    VariableDecl {
                        default: v.default,
                        required: v.required,
                        secret: v.secret,
                    },
                ))
            })
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        let mut components = BTreeMap::new();
        for (id, c) in raw.component {
            for name in c.variables.keys() {
                check_variable_name(name).with_context(|| format!("component {id:?}"))?;
            }
            components.insert(
                id.clone(),
                ComponentDecl {
                    source: dir.join(&c.source),
                    id,
                    key_value_stores: c.key_value_stores,
                    allowed_outbound_hosts: c.allowed_outbound_hosts,
                    variables: c.variables,
                },
            );
        }
        let mut routes = Vec::new();
        for t in raw.trigger.http {
            if !components.contains_key(&t.component) {
                bail!(
                    "route {} names unknown component {:?}",
                    t.route,
                    t.component
                );
            }
            let route = Route::parse(&t.route)?;
            if routes.iter().any(|(r, _)| *r == route) {
                bail!("route {} is declared twice", t.route);
            }
            routes.push((route, t.component));
        }
        Ok(Manifest {
            dir: dir.to_path_buf(),
            variables,
            components,
            routes,
        })
    }

    /// The component serving `path`, with the route that matched.
    pub fn route(&self, path: &str) -> Option<(&Route, &str)> {
        self.routes
            .iter()
            .filter_map(|(r, c)| r.matches(path).map(|score| (score, r, c)))
            .max_by_key(|(score, _, _)| *score)
            .map(|(_, r, c)| (r, c.as_str()))
    }
}

/// Spin's rule: lower-case ASCII letters, digits and underscores, starting with a letter.
pub fn check_variable_name(name: &str) -> anyhow::Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!("invalid variable name {name:?}: use lower-case letters, digits and '_'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_prefer_exact_then_longest_prefix() {
        let m = Manifest::parse(
            r#"
spin_manifest_version = 2
[[trigger.http]]
route = "/..."
component = "a"
[[trigger.http]]
route = "/mdm/..."
component = "b"
[[trigger.http]]
route = "/mdm/checkin"
component = "c"
[component.a]
source = "a.wasm"
[component.b]
source = "b.wasm"
[component.c]
source = "c.wasm"
"#,
            Path::new("/app"),
        )
        .unwrap();
        assert_eq!(m.route("/mdm/checkin").unwrap().1, "c");
        assert_eq!(m.route("/mdm/checkin/").unwrap().1, "c");
        assert_eq!(m.route("/mdm/checkinx").unwrap().1, "b");
        assert_eq!(m.route("/mdm").unwrap().1, "b");
        assert_eq!(m.route("/mdmx").unwrap().1, "a");
        assert_eq!(m.route("/").unwrap().1, "a");
        assert_eq!(m.components["a"].source, Path::new("/app/a.wasm"));
    }

    #[test]
    fn bad_manifests_are_refused() {
        let bad = [
            "spin_manifest_version = 1",
            "spin_manifest_version = 2\n[[trigger.http]]\nroute = \"/x\"\ncomponent = \"nope\"",
            "spin_manifest_version = 2\n[variables]\nBad = { default = \"x\" }",
            "spin_manifest_version = 2\n[variables]\nx = { default = \"x\", required = true }",
        ];
        for text in bad {
            assert!(Manifest::parse(text, Path::new(".")).is_err(), "{text}");
        }
    }
}

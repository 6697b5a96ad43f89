//! Named contexts (server and API token) in a file under the user's config directory,
//! like kubectl's: read, written with 0600 permissions, and the server and token a run
//! uses, chosen from flags, environment and the current context.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::error::CliError;

/// An API token. Never printed: its `Debug` hides it and it has no `Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into().trim().to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Context {
    pub name: String,
    pub server: String,
    /// The token itself (`--token`), or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// a file holding it, read at each run (`--token-file`): the token stays out of here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// PEM certificates to trust instead of the public roots (a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

impl Context {
    /// How the token is kept, for `get-contexts` (never the token).
    pub fn token_source(&self) -> String {
        match (&self.token, &self.token_file) {
            (Some(_), _) => "(set)".to_owned(),
            (None, Some(f)) => format!("file {}", f.display()),
            (None, None) => "(none)".to_owned(),
        }
    }
}

/// `MDMCTL_CONFIG`, else `<config dir>/mdmctl/config.yaml`.
pub fn path(flag: Option<&Path>, env: &Env) -> Result<PathBuf, CliError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env.get("MDMCTL_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    dirs::config_dir()
        .map(|d| d.join("mdmctl").join("config.yaml"))
        .ok_or_else(|| CliError::local("no config directory: set MDMCTL_CONFIG or use --config"))
}

/// The file's contexts; none when it does not exist yet.
pub fn load(path: &Path) -> Result<Config, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => return Err(CliError::local(format!("{}: {e}", path.display()))),
    };
    serde_yaml_ng::from_str(&text).map_err(|e| CliError::local(format!("{}: {e}", path.display())))
}

/// Writes the file readable by its owner only (a new file, then renamed over the old).
pub fn save(path: &Path, config: &Config) -> Result<(), CliError> {
    let fail = |e: std::io::Error| CliError::local(format!("{}: {e}", path.display()));
    let text = serde_yaml_ng::to_string(config)
        .map_err(|e| CliError::local(format!("serialising the config: {e}")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("yaml.tmp");
    write_private(&tmp, text.as_bytes()).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies to new files only.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Where a run connects to and with what.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: String,
    pub token: Secret,
    pub ca_cert: Option<PathBuf>,
}

/// What the global flags say about the connection.
#[derive(Debug, Clone, Default)]
pub struct ConnFlags {
    pub server: Option<String>,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub context: Option<String>,
    pub ca_cert: Option<PathBuf>,
}

pub fn read_token_file(path: &Path) -> Result<Secret, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::local(format!("token file {}: {e}", path.display())))?;
    let token = Secret::new(text);
    if token.expose().is_empty() {
        return Err(CliError::local(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}

/// `http(s)://host[:port][/prefix]` without a trailing slash.
pub fn normalise_server(url: &str) -> Result<String, CliError> {
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.contains(char::is_whitespace)
    {
        return Err(CliError::local(format!(
            "server {url:?} is not an http:// or https:// URL"
        )));
    }
    Ok(url.to_owned())
}

/// Each part from the first that gives it: flags, then `MDM_SERVER` / `MDM_TOKEN`, then
/// the context (`--context`, `MDM_CONTEXT`, else the current one).
pub fn resolve(flags: &ConnFlags, env: &Env, config: &Config) -> Result<Target, CliError> {
    let wanted = flags
        .context
        .as_deref()
        .or(env.get("MDM_CONTEXT"))
        .map(str::to_owned);
    let context = match &wanted {
        Some(name) => Some(
            config
                .contexts
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| {
                    CliError::local(format!("no context {name:?} (mdmctl config get-contexts)"))
                })?,
        ),
        None => config
            .current_context
            .as_ref()
            .and_then(|n| config.contexts.iter().find(|c| &c.name == n)),
    };
    let server = flags
        .server
        .clone()
        .or_else(|| env.get("MDM_SERVER").map(str::to_owned))
        .or_else(|| context.map(|c| c.server.clone()))
        .ok_or_else(|| {
            CliError::local(
                "no server: give --server URL, set MDM_SERVER, or add a context \
                 (mdmctl config set-context NAME --server URL --token-file FILE)",
            )
        })?;
    let token = if let Some(t) = &flags.token {
        t.clone()
    } else if let Some(f) = &flags.token_file {
        read_token_file(f)?
    } else if let Some(t) = env.get("MDM_TOKEN") {
        Secret::new(t)
    } else if let Some(c) = context {
        match (&c.token, &c.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => read_token_file(f)?,
            (None, None) => {
                return Err(CliError::local(format!(
                    "context {:?} has no token: mdmctl config set-context {} --token-file FILE",
                    c.name, c.name
                )));
            }
        }
    } else {
        return Err(CliError::local(
            "no API token: give --token-file FILE, set MDM_TOKEN, or add a context",
        ));
    };
    Ok(Target {
        server: normalise_server(&server)?,
        token,
        ca_cert: flags
            .ca_cert
            .clone()
            .or_else(|| context.and_then(|c| c.ca_cert.clone())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            current_context: Some("prod".into()),
            contexts: vec![Context {
                name: "prod".into(),
                server: "https://mdm.example.com/".into(),
                token: Some(Secret::new("prod-token")),
                token_file: None,
                ca_cert: None,
            }],
        }
    }

    #[test]
    fn flags_then_environment_then_context() {
        let c = config();
        let t = resolve(&ConnFlags::default(), &Env::new(), &c).unwrap();
        assert_eq!(t.server, "https://mdm.example.com");
        assert_eq!(t.token.expose(), "prod-token");
        let env = Env::new()
            .var("MDM_SERVER", "http://127.0.0.1:3000")
            .var("MDM_TOKEN", "env");
        let t = resolve(&ConnFlags::default(), &env, &c).unwrap();
        assert_eq!(
            (t.server.as_str(), t.token.expose()),
            ("http://127.0.0.1:3000", "env")
        );
        let flags = ConnFlags {
            token: Some(Secret::new("flag")),
            ..Default::default()
        };
        assert_eq!(resolve(&flags, &env, &c).unwrap().token.expose(), "flag");
        let missing = ConnFlags {
            context: Some("staging".into()),
            ..Default::default()
        };
        assert!(resolve(&missing, &Env::new(), &c).is_err());
        assert!(resolve(&ConnFlags::default(), &Env::new(), &Config::default()).is_err());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = config();
        assert!(!format!("{c:?}").contains("prod-token"));
        let t = resolve(&ConnFlags::default(), &Env::new(), &c).unwrap();
        assert!(!format!("{t:?}").contains("prod-token"));
    }

    #[cfg(unix)]
    #[test]
    fn written_for_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mdmctl-config-{}", std::process::id()));
        let path = dir.join("sub/config.yaml");
        save(&path, &config()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = load(&path).unwrap();
        assert_eq!(
            back.contexts[0].token.as_ref().unwrap().expose(),
            "prod-token"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

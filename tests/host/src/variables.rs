//! Application variables as Spin resolves them: `--variable name=value` first, then the
//! `SPIN_VARIABLE_<NAME>` environment variable, then the manifest default. A required
//! variable with no value stops the host at start-up, as it stops `spin up`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

use crate::manifest::{Manifest, check_variable_name};

/// Resolved application variables.
#[derive(Clone, Default)]
pub struct Resolved(BTreeMap<String, String>);

impl std::fmt::Debug for Resolved {
    // Values may be secrets: only the names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Resolved {
    pub fn resolve(
        manifest: &Manifest,
        explicit: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Resolved> {
        for (name, _) in explicit {
            check_variable_name(name)?;
            if !manifest.variables.contains_key(name) {
                bail!("variable {name:?} is not declared in the manifest's [variables]");
            }
        }
        let mut out = BTreeMap::new();
        for (name, decl) in &manifest.variables {
            let value = explicit
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())))
                .or_else(|| decl.default.clone());
            match value {
                Some(v) => {
                    out.insert(name.clone(), v);
                }
                None if decl.required => bail!(
                    "required variable {name:?} has no value: set SPIN_VARIABLE_{} or pass --variable {name}=...",
                    name.to_ascii_uppercase()
                ),
                None => {}
            }
        }
        Ok(Resolved(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Expands `{{ name }}` references in a manifest template.
    pub fn expand(&self, template: &str) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .with_context(|| format!("unclosed '{{{{' in {template:?}"))?;
            let name = after[..end].trim();
            check_variable_name(name)?;
            let value = self.get(name).with_context(|| {
                format!("template {template:?} uses variable {name:?}, which has no value")
            })?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
spin_manifest_version = 2
[variables]
a = { default = "from-default" }
b = { required = true, secret = true }
c = { default = "c" }
"#,
            Path::new("."),
        )
        .unwrap()
    }

    #[test]
    fn precedence_is_flag_then_env_then_default() {
        let m = manifest();
        let env = |n: &str| match n {
            "SPIN_VARIABLE_B" => Some("env-b".to_owned()),
            "SPIN_VARIABLE_C" => Some("env-c".to_owned()),
            _ => None,
        };
        let r = Resolved::resolve(&m, &[("c".into(), "flag-c".into())], env).unwrap();
        assert_eq!(r.get("a"), Some("from-default"));
        assert_eq!(r.get("b"), Some("env-b"));
        assert_eq!(r.get("c"), Some("flag-c"));
        assert_eq!(r.expand("x{{ a }}y{{b}}").unwrap(), "xfrom-defaultyenv-b");
        assert!(r.expand("{{ nope }}").is_err());
        assert!(r.expand("{{ a ").is_err());
        assert!(!format!("{r:?}").contains("env-b"));
    }

    #[test]
    fn missing_required_and_undeclared_are_errors() {
        let m = manifest();
        let err = Resolved::resolve(&m, &[], |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"b\""), "{err}");
        assert!(Resolved::resolve(&m, &[("zz".into(), "1".into())], |_| Some("x".into())).is_err());
    }
}

//! Which admin routes the CLI calls: every call names its route by the pattern of the
//! server's table (`mdm_core::routes::admin::ROUTES`), and a test keeps this list and that table
//! in step, so a route added to the server without a command here fails the tests.

/// (method, pattern) of every route a command calls.
#[rustfmt::skip]
pub const COVERED: &[(&str, &str)] = &[
    ("GET", "/api/v1/health"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/diagnostics/kv"),
    ("POST", "/api/v1/diagnostics/kv/contention"),
    ("GET", "/api/v1/diagnostics/kv/contention/{run}"),
    ("DELETE", "/api/v1/diagnostics/kv/contention/{run}"),
    ("POST", "/api/v1/diagnostics/kv/contention/{run}/work"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/tokens/{token}"),
    ("PATCH", "/api/v1/tokens/{token}"),
    ("DELETE", "/api/v1/tokens/{token}"),
    ("GET", "/api/v1/tokens/{token}/public-key"),
    ("PUT", "/api/v1/tokens/{token}/server-token"),
    ("POST", "/api/v1/tokens/{token}/rotate-key"),
    ("POST", "/api/v1/tokens/{token}/sync"),
    ("GET", "/api/v1/tokens/{token}/sync"),
    ("GET", "/api/v1/tokens/{token}/profiles"),
    ("POST", "/api/v1/tokens/{token}/profiles"),
    ("GET", "/api/v1/tokens/{token}/profiles/{profile}"),
    ("PUT", "/api/v1/tokens/{token}/profiles/{profile}"),
    ("DELETE", "/api/v1/tokens/{token}/profiles/{profile}"),
    ("POST", "/api/v1/tokens/{token}/profiles/{profile}/devices"),
    ("POST", "/api/v1/tokens/{token}/unassign"),
    ("GET", "/api/v1/tokens/{token}/default-profile"),
    ("PUT", "/api/v1/tokens/{token}/default-profile"),
    ("GET", "/api/v1/tokens/{token}/assignment-rules"),
    ("PUT", "/api/v1/tokens/{token}/assignment-rules"),
    ("POST", "/api/v1/tokens/{token}/assignment-rules/dry-run"),
    ("GET", "/api/v1/tokens/{token}/devices"),
    ("GET", "/api/v1/tokens/{token}/devices/{serial}"),
    ("DELETE", "/api/v1/tokens/{token}/devices/{serial}"),
    ("GET", "/api/v1/devices"),
    ("GET", "/api/v1/devices/{device}"),
    ("DELETE", "/api/v1/devices/{device}"),
    ("POST", "/api/v1/devices/{device}/commands"),
    ("GET", "/api/v1/devices/{device}/commands"),
    ("GET", "/api/v1/devices/{device}/commands/{uuid}"),
    ("DELETE", "/api/v1/devices/{device}/commands/{uuid}"),
    ("POST", "/api/v1/commands"),
    ("GET", "/api/v1/devices/{device}/logs"),
    ("POST", "/api/v1/devices/{device}/actions/{action}"),
    ("POST", "/api/v1/enrollment/challenges"),
    ("POST", "/api/v1/devices/{device}/push"),
    ("GET", "/api/v1/devices/{device}/push"),
    ("GET", "/api/v1/push/certificate"),
    ("PUT", "/api/v1/push/certificate"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/{user}"),
    ("PATCH", "/api/v1/users/{user}"),
    ("DELETE", "/api/v1/users/{user}"),
    ("GET", "/api/v1/groups"),
    ("POST", "/api/v1/groups"),
    ("GET", "/api/v1/groups/{group}"),
    ("PATCH", "/api/v1/groups/{group}"),
    ("DELETE", "/api/v1/groups/{group}"),
];

pub fn is_covered(method: &str, pattern: &str) -> bool {
    COVERED.iter().any(|(m, p)| *m == method && *p == pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_admin_route_has_a_command_and_every_command_a_route() {
        let server: Vec<(&str, &str)> = mdm_core::routes::admin::ROUTES
            .iter()
            .map(|(m, p, _)| (*m, *p))
            .collect();
        let missing: Vec<_> = server.iter().filter(|r| !COVERED.contains(r)).collect();
        assert!(missing.is_empty(), "routes without a command: {missing:?}");
        let unknown: Vec<_> = COVERED.iter().filter(|r| !server.contains(r)).collect();
        assert!(
            unknown.is_empty(),
            "commands for routes the server lacks: {unknown:?}"
        );
    }

    /// Every route pattern written in the commands is one of [`COVERED`] (calls check
    /// their method too, in debug builds).
    #[test]
    fn every_pattern_in_the_source_is_a_route() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut seen = 0;
        for f in files.iter().filter(|f| !f.ends_with("routes.rs")) {
            let text = std::fs::read_to_string(f).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap();
            for (i, _) in text.match_indices("\"/api/v1/") {
                let pattern = text[i + 1..].split('"').next().unwrap();
                assert!(
                    COVERED.iter().any(|(_, p)| *p == pattern),
                    "{}: {pattern} is not a route",
                    f.display()
                );
                seen += 1;
            }
        }
        assert!(seen > 30, "found only {seen} patterns");
    }
}

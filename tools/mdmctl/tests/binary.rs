//! The built `mdmctl` binary as a shell runs it: exit codes, the environment for the
//! connection, a token that never shows. (With a server: `tests/e2e/tests/mdmctl.rs`.)
//! Having this test also makes `cargo test` build the binary the end-to-end test runs.

use std::process::{Command, Output};

fn mdmctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mdmctl"));
    c.args(args)
        .env_remove("MDM_SERVER")
        .env_remove("MDM_TOKEN")
        .env_remove("MDM_CONTEXT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("mdmctl runs")
}

#[test]
fn exit_codes_and_environment() {
    let dir = std::env::temp_dir().join(format!("mdmctl-binary-{}", std::process::id()));
    let config = dir.join("config.yaml").display().to_string();
    let out = mdmctl(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("mdmctl "));
    let out = mdmctl(&[], &[("MDMCTL_CONFIG", &config)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
    let out = mdmctl(&["health"], &[("MDMCTL_CONFIG", &config)]);
    assert_eq!(out.status.code(), Some(1), "no server configured");

    let env = [
        ("MDMCTL_CONFIG", config.as_str()),
        ("MDM_SERVER", "http://127.0.0.1:1"),
        ("MDM_TOKEN", "binary-secret-token"),
    ];
    for format in ["table", "json"] {
        let out = mdmctl(&["devices", "list", "-o", format], &env);
        assert_eq!(out.status.code(), Some(3), "unreachable");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("127.0.0.1:1") && !text.contains("binary-secret-token"),
            "{text}"
        );
    }
    let out = mdmctl(&["completion", "fish"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

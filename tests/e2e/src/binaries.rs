//! The workspace's built binaries, beside the test executables (`<target>/debug`), for
//! tests that run them as processes.

use std::path::{Path, PathBuf};

/// `<target>/debug` (or the profile the tests were built with): the directory above the
/// test executable's `deps`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("target profile directory")
        .to_path_buf()
}

/// The cargo target directory the tests were built in.
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("target directory")
        .to_path_buf()
}

/// Binary `bin` of workspace package `package`, built now when a narrower test run did
/// not build it (`cargo test --workspace` and scripts/test.sh do).
pub fn built(package: &str, bin: &str) -> PathBuf {
    let path = profile_dir().join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = std::process::Command::new(cargo)
            .args(["build", "-p", package, "--bin", bin])
            .current_dir(crate::workspace_root())
            .status()
            .expect("cargo runs");
        assert!(st.success(), "building {bin}");
    }
    path
}

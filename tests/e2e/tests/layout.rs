//! The shape of the source tree (docs/architecture.md): dependencies point one way, so no
//! set of files imports itself in a circle (`./scripts/import-circles.sh` prints what to
//! cut when this fails); and no hand-written file, code or test, is over 600 lines.

use std::path::{Path, PathBuf};

use mdm_e2e::imports;

/// Circles accepted for now: none. Kept so that a circle taken apart in steps can be
/// listed while the work is under way; the list may only shrink (a listed circle that no
/// longer exists fails too).
const KNOWN: &[&[&str]] = &[];

#[test]
fn no_new_import_circle() {
    let root = mdm_e2e::workspace_root();
    let found = imports::circles(&root);
    let mut report = String::new();
    for (krate, files) in &found {
        if !KNOWN
            .iter()
            .any(|k| k.len() == files.len() && k.iter().all(|f| files.contains(&f.to_string())))
        {
            report.push_str(&format!("new import circle in {krate}:\n"));
            for (from, to) in imports::circle_edges(&root, files) {
                report.push_str(&format!("  {from} -> {to}\n"));
            }
        }
    }
    for k in KNOWN {
        if !found.iter().any(|(_, files)| {
            files.len() == k.len() && k.iter().all(|f| files.contains(&f.to_string()))
        }) {
            report.push_str(&format!("circle {k:?} is gone or changed: update KNOWN\n"));
        }
    }
    assert!(report.is_empty(), "{report}");
}

/// Hand-written source files may not pass this many lines: past it a file holds two
/// concerns (DEVELOPERS.md). Generated files (marked `@generated` or "generated from" in
/// their first lines) are exempt.
const MAX_LINES: usize = 600;

/// Source files over the limit while they are being split; the list may only shrink (a
/// listed file that is now short enough, or gone, fails too, so the entry is removed).
const KNOWN_LONG: &[&str] = &[];

/// Test files (the crates' `tests/` folders) over the limit while they are being split;
/// the list may only shrink, like [`KNOWN_LONG`].
const KNOWN_LONG_TESTS: &[&str] = &[];

/// The `.rs` files under `dir`; `tests` folders are left out unless `with_tests` (test
/// files are checked separately from the code they test).
fn rust_files(dir: &Path, with_tests: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "target" && (with_tests || name != "tests") && !name.starts_with('.') {
                rust_files(&p, with_tests, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// The hand-written code: `shared/`, `functions/`, `tools/` and the test kit's own `src/`
/// folders, without the crates' `tests/`.
fn source_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for top in ["shared", "functions", "tools"] {
        rust_files(&root.join(top), false, &mut files);
    }
    for kit in std::fs::read_dir(root.join("tests")).unwrap().flatten() {
        rust_files(&kit.path().join("src"), false, &mut files);
    }
    files
}

/// What is wrong with `files` against the limit and `known` (the files allowed over it).
fn long_files(root: &Path, files: &[PathBuf], known: &[&str]) -> String {
    let mut report = String::new();
    let mut long = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        let head: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
        if head.contains("@generated") || head.contains("generated from") {
            continue;
        }
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let n = text.lines().count();
        if n > MAX_LINES {
            long.push(rel.clone());
            if !known.contains(&rel.as_str()) {
                report.push_str(&format!("{rel}: {n} lines (split it by concern)\n"));
            }
        }
    }
    for k in known {
        if !long.iter().any(|l| l == k) {
            report.push_str(&format!(
                "{k} is no longer over {MAX_LINES} lines: remove it from its KNOWN_LONG list\n"
            ));
        }
    }
    report
}

/// The folders that hold crates (`shared/*`, `functions/*`, `tools/*`, and the test kit's
/// `tests/*`).
fn crates(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for top in ["shared", "functions", "tools", "tests"] {
        for e in std::fs::read_dir(root.join(top)).unwrap().flatten() {
            if e.path().join("Cargo.toml").is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn no_hand_written_source_file_is_over_600_lines() {
    let root = mdm_e2e::workspace_root();
    let files = source_files(&root);
    let report = long_files(&root, &files, KNOWN_LONG);
    assert!(
        files.len() > 100,
        "the walk found only {} files",
        files.len()
    );
    assert!(report.is_empty(), "{report}");
}

/// Tests are held to the same limit: every crate's `tests/` folder (each file directly in
/// it is a test binary; a longer one becomes `tests/<name>/main.rs` with a module per
/// concern, still one binary), support modules included.
#[test]
fn no_hand_written_test_file_is_over_600_lines() {
    let root = mdm_e2e::workspace_root();
    let mut files = Vec::new();
    for krate in crates(&root) {
        rust_files(&krate.join("tests"), true, &mut files);
    }
    let report = long_files(&root, &files, KNOWN_LONG_TESTS);
    assert!(
        files.len() > 100,
        "the walk found only {} test files",
        files.len()
    );
    assert!(report.is_empty(), "{report}");
}

/// Every hand-written source file opens with a line saying what it owns (a `//!` module
/// doc, or `//` in a build script); a generated one with its `@generated` mark.
#[test]
fn every_source_file_opens_with_what_it_owns() {
    let root = mdm_e2e::workspace_root();
    let files = source_files(&root);
    let mut report = String::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let first = text.lines().next().unwrap_or("");
        if !(first.starts_with("//!") || first.starts_with("// @generated")) {
            report.push_str(&format!(
                "{}: opens with {first:?}, not a line saying what it owns\n",
                f.strip_prefix(&root).unwrap().display()
            ));
        }
    }
    assert!(
        files.len() > 100,
        "the walk found only {} files",
        files.len()
    );
    assert!(report.is_empty(), "{report}");
}

//! The shape of the source tree (docs/architecture.md): dependencies point one way, so no
//! set of files imports itself in a circle. `./scripts/import-circles.sh` prints what to
//! cut when this fails.

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

/// Files over the limit while they are being split; the list may only shrink (a listed
/// file that is now short enough, or gone, fails too, so the entry is removed).
const KNOWN_LONG: &[&str] = &[];

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            // Test files are checked separately from the code they test.
            if name != "target" && name != "tests" && !name.starts_with('.') {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_hand_written_source_file_is_over_600_lines() {
    let root = mdm_e2e::workspace_root();
    let mut files = Vec::new();
    for top in ["shared", "functions", "tools"] {
        rust_files(&root.join(top), &mut files);
    }
    // The test kit's own code (its src/ folders) counts too.
    for kit in std::fs::read_dir(root.join("tests")).unwrap().flatten() {
        rust_files(&kit.path().join("src"), &mut files);
    }
    let mut report = String::new();
    let mut long = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let head: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
        if head.contains("@generated") || head.contains("generated from") {
            continue;
        }
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let n = text.lines().count();
        if n > MAX_LINES {
            long.push(rel.clone());
            if !KNOWN_LONG.contains(&rel.as_str()) {
                report.push_str(&format!("{rel}: {n} lines (split it by concern)\n"));
            }
        }
    }
    for k in KNOWN_LONG {
        if !long.iter().any(|l| l == k) {
            report.push_str(&format!(
                "{k} is no longer over {MAX_LINES} lines: remove it from KNOWN_LONG\n"
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

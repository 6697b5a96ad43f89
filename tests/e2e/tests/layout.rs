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

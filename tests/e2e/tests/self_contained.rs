//! The repository stands on its own: no source, script, config or document reads or cites a
//! path outside the checkout (a fresh `git clone` must build and pass its tests).

use std::path::{Component, Path, PathBuf};

use mdm_e2e::workspace_root;

/// Directories that are build output, local state or version control, not the project.
const SKIPPED_DIRS: &[&str] = &["target", ".git", ".spin", "node_modules", "__pycache__"];

/// Text files worth reading (sources, scripts, manifests, docs).
const TEXT_EXTENSIONS: &[&str] = &[
    "rs", "sh", "toml", "md", "yaml", "yml", "json", "py", "txt", "cfg", "conf", "env",
];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                walk(&path, out);
            }
        } else if kind.is_file() {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if TEXT_EXTENSIONS.contains(&ext) || name == "run" {
                out.push(path);
            }
        }
    }
}

/// `base/rel` with `.` and `..` folded lexically; `None` when it climbs above `root`.
fn resolve(root: &Path, base: &Path, rel: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = base
        .strip_prefix(root)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for c in Path::new(rel).components() {
        match c {
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    Some(parts.iter().fold(root.to_path_buf(), |p, s| p.join(s)))
}

/// The nearest directory at or above `file` holding a Cargo.toml (what `CARGO_MANIFEST_DIR`
/// is for Rust sources), else the file's own directory.
fn crate_dir(root: &Path, file: &Path) -> PathBuf {
    let mut dir = file.parent().unwrap().to_path_buf();
    while dir.starts_with(root) {
        if dir.join("Cargo.toml").exists() {
            return dir;
        }
        if !dir.pop() {
            break;
        }
    }
    file.parent().unwrap().to_path_buf()
}

/// Each relative path in `text` that starts by climbing (`../`), cut where a placeholder
/// (`{`, `$`, `*`) or the end of the token begins.
fn climbing_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("../") {
        let start = i + at;
        // Only where a path begins: not in the middle of a longer token like `a../`.
        let begins = start == 0
            || matches!(
                bytes[start - 1],
                b'/' | b'"' | b'\'' | b'`' | b' ' | b'(' | b'=' | b'\n' | b'\t' | b'<'
            );
        let mut end = start;
        while end < bytes.len()
            && !matches!(
                bytes[end],
                b'"' | b'\''
                    | b'`'
                    | b' '
                    | b')'
                    | b'\n'
                    | b'\t'
                    | b','
                    | b';'
                    | b'>'
                    | b'{'
                    | b'$'
                    | b'*'
                    | b'#'
                    | b'|'
                    | b']'
            )
        {
            end += 1;
        }
        if begins {
            let path = text[start..end].trim_end_matches(['.', ':', '\\']);
            found.push(path.to_owned());
        }
        i = end.max(start + 3);
    }
    found
}

/// Folders of the team's machines that sit beside the project, never inside it. Put
/// together at run time, so that this file names none of them itself and is checked
/// like every other.
fn outside_names() -> Vec<String> {
    let beside = [
        "spec",
        "test-vectors",
        "apple-device-management",
        "peers",
        "hooks",
    ]
    .map(|folder| format!("{}/{folder}", "shared"));
    let mut names = beside.to_vec();
    names.push(format!("/{}/", "work"));
    names
}

#[test]
fn nothing_reads_or_cites_a_path_outside_the_repository() {
    let root = workspace_root();
    let outside = outside_names();
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(files.len() > 100, "walked only {} files", files.len());
    let mut problems = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        for name in &outside {
            if let Some(at) = text.find(name.as_str()) {
                let line = text[..at].lines().count().max(1);
                problems.push(format!(
                    "{shown}:{line}: names `{name}`, which is outside the repository"
                ));
            }
        }
        let bases = [file.parent().unwrap().to_path_buf(), crate_dir(&root, file)];
        for rel in climbing_paths(&text) {
            // Inside the tree and either there, or in a directory made at run time
            // (a `.spin/` state directory, `target/`).
            let inside = bases
                .iter()
                .filter_map(|base| resolve(&root, base, &rel))
                .any(|p| {
                    let generated = p.strip_prefix(&root).is_ok_and(|r| {
                        r.components()
                            .any(|c| SKIPPED_DIRS.contains(&&*c.as_os_str().to_string_lossy()))
                    });
                    p.exists() || generated
                });
            if !inside {
                problems.push(format!(
                    "{shown}: `{rel}` leaves the repository or names nothing in it"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "paths outside the repository:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_path_scanner_finds_what_it_must() {
    let root = workspace_root();
    // The sample paths are put together here, so that the scan of this file does not
    // find them.
    let up = |n: usize| "..".repeat(n).replace("..", "../");
    let (far, near) = (
        format!("{}elsewhere/vectors/", up(3)),
        format!("{}a/b.plist", up(2)),
    );
    let found = climbing_paths(&format!(r#"x = "{{}}/{far}{{name}}"; cp {near} c"#));
    assert_eq!(found, [far.as_str(), near.as_str()]);
    let core = root.join("shared/core");
    assert!(resolve(&root, &core, &far).is_none());
    let vectors = format!("{}tests/vectors/", up(2));
    assert!(resolve(&root, &core, &vectors).unwrap().exists());
}

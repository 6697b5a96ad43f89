//! Stored records live in one house (docs/architecture.md): the core turns store values
//! into records only through `record::Record`, so no file of `shared/core/src` hand-rolls
//! JSON, except where it reads or writes something that is not a store value.

/// The files allowed to call serde_json's byte/string (de)serialisers, and why.
const ALLOWED: &[(&str, &str)] = &[
    (
        "record.rs",
        "the default encoding of every record, and partial views of one",
    ),
    (
        "record_tests.rs",
        "tests that check the bytes a record is stored as",
    ),
    ("api.rs", "admin API request bodies and answers"),
    ("api_error.rs", "its tests, which read the error answers"),
    ("enroll/mod.rs", "enrollment error answers"),
    ("dep/client.rs", "Apple's OAuth answer and request bodies"),
    ("dep/wire.rs", "Apple's error bodies"),
    (
        "dep/apple.rs",
        "the OAuth secrets inside a sealed field of the token record",
    ),
    (
        "dep/profile_validation.rs",
        "the size of the setup commands an admin sends",
    ),
    ("push/apns.rs", "the APNs request and its answer"),
    ("log.rs", "its tests, which parse the log lines"),
];

const CALLS: &[&str] = &[
    "serde_json::from_slice",
    "serde_json::to_vec",
    "serde_json::from_str",
    "serde_json::to_string",
];

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_core_file_hand_rolls_json_on_store_values() {
    let src = mdm_e2e::workspace_root().join("shared/core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut report = String::new();
    let mut used = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if CALLS.iter().any(|c| line.contains(c)) {
                if ALLOWED.iter().any(|(a, _)| *a == rel) {
                    used.push(rel.clone());
                } else {
                    report.push_str(&format!(
                        "shared/core/src/{rel}:{}: {} (a store value goes through record::Record)\n",
                        i + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    for (a, _) in ALLOWED {
        if !used.iter().any(|u| u == a) {
            report.push_str(&format!(
                "{a} no longer calls serde_json: remove it from ALLOWED\n"
            ));
        }
    }
    assert!(
        files.len() > 50,
        "the walk found only {} files",
        files.len()
    );
    assert!(report.is_empty(), "{report}");
}

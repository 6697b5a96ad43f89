//! Contexts and the offline commands, run in-process: the contexts file (0600, the token
//! in no output, not even when the server cannot be reached), usage errors, `--help`'s
//! exit codes, shell completion. (Against a server: `tests/e2e/tests/mdmctl.rs`.)

use std::path::{Path, PathBuf};

use mdmctl::{Env, Outcome, exit};
use serde_json::Value;

/// A directory of this test's own, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("mdmctl-contexts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Ctl {
    config: PathBuf,
}

impl Ctl {
    fn run(&self, args: &[&str]) -> Outcome {
        let env = Env::new().var("MDMCTL_CONFIG", self.config.display().to_string());
        mdmctl::run(env, std::iter::once("mdmctl").chain(args.iter().copied()))
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.code,
            exit::OK,
            "mdmctl {args:?}\n{}{}",
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn fails(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.code, code, "mdmctl {args:?}\n{}{}", o.stdout, o.stderr);
        o.stderr
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn contexts_completion_and_usage_without_a_server() {
    let dir = TempDir::new();
    let ctl = Ctl {
        config: dir.path().join("conf/config.yaml"),
    };
    const SECRET: &str = "s3cret-inline-token-123";
    const FILE_SECRET: &str = "s3cret-file-token-456";
    let token_file = write(dir.path(), "token", &format!("{FILE_SECRET}\n"));

    let help = ctl.ok(&["--help"]);
    assert!(
        help.contains("Exit codes") && help.contains("4  not found"),
        "{help}"
    );
    let e = ctl.fails(exit::USAGE, &["devices", "lst"]);
    assert!(e.contains("lst"), "{e}");
    let e = ctl.fails(exit::USAGE, &["health"]);
    assert!(e.contains("no server"), "{e}");

    ctl.ok(&[
        "config",
        "set-context",
        "prod",
        "--server",
        "http://127.0.0.1:1/",
        "--token",
        SECRET,
    ]);
    ctl.ok(&[
        "config",
        "set-context",
        "lab",
        "--server",
        "http://127.0.0.1:1",
        "--token-file",
        &token_file,
    ]);
    assert_eq!(ctl.ok(&["config", "current-context"]).trim(), "prod");
    ctl.ok(&["config", "use-context", "lab"]);
    assert_eq!(ctl.ok(&["config", "current-context"]).trim(), "lab");
    let table = ctl.ok(&["config", "get-contexts"]);
    assert!(
        table.contains("prod") && table.contains("http://127.0.0.1:1"),
        "{table}"
    );
    assert!(table.contains(&format!("file {token_file}")), "{table}");
    let list = ctl.json(&["config", "get-contexts"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    ctl.fails(exit::USAGE, &["config", "use-context", "nope"]);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ctl.config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "config file mode {mode:o}");
    }
    let file = std::fs::read_to_string(&ctl.config).unwrap();
    assert!(
        file.contains(SECRET) && !file.contains(FILE_SECRET),
        "{file}"
    );

    // Unreachable: exit 3, and neither token appears in any output.
    for args in [
        &["health"][..],
        &["--context", "prod", "devices", "list"],
        &["--context", "prod", "-o", "json", "users", "show", "x"],
    ] {
        let o = ctl.run(args);
        assert_eq!(o.code, exit::SERVER, "{args:?}: {}", o.stderr);
        for text in [&o.stdout, &o.stderr] {
            assert!(
                !text.contains(SECRET) && !text.contains(FILE_SECRET),
                "{text}"
            );
        }
    }
    let all = format!(
        "{}{}",
        ctl.ok(&["config", "get-contexts", "-o", "yaml"]),
        ctl.ok(&["config", "get-contexts", "-o", "csv"])
    );
    assert!(!all.contains(SECRET) && !all.contains(FILE_SECRET), "{all}");

    let bash = ctl.ok(&["completion", "bash"]);
    assert!(
        bash.contains("_mdmctl") && bash.contains("dep-devices"),
        "bash completion"
    );
    assert!(
        ctl.ok(&["completion", "zsh"])
            .starts_with("#compdef mdmctl")
    );
    assert!(
        ctl.ok(&["completion", "fish"])
            .contains("complete -c mdmctl")
    );
}

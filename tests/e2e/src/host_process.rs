//! The built `mdm-host` binary as a separate OS process serving the app, for tests
//! where several hosts share one store: started with the kit's keys and a lab's
//! variables, killed with SIGKILL (nothing runs after it, as when a machine dies).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{ADMIN_KEY, STORAGE_KEY, SYNC_KEY, copy_compiled, manifest_for, workspace_root};

/// `<target>/debug/mdm-host`: next to the test binaries' `deps` directory, or next to
/// the kit's own binaries.
pub fn host_binary() -> PathBuf {
    let beside = std::env::current_exe()
        .expect("test executable")
        .with_file_name("mdm-host");
    let bin = if beside.exists() {
        beside
    } else {
        crate::binaries::profile_dir().join("mdm-host")
    };
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p mdm-host --bin mdm-host; scripts/test.sh does)",
        bin.display()
    );
    bin
}

pub struct HostProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl HostProcess {
    /// Serves the app from `state_dir` with `vars` (besides the kit's keys), the runtime
    /// config if any, and the components' clock `clock_ahead` ahead. The components
    /// compiled in state directory `compiled_from` (another host's) are reused.
    pub fn spawn(
        state_dir: &Path,
        vars: &[(String, String)],
        runtime_config: Option<&Path>,
        clock_ahead: Duration,
        compiled_from: Option<&Path>,
    ) -> HostProcess {
        std::fs::create_dir_all(state_dir).expect("state dir");
        if let Some(from) = compiled_from {
            copy_compiled(from, state_dir);
        }
        let manifest = manifest_for(&workspace_root(), state_dir).expect("manifest");
        let mut cmd = Command::new(host_binary());
        cmd.arg("--from")
            .arg(&manifest)
            .args(["--listen", "127.0.0.1:0", "--quiet"])
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--clock-ahead", &clock_ahead.as_secs().to_string()]);
        if let Some(rc) = runtime_config {
            cmd.arg("--runtime-config-file").arg(rc);
        }
        let keys = [
            ("admin_api_key", ADMIN_KEY),
            ("sync_api_key", SYNC_KEY),
            ("storage_key", STORAGE_KEY),
        ];
        for (k, v) in keys
            .iter()
            .map(|(k, v)| (*k, *v))
            .chain(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            cmd.arg("--variable").arg(format!("{k}={v}"));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mdm-host starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address it serves on, then drains the rest so it never blocks.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Serving http://")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!("mdm-host did not start serving: {:?}", child.wait());
            }
        };
        HostProcess { child, addr }
    }

    /// SIGKILL: the process ends wherever it is; requests in flight get no answer.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

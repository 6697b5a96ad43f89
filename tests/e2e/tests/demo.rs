//! The quickstart demo (`scripts/demo.sh`, docs/quickstart.md) kept working: run with two
//! devices on the binaries and components this build made, it ends successfully with the
//! devices enrolled and a command pushed and answered, and leaves nothing behind.

use std::process::Command;

use mdm_e2e::binaries;

#[test]
fn the_quickstart_demo_walks_to_an_answered_command() {
    let wasm = mdm_e2e::wasm_dir().join("mdm_admin.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: run ./scripts/test.sh, which builds the components",
        wasm.display()
    );
    let host = mdm_e2e::host_process::host_binary();
    for (package, bin) in [("mdmctl", "mdmctl"), ("mdm-depsim", "depsim")] {
        binaries::built(package, bin);
    }
    // This package's own binary: cargo built it for its tests.
    let devices = std::path::PathBuf::from(env!("CARGO_BIN_EXE_demo-devices"));
    assert_eq!(devices.parent(), host.parent(), "one target directory");

    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(mdm_e2e::workspace_root().join("scripts/demo.sh"))
        .args(["--devices", "2", "--no-build"])
        .env("CARGO_TARGET_DIR", binaries::target_dir())
        .env("TMPDIR", tmp.path())
        .output()
        .expect("bash runs the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo.sh: {}\n{stdout}\n{stderr}",
        out.status
    );

    // Two devices enrolled, each through its setup.
    let enrolled: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("SCEP identity CN=") && l.contains("DeviceConfigured"))
        .collect();
    assert_eq!(enrolled.len(), 2, "{stdout}");
    // The command sent was answered, and the server's history says so.
    let answered = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("answered "))
        .unwrap_or_else(|| panic!("no answered command\n{stdout}"));
    let fields: Vec<&str> = answered.split_whitespace().collect();
    assert_eq!(fields[2], "DeviceInformation", "{answered}");
    assert_eq!(fields[4], "Acknowledged", "{answered}");
    let (udid, uuid) = (fields[1], fields[3]);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(uuid) && l.contains("DeviceInformation  acknowledged")),
        "the history shows {uuid} acknowledged\n{stdout}"
    );
    let end: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let summary = end[end.len().saturating_sub(3)..].join(" ");
    assert!(
        summary.contains("2 devices enrolled zero-touch")
            && summary.contains(uuid)
            && summary.contains(udid)
            && summary.ends_with("and answered."),
        "{summary}"
    );
    // Nothing it started still serves, and its state directory is gone.
    for prefix in ["serving http://", "DEP API: http://"] {
        let addr = stdout
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .and_then(|rest| rest.split([';', ',']).next())
            .unwrap_or_else(|| panic!("no '{prefix}' line\n{stdout}"));
        let addr: std::net::SocketAddr = addr.parse().expect(addr);
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{addr} still answers after the demo ended"
        );
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "demo.sh left files in TMPDIR"
    );
}

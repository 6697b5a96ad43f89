//! `mdmctl` against the real components, on one zero-touch lab: server tokens, profiles from YAML,
//! the ADE inventory, an enrolled device's list/show/commands/actions, users and groups,
//! API errors with their fields and exit codes, a sync followed with `--wait`, and the
//! built binary itself.

use std::path::{Path, PathBuf};

use mdm_e2e::ADMIN_KEY;
use mdm_e2e::lab::{Lab, PushCert};
use mdmctl::{Env, Outcome, exit};
use serde_json::Value;

/// Runs mdmctl in this process against the lab, with a config file of its own.
struct Ctl {
    config: PathBuf,
    server: String,
    token: String,
}

impl Ctl {
    fn env(&self) -> Env {
        Env::new()
            .var("MDMCTL_CONFIG", self.config.display().to_string())
            .var("MDM_SERVER", &self.server)
            .var("MDM_TOKEN", &self.token)
    }

    async fn run_with(&self, env: Env, args: &[&str]) -> Outcome {
        let args: Vec<String> = std::iter::once("mdmctl")
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect();
        // Blocking HTTP: off the runtime that serves the app.
        tokio::task::spawn_blocking(move || mdmctl::run(env, args))
            .await
            .expect("mdmctl run")
    }

    async fn run(&self, args: &[&str]) -> Outcome {
        self.run_with(self.env(), args).await
    }

    /// Exit 0; standard output.
    async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert_eq!(
            o.code,
            exit::OK,
            "mdmctl {args:?}\n{}{}",
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.ok(&all).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("mdmctl {args:?}: {e}\n{out}"))
    }

    /// Exit `code`; standard error.
    async fn fails(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert_eq!(o.code, code, "mdmctl {args:?}\n{}{}", o.stdout, o.stderr);
        o.stderr
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// The built `mdmctl` beside this test's binary (`cargo test --workspace` builds it for
/// `tools/mdmctl/tests/binary.rs`).
fn binary() -> PathBuf {
    mdm_e2e::binaries::built("mdmctl", "mdmctl")
}

const PROFILE: &str = "\
name: CLI iPads
platform: ios
user_affinity: without_user
await_device_configured: false
department: IT
setup_assistant:
  Siri: hide
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdmctl_drives_a_zero_touch_lab() {
    let lab = Lab::start(6, PushCert::Trusted).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ctl = Ctl {
        config: d.join("config.yaml"),
        server: format!("http://{}", lab.app.addr),
        token: ADMIN_KEY.to_owned(),
    };
    let t = lab.token.to_string();

    assert_eq!(ctl.json(&["health"]).await["status"], "ok");
    let m = ctl.run(&["metrics"]).await;
    assert_eq!(m.code, 0, "{}", m.stderr);
    assert!(
        m.stdout.contains("# TYPE mdm_dep_tokens gauge\n")
            && m.stdout.contains("mdm_dep_tokens{status=\"ok\"} 1\n"),
        "{}",
        m.stdout
    );
    let bad = Env::new()
        .var("MDMCTL_CONFIG", ctl.config.display().to_string())
        .var("MDM_SERVER", format!("http://{}", lab.app.addr))
        .var("MDM_TOKEN", "wrong-token-31337");
    let o = ctl.run_with(bad, &["tokens", "list"]).await;
    assert_eq!(o.code, exit::CLIENT, "{}", o.stderr);
    assert!(
        o.stderr.contains("HTTP 401") && o.stderr.contains("hint:"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("wrong-token-31337") && !o.stderr.contains(ADMIN_KEY));

    // Server tokens.
    assert!(ctl.ok(&["tokens", "list"]).await.contains("Lab"));
    let slot = ctl
        .json(&[
            "tokens",
            "create",
            "CLI slot",
            "--apple-id",
            "admin@acme.example",
        ])
        .await;
    let id = slot["id"].as_u64().unwrap().to_string();
    assert_eq!(slot["status"], "awaiting_token", "{slot}");
    let pem_path = d.join("slot.pem");
    ctl.ok(&[
        "tokens",
        "public-key",
        &id,
        "-f",
        &pem_path.display().to_string(),
    ])
    .await;
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(ctl.ok(&["tokens", "public-key", &id]).await, pem);
    let shown = ctl.ok(&["tokens", "show", &id, "-o", "yaml"]).await;
    assert!(shown.contains("status: awaiting_token"), "{shown}");
    let tokens = ctl.json(&["tokens", "list"]).await;
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens}");
    // Two tokens now: DEP commands must name one.
    let e = ctl.fails(exit::USAGE, &["profiles", "list"]).await;
    assert!(e.contains("--dep-token"), "{e}");

    // Profiles from YAML, checked locally, then by the server (422 with its fields).
    let file = write(d, "profile.yaml", PROFILE);
    let p = ctl
        .json(&["profiles", "-T", &t, "create", "-f", &file])
        .await;
    let p2 = p["id"].as_u64().unwrap().to_string();
    assert_eq!(p["settings"]["department"], "IT", "{p}");
    let typo = write(d, "typo.yaml", &format!("{PROFILE}colour: red\n"));
    let e = ctl
        .fails(exit::USAGE, &["profiles", "-T", &t, "create", "-f", &typo])
        .await;
    assert!(e.contains("unknown field `colour`"), "{e}");
    let invalid = write(
        d,
        "invalid.json",
        r#"{"name": "x", "platform": "ios",
        "user_affinity": "without_user", "minimum_os_version": "seventeen"}"#,
    );
    let e = ctl
        .fails(
            exit::CLIENT,
            &["profiles", "create", "-f", &invalid, "-T", &t],
        )
        .await;
    assert!(
        e.contains("HTTP 422") && e.contains("  minimum_os_version: an OS version"),
        "{e}"
    );
    assert!(
        ctl.ok(&["profiles", "list", "-T", &t])
            .await
            .contains("CLI iPads")
    );
    ctl.ok(&["profiles", "-T", &t, "default", "set", &p2]).await;
    assert_eq!(
        ctl.json(&["profiles", "-T", &t, "default", "get"]).await["profile"],
        p["id"]
    );

    // The ADE inventory, in each format and page by page.
    let csv = ctl
        .ok(&["dep-devices", "list", "-T", &t, "-o", "csv"])
        .await;
    assert!(
        csv.starts_with("SERIAL,MODEL,FAMILY,OS,PROFILE STATUS"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 7, "{csv}");
    let o = ctl
        .run(&["dep-devices", "list", "-T", &t, "--limit", "2"])
        .await;
    assert_eq!(o.stdout.lines().count(), 3, "{}", o.stdout);
    assert!(o.stderr.contains("more: --continue"), "{}", o.stderr);
    let all = ctl
        .json(&["dep-devices", "list", "-T", &t, "--limit", "2", "--all"])
        .await;
    assert_eq!(all.as_array().unwrap().len(), 6);
    let ipad = lab.serials("iPad", 1).pop().expect("an iPad");
    let r = ctl
        .json(&["profiles", "-T", &t, "assign", &p2, &ipad])
        .await;
    assert_eq!(r["devices"], 1, "{r}");
    let dev = ctl.json(&["dep-devices", "show", &ipad, "-T", &t]).await;
    assert_eq!(dev["profile_status"], "assigned", "{dev}");
    let rules = write(
        d,
        "rules.yaml",
        &format!("- name: iPads\n  match: {{ device_family: iPad }}\n  profile: {p2}\n"),
    );
    ctl.ok(&[
        "profiles",
        "-T",
        &t,
        "rules",
        "set",
        "-f",
        &rules,
        "--dry-run",
    ])
    .await;
    ctl.ok(&["profiles", "-T", &t, "rules", "set", "-f", &rules])
        .await;
    let got = ctl.json(&["profiles", "-T", &t, "rules", "get"]).await;
    assert_eq!(got[0]["match"]["device_family"], "iPad", "{got}");

    // An enrolled device: list, show, a command and its answer, actions, logs.
    let serial = lab.serials("iPhone", 1).pop().expect("an iPhone");
    lab.assign(std::slice::from_ref(&serial)).await;
    let mut phone = lab.device(&serial);
    lab.enroll(&mut phone).await;
    let udid = phone.udid.clone();
    let table = ctl.ok(&["devices", "list"]).await;
    assert!(
        table.starts_with("DEVICE") && table.contains(&udid) && table.contains(&serial),
        "{table}"
    );
    let csv = ctl
        .ok(&["devices", "list", "-o", "csv", "--enrolled", "true"])
        .await;
    assert!(
        csv.starts_with("DEVICE,SERIAL,NAME") && csv.contains(&udid),
        "{csv}"
    );
    let listed = ctl.json(&["devices", "list"]).await;
    assert_eq!(listed[0]["device_id"], udid.as_str(), "{listed}");
    assert_eq!(
        ctl.json(&["devices", "show", &udid]).await["serial_number"],
        serial.as_str()
    );
    let shown = ctl.ok(&["devices", "show", &udid]).await;
    assert!(
        shown.contains("serial_number") && shown.contains(&serial),
        "{shown}"
    );

    let sent = ctl
        .json(&["commands", "send", &udid, "--request-type", "ProfileList"])
        .await;
    let uuid = sent["command_uuid"].as_str().unwrap().to_owned();
    let plist = write(
        d,
        "info.plist",
        r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>RequestType</key><string>DeviceInformation</string>
<key>Queries</key><array><string>DeviceName</string></array></dict></plist>"#,
    );
    let table = ctl.ok(&["commands", "send", &udid, "-f", &plist]).await;
    assert!(table.contains("DeviceInformation"), "{table}");
    let answered = phone.run_until_idle(&lab.http()).await.unwrap();
    assert!(
        answered
            .iter()
            .any(|a| a.command.request_type == "ProfileList")
    );
    let history = ctl
        .json(&[
            "commands",
            "history",
            &udid,
            "--request-type",
            "ProfileList",
        ])
        .await;
    assert_eq!(history[0]["command_uuid"], uuid.as_str(), "{history}");
    assert_eq!(history[0]["status"], "acknowledged", "{history}");
    let table = ctl.ok(&["commands", "history", &udid]).await;
    assert!(
        table.contains(&uuid) && table.contains("acknowledged"),
        "{table}"
    );
    let one = ctl.json(&["commands", "show", &udid, &uuid]).await;
    assert_eq!(one["status"], "acknowledged", "{one}");
    assert!(one["response"].get("ProfileList").is_some(), "{one}");

    // Bulk: one device takes it, an unknown one is refused (exit 5, each result shown).
    let o = ctl
        .run(&[
            "commands",
            "send",
            &udid,
            "NO-SUCH-DEVICE",
            "--request-type",
            "ProfileList",
        ])
        .await;
    assert_eq!(o.code, exit::PARTIAL, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("NO-SUCH-DEVICE") && o.stdout.contains("404"),
        "{}",
        o.stdout
    );
    let renamed = ctl.json(&["devices", "rename", &udid, "CLI phone"]).await;
    assert_eq!(
        renamed["commands"][0]["request_type"], "Settings",
        "{renamed}"
    );
    let e = ctl.fails(exit::USAGE, &["devices", "wipe", &udid]).await;
    assert!(e.contains("--yes"), "{e}");
    let e = ctl
        .fails(exit::CLIENT, &["devices", "lock", &udid, "--pin", "12"])
        .await;
    assert!(e.contains("pin: six digits"), "{e}");
    let logs = ctl.ok(&["devices", "logs", &udid]).await;
    assert!(logs.contains("TokenUpdate"), "{logs}");
    assert_eq!(
        ctl.json(&["push", "state", &udid]).await["device_id"],
        udid.as_str()
    );
    ctl.fails(exit::NOT_FOUND, &["devices", "show", "NO-SUCH-DEVICE"])
        .await;

    // Users and groups; a refused field, exit 2; unknown, exit 4.
    ctl.ok(&[
        "groups",
        "create",
        "staff",
        "--name",
        "Staff",
        "--enrollment-type",
        "user",
        "--priority",
        "10",
    ])
    .await;
    assert!(ctl.ok(&["groups", "list"]).await.contains("staff"));
    let pw = write(d, "pw", "correct horse battery\n");
    let alice = ctl
        .json(&[
            "users",
            "create",
            "alice",
            "--name",
            "Alice",
            "--group",
            "staff",
            "--password-file",
            &pw,
        ])
        .await;
    assert_eq!(
        (
            alice["has_password"].clone(),
            alice["enrollment_type"].clone()
        ),
        (true.into(), "user".into())
    );
    let o = ctl
        .run_with(
            ctl.env().stdin("another good password"),
            &["users", "create", "bob", "--password-file", "-"],
        )
        .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    let csv = ctl.ok(&["users", "list", "-o", "csv"]).await;
    assert!(
        csv.starts_with("USERNAME,") && csv.contains("alice,Alice") && csv.contains("bob"),
        "{csv}"
    );
    let o = ctl.run(&["users", "create", "Bad Name!"]).await;
    assert_eq!(o.code, exit::CLIENT, "{}", o.stderr);
    assert!(
        o.stderr.contains("HTTP 422") && o.stderr.contains("  username: "),
        "{}",
        o.stderr
    );
    let o = ctl
        .run(&["-o", "json", "users", "create", "Bad Name!"])
        .await;
    let tail = &o.stderr[o.stderr.find('{').unwrap()..];
    let body: Value = serde_json::from_str(tail).unwrap();
    assert_eq!(body["status"], 422);
    assert_eq!(body["fields"][0]["field"], "username", "{body}");
    ctl.fails(exit::NOT_FOUND, &["users", "show", "nobody"])
        .await;
    ctl.ok(&["users", "update", "alice", "--disable"]).await;
    ctl.ok(&["users", "delete", "bob"]).await;

    let c = ctl
        .json(&["challenges", "create", "bench-label", "--serial", "C02TEST"])
        .await;
    assert!(c["challenge"].as_str().is_some_and(|s| s.len() > 20), "{c}");
    let kv = ctl
        .json(&[
            "diagnostics",
            "contention",
            "--writers",
            "2",
            "--increments",
            "5",
            "--swaps",
            "2",
        ])
        .await;
    assert_eq!(kv["updates_lost"], false, "{kv}");

    // The built binary, with the environment for the connection.
    let out = std::process::Command::new(binary())
        .args(["devices", "list", "-o", "json"])
        .env("MDMCTL_CONFIG", &ctl.config)
        .env("MDM_SERVER", format!("http://{}", lab.app.addr))
        .env("MDM_TOKEN", ADMIN_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["device_id"], udid.as_str());
    let out = std::process::Command::new(binary())
        .args(["users", "show", "nobody"])
        .env("MDM_SERVER", format!("http://{}", lab.app.addr))
        .env("MDM_TOKEN", ADMIN_KEY)
        .env("MDMCTL_CONFIG", &ctl.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::NOT_FOUND));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 404"));

    // The new slot gets another organisation's token, then a sync followed to its end.
    let org = lab.dep.add_server(mdm_depsim::ServerConfig::new(12, 4242));
    let p7m = d.join("org.p7m");
    std::fs::write(&p7m, org.server_token(&pem).unwrap()).unwrap();
    let up = ctl
        .json(&["tokens", "upload", &id, &p7m.display().to_string()])
        .await;
    assert_eq!(up["status"], "ok", "{up}");
    let summary = ctl
        .json(&["tokens", "sync", &id, "--wait", "--interval", "1"])
        .await;
    assert_eq!(summary["outcome"], "completed", "{summary}");
    assert_eq!(summary["devices_seen"], 12, "{summary}");
    let e = ctl.fails(exit::CLIENT, &["tokens", "sync", &id]).await;
    assert!(
        e.contains("HTTP 429") && e.contains("next_allowed_at"),
        "{e}"
    );
    assert_eq!(
        ctl.json(&["dep-devices", "list", "-T", &id, "--all"])
            .await
            .as_array()
            .unwrap()
            .len(),
        12
    );

    lab.shutdown().await;
}

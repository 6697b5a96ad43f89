//! SCEP against a real, independent client: micromdm's `scepclient` (Debian package
//! `scep`, which `scripts/test.sh` installs) enrolls through the real `checkin` component
//! on the local host with a challenge from the admin API, is refused when it reuses the
//! challenge, renews with the certificate it got (RenewalReq), and the identity it got
//! then checks in. `openssl verify` is the judge of the issued certificates.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use mdm_e2e::{App, Method, StatusCode};
use serde_json::json;

/// The client, or a failure that says how to get it.
fn scepclient() -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("scepclient"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "scepclient is not installed: it comes with Debian's `scep` package \
             (`apt-get install -y scep`; ./scripts/test.sh installs it)"
        )
    })
}

async fn run(program: PathBuf, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
    })
    .await
    .unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn challenge(app: &App, device: &str) -> String {
    let (s, b) = app
        .admin(
            Method::POST,
            "/api/v1/enrollment/challenges",
            Some(json!({ "device_id": device, "purpose": "manual" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["challenge"].as_str().unwrap().to_owned()
}

/// Runs scepclient with its key (and client.pem) in `dir`.
async fn enroll(app: &App, dir: &Path, challenge: Option<&str>, cn: &str) -> Output {
    let mut args = vec![
        "-server-url".to_owned(),
        format!("http://{}/scep", app.addr),
        "-private-key".to_owned(),
        dir.join("key.pem").display().to_string(),
        "-cn".to_owned(),
        cn.to_owned(),
    ];
    if let Some(c) = challenge {
        args.extend(["-challenge".to_owned(), c.to_owned()]);
    }
    run(scepclient(), args).await
}

async fn openssl_verify(ca: &Path, cert: &Path) {
    let out = run(
        PathBuf::from("openssl"),
        vec![
            "verify".into(),
            "-CAfile".into(),
            ca.display().to_string(),
            cert.display().to_string(),
        ],
    )
    .await;
    assert!(out.status.success(), "openssl verify: {}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
}

fn read_cert(path: &Path) -> mdm_crypto::Certificate {
    mdm_crypto::Certificate::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A check-in of device `e2e-device-1` signed with `cert` (its key `key`).
async fn checkin(
    app: &App,
    key: &mdm_crypto::KeyPair,
    cert: &mdm_crypto::Certificate,
    message_type: &str,
    extra: &str,
) -> (StatusCode, String) {
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>
<key>MessageType</key><string>{message_type}</string><key>UDID</key><string>e2e-device-1</string>
<key>Topic</key><string>com.apple.mgmt.External.e2e</string>{extra}
</dict></plist>"#
    )
    .into_bytes();
    let sig = mdm_crypto::sign_data(
        &body,
        key,
        cert,
        &[],
        &mdm_crypto::SignOptions {
            detached: true,
            ..Default::default()
        },
    )
    .unwrap();
    let (s, _, reply) = app
        .raw(
            Method::PUT,
            "/mdm/checkin",
            &[(
                "mdm-signature".into(),
                base64::engine::general_purpose::STANDARD.encode(sig),
            )],
            body,
        )
        .await
        .unwrap();
    (s, String::from_utf8_lossy(&reply).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scepclient_enrolls_is_refused_a_reused_challenge_and_renews() {
    let client = scepclient();
    let tmp = tempfile::tempdir().unwrap();
    let app = App::start(&tmp.path().join("state")).await.unwrap();

    // Our CA, as GetCACert gives it (CA + RA).
    let (s, headers, body) = app
        .raw(Method::GET, "/scep?operation=GetCACert", &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-x509-ca-ra-cert");
    let certs = mdm_crypto::parse_certs_only(&body).unwrap();
    let ca = certs.iter().find(|c| c.is_ca()).expect("CA certificate");
    let ca_pem = tmp.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.to_pem()).unwrap();

    // 1. Enrollment with a one-time challenge (scepclient: DES, BER, PKCSReq).
    let dev = tmp.path().join("device-1");
    std::fs::create_dir(&dev).unwrap();
    let c = challenge(&app, "e2e-device-1").await;
    let out = enroll(&app, &dev, Some(&c), "device-1").await;
    assert!(
        out.status.success(),
        "{} enrollment: {}",
        client.display(),
        show(&out)
    );
    let issued_path = dev.join("client.pem");
    assert!(issued_path.exists(), "no client.pem: {}", show(&out));
    openssl_verify(&ca_pem, &issued_path).await;
    let issued = read_cert(&issued_path);
    // The CA names the enrollment the challenge was for, whatever the client asked for.
    assert_eq!(issued.common_name().as_deref(), Some("e2e-device-1"));
    assert_eq!(issued.subject(), "CN=e2e-device-1");
    assert_eq!(
        issued.not_after_unix() - (issued.not_before_unix() + 600),
        365 * 86_400
    );
    issued.verify_issued_by(ca).unwrap();

    // 2. The same challenge again, from another key: refused (CertRep FAILURE).
    let thief = tmp.path().join("device-2");
    std::fs::create_dir(&thief).unwrap();
    let out = enroll(&app, &thief, Some(&c), "device-2").await;
    assert!(
        !out.status.success(),
        "reused challenge accepted: {}",
        show(&out)
    );
    let said = show(&out);
    assert!(said.contains("badRequest"), "{said}");
    assert!(!thief.join("client.pem").exists());

    // 3. Renewal (client.pem exists, so scepclient signs a RenewalReq with it, no
    //    challenge) of an identity no enrollment uses yet: refused.
    let key = mdm_crypto::KeyPair::from_pem(&std::fs::read_to_string(dev.join("key.pem")).unwrap())
        .unwrap();
    let out = enroll(&app, &dev, None, "device-1").await;
    assert!(
        !out.status.success(),
        "renewed an unused identity: {}",
        show(&out)
    );
    assert!(show(&out).contains("badCertID"), "{}", show(&out));

    // 4. The identity enrolls: Authenticate and TokenUpdate, signed with it.
    for (message_type, extra) in [
        (
            "Authenticate",
            "<key>SerialNumber</key><string>E2E1</string>",
        ),
        (
            "TokenUpdate",
            "<key>PushMagic</key><string>m</string><key>Token</key><data>AQID</data>",
        ),
    ] {
        let (s, reply) = checkin(&app, &key, &issued, message_type, extra).await;
        assert_eq!(s, StatusCode::OK, "{message_type}: {reply}");
    }

    // 5. Now it is renewed, and the renewed identity works at once (adopted).
    let out = enroll(&app, &dev, None, "device-1").await;
    assert!(out.status.success(), "renewal: {}", show(&out));
    openssl_verify(&ca_pem, &issued_path).await;
    let renewed = read_cert(&issued_path);
    assert_ne!(
        renewed.serial_hex(),
        issued.serial_hex(),
        "a new certificate"
    );
    renewed.verify_issued_by(ca).unwrap();
    let (s, reply) = checkin(
        &app,
        &key,
        &renewed,
        "TokenUpdate",
        "<key>PushMagic</key><string>m</string><key>Token</key><data>AQID</data>",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{reply}");

    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scep_over_http_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let app = App::start(&tmp.path().join("state")).await.unwrap();
    let (s, _, caps) = app
        .raw(Method::GET, "/scep?operation=GetCACaps", &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let caps = String::from_utf8_lossy(&caps).into_owned();
    assert!(caps.lines().any(|l| l == "AES") && !caps.lines().any(|l| l == "DES"));
    // Garbage and oversized bodies: 4xx with a reason, the component survives.
    let (s, _, why) = app
        .raw(
            Method::POST,
            "/scep?operation=PKIOperation",
            &[],
            b"not a pkiMessage".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(!why.is_empty());
    let (s, _, _) = app
        .raw(
            Method::POST,
            "/scep?operation=PKIOperation",
            &[],
            vec![0x30; 64 * 1024 + 1],
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // A check-in without an identity is refused with 400 (never 401).
    let (s, _, _) = app
        .raw(Method::PUT, "/mdm/checkin", &[], b"<plist/>".to_vec())
        .await
        .unwrap();
    assert_eq!(s, StatusCode::BAD_REQUEST);
    app.shutdown().await;
}

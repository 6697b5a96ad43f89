//! Response framing on the wire. Spin 4's HTTP trigger does not set TCP_NODELAY, and a
//! response whose size it does not know goes out chunked, its last chunk in a write of its
//! own: on a kept-alive connection that write waits for the client's delayed ACK, ~43 ms
//! per request (docs/platform.md). The local host serves the same way, so this test reads
//! raw bytes over one kept-alive connection and requires every answer of every component
//! (device check-in and commands, enrollment, SCEP, admin, scheduler; successes and
//! refusals) to carry Content-Length and no Transfer-Encoding.

mod lab;

use std::time::Duration;

use lab::{Lab, PushCert};
use mdm_e2e::{ADMIN_KEY, Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request on the kept-alive connection `s`: the status and headers of the answer
/// (lowercase names) and its body, read by its Content-Length.
async fn exchange(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: mdm.example\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).await.unwrap();

    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = vec![0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk))
            .await
            .expect("answer within 30 s")
            .unwrap();
        assert!(
            n > 0,
            "{method} {path}: connection closed before the headers"
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let fields: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    assert_eq!(
        field("transfer-encoding"),
        None,
        "{method} {path} answered {status} chunked: {head}"
    );
    let len: usize = field("content-length")
        .unwrap_or_else(|| {
            panic!("{method} {path} answered {status} without Content-Length: {head}")
        })
        .parse()
        .unwrap();
    assert_ne!(
        field("connection").map(|v| v.to_ascii_lowercase()),
        Some("close".into()),
        "{method} {path}: the connection is kept alive"
    );
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = vec![0u8; 65536];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "{method} {path}: connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(body.len(), len, "{method} {path}: no bytes after the body");
    (status, fields, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_a_content_length_on_a_kept_alive_connection() {
    let lab = Lab::start(4, PushCert::Trusted).await;
    let serial = lab.serials("iPhone", 1).pop().unwrap();
    lab.assign(std::slice::from_ref(&serial)).await;
    let mut d = lab.device(&serial);
    lab.enroll(&mut d).await;
    let idle = d.signed_idle().unwrap();
    let (_, connect_path) = mdm_devicesim::http::split_url(&idle.url).unwrap();
    let signature = idle.signature.clone().unwrap();
    let bearer = format!("Bearer {ADMIN_KEY}");
    let admin = [("Authorization", bearer.as_str())];
    let json = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let signed = [
        ("Mdm-Signature", signature.as_str()),
        ("Content-Type", "application/x-apple-aspen-mdm"),
    ];

    let mut s = TcpStream::connect(lab.app.addr).await.unwrap();
    let mut seen = Vec::new();
    let mut check = |what: &str, status: u16, want: u16| {
        assert_eq!(status, want, "{what}");
        seen.push(what.to_owned());
    };

    // Device-facing: an empty queue's Idle (the empty 200 of the stall), a command plist,
    // refusals.
    let (st, _, b) = exchange(&mut s, "PUT", connect_path, &signed, &idle.body).await;
    assert!(b.is_empty());
    check("Idle, nothing queued", st, 200);
    let (st, _, _) = exchange(
        &mut s,
        "POST",
        &format!("/api/v1/devices/{}/commands", d.udid),
        &json,
        br#"{"RequestType":"ProfileList"}"#,
    )
    .await;
    check("queue a command", st, 201);
    let (st, _, b) = exchange(&mut s, "PUT", connect_path, &signed, &idle.body).await;
    assert!(String::from_utf8_lossy(&b).contains("ProfileList"));
    check("Idle, a command plist", st, 200);
    let (st, _, _) = exchange(&mut s, "PUT", connect_path, &[], &idle.body).await;
    check("connect without a signature", st, 400);
    let (st, _, _) = exchange(&mut s, "PUT", "/mdm/checkin", &[], b"<plist/>").await;
    check("check-in without a signature", st, 400);

    // Enrollment and SCEP.
    let (st, _, b) = exchange(&mut s, "GET", "/scep?operation=GetCACaps", &[], b"").await;
    assert!(!b.is_empty());
    check("SCEP GetCACaps", st, 200);
    let (st, _, b) = exchange(&mut s, "GET", "/scep?operation=GetCACert", &[], b"").await;
    assert!(!b.is_empty());
    check("SCEP GetCACert", st, 200);
    let (st, _, _) = exchange(&mut s, "POST", "/mdm/enroll/ade", &[], b"not signed").await;
    check("ADE enrollment without MachineInfo", st, 400);

    // Admin and the scheduler.
    let (st, _, _) = exchange(&mut s, "GET", "/api/v1/health", &admin, b"").await;
    check("health", st, 200);
    let (st, _, _) = exchange(
        &mut s,
        "GET",
        &format!("/api/v1/devices/{}", d.udid),
        &admin,
        b"",
    )
    .await;
    check("a device", st, 200);
    let (st, _, _) = exchange(&mut s, "GET", "/api/v1/devices", &[], b"").await;
    check("admin without a key", st, 401);
    let (st, _, _) = exchange(&mut s, "POST", "/api/v1/users", &json, b"{").await;
    check("admin, bad JSON", st, 400);
    let (st, _, _) = exchange(&mut s, "POST", "/internal/tick", &[], b"").await;
    check("tick without a key", st, 401);
    let (st, _, _) = exchange(&mut s, "GET", "/no/such/route", &[], b"").await;
    check("a path no component serves", st, 404);
    assert_eq!(seen.len(), 14);

    // The same connection served everything: the device's Idle still works on it.
    let (st, _, b) = exchange(&mut s, "PUT", connect_path, &signed, &idle.body).await;
    assert_eq!(
        (st, b.is_empty()),
        (200, false),
        "ProfileList delivered again"
    );
    let (status, _) = lab.app.admin(Method::GET, "/api/v1/health", None).await;
    assert_eq!(status, StatusCode::OK);
    lab.shutdown().await;
}

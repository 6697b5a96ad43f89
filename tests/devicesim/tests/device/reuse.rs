//! What the benchmarks reuse: keys shared by devices (each with its own identity), a
//! signed `Idle` sent again as made, and kept-alive connections that reconnect when closed.

use super::*;

#[test]
fn devices_sharing_keys_enroll_with_their_own_identities() {
    let keys = mdm_devicesim::SharedKeys::generate().unwrap();
    let serials = ["F2LXK0AAHG71", "F2LXK0AAHG72"];
    let server = InProcess::new(&serials);
    let url = format!("{BASE}/mdm/enroll/ade");
    let mut devices: Vec<Device> = serials
        .iter()
        .enumerate()
        .map(|(i, sn)| {
            let udid = format!("00008110-000A1C2E3E8840{i:02}");
            Device::with_shared_keys(apple_ca(), &keys, DeviceKind::Iphone, sn, &udid, "17.4")
                .unwrap()
        })
        .collect();
    for d in devices.iter_mut() {
        block_on(d.enroll_ade(&server, &url, false)).unwrap();
    }
    let [a, b] = &devices[..] else { unreachable!() };
    // One key pair behind both, each certificate its own.
    assert_eq!(
        a.apple_identity().key().to_public_key(),
        b.apple_identity().key().to_public_key()
    );
    assert_ne!(
        a.apple_identity().certificate().der(),
        b.apple_identity().certificate().der()
    );
    let (ia, ib) = (a.mdm_identity().unwrap(), b.mdm_identity().unwrap());
    assert!(ia.certificate.matches_key(&keys.scep) && ib.certificate.matches_key(&keys.scep));
    assert_ne!(ia.certificate.serial_hex(), ib.certificate.serial_hex());
    assert_eq!(
        ia.certificate.common_name().as_deref(),
        Some(a.udid.as_str())
    );
    for d in &devices {
        let (s, dev) = server.admin("GET", &format!("/api/v1/devices/{}", d.udid), None);
        assert_eq!((s, &dev["enrolled"]), (200, &Json::Bool(true)), "{dev}");
    }
    // Each device's requests are its own: a command for one reaches only that one.
    let (s, _) = server.admin(
        "POST",
        &format!("/api/v1/devices/{}/commands", a.udid),
        Some(serde_json::json!({"RequestType": "ProfileList"})),
    );
    assert_eq!(s, 201);
    assert_eq!(block_on(b.idle(&server)).unwrap(), None);
    let cmd = block_on(a.idle(&server)).unwrap().expect("a's command");
    assert_eq!(cmd.request_type, "ProfileList");
}

#[test]
fn a_signed_idle_is_sent_again_as_made() {
    let mut d = iphone();
    let server = InProcess::new(&[&d.serial]);
    block_on(d.enroll_ade(&server, &format!("{BASE}/mdm/enroll/ade"), false)).unwrap();
    let idle = d.signed_idle().unwrap();
    assert_eq!(idle.status, "Idle");
    assert_eq!(idle.url, d.mdm().unwrap().server_url);
    let signer = signature::verify(idle.signature.as_deref().unwrap(), &idle.body).unwrap();
    assert_eq!(
        signer.certificate_der,
        d.mdm_identity().unwrap().certificate.der()
    );
    assert_eq!(block_on(d.send_signed(&server, &idle)).unwrap(), None);
    let (_, b) = server.admin(
        "POST",
        &format!("/api/v1/devices/{}/commands", d.udid),
        Some(serde_json::json!({"RequestType": "SecurityInfo"})),
    );
    let uuid = b["command_uuid"].as_str().unwrap().to_owned();
    // The same bytes and signature, accepted again, now with the command.
    let cmd = block_on(d.send_signed(&server, &idle)).unwrap().unwrap();
    assert_eq!(cmd.uuid, uuid);
}

/// A minimal HTTP/1.1 server: answers `200 <n>` (the request's number on its connection)
/// and closes after `close_after` requests on a connection. Returns its address and the
/// connections it accepted.
async fn counting_server(
    close_after: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for n in 1..=close_after {
                    // Requests here carry no body: a request ends at the blank line.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 1024];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let body = n.to_string();
                    let last = if n == close_after {
                        "connection: close\r\n"
                    } else {
                        ""
                    };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{last}\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_http_reuses_connections_and_reconnects_when_closed() {
    use std::sync::atomic::Ordering;
    let (addr, accepted) = counting_server(3).await;
    let http = mdm_devicesim::KeepAliveHttp::to(addr);
    let mut bodies = Vec::new();
    for _ in 0..7 {
        let r = http
            .send("GET", "http://any.host/x", &[], Vec::new())
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        bodies.push(r.body_text());
    }
    // Three requests per connection, then the server closes it and a new one is made.
    assert_eq!(bodies, ["1", "2", "3", "1", "2", "3", "1"]);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    // Concurrent requests each get a connection; they are kept for later.
    let (addr, accepted) = counting_server(1000).await;
    let http = std::sync::Arc::new(mdm_devicesim::KeepAliveHttp::to(addr));
    let sends: Vec<_> = (0..4)
        .map(|_| {
            let http = http.clone();
            tokio::spawn(async move {
                http.send("GET", "http://any.host/y", &[], Vec::new())
                    .await
                    .unwrap()
            })
        })
        .collect();
    for s in sends {
        assert_eq!(s.await.unwrap().status, 200);
    }
    let opened = accepted.load(Ordering::SeqCst);
    assert!((1..=4).contains(&opened), "{opened}");
    assert_eq!(http.idle_connections(), opened);
    for _ in 0..10 {
        http.send("GET", "http://any.host/z", &[], Vec::new())
            .await
            .unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), opened, "no new connection");
}

//! The command queue under load, through the real components on the local host (SQLite
//! store, Spin's defects on): a thousand devices enrolled zero-touch (MachineInfo, signed
//! profile, SCEP, Authenticate, TokenUpdate), eight admins queueing commands at once
//! through the admin API (one device at a time and in bulk), and every device polling
//! `/mdm/connect` meanwhile: woken by its APNs pushes (apnssim) and on a timer of its own,
//! `Idle`, then answering each command, deferring some once with NotNow.
//!
//! At the end every command must have been delivered exactly once as a new command (a
//! deferred one once more, in a later exchange, never after its answer), none lost, each
//! device's commands in the order each admin queued them (and in real-time order across
//! admins: a command queued after another's enqueue returned comes after it), and the
//! history API must show every one acknowledged.
//!
//! The devices share two key pairs ([`SharedKeys`]): each still gets its own Apple
//! identity and its own MDM identity certificate from our SCEP, but generating 2,000 RSA
//! keys would take minutes.

mod lab;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lab::{Lab, PushCert};
use mdm_devicesim::{Device, Http, HttpError, HttpResponse, KeepAliveHttp, SharedKeys, Status};
use mdm_e2e::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

const DEVICES: usize = 1000;
const WRITERS: usize = 8;
/// Per writer: enqueues for one device...
const SINGLES: usize = 120;
/// ...and bulk enqueues, each for this many devices.
const BULKS: usize = 5;
const BULK_SIZE: usize = 40;
/// Single enqueues that go to a few "hot" devices, so that writers collide on them.
const HOT_DEVICES: usize = 16;
/// Device requests in flight at once (the host runs every request in its own instance).
const DEVICE_IN_FLIGHT: usize = 32;
const ENROLL_IN_FLIGHT: usize = 8;
/// A device also polls on its own, this often (plus up to half as much jitter), pushed
/// or not...
const POLL_EVERY: Duration = Duration::from_secs(8);
/// ...and a hot device this often, so that its exchanges overlap the admins' enqueues.
const HOT_POLL_EVERY: Duration = Duration::from_millis(150);

/// The commands, none needing supervision.
fn command(n: u64) -> Value {
    match n % 5 {
        0 => json!({"RequestType": "ProfileList"}),
        1 => json!({"RequestType": "SecurityInfo"}),
        2 => json!({"RequestType": "CertificateList"}),
        3 => {
            json!({"RequestType": "DeviceInformation", "Queries": ["OSVersion", "SerialNumber", "DeviceName"]})
        }
        _ => json!({"RequestType": "InstalledApplicationList"}),
    }
}

/// Whether the device defers this command (once): about one in six.
fn defers(uuid: &str) -> bool {
    uuid.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
        .is_multiple_of(6)
}

/// A small deterministic generator (xorshift), one per writer.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The device transport: keep-alive connections, at most [`DEVICE_IN_FLIGHT`] requests
/// at once over all devices.
struct Limited {
    inner: KeepAliveHttp,
    permits: Semaphore,
}

impl Http for Limited {
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpResponse, HttpError> {
        let _permit = self.permits.acquire().await.expect("never closed");
        self.inner.send(method, url, headers, body).await
    }
}

/// One command an admin queued.
#[derive(Debug, Clone)]
struct Queued {
    device: usize,
    uuid: String,
    writer: usize,
    sent: Instant,
    answered: Instant,
}

/// What a device saw.
#[derive(Debug, Default)]
struct Seen {
    /// (CommandUUID, exchange number) of every delivery, in order.
    deliveries: Vec<(String, u64)>,
    deferred: HashMap<String, u64>,
    /// Deliveries made while admins were still queueing.
    concurrent: usize,
    polls: u64,
    violations: Vec<String>,
}

/// Wakes devices and asks them to finish.
struct Control {
    wake: Vec<Notify>,
    writers_done: AtomicUsize,
    stop: AtomicBool,
}

/// One exchange: Idle, then every command answered. Returns whether any command came.
async fn session(
    d: &mut Device,
    http: &Limited,
    idle: &mdm_devicesim::SignedReport,
    control: &Control,
    seen: &mut Seen,
    acked: &mut HashSet<String>,
) -> Result<bool, String> {
    seen.polls += 1;
    let exchange = seen.polls;
    let mut next = d
        .send_signed(http, idle)
        .await
        .map_err(|e| format!("Idle: {e}"))?;
    let got_any = next.is_some();
    while let Some(cmd) = next {
        let uuid = cmd.uuid.clone();
        if acked.contains(&uuid) {
            seen.violations
                .push(format!("{} {uuid} delivered after its answer", d.udid));
        }
        if let Some(at) = seen.deferred.get(&uuid)
            && *at == exchange
        {
            seen.violations.push(format!(
                "{} {uuid} delivered again in the exchange that deferred it",
                d.udid
            ));
        }
        let again = seen.deliveries.iter().any(|(u, _)| *u == uuid);
        if again && !seen.deferred.contains_key(&uuid) {
            seen.violations
                .push(format!("{} {uuid} delivered twice as new", d.udid));
        }
        seen.deliveries.push((uuid.clone(), exchange));
        if control.writers_done.load(Ordering::SeqCst) < WRITERS {
            seen.concurrent += 1;
        }
        next = if !again && defers(&uuid) {
            seen.deferred.insert(uuid.clone(), exchange);
            d.answer(http, &cmd, Status::NotNow, plist::Dictionary::new())
                .await
        } else {
            let (status, response) = d.respond(&cmd);
            if status != Status::Acknowledged {
                return Err(format!("{} answers {status:?} to {uuid}", d.udid));
            }
            acked.insert(uuid.clone());
            d.answer(http, &cmd, status, response).await
        }
        .map_err(|e| format!("answer to {uuid}: {e}"))?;
    }
    Ok(got_any)
}

/// A device's life during the load: exchanges when pushed or on its timer, until the
/// admins are done and an exchange (begun after that) found nothing.
async fn run_device(
    mut d: Device,
    i: usize,
    http: Arc<Limited>,
    control: Arc<Control>,
) -> (Device, Seen) {
    let idle = d.signed_idle().expect("signed Idle");
    let mut seen = Seen::default();
    let mut acked = HashSet::new();
    let every = if i < HOT_DEVICES {
        HOT_POLL_EVERY
    } else {
        POLL_EVERY
    };
    let jitter = every.mul_f64(((i * 7919) % 1000) as f64 / 2000.0);
    let mut wait = true;
    loop {
        if wait {
            tokio::select! {
                _ = control.wake[i].notified() => {}
                _ = tokio::time::sleep(every + jitter) => {}
            }
        }
        if control.stop.load(Ordering::SeqCst) {
            seen.violations.push(format!("{} stopped early", d.udid));
            break;
        }
        // Read before the exchange: an empty exchange after every enqueue returned means
        // nothing is left (deferred commands come back on Idle).
        let all_queued = control.writers_done.load(Ordering::SeqCst) == WRITERS;
        match session(&mut d, &http, &idle, &control, &mut seen, &mut acked).await {
            Ok(got_any) if all_queued && !got_any => break,
            // Once the admins are done, exchanges follow each other until one is empty.
            Ok(_) => wait = !all_queued,
            Err(e) => {
                seen.violations.push(e);
                break;
            }
        }
    }
    (d, seen)
}

/// An admin: single and bulk enqueues in a fixed pseudo-random order. Returns what it
/// queued, in its order.
async fn run_writer(
    w: usize,
    app: mdm_e2e::Client,
    udids: Arc<Vec<String>>,
) -> Result<Vec<Queued>, String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut out = Vec::new();
    let mut n = w as u64;
    let every = SINGLES / BULKS;
    for i in 0..SINGLES + BULKS {
        n += 1;
        let sent = Instant::now();
        if i % (every + 1) == every {
            let mut picked: Vec<usize> = Vec::new();
            while picked.len() < BULK_SIZE {
                let d = rng.below(udids.len());
                if !picked.contains(&d) {
                    picked.push(d);
                }
            }
            let devices: Vec<&str> = picked.iter().map(|d| udids[*d].as_str()).collect();
            let (s, b) = app
                .admin(
                    Method::POST,
                    "/api/v1/commands",
                    Some(json!({ "devices": devices, "command": command(n) })),
                )
                .await;
            let answered = Instant::now();
            if s != StatusCode::OK || b["queued"] != BULK_SIZE {
                return Err(format!("writer {w}: bulk enqueue: {s} {b}"));
            }
            for (d, r) in picked.iter().zip(b["results"].as_array().unwrap()) {
                if r["device"] != udids[*d].as_str() {
                    return Err(format!("writer {w}: bulk results out of order: {b}"));
                }
                out.push(Queued {
                    device: *d,
                    uuid: r["command_uuid"].as_str().unwrap().to_owned(),
                    writer: w,
                    sent,
                    answered,
                });
            }
        } else {
            let d = if rng.below(4) == 0 {
                rng.below(HOT_DEVICES)
            } else {
                rng.below(udids.len())
            };
            let (s, b) = app
                .admin(
                    Method::POST,
                    &format!("/api/v1/devices/{}/commands", udids[d]),
                    Some(command(n)),
                )
                .await;
            let answered = Instant::now();
            if s != StatusCode::CREATED {
                return Err(format!("writer {w}: enqueue: {s} {b}"));
            }
            out.push(Queued {
                device: d,
                uuid: b["command_uuid"].as_str().unwrap().to_owned(),
                writer: w,
                sent,
                answered,
            });
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_admins_queue_while_a_thousand_devices_poll() {
    let started = Instant::now();
    let lab = Lab::start((DEVICES * 3 / 2) as u64, PushCert::Trusted).await;
    let lab_ready = started.elapsed();
    let keys = SharedKeys::generate().expect("keys");
    let http = Arc::new(Limited {
        inner: KeepAliveHttp::to(lab.app.addr),
        permits: Semaphore::new(DEVICE_IN_FLIGHT),
    });
    let devices = lab
        .enroll_many(DEVICES, &keys, http.clone(), ENROLL_IN_FLIGHT)
        .await;
    let enrolled_in = started.elapsed() - lab_ready;
    let certs: HashSet<String> = devices
        .iter()
        .map(|d| d.mdm_identity().unwrap().certificate.serial_hex())
        .collect();
    assert_eq!(certs.len(), DEVICES, "one identity certificate per device");
    let (_, list) = lab
        .app
        .admin(
            Method::GET,
            "/api/v1/devices?enrolled=true&limit=1000",
            None,
        )
        .await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(DEVICES),
        "{list}"
    );

    // Devices wake on their pushes.
    let control = Arc::new(Control {
        wake: (0..DEVICES).map(|_| Notify::new()).collect(),
        writers_done: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let by_token: HashMap<String, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.push_token_hex(), i))
        .collect();
    let pushed = Arc::new(AtomicUsize::new(0));
    {
        let (control, pushed) = (control.clone(), pushed.clone());
        lab.apns.on_push(move |p| {
            if let Some(i) = by_token.get(&p.token) {
                pushed.fetch_add(1, Ordering::Relaxed);
                control.wake[*i].notify_one();
            }
        });
    }
    let udids: Arc<Vec<String>> = Arc::new(devices.iter().map(|d| d.udid.clone()).collect());
    let load_started = Instant::now();
    let device_tasks: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, d)| tokio::spawn(run_device(d, i, http.clone(), control.clone())))
        .collect();

    // The admins, and the scheduler's tick (follow-up pushes of coalesced enqueues).
    let app = lab.app.client();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (udids, control) = (udids.clone(), control.clone());
            tokio::spawn(async move {
                let r = run_writer(w, app, udids).await;
                control.writers_done.fetch_add(1, Ordering::SeqCst);
                r
            })
        })
        .collect();
    let ticking = Arc::new(AtomicBool::new(true));
    let ticker = {
        let ticking = ticking.clone();
        tokio::spawn(async move {
            while ticking.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let (s, b) = app
                    .call(
                        Method::POST,
                        "/internal/tick",
                        Some(mdm_e2e::SYNC_KEY),
                        None,
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{b}");
            }
        })
    };
    let mut queued: Vec<Vec<Queued>> = Vec::new();
    for w in writers {
        queued.push(
            w.await
                .expect("writer task")
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let queued_in = load_started.elapsed();
    // Every device finishes with one more exchange begun after the last enqueue.
    for n in &control.wake {
        n.notify_one();
    }
    let finish = async {
        let mut out = Vec::new();
        for t in device_tasks {
            out.push(t.await.expect("device task"));
        }
        out
    };
    let results = match tokio::time::timeout(Duration::from_secs(300), finish).await {
        Ok(r) => r,
        Err(_) => {
            control.stop.store(true, Ordering::SeqCst);
            panic!("devices still busy 300 s after the last enqueue");
        }
    };
    ticking.store(false, Ordering::SeqCst);
    ticker.await.unwrap();
    let load_took = load_started.elapsed();

    // Per device: what was queued for it, by whom, in which order.
    let mut for_device: Vec<Vec<&Queued>> = vec![Vec::new(); DEVICES];
    for q in queued.iter().flatten() {
        for_device[q.device].push(q);
    }
    let total: usize = queued.iter().map(Vec::len).sum();
    assert_eq!(total, WRITERS * (SINGLES + BULKS * BULK_SIZE));
    let mut violations: Vec<String> = Vec::new();
    let (mut deliveries, mut deferred, mut polls, mut concurrent) = (0, 0, 0, 0);
    for (i, (d, seen)) in results.iter().enumerate() {
        violations.extend(seen.violations.iter().cloned());
        deliveries += seen.deliveries.len();
        deferred += seen.deferred.len();
        polls += seen.polls;
        concurrent += seen.concurrent;
        // First deliveries: each queued command exactly once, nothing else.
        let mut first: Vec<&str> = Vec::new();
        let mut pos: HashMap<&str, usize> = HashMap::new();
        for (u, _) in &seen.deliveries {
            if !pos.contains_key(u.as_str()) {
                pos.insert(u, first.len());
                first.push(u);
            }
        }
        let mine: HashSet<&str> = for_device[i].iter().map(|q| q.uuid.as_str()).collect();
        for q in &for_device[i] {
            if !pos.contains_key(q.uuid.as_str()) {
                violations.push(format!("{} {} lost", d.udid, q.uuid));
            }
        }
        for u in &first {
            if !mine.contains(u) {
                violations.push(format!("{} {u} delivered but never queued", d.udid));
            }
        }
        // Re-deliveries: exactly the deferred commands, once each, in a later exchange.
        for (u, at) in &seen.deferred {
            let again: Vec<u64> = seen
                .deliveries
                .iter()
                .filter(|(x, _)| x == u)
                .map(|(_, e)| *e)
                .collect();
            if again.len() != 2 || again[1] <= *at {
                violations.push(format!(
                    "{} {u} deferred in exchange {at}, delivered in {again:?}",
                    d.udid
                ));
            }
        }
        if seen.deliveries.len() != first.len() + seen.deferred.len() {
            violations.push(format!("{}: extra deliveries", d.udid));
        }
        // Order: each writer's, and real time across writers.
        let qs = &for_device[i];
        for a in qs {
            for b in qs {
                let (Some(pa), Some(pb)) = (pos.get(a.uuid.as_str()), pos.get(b.uuid.as_str()))
                else {
                    continue;
                };
                let same_writer_before = a.writer == b.writer && a.sent < b.sent;
                let real_time_before = a.answered < b.sent;
                if (same_writer_before || real_time_before) && pa > pb {
                    violations.push(format!(
                        "{}: {} (writer {}) queued before {} (writer {}) but delivered after it",
                        d.udid, a.uuid, a.writer, b.uuid, b.writer
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "{} violations, e.g.:\n{}",
        violations.len(),
        violations
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(deliveries, total + deferred);
    assert!(deferred > total / 10, "some commands were deferred");
    // The scenario itself: devices fetched while admins queued, not only afterwards.
    assert!(
        concurrent > total / 4,
        "only {concurrent} of {deliveries} deliveries overlapped the enqueues"
    );

    // The history API: every command acknowledged, the deferred ones after one NotNow.
    let deferred_uuids: HashSet<&str> = results
        .iter()
        .flat_map(|(_, s)| s.deferred.keys().map(String::as_str))
        .collect();
    for (i, (d, _)) in results.iter().enumerate() {
        let (s, h) = lab
            .app
            .admin(
                Method::GET,
                &format!("/api/v1/devices/{}/commands?limit=1000", d.udid),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{h}");
        let cmds = h["items"].as_array().unwrap();
        let listed: HashSet<&str> = cmds
            .iter()
            .map(|c| c["command_uuid"].as_str().unwrap())
            .collect();
        let mine: HashSet<&str> = for_device[i].iter().map(|q| q.uuid.as_str()).collect();
        assert_eq!(listed, mine, "{}: history lists what was queued", d.udid);
        for c in cmds {
            let u = c["command_uuid"].as_str().unwrap();
            assert_eq!(c["status"], "acknowledged", "{}: {c}", d.udid);
            let nn = u64::from(deferred_uuids.contains(u));
            assert_eq!(c["not_now_count"], nn, "{}: {c}", d.udid);
        }
    }
    let stats = lab.app.kv_stats();
    eprintln!(
        "queue_load: lab ready in {:.1} s; {DEVICES} devices enrolled in {:.1} s; {total} commands from {WRITERS} admins queued in {:.1} s, \
         all answered {:.1} s after the load began; {deliveries} deliveries ({deferred} deferred once, \
         {concurrent} while admins were queueing), \
         {polls} Idle exchanges, {} pushes; store calls {}; whole test {:.1} s",
        lab_ready.as_secs_f64(),
        enrolled_in.as_secs_f64(),
        queued_in.as_secs_f64(),
        load_took.as_secs_f64(),
        pushed.load(Ordering::Relaxed),
        stats.calls(),
        started.elapsed().as_secs_f64()
    );
    lab.shutdown().await;
}

//! Phase 1: signed `Idle` polls with empty queues, at full load (closed loop) and at a
//! fixed offered rate (open loop), over kept-alive connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use mdm_e2e::StatusCode;

use crate::latency::{Latencies, latencies};

/// A device's `Idle`, ready to send again and again.
#[derive(Clone)]
pub struct Poll {
    pub path: String,
    pub body: Bytes,
    pub signature: HeaderValue,
}

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(mdm_host::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one `Idle`; an error unless the answer is the empty 200 of an empty queue.
pub async fn poll(sender: &mut Sender, p: &Poll) -> anyhow::Result<()> {
    let req = http::Request::builder()
        .method("PUT")
        .uri(p.path.as_str())
        .header("host", "mdm.bench")
        .header("content-type", "application/x-apple-aspen-mdm")
        .header("mdm-signature", p.signature.clone())
        .body(Full::new(p.body.clone()))?;
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK || !body.is_empty() {
        bail!(
            "Idle answered {status} with {} bytes: {}",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    }
    Ok(())
}

/// C connections, each polling the next device as soon as its previous poll returned.
/// Returns requests/s over `duration` (after `warmup`) and the latencies measured then.
pub async fn closed_loop(
    addr: SocketAddr,
    polls: Arc<Vec<Poll>>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(f64, Latencies)> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let (measure_from, measure_to) = (start + warmup, start + warmup + duration);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (polls, next) = (polls.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut lat = Vec::new();
            loop {
                let sent = Instant::now();
                if sent >= measure_to {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed) % polls.len();
                poll(&mut sender, &polls[i]).await?;
                if sent >= measure_from {
                    lat.push(sent.elapsed());
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    Ok((all.len() as f64 / duration.as_secs_f64(), latencies(all)))
}

/// Open loop at `rate` requests/s: request i is due at t0 + i/rate and goes out then on a
/// free kept-alive connection (a new one if all are busy); its latency counts from when
/// it was due. Returns the rate achieved, the latencies after `warmup`, and the most
/// connections that were open.
pub async fn open_loop(
    addr: SocketAddr,
    polls: Arc<Vec<Poll>>,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(f64, Latencies, usize)> {
    let pool: Arc<Mutex<Vec<Sender>>> = Arc::new(Mutex::new(Vec::new()));
    let opened = Arc::new(AtomicUsize::new(0));
    let total = ((warmup + duration).as_secs_f64() * rate) as usize;
    let skip = (warmup.as_secs_f64() * rate) as usize;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let (pool, opened, polls) = (pool.clone(), opened.clone(), polls.clone());
        tasks.push(tokio::spawn(async move {
            let pooled = pool.lock().unwrap().pop();
            let mut sender = match pooled {
                Some(s) => s,
                None => {
                    opened.fetch_add(1, Ordering::Relaxed);
                    connect(addr).await?
                }
            };
            poll(&mut sender, &polls[i % polls.len()]).await?;
            let latency = due.elapsed();
            pool.lock().unwrap().push(sender);
            anyhow::Ok((tokio::time::Instant::now(), latency))
        }));
    }
    let mut lat = Vec::with_capacity(total - skip);
    let mut last = start;
    for (i, t) in tasks.into_iter().enumerate() {
        let (done, latency) = t.await??;
        last = last.max(done);
        if i >= skip {
            lat.push(latency);
        }
    }
    let span = (last - start).as_secs_f64();
    Ok((
        total as f64 / span,
        latencies(lat),
        opened.load(Ordering::Relaxed),
    ))
}

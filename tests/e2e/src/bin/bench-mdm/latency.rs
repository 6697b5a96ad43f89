//! Latency figures of a benchmark phase: the percentiles of a set of durations, printed
//! in milliseconds.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Latencies {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

pub fn latencies(mut v: Vec<Duration>) -> Latencies {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Latencies {
        n: v.len(),
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: *v.last().unwrap(),
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

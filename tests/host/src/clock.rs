//! The guests' wall clock: the host's, shifted by an offset tests can move forward
//! ([`GuestClock::advance`]), so that leases, backoffs and expiries can be passed without
//! waiting. Monotonic time (timeouts, sleeps) is not shifted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime_wasi::HostWallClock;

/// A shared offset (seconds) added to the wall clock of every component instance.
#[derive(Debug, Clone, Default)]
pub struct GuestClock(Arc<AtomicU64>);

impl GuestClock {
    /// Moves the guests' wall clock forward by `d` (whole seconds); never backward.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_secs(), Ordering::SeqCst);
    }

    /// How far ahead of the host's clock the guests are.
    pub fn offset(&self) -> Duration {
        Duration::from_secs(self.0.load(Ordering::SeqCst))
    }

    /// The guests' current wall-clock time.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.offset()
    }

    pub(crate) fn wasi(&self) -> impl HostWallClock + 'static {
        Shifted(self.clone())
    }
}

struct Shifted(GuestClock);

impl HostWallClock for Shifted {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.0
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

//! The drain signal, shared by the control thread and every core.
//!
//! Written once (when the drain starts) and read by each core's tick and once per
//! request: an uncontended cache line that stays shared in every core's cache.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The process-wide drain state.
#[derive(Debug)]
pub struct Shutdown {
    draining: AtomicBool,
    /// Drain timeout in ms chosen when the drain started (SIGINT drains faster).
    timeout_ms: AtomicU64,
    started: Instant,
    /// Milliseconds after `started` at which the drain began.
    began_ms: AtomicU64,
    /// Calls in flight per core, published only while draining, so that every core
    /// keeps answering "shutting down" until the last call of the process is done.
    busy: Vec<AtomicUsize>,
    /// Every core has finished (ends the watchdog).
    stopped: AtomicBool,
}

impl Shutdown {
    /// A shutdown that has not started, for `cores` cores.
    pub fn new(cores: usize) -> Self {
        Shutdown {
            draining: AtomicBool::new(false),
            timeout_ms: AtomicU64::new(0),
            started: Instant::now(),
            began_ms: AtomicU64::new(0),
            // Unknown until each core reports once it drains (or fails to start).
            busy: (0..cores).map(|_| AtomicUsize::new(usize::MAX)).collect(),
            stopped: AtomicBool::new(false),
        }
    }

    /// Publishes how many calls core `core` still runs (while draining).
    pub fn report(&self, core: usize, in_flight: usize) {
        if let Some(slot) = self.busy.get(core) {
            slot.store(in_flight, Ordering::Release);
        }
    }

    /// Whether no core reports calls in flight.
    pub fn all_idle(&self) -> bool {
        self.busy.iter().all(|b| b.load(Ordering::Acquire) == 0)
    }

    /// Starts draining with `timeout` for in-flight calls; later calls keep the
    /// first start but may shorten the timeout.
    pub fn begin(&self, timeout: Duration) {
        let ms = timeout.as_millis() as u64;
        if !self.draining.swap(true, Ordering::AcqRel) {
            self.began_ms
                .store(self.started.elapsed().as_millis() as u64, Ordering::Release);
            self.timeout_ms.store(ms, Ordering::Release);
        } else {
            self.timeout_ms.fetch_min(ms, Ordering::AcqRel);
        }
    }

    /// Whether the drain has started.
    #[inline]
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// When in-flight calls are cancelled, once draining.
    pub fn deadline(&self) -> Instant {
        let began = Duration::from_millis(self.began_ms.load(Ordering::Acquire));
        let timeout = Duration::from_millis(self.timeout_ms.load(Ordering::Acquire));
        self.started + began + timeout
    }

    /// Records that every core has finished.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Whether every core has finished.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

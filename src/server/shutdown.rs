//! The drain signal, shared by the control thread and every core.
//!
//! Written once (when the drain starts, which rings every core's bell) and read
//! once per request: an uncontended cache line that stays shared in every core's
//! cache.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::bell::{doorbell, Bell, Ringer};

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
    /// Each core's thread has ended.
    finished: Vec<AtomicBool>,
    /// Told when the drain starts or a core's thread ends (for [`Shutdown::wait_cores`]).
    changed: (Mutex<()>, Condvar),
    /// Rung when the drain starts or its deadline changes: the cores' bells.
    bells: Mutex<Vec<Ringer>>,
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
            finished: (0..cores).map(|_| AtomicBool::new(false)).collect(),
            changed: Default::default(),
            bells: Mutex::default(),
        }
    }

    /// A bell rung when the drain starts or its deadline changes, for a core's
    /// task that waits for either.
    pub(crate) fn bell(&self) -> Bell {
        let (ringer, bell) = doorbell();
        self.bells
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ringer);
        bell
    }

    /// Marks core `core`'s thread as ended.
    fn core_finished(&self, core: usize) {
        if let Some(f) = self.finished.get(core) {
            f.store(true, Ordering::Release);
        }
        self.tell();
    }

    /// Wakes [`Shutdown::wait_cores`]; under its lock, so that no change is missed
    /// between its check and its wait.
    fn tell(&self) {
        let _held = self
            .changed
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.changed.1.notify_all();
    }

    /// Waits until every core's thread has ended, but once draining no longer than
    /// `grace` after the drain's deadline; the cores whose thread has not ended then
    /// (a handler blocking it), in order.
    pub fn wait_cores(&self, grace: Duration) -> Vec<usize> {
        let (lock, cv) = &self.changed;
        let mut held = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let left: Vec<usize> = (self.finished.iter().enumerate())
                .filter(|(_, f)| !f.load(Ordering::Acquire))
                .map(|(core, _)| core)
                .collect();
            if left.is_empty() {
                return left;
            }
            held = if self.draining() {
                // The deadline is read again each time: a later signal may bring it nearer.
                let until = self.deadline() + grace;
                let Some(wait) = until.checked_duration_since(Instant::now()) else {
                    return left;
                };
                cv.wait_timeout(held, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            } else {
                cv.wait(held).unwrap_or_else(PoisonError::into_inner)
            };
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
        let held = self
            .changed
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !self.draining.load(Ordering::Acquire) {
            // The deadline first: whoever sees the drain sees its deadline.
            self.began_ms
                .store(self.started.elapsed().as_millis() as u64, Ordering::Release);
            self.timeout_ms.store(ms, Ordering::Release);
            self.draining.store(true, Ordering::Release);
        } else {
            self.timeout_ms.fetch_min(ms, Ordering::AcqRel);
        }
        self.changed.1.notify_all();
        drop(held);
        let bells = self.bells.lock().unwrap_or_else(PoisonError::into_inner);
        bells.iter().for_each(Ringer::ring);
    }

    /// Whether the drain has started.
    #[inline]
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// When in-flight calls are cancelled, once draining.
    pub fn deadline(&self) -> Instant {
        // Acquire: a drain seen here comes with the deadline stored before it.
        self.draining.load(Ordering::Acquire);
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

/// Held by a core's thread: marks the core ended when the thread ends, panicking
/// or not.
pub struct CoreEnded(Arc<Shutdown>, usize);

impl CoreEnded {
    /// The guard of core `core`.
    pub fn new(shutdown: Arc<Shutdown>, core: usize) -> Self {
        CoreEnded(shutdown, core)
    }
}

impl Drop for CoreEnded {
    fn drop(&mut self) {
        self.0.core_finished(self.1);
    }
}

//! The watchdog: notices a core whose event loop has stopped ticking (a handler that
//! blocks its thread) and reports the core and the method in flight — ringsoa's answer
//! to gevent's "greenlet appears to be blocked" detector.
//!
//! Each core owns one [`Beat`] on its own cache line: a ticker task stores the time,
//! and each call stores its method name's first bytes while it runs (a few relaxed
//! stores, no locks). Only the watchdog thread reads them, a few times per threshold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of the method name kept for the report.
const NAME_WORDS: usize = 3;

/// One core's heartbeat and method in flight.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct Beat {
    /// Milliseconds since the epoch of [`Beats`] at the core's last tick.
    tick_ms: AtomicU64,
    /// The first 24 bytes of the method in flight.
    name: [AtomicU64; NAME_WORDS],
    /// Its length in bytes (0: no call in flight).
    name_len: AtomicU64,
}

impl Beat {
    /// Marks the start of a call of `method`.
    #[inline]
    pub fn enter(&self, method: &[u8]) {
        let mut words = [0u64; NAME_WORDS];
        for (i, b) in method.iter().take(NAME_WORDS * 8).enumerate() {
            words[i / 8] |= (*b as u64) << (8 * (i % 8));
        }
        for (slot, w) in self.name.iter().zip(words) {
            slot.store(w, Ordering::Relaxed);
        }
        self.name_len.store(method.len() as u64, Ordering::Relaxed);
    }

    /// Marks the end of the call.
    #[inline]
    pub fn leave(&self) {
        self.name_len.store(0, Ordering::Relaxed);
    }

    fn method(&self) -> Option<String> {
        let len = self.name_len.load(Ordering::Relaxed) as usize;
        if len == 0 {
            return None;
        }
        let bytes: Vec<u8> = self
            .name
            .iter()
            .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
            .take(len.min(NAME_WORDS * 8))
            .collect();
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        if len > NAME_WORDS * 8 {
            s.push('…');
        }
        Some(s)
    }
}

/// The heartbeats of every core.
#[derive(Debug)]
pub struct Beats {
    epoch: Instant,
    cores: Vec<Beat>,
}

impl Beats {
    /// Heartbeats for `cores` cores.
    pub fn new(cores: usize) -> Self {
        Beats {
            epoch: Instant::now(),
            cores: (0..cores).map(|_| Beat::default()).collect(),
        }
    }

    /// Core `core`'s beat.
    pub fn core(&self, core: usize) -> &Beat {
        &self.cores[core]
    }

    /// Records a tick of core `core` now.
    pub fn tick(&self, core: usize) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.cores[core].tick_ms.store(ms, Ordering::Relaxed);
    }
}

/// What the watchdog calls with each stall: core, method in flight ("" if none), how
/// long the core has not ticked.
pub type OnStall = dyn Fn(usize, &str, Duration) + Send + Sync;

/// Watches `beats` until `stop()` says so; reports each stall once.
pub fn watch(
    beats: Arc<Beats>,
    threshold: Duration,
    on_stall: Option<Arc<OnStall>>,
    stop: impl Fn() -> bool,
) {
    let period = (threshold / 4).max(Duration::from_millis(5));
    // The tick at which each core was last reported, so one stall is one report.
    let mut reported = vec![u64::MAX; beats.cores.len()];
    let late = (period + threshold).as_millis() as u64;
    let mut woke = 0;
    while !stop() {
        std::thread::sleep(period);
        let now = beats.epoch.elapsed().as_millis() as u64;
        // This thread slept a threshold too long: the whole process was stopped
        // (SIGSTOP, a paused VM or container) or starved, the cores with it. They
        // are judged next round, when they have had the time to tick: every core
        // was reported blocked for the length of the pause before.
        if now.saturating_sub(std::mem::replace(&mut woke, now)) >= late {
            continue;
        }
        for (core, beat) in beats.cores.iter().enumerate() {
            let tick = beat.tick_ms.load(Ordering::Relaxed);
            let blocked = Duration::from_millis(now.saturating_sub(tick));
            if tick == 0 || blocked < threshold || reported[core] == tick {
                continue;
            }
            reported[core] = tick;
            let method = beat.method().unwrap_or_default();
            tracing::warn!(core, method = %method, blocked_ms = blocked.as_millis() as u64, "core appears blocked: its event loop has not ticked");
            if let Some(f) = &on_stall {
                f(core, &method, blocked);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_survive_the_round_trip() {
        let b = Beat::default();
        assert_eq!(b.method(), None);
        b.enter(b"relay_whoami");
        assert_eq!(b.method().as_deref(), Some("relay_whoami"));
        b.enter(b"a_method_name_longer_than_twenty_four");
        assert_eq!(b.method().as_deref(), Some("a_method_name_longer_tha…"));
        b.leave();
        assert_eq!(b.method(), None);
    }
}

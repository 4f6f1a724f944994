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
    /// [`Beats::now_ms`] at the core's last tick (0: it has not ticked yet).
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
        let mut bytes = [0u8; NAME_WORDS * 8];
        let n = method.len().min(bytes.len());
        bytes[..n].copy_from_slice(&method[..n]);
        for (slot, w) in self.name.iter().zip(bytes.chunks_exact(8)) {
            let w: [u8; 8] = w.try_into().expect("chunks of 8");
            slot.store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
        self.name_len.store(method.len() as u64, Ordering::Relaxed);
    }

    /// Marks the end of the call.
    #[inline]
    pub fn leave(&self) {
        self.name_len.store(0, Ordering::Relaxed);
    }

    /// The method in flight, if any.
    pub(crate) fn method(&self) -> Option<String> {
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

/// The heartbeats of every core, and the watchdog's own.
#[derive(Debug)]
pub struct Beats {
    epoch: Instant,
    cores: Vec<Beat>,
    /// [`Beats::now_ms`] when the watchdog thread last woke (0: not yet).
    watched_ms: AtomicU64,
    /// When it last woke from a pause of the whole process: no core is judged by
    /// the time before.
    resumed_ms: AtomicU64,
}

impl Beats {
    /// Heartbeats for `cores` cores.
    pub fn new(cores: usize) -> Self {
        Beats {
            epoch: Instant::now(),
            cores: (0..cores).map(|_| Beat::default()).collect(),
            watched_ms: AtomicU64::new(0),
            resumed_ms: AtomicU64::new(0),
        }
    }

    /// Core `core`'s beat.
    pub fn core(&self, core: usize) -> &Beat {
        &self.cores[core]
    }

    /// Records a tick of core `core` now.
    pub fn tick(&self, core: usize) {
        self.cores[core]
            .tick_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the epoch, plus one: a tick in the first millisecond is
    /// not taken for "no tick yet" (a core that blocked on its first call, before
    /// its second tick, was never reported).
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// The cores that have not ticked for `threshold` or longer at `now_ms`, with
    /// their last tick.
    fn stalls(&self, threshold: Duration, now_ms: u64) -> impl Iterator<Item = Stall> + '_ {
        let resumed = self.resumed_ms.load(Ordering::Relaxed);
        self.cores
            .iter()
            .enumerate()
            .filter_map(move |(core, beat)| {
                let tick = beat.tick_ms.load(Ordering::Relaxed);
                let since = tick.max(resumed);
                let blocked = Duration::from_millis(now_ms.saturating_sub(since));
                (tick != 0 && blocked >= threshold).then(|| Stall {
                    core,
                    method: beat.method().unwrap_or_default(),
                    blocked,
                    tick,
                })
            })
    }

    /// Why the process does not serve now, if a core has not ticked for `threshold`:
    /// the first such core, the method in flight and for how long (for `/health`).
    /// Not while the watchdog itself is overdue: then the whole process was stopped
    /// (SIGSTOP, a paused VM) or starved, and its cores are judged once it has
    /// woken and they have had the time to tick.
    pub fn blocked(&self, threshold: Duration) -> Option<String> {
        let now = self.now_ms();
        let watched = self.watched_ms.load(Ordering::Relaxed);
        if watched != 0 && now.saturating_sub(watched) >= overdue(threshold) {
            return None;
        }
        self.stalls(threshold, now).next().map(|s| {
            let within = if s.method.is_empty() {
                String::new()
            } else {
                format!(" in {}", s.method)
            };
            format!(
                "core {} blocked for {} ms{within}: its event loop has not ticked",
                s.core,
                s.blocked.as_millis()
            )
        })
    }
}

/// A core that has not ticked for the threshold.
struct Stall {
    core: usize,
    /// The method in flight ("" if none).
    method: String,
    blocked: Duration,
    /// Its last tick, so one stall is one report.
    tick: u64,
}

/// How often the watchdog looks, and the cores' heartbeats tick, for `threshold`.
pub(crate) fn period(threshold: Duration) -> Duration {
    (threshold / 4).max(Duration::from_millis(5))
}

/// How late the watchdog's wake-up must be to mean the process was paused.
fn overdue(threshold: Duration) -> u64 {
    (period(threshold) + threshold).as_millis() as u64
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
    // The tick at which each core was last reported, so one stall is one report.
    let mut reported = vec![u64::MAX; beats.cores.len()];
    let late = overdue(threshold);
    beats.watched_ms.store(beats.now_ms(), Ordering::Relaxed);
    while !stop() {
        std::thread::sleep(period(threshold));
        let now = beats.now_ms();
        let woke = beats.watched_ms.swap(now, Ordering::Relaxed);
        // This thread slept a threshold too long: the whole process was stopped
        // (SIGSTOP, a paused VM or container) or starved, the cores with it. They
        // are judged from now on, when they have had the time to tick: every core
        // was reported blocked for the length of the pause before.
        if now.saturating_sub(woke) >= late {
            beats.resumed_ms.store(now, Ordering::Relaxed);
            continue;
        }
        for s in beats.stalls(threshold, now) {
            if std::mem::replace(&mut reported[s.core], s.tick) == s.tick {
                continue;
            }
            tracing::warn!(
                core = s.core,
                method = s.method.as_str(),
                blocked_ms = s.blocked.as_millis() as u64,
                "core appears blocked: its event loop has not ticked"
            );
            if let Some(f) = &on_stall {
                f(s.core, &s.method, s.blocked);
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

    /// A core that ticked in the first millisecond and then blocked is blocked (it
    /// used to read as "not ticked yet", and a first call's blocking was missed).
    #[test]
    fn a_block_after_the_first_tick_is_seen() {
        let beats = Beats::new(2);
        beats.tick(0);
        beats.core(0).enter(b"get");
        assert_eq!(beats.blocked(Duration::from_millis(200)), None);
        std::thread::sleep(Duration::from_millis(250));
        let why = beats
            .blocked(Duration::from_millis(200))
            .expect("core 0 blocked");
        assert!(
            why.starts_with("core 0 blocked for ") && why.contains(" ms in get:"),
            "{why}"
        );
        // Core 1 never ticked (it did not start): not blocked.
        assert_eq!(beats.stalls(Duration::ZERO, beats.now_ms()).count(), 1);
    }

    /// After a pause of the whole process, a core is not blocked until it has had
    /// a threshold to tick: not while the watchdog is overdue, nor from the pause's
    /// start once it has woken.
    #[test]
    fn a_pause_of_the_whole_process_is_no_block() {
        // Wide enough that a test thread descheduled for a while between two
        // lines does not make a block of its own.
        let threshold = Duration::from_millis(200);
        let beats = Beats::new(1);
        beats.tick(0);
        beats.watched_ms.store(beats.now_ms(), Ordering::Relaxed);
        // Stopped: neither the core nor the watchdog ran for a while (over the
        // watchdog's period and the threshold: 250 ms).
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(beats.blocked(threshold), None, "the watchdog is overdue");
        // The watchdog wakes, sees its own lateness, and marks the resumption.
        let now = beats.now_ms();
        beats.watched_ms.store(now, Ordering::Relaxed);
        beats.resumed_ms.store(now, Ordering::Relaxed);
        assert_eq!(beats.blocked(threshold), None, "judged from the resumption");
        // The core still does not tick for a threshold, the watchdog awake.
        std::thread::sleep(Duration::from_millis(210));
        beats.watched_ms.store(beats.now_ms(), Ordering::Relaxed);
        assert!(
            beats.blocked(threshold).is_some(),
            "blocked since the resumption"
        );
    }
}

//! The clock that times calls: the CPU's time-stamp counter where the CPU says it
//! is invariant (quanta's calibrated source), else `CLOCK_MONOTONIC`. A reading is
//! the counter's raw value, read from one process-wide clock; only the difference
//! of two is scaled to nanoseconds. A call on the server reads it twice: two
//! readings and the time between them took 20.3 ns, against 30.5 ns through
//! quanta's `Instant` (which scales every reading and looks for a thread's mock
//! clock first) and 54.2 ns through `clock_gettime`, on an AMD EPYC VM (`cargo
//! bench --bench clock`, pinned to one CPU).

use std::sync::LazyLock;
use std::time::Duration;

/// The process's clock, calibrated once ([`calibrate`]).
static CLOCK: LazyLock<quanta::Clock> = LazyLock::new(quanta::Clock::new);

/// A reading of the clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp(u64);

impl Stamp {
    /// Now.
    #[inline]
    pub fn now() -> Stamp {
        Stamp(CLOCK.raw())
    }

    /// The time since this reading.
    #[inline]
    pub fn elapsed(self) -> Duration {
        CLOCK.delta(self.0, CLOCK.raw())
    }

    /// Seconds from `earlier` to this reading (0 when `earlier` is later).
    #[inline]
    pub fn secs_since(self, earlier: Stamp) -> f64 {
        CLOCK.delta(earlier.0, self.0).as_secs_f64()
    }

    /// The reading `d` after this one (to within a tick of the counter).
    #[cfg(test)]
    pub fn after(self, d: Duration) -> Stamp {
        // The counter's rate, from the nanoseconds a large span of it scales to.
        const SPAN: u64 = 1 << 40;
        let span_ns = CLOCK.delta_as_nanos(0, SPAN) as u128;
        Stamp(self.0 + (d.as_nanos() * SPAN as u128 / span_ns) as u64)
    }
}

/// Calibrates the clock against `CLOCK_MONOTONIC` now, once a process (0.6 ms
/// measured on that VM; quanta stops at 200 ms), rather than in the first call
/// timed.
pub(crate) fn calibrate() {
    LazyLock::force(&CLOCK);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_agrees_with_instant() {
        let (stamp, instant) = (Stamp::now(), std::time::Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (a, b) = (stamp.elapsed(), instant.elapsed());
        assert!(a >= Duration::from_millis(20), "{a:?}");
        let apart = a.abs_diff(b);
        assert!(apart < Duration::from_millis(5), "{a:?} against {b:?}");
    }

    #[test]
    fn a_reading_after_a_duration_is_that_far_on() {
        let t0 = Stamp::now();
        for ms in [1, 150, 2_000] {
            let d = Duration::from_millis(ms);
            let apart = t0.after(d).secs_since(t0);
            assert!((apart - d.as_secs_f64()).abs() < 1e-6, "{ms} ms: {apart} s");
        }
        assert_eq!(t0.secs_since(t0.after(Duration::from_millis(5))), 0.0);
    }
}

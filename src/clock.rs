//! The clock that times calls: the CPU's time-stamp counter scaled to nanoseconds
//! where the CPU says it is invariant (quanta's calibrated source), else
//! `CLOCK_MONOTONIC`. A call on the server reads it twice: 22.4 ns for the two
//! readings and the time between them against 51.8 ns through `clock_gettime` on an
//! AMD EPYC VM (`cargo bench --bench clock`), and without `Instant`'s checked,
//! normalising arithmetic, which cost about 80 instructions a call.

use std::time::Duration;

/// A reading of the clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp(quanta::Instant);

impl Stamp {
    /// Now.
    #[inline]
    pub fn now() -> Stamp {
        Stamp(quanta::Instant::now())
    }

    /// The time since this reading.
    #[inline]
    pub fn elapsed(self) -> Duration {
        Stamp::now().0.saturating_duration_since(self.0)
    }

    /// Seconds from `earlier` to this reading (0 when `earlier` is later).
    #[inline]
    pub fn secs_since(self, earlier: Stamp) -> f64 {
        self.0.saturating_duration_since(earlier.0).as_secs_f64()
    }

    /// The reading `d` after this one.
    #[cfg(test)]
    pub fn after(self, d: Duration) -> Stamp {
        Stamp(self.0 + d)
    }
}

/// Calibrates the clock against `CLOCK_MONOTONIC` now, once a process (0.6 ms
/// measured on that VM; quanta stops at 200 ms), rather than in the first call
/// timed.
pub(crate) fn calibrate() {
    Stamp::now();
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
}

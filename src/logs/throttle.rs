//! Rate-limited warnings: a flood of the same event (garbage connections, refusals,
//! accept errors, calls timing out, a ZooKeeper connection that keeps dropping) logs
//! one line per interval and then how many were left out.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How often one kind of warning may be logged.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// One kind of line on one thread (a core's, or the governance thread's).
#[derive(Debug, Default)]
pub struct Throttle {
    last: Cell<Option<Instant>>,
    suppressed: Cell<u64>,
}

impl Throttle {
    /// Whether to log this occurrence now; `Some(n)` says `n` were left out since
    /// the last line.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        match self.last.get() {
            Some(t) if now.saturating_duration_since(t) < INTERVAL => {
                self.suppressed.set(self.suppressed.get() + 1);
                None
            }
            _ => {
                self.last.set(Some(now));
                Some(self.suppressed.replace(0))
            }
        }
    }
}

/// Logs a warning (format arguments) through a [`Throttle`]: the first of a flood
/// as it is, the next one an interval later with how many were left out.
macro_rules! warn_throttled {
    ($throttle:expr, $($fmt:tt)+) => {
        $crate::logs::throttle::log_throttled!(tracing::Level::WARN, $throttle, $($fmt)+)
    };
}
pub(crate) use warn_throttled;

/// [`warn_throttled`] at any level, and under a target of its own if given.
macro_rules! log_throttled {
    ($level:expr, $throttle:expr, target: $target:expr, $($fmt:tt)+) => {
        if let Some(more) = $throttle.allow(std::time::Instant::now()) {
            let line = format!($($fmt)+);
            if more == 0 {
                tracing::event!(target: $target, $level, "{line}");
            } else {
                tracing::event!(
                    target: $target,
                    $level,
                    "{line} (and {more} more like it in the last {} s)",
                    $crate::logs::throttle::INTERVAL.as_secs()
                );
            }
        }
    };
    ($level:expr, $throttle:expr, $($fmt:tt)+) => {
        $crate::logs::throttle::log_throttled!($level, $throttle, target: module_path!(), $($fmt)+)
    };
}
pub(crate) use log_throttled;

/// Runs `f` and counts the events it logs under `target`: a test of a line that
/// must not repeat.
#[cfg(test)]
pub(crate) fn lines_logged(target: &'static str, f: impl FnOnce()) -> usize {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::{Context, SubscriberExt};
    struct Count(&'static str, Arc<Mutex<usize>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
            if e.metadata().target() == self.0 {
                *self.1.lock().unwrap() += 1;
            }
        }
    }
    let lines = Arc::new(Mutex::new(0));
    let subscriber = tracing_subscriber::registry().with(Count(target, lines.clone()));
    tracing::subscriber::with_default(subscriber, || {
        // A callsite first reached on another test's thread, before this
        // subscriber existed, may have its interest cached as "never": this
        // test then counted no line (seen once in CI).
        tracing::callsite::rebuild_interest_cache();
        f()
    });
    let n = *lines.lock().unwrap();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count_left_out() {
        let t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.allow(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(t.allow(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.allow(t0 + INTERVAL), Some(5));
        assert_eq!(t.allow(t0 + INTERVAL + Duration::from_secs(1)), None);
    }
}

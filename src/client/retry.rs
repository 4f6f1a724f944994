//! When a failed call may be sent again, and how many retries a client may spend.
//!
//! A retry is safe when the server cannot have executed the call: nothing was sent
//! (no connection, or the first write failed), or a ringsoa server answered that it
//! did not run it: it drains, or its load control refused the call (a limit
//! reached, a breaker open; retried only on a node the call has not tried, see
//! [`crate::rpc::refusal`]). Other failures are retried only for methods marked
//! idempotent. Every retry also needs a token from the retry budget, so a failing
//! dependency sees at most `floor + ratio × calls` retries per second, never a
//! multiple of the load.

use std::time::{Duration, Instant};

use crate::rpc::{CallError, Refusal};

/// Retry settings.
#[derive(Debug, Clone)]
pub struct RetryOptions {
    /// Retries per call at most (each on another node when there is one).
    pub max_retries: u32,
    /// Retries allowed per call made, over a one-second window (Finagle: 0.2).
    pub budget_ratio: f64,
    /// Retries allowed per second whatever the call rate, so that a quiet client can
    /// still retry.
    pub budget_floor: u32,
    /// Methods that may run twice without harm: retried after any failure that is
    /// not an answer (timeouts and connection errors included).
    pub idempotent: Vec<String>,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_retries: 2,
            budget_ratio: 0.2,
            budget_floor: 10,
            idempotent: Vec::new(),
        }
    }
}

/// Whether the failed attempt may be repeated: `sent` says whether any byte of the
/// request may have reached the server.
pub(crate) fn is_safe<E>(error: &CallError<E>, sent: bool, idempotent: bool) -> bool {
    match error {
        CallError::ShuttingDown => true,
        CallError::Connect { .. } => true,
        CallError::Transport(_) | CallError::Timeout | CallError::Protocol(_) => {
            !sent || idempotent
        }
        // Not run: a node's limit or breaker; another node may take it.
        CallError::Application(_) => only_elsewhere(error),
        // Answers: the server ran the call.
        CallError::Declared(_) => false,
        // The client's own refusal: another try would be refused too.
        CallError::Rejected(_) => false,
    }
}

/// Whether a retry after `error` must go to a node the call has not tried: a
/// node's load control refuses a call sent again at once as it did the first time.
pub(crate) fn only_elsewhere<E>(error: &CallError<E>) -> bool {
    matches!(error, CallError::Application(e) if Refusal::of(e).is_some_and(Refusal::elsewhere))
}

/// A token bucket refilled by calls: per one-second window, `floor + ratio × calls`
/// retries, the calls being the larger of this window's and the last one's (so the
/// start of a window is not starved).
#[derive(Debug, Clone)]
pub(crate) struct RetryBudget {
    ratio: f64,
    floor: u32,
    window_start: Instant,
    calls: u64,
    last_calls: u64,
    retries: u64,
}

const WINDOW: Duration = Duration::from_secs(1);

impl RetryBudget {
    pub fn new(opts: &RetryOptions, now: Instant) -> Self {
        RetryBudget {
            ratio: opts.budget_ratio.max(0.0),
            floor: opts.budget_floor,
            window_start: now,
            calls: 0,
            last_calls: 0,
            retries: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= WINDOW {
            self.last_calls = if elapsed >= 2 * WINDOW { 0 } else { self.calls };
            self.calls = 0;
            self.retries = 0;
            self.window_start = now;
        }
    }

    /// Counts a call (its first attempt).
    pub fn deposit(&mut self, now: Instant) {
        self.roll(now);
        self.calls += 1;
    }

    /// Takes a retry token, if the budget has one.
    pub fn withdraw(&mut self, now: Instant) -> bool {
        self.roll(now);
        let calls = self.calls.max(self.last_calls) as f64;
        let allowed = self.floor as f64 + self.ratio * calls;
        if (self.retries as f64) < allowed.floor() {
            self.retries += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::Never;

    #[test]
    fn only_unexecuted_calls_are_retried_unless_idempotent() {
        let io = || CallError::<Never>::Transport(std::io::ErrorKind::BrokenPipe.into());
        assert!(
            is_safe(&io(), false, false),
            "the first write failed: not sent"
        );
        assert!(
            !is_safe(&io(), true, false),
            "sent: the server may have run it"
        );
        assert!(is_safe(&io(), true, true), "idempotent");
        assert!(!is_safe(&CallError::<Never>::Timeout, true, false));
        assert!(is_safe(&CallError::<Never>::ShuttingDown, true, false));
        let refused = CallError::<Never>::Connect {
            addr: "127.0.0.1:1".parse().unwrap(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        assert!(is_safe(&refused, false, false));
        let app =
            CallError::<Never>::Application(crate::protocol::ApplicationException::internal("x"));
        assert!(!is_safe(&app, true, true), "an answer is final");
        assert!(!only_elsewhere(&app));
        // A ringsoa server's load control did not run it: to another node.
        use crate::rpc::refusal;
        let refusal = |m: String| {
            CallError::<Never>::Application(crate::protocol::ApplicationException::internal(m))
        };
        for m in [
            refusal::limited("concurrency", format_args!("a.echo")),
            refusal::breaker(format_args!("a.echo"), format_args!("open")),
        ] {
            assert!(is_safe(&refusal(m.clone()), true, false), "{m}");
            assert!(only_elsewhere(&refusal(m)));
        }
        let denied = refusal::denied(format_args!("caller x"), format_args!("a.echo"), "acl");
        assert!(
            !is_safe(&refusal(denied), true, true),
            "denied on every node"
        );
        assert!(!only_elsewhere(&CallError::<Never>::ShuttingDown));
    }

    #[test]
    fn the_budget_allows_the_floor_plus_a_ratio_of_calls_per_window() {
        let t0 = Instant::now();
        let opts = RetryOptions {
            budget_ratio: 0.2,
            budget_floor: 2,
            ..RetryOptions::default()
        };
        let mut b = RetryBudget::new(&opts, t0);
        for _ in 0..100 {
            b.deposit(t0);
        }
        let granted = (0..1000).filter(|_| b.withdraw(t0)).count();
        assert_eq!(granted, 2 + 20);
        // The next window starts from the last one's call count.
        let t1 = t0 + WINDOW;
        assert_eq!((0..1000).filter(|_| b.withdraw(t1)).count(), 22);
        // After a quiet window, only the floor.
        let t3 = t0 + 3 * WINDOW;
        assert_eq!((0..1000).filter(|_| b.withdraw(t3)).count(), 2);
    }
}

//! [`Counts`]: how calls ended, as plain counters, and [`Window`]: the last few
//! aligned one-second buckets of them.

use std::collections::VecDeque;

use serde::Serialize;

use crate::control::Outcome;
use crate::protocol::ApplicationExceptionKind;

/// Calls by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Calls that ran (every outcome but refused).
    pub requests: u64,
    /// Results and oneway calls.
    pub successes: u64,
    /// Declared exceptions (healthy answers).
    pub declared: u64,
    /// `TApplicationException`s from the handler or the framework.
    pub application: u64,
    /// PROTOCOL_ERRORs: arguments that did not decode, the caller's fault rather
    /// than the method's (requests, not failures).
    pub bad_arguments: u64,
    /// UNKNOWN_METHODs: calls of a method the service does not have, the caller's
    /// fault too (requests, not failures).
    pub unknown_method: u64,
    /// Panics (server side); no connection, transport or protocol errors (client
    /// side).
    pub system: u64,
    /// Calls cut off by their timeout.
    pub timeouts: u64,
    /// Calls cut off by their caller's deadline, sooner than the method usually
    /// answers ([`Outcome::Expired`]; requests, not failures).
    pub expired: u64,
    /// Calls refused before they ran (not counted in `requests`).
    pub refused: u64,
}

impl Counts {
    /// Counts one call.
    #[inline]
    pub fn add(&mut self, outcome: Outcome) {
        if outcome == Outcome::Refused {
            self.refused += 1;
            return;
        }
        self.requests += 1;
        match outcome {
            Outcome::Result | Outcome::Oneway => self.successes += 1,
            Outcome::Declared => self.declared += 1,
            Outcome::Application(ApplicationExceptionKind::ProtocolError) => {
                self.bad_arguments += 1
            }
            Outcome::Application(ApplicationExceptionKind::UnknownMethod) => {
                self.unknown_method += 1
            }
            Outcome::Application(_) => self.application += 1,
            Outcome::Panic | Outcome::Unavailable => self.system += 1,
            Outcome::Timeout => self.timeouts += 1,
            Outcome::Expired => self.expired += 1,
            Outcome::Refused => unreachable!("counted above"),
        }
    }

    /// Adds other counts.
    pub fn merge(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.successes += o.successes;
        self.declared += o.declared;
        self.application += o.application;
        self.bad_arguments += o.bad_arguments;
        self.unknown_method += o.unknown_method;
        self.system += o.system;
        self.timeouts += o.timeouts;
        self.expired += o.expired;
        self.refused += o.refused;
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

/// Whether an outcome counts against a breaker.
pub fn is_failure(outcome: Outcome) -> bool {
    match outcome {
        Outcome::Timeout | Outcome::Panic | Outcome::Unavailable => true,
        Outcome::Application(k) => !callers_fault(k),
        _ => false,
    }
}

/// Whether a `TApplicationException` of this kind is the caller's fault: an
/// unknown method ([`Counts::unknown_method`]), or arguments that do not decode
/// (PROTOCOL_ERROR; [`Counts::bad_arguments`]).
fn callers_fault(kind: ApplicationExceptionKind) -> bool {
    matches!(
        kind,
        ApplicationExceptionKind::UnknownMethod | ApplicationExceptionKind::ProtocolError
    )
}

/// The last `len` aligned buckets of `width_ms` (bucket k covers
/// `[k·width, (k+1)·width)` ms of the process's clock).
#[derive(Debug, Clone)]
pub struct Window {
    len: usize,
    width_ms: u64,
    /// (bucket index, counts), oldest first.
    buckets: VecDeque<(u64, Counts)>,
}

impl Window {
    /// A window of `len` buckets of `width_ms`.
    pub fn new(len: usize, width_ms: u64) -> Self {
        Window {
            len: len.max(1),
            width_ms: width_ms.max(1),
            buckets: VecDeque::new(),
        }
    }

    /// Adds counts seen at `now_ms`.
    pub fn add(&mut self, now_ms: u64, c: &Counts) {
        let k = now_ms / self.width_ms;
        self.expire(now_ms);
        match self.buckets.back_mut() {
            Some((b, counts)) if *b == k => counts.merge(c),
            _ => self.buckets.push_back((k, *c)),
        }
    }

    /// Drops the buckets older than the window at `now_ms`.
    fn expire(&mut self, now_ms: u64) {
        let k = now_ms / self.width_ms;
        while self
            .buckets
            .front()
            .is_some_and(|(b, _)| b + (self.len as u64) <= k)
        {
            self.buckets.pop_front();
        }
    }

    /// The window's total at `now_ms`.
    pub fn total(&self, now_ms: u64) -> Counts {
        let k = now_ms / self.width_ms;
        let mut t = Counts::default();
        for (_, c) in self
            .buckets
            .iter()
            .filter(|(b, _)| b + (self.len as u64) > k)
        {
            t.merge(c);
        }
        t
    }

    /// Whether it has `len` buckets of `width_ms`.
    pub fn has_shape(&self, len: usize, width_ms: u64) -> bool {
        self.len == len.max(1) && self.width_ms == width_ms.max(1)
    }

    /// Forgets everything (a breaker starts afresh after it locks).
    pub fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_aligned_and_expire() {
        let mut w = Window::new(10, 1000);
        let one = |o| {
            let mut c = Counts::default();
            c.add(o);
            c
        };
        w.add(999, &one(Outcome::Timeout));
        w.add(1000, &one(Outcome::Result));
        w.add(9_999, &one(Outcome::Refused));
        let t = w.total(9_999);
        assert_eq!(
            (t.requests, t.timeouts, t.successes, t.refused),
            (2, 1, 1, 1)
        );
        // At 10,000 ms the bucket [0, 1000) has left the window.
        let t = w.total(10_000);
        assert_eq!((t.requests, t.timeouts), (1, 0));
        assert!(w.total(30_000).is_empty());
        assert!(!is_failure(Outcome::Declared));
        assert!(is_failure(Outcome::Timeout));
        // Cut off by its caller's deadline: a request, not a failure.
        assert!(!is_failure(Outcome::Expired));
        // The caller's fault: counted apart, no failure of the method.
        let bad = one(Outcome::Application(
            ApplicationExceptionKind::ProtocolError,
        ));
        assert_eq!(
            (bad.requests, bad.bad_arguments, bad.application),
            (1, 1, 0)
        );
        assert!(!is_failure(Outcome::Application(
            ApplicationExceptionKind::ProtocolError
        )));
        let unknown = one(Outcome::Application(
            ApplicationExceptionKind::UnknownMethod,
        ));
        assert_eq!(
            (
                unknown.requests,
                unknown.unknown_method,
                unknown.application
            ),
            (1, 1, 0)
        );
        assert!(!is_failure(Outcome::Application(
            ApplicationExceptionKind::UnknownMethod
        )));
        assert!(is_failure(Outcome::Application(
            ApplicationExceptionKind::InternalError
        )));
        let e = one(Outcome::Expired);
        assert_eq!((e.requests, e.expired, e.timeouts), (1, 1, 0));
    }
}

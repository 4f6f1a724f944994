//! A ringsoa server's answers to calls it chose not to run, and how a ringsoa
//! client reads them. Plain Thrift has no nack (Finagle's Mux has one), so they are
//! `TApplicationException` INTERNAL_ERRORs whose messages have fixed forms; any
//! other peer sees a plain INTERNAL_ERROR with a message a person can read.
//!
//! - Draining: [`SHUTTING_DOWN`]. Not executed: retried elsewhere
//!   ([`super::CallError::ShuttingDown`]).
//! - Load control: `ringsoa: <why>: call refused`. Not executed: a client retries
//!   it on a node the call has not tried, within its retry budget, as Finagle
//!   requeues a nack. A rate or concurrency limit reached ([`limited`]) is no
//!   failure of the node (as Envoy counts a 429 against no host): limits are the
//!   service's, the same on every node, and counted as failures, the refusals of
//!   an overload would take the nodes out of rotation one by one while the calls
//!   crowd onto the rest, over their limits in turn. A circuit breaker open or
//!   recovering ([`breaker`]) counts against the node: the method fails there.
//! - Access control: `ringsoa: <caller> may not call <method> (<rule>)`
//!   ([`denied`]). The caller's own fault, the same on every node: an answer, never
//!   retried.
//!
//! A call the server ran and cut off at a timeout ([`timed_out`]) is no refusal,
//! but a client reads its answer here too: as a timeout, and, when the deadline
//! was the caller's, as the caller's impatience rather than the method's failure.

use std::fmt;

use crate::protocol::{ApplicationException, ApplicationExceptionKind};

/// The message of the `TApplicationException` INTERNAL_ERROR that a draining server
/// answers its health check with (and a call it did not execute); clients read it as
/// "not executed: retry elsewhere", i.e. [`super::CallError::ShuttingDown`].
pub const SHUTTING_DOWN: &str = "ringsoa: server is shutting down";

/// How a load-control refusal's message ends.
const REFUSED: &str = ": call refused";

/// How every refusal's message starts.
const PREFIX: &str = "ringsoa: ";

/// How a breaker's refusal starts, after [`PREFIX`].
const BREAKER: &str = "circuit breaker ";

/// What sits between an access-control denial's caller and method.
const DENIED: &str = " may not call ";

/// How [`timed_out`]'s message starts, after [`PREFIX`].
const TIMED_OUT: &str = "call timed out after ";

/// How [`timed_out`]'s message ends when the caller's deadline ended the call.
const EXPIRED: &str = " (the caller's deadline)";

/// A server's refusal, as read from its application exception ([`Refusal::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server drains: [`SHUTTING_DOWN`].
    ShuttingDown,
    /// A rate or concurrency limit refused the call: [`limited`].
    Limited,
    /// A circuit breaker refused the call: [`breaker`].
    Breaker,
    /// Access control refused the caller: [`denied`].
    Denied,
}

impl Refusal {
    /// The refusal `e` is, if it is one.
    pub fn of(e: &ApplicationException) -> Option<Refusal> {
        if e.kind != ApplicationExceptionKind::InternalError {
            return None;
        }
        let m = e.message.as_deref()?;
        if m.starts_with(SHUTTING_DOWN) {
            Some(Refusal::ShuttingDown)
        } else if !m.starts_with(PREFIX) {
            None
        } else if m.ends_with(REFUSED) {
            let breaker = m[PREFIX.len()..].starts_with(BREAKER);
            Some(if breaker {
                Refusal::Breaker
            } else {
                Refusal::Limited
            })
        } else if m.contains(DENIED) {
            Some(Refusal::Denied)
        } else {
            None
        }
    }

    /// Whether the call was not run, and another node may run it.
    pub fn elsewhere(self) -> bool {
        matches!(self, Refusal::Limited | Refusal::Breaker)
    }
}

/// A limit's refusal: `ringsoa: <what> limit of <method> reached: call refused`
/// (`what`: rate, concurrency).
pub fn limited(what: &str, method: fmt::Arguments<'_>) -> String {
    format!("{PREFIX}{what} limit of {method} reached{REFUSED}")
}

/// A circuit breaker's refusal: `ringsoa: circuit breaker <method> is <state>: call
/// refused`.
pub fn breaker(method: fmt::Arguments<'_>, state: fmt::Arguments<'_>) -> String {
    format!("{PREFIX}{BREAKER}{method} is {state}{REFUSED}")
}

/// An access-control denial's message: `ringsoa: <who> may not call <method>
/// (<rule>)`.
pub fn denied(who: fmt::Arguments<'_>, method: fmt::Arguments<'_>, rule: &str) -> String {
    format!("{PREFIX}{who}{DENIED}{method} ({rule})")
}

/// The message of a call a server cut off after `ms`: at a timeout, or
/// (`callers`) at its caller's deadline, sooner than the method usually answers
/// ([`crate::control::Outcome::Expired`]). Not a refusal (the
/// call ran), but a client reads it too: as a timeout, not an application error.
pub fn timed_out(ms: u128, callers: bool) -> String {
    let whose = if callers { EXPIRED } else { "" };
    format!("{PREFIX}{TIMED_OUT}{ms} ms{whose}")
}

/// Whether an application exception is a server's answer that it cut the call
/// off at a timeout ([`timed_out`]).
pub fn is_timeout(e: &ApplicationException) -> bool {
    let m = e.message.as_deref().unwrap_or("");
    e.kind == ApplicationExceptionKind::InternalError
        && m.strip_prefix(PREFIX)
            .is_some_and(|m| m.starts_with(TIMED_OUT))
}

/// Whether an application exception is a draining server's shutting-down answer.
pub fn is_shutting_down(e: &ApplicationException) -> bool {
    Refusal::of(e) == Some(Refusal::ShuttingDown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(m: &str) -> ApplicationException {
        ApplicationException::internal(m)
    }

    #[test]
    fn refusals_are_read_from_their_messages_and_nothing_else_is() {
        let limit = limited("rate", format_args!("app.echo"));
        assert_eq!(
            limit,
            "ringsoa: rate limit of app.echo reached: call refused"
        );
        let open = breaker(format_args!("app.echo"), format_args!("open (why)"));
        assert_eq!(
            open,
            "ringsoa: circuit breaker app.echo is open (why): call refused"
        );
        let acl = denied(format_args!("caller x"), format_args!("app.echo"), "acl");
        assert_eq!(acl, "ringsoa: caller x may not call app.echo (acl)");
        let read = |m: &str| Refusal::of(&internal(m));
        assert_eq!(read(&limit), Some(Refusal::Limited));
        assert_eq!(read(&open), Some(Refusal::Breaker));
        assert!(Refusal::Limited.elsewhere() && Refusal::Breaker.elsewhere());
        assert!(!Refusal::ShuttingDown.elsewhere() && !Refusal::Denied.elsewhere());
        assert_eq!(read(&acl), Some(Refusal::Denied));
        assert_eq!(read(SHUTTING_DOWN), Some(Refusal::ShuttingDown));
        assert!(is_shutting_down(&internal(SHUTTING_DOWN)));
        let (own, callers) = (timed_out(20, false), timed_out(20, true));
        assert_eq!(
            callers,
            "ringsoa: call timed out after 20 ms (the caller's deadline)"
        );
        assert!(is_timeout(&internal(&own)) && is_timeout(&internal(&callers)));
        assert_eq!(read(&callers), None, "the call ran");
        assert!(!is_timeout(&internal("call timed out after 20 ms")));
        // A handler's own failures, and other peers' messages, are no refusals.
        for m in [
            "ringsoa: call timed out after 5 ms",
            "boom: call refused",
            "user 7 may not call twice",
            "",
        ] {
            assert_eq!(read(m), None, "{m}");
        }
        let other_kind = ApplicationException::new(ApplicationExceptionKind::Unknown, limit);
        assert_eq!(Refusal::of(&other_kind), None);
        let kind = ApplicationExceptionKind::InternalError;
        let bare = ApplicationException {
            kind,
            message: None,
        };
        assert_eq!(Refusal::of(&bare), None);
    }
}

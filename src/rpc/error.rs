//! Handler and client error types used by generated code.

use crate::logs::throttle::{log_throttled, Throttle};
use crate::protocol::{ApplicationException, ProtocolError};
use tracing::Level;

/// The exceptions of a method that declares none: it has no values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Never {}

impl std::fmt::Display for Never {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Never {}

/// What a handler returns on failure: one of the method's declared exceptions (sent
/// in the result struct) or an application exception (sent as an EXCEPTION message).
///
/// `?` converts: a declared exception (generated `From`) into `Declared`; an
/// `ApplicationException` into `Application` as it is; any other
/// `std::error::Error` (`io::Error`, `ParseIntError`, a downstream `CallError`, …)
/// into an INTERNAL_ERROR application exception carrying the error's message,
/// logged at `error` (target `ringsoa::handler`; one line per thread every 10 s,
/// with a count of the rest). So that the last rule can exist,
/// `MethodError` itself and generated exceptions do not implement
/// `std::error::Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodError<E = Never> {
    /// A declared exception; generated code provides `From<Exception>` for it.
    Declared(E),
    /// Anything else; the caller gets a `TApplicationException`.
    Application(ApplicationException),
}

impl<E> MethodError<E> {
    /// An INTERNAL_ERROR application exception with this message.
    pub fn internal(message: impl Into<String>) -> Self {
        MethodError::Application(ApplicationException::internal(message))
    }
}

impl<E, T: std::error::Error + 'static> From<T> for MethodError<E> {
    fn from(e: T) -> Self {
        if let Some(app) = (&e as &dyn std::any::Any).downcast_ref::<ApplicationException>() {
            return MethodError::Application(app.clone());
        }
        let message = e.to_string();
        // One line per thread (a core) every interval: a database that is down
        // would otherwise write a line for every call.
        thread_local!(static FAILED: Throttle = Throttle::default());
        FAILED.with(|t| {
            log_throttled!(Level::ERROR, t, target: "ringsoa::handler", "handler failed: {message}")
        });
        MethodError::internal(message)
    }
}

/// What a client call returns on failure.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E = Never> {
    /// The server raised one of the method's declared exceptions.
    #[error("declared exception: {0:?}")]
    Declared(E),
    /// The server answered with a `TApplicationException`.
    #[error(transparent)]
    Application(#[from] ApplicationException),
    /// The reply could not be decoded, or did not match the call.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// No connection to the node could be opened (refused, unreachable, connect
    /// timeout, or a failed handshake); the request was not sent.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The node.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Writing or reading an open connection failed.
    #[error("transport: {0}")]
    Transport(#[from] std::io::Error),
    /// No reply within the call's timeout (or the caller's deadline).
    #[error("call timed out")]
    Timeout,
    /// The server is draining and did not execute the call (safe to retry elsewhere).
    #[error("the server is shutting down; the call was not executed")]
    ShuttingDown,
    /// The client refused the call without sending it: no node, or the per-node
    /// concurrency cap and its waiting line are full.
    #[error("rejected: {0}")]
    Rejected(std::borrow::Cow<'static, str>),
}

impl CallError<Never> {
    /// Re-types an error that carries no declared exception.
    pub fn widen<E>(self) -> CallError<E> {
        match self {
            CallError::Declared(n) => match n {},
            CallError::Application(e) => CallError::Application(e),
            CallError::Protocol(e) => CallError::Protocol(e),
            CallError::Connect { addr, source } => CallError::Connect { addr, source },
            CallError::Transport(e) => CallError::Transport(e),
            CallError::Timeout => CallError::Timeout,
            CallError::ShuttingDown => CallError::ShuttingDown,
            CallError::Rejected(why) => CallError::Rejected(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ApplicationExceptionKind;

    fn fails_with(e: impl std::error::Error + 'static) -> Result<(), MethodError> {
        Err(e)?;
        Ok(())
    }

    #[test]
    fn question_mark_keeps_application_exceptions_and_wraps_the_rest() {
        let app = ApplicationException::new(ApplicationExceptionKind::UnknownMethod, "nope");
        assert_eq!(fails_with(app.clone()), Err(MethodError::Application(app)));
        let io = std::io::Error::other("disk on fire");
        match fails_with(io) {
            Err(MethodError::Application(e)) => {
                assert_eq!(e.kind, ApplicationExceptionKind::InternalError);
                assert_eq!(e.message.as_deref(), Some("disk on fire"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_handler_failing_on_every_call_logs_a_line_not_a_line_each() {
        let lines = crate::logs::throttle::lines_logged("ringsoa::handler", || {
            for _ in 0..100 {
                assert!(fails_with(std::io::Error::other("database down")).is_err());
            }
        });
        assert_eq!(lines, 1);
    }
}

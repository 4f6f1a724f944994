//! Handler and client error types used by generated code.

use crate::protocol::{ApplicationException, ProtocolError};

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

impl<E> From<ApplicationException> for MethodError<E> {
    fn from(e: ApplicationException) -> Self {
        MethodError::Application(e)
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

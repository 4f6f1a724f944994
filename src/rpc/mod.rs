//! What generated code stands on.
//!
//! - [`context`]: [`CallContext`], the explicit per-call value handed to handlers and
//!   passed on to downstream calls (caller, request id, rpc-id chain, meta, deadline).
//! - [`error`]: [`MethodError`] (what a handler returns) and [`CallError`] (what a
//!   client call returns), and [`Never`] for methods that declare no exceptions.
//! - [`dispatch`]: the [`Dispatch`] trait a generated service implements, and the
//!   reply helpers the server shares with it.
//! - [`channel`]: the [`Channel`] trait a generated client stub calls through.
//! - [`multiplex`]: [`Multiplexed`], several services on one port (Apache's
//!   `TMultiplexedProcessor` naming).

pub mod channel;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod multiplex;

pub use channel::Channel;
pub use context::CallContext;
pub use dispatch::{Dispatch, Dispatched, SHUTTING_DOWN, UNKNOWN_METHOD};
pub use error::{CallError, MethodError, Never};
pub use multiplex::Multiplexed;

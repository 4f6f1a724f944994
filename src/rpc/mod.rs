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
//! - [`refusal`]: the answers of a server that chose not to run a call (draining,
//!   load control, access control), and how a client reads them.

pub mod channel;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod multiplex;
pub mod refusal;

pub use channel::Channel;
pub use context::CallContext;
pub use dispatch::{Dispatch, Dispatched, UNKNOWN_METHOD};
pub use error::{CallError, MethodError, Never};
pub use multiplex::Multiplexed;
pub use refusal::{Refusal, SHUTTING_DOWN};

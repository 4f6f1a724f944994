//! Calling services: [`Client`], one core's pooled, balanced, tracked channel to a
//! service, which generated client stubs call through.
//!
//! - [`conn`]: one connection — connect, handshake, write a call, read and check its
//!   reply — and its [`ConnOptions`].
//! - [`pool`]: the idle connections to one node and the rules that retire them.
//! - `limit`: the per-node cap on concurrent calls, with waiters.
//! - [`node`]: a node's pool, limiter and health (failure count, failed list, EWMA).
//! - `list`: a client's node list and the sums kept over it as its nodes change, and
//!   its aperture's window.
//! - [`balance`]: which node gets a call (soft load or P2C, within an aperture if
//!   one is set).
//! - [`retry`]: when a failure may be retried, and the retry budget.
//! - `config`: [`ClientConfig`] and the operator [`Hooks`].
//! - `call`: [`Client`] itself and its call loop; `tracker` makes a call's tracking
//!   fields once, and only for tracked connections; `lease` checks connections out
//!   and back in; `upkeep` is the background task that reaps, pings and probes.
//! - [`shared`]: [`SharedClient`], a `Send + Sync + Clone` handle on client threads
//!   of its own, for tokio applications and plain threads, and [`shared::wait`].
//!
//! It never repeats the seed's hazards: seqids increase per connection, every reply's
//! seqid and method name are checked, and a connection that saw a timeout, a
//! cancellation, a protocol error or a mismatch is closed, never pooled.

pub mod balance;
mod call;
mod config;
pub mod conn;
mod envelope;
mod inner;
mod lease;
mod limit;
mod list;
pub mod node;
pub mod pool;
pub mod retry;
pub mod shared;
mod tracker;
mod upkeep;

pub use balance::{BalanceOptions, Coordinate, Policy, SuccessRate};
pub use call::Client;
pub use config::{AfterCall, Attempt, BeforeCall, ClientConfig, Hooks, OnClose};
pub use conn::ConnOptions;
pub use node::{Node, NodeStats};
pub use pool::{CloseReason, PoolOptions, PoolStats};
pub use retry::RetryOptions;
pub use shared::SharedClient;

//! Calling services: [`Client`], one core's pooled, balanced, tracked channel to a
//! service, which generated client stubs call through.
//!
//! - [`conn`]: one connection — connect, handshake, write a call, read and check its
//!   reply — and its [`Options`].
//! - [`pool`]: the idle connections to one node and the rules that retire them.
//! - `limit`: the per-node cap on concurrent calls, with waiters.
//! - [`node`]: a node's pool, limiter and health (failure count, failed list, EWMA).
//! - [`balance`]: which node gets a call (soft load or P2C).
//! - [`retry`]: when a failure may be retried, and the retry budget.
//! - [`service`]: [`Client`] itself — the call loop, hooks, and the background task
//!   that reaps, pings and probes.
//!
//! It never repeats the seed's hazards: seqids increase per connection, every reply's
//! seqid and method name are checked, and a connection that saw a timeout, a
//! cancellation, a protocol error or a mismatch is closed, never pooled.

pub mod balance;
pub mod conn;
mod limit;
pub mod node;
pub mod pool;
pub mod retry;
pub mod service;

pub use balance::{BalanceOptions, Policy};
pub use conn::Options;
pub use node::{Node, NodeStats};
pub use pool::{CloseReason, PoolOptions, PoolStats};
pub use retry::RetryOptions;
pub use service::{Attempt, Client, ClientConfig, Hooks};

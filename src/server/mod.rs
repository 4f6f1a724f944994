//! The thread-per-core server.
//!
//! One pinned thread per core, each with its own monoio runtime (io_uring, or the
//! epoll driver where io_uring is unavailable), its own service instance built by a
//! per-core factory before it listens, and its own SO_REUSEPORT listener on the same
//! address: the kernel spreads connections across cores and nothing on the request
//! path is shared. Each connection's framing (framed/buffered) and protocol
//! (binary/compact) is detected from its first bytes and replies go back in the same
//! form; thriftpy2's tracking extension is served per connection. A call's timeout
//! is the server's own, shortened to the budget a ringsoa caller sent in meta
//! ([`crate::rpc::context::TIMEOUT_META`]); a call whose budget is already spent is
//! not started.
//!
//! - `config`, `builder`, `handle`, `hooks`: [`Config`], [`ServerBuilder`],
//!   [`ServerHandle`] and the operator [`Hooks`].
//! - [`core`]: one core: runtime, listener, accept loop, drain; `state` is what its
//!   connections share, `conns` its connection table (idle eviction), `fds` fits the
//!   connection limit to the open-file limit (its warnings are rate-limited by
//!   `logs::throttle`), `memory` the buffer budgets to the memory limit.
//! - [`detect`]: first-bytes detection.
//! - `conn`: one connection's request loop; `call`: one call on it.
//! - `handover`: a zero-downtime restart hands the listening sockets to the new
//!   process (SCM_RIGHTS over an abstract Unix socket named for the address).
//! - [`shutdown`]: the drain flag shared with the control thread.
//! - [`watchdog`]: reports a core whose loop stopped ticking, with the method in flight.
//!
//! Each core's service is built by a factory from its [`crate::control::CoreInit`];
//! an optional [`crate::control::CoreControl`] per core admits or refuses each call
//! before it runs and is told every call's [`crate::control::Outcome`].
//!
//! Drain (on [`ServerHandle::shutdown`] or SIGTERM/SIGINT in
//! [`ServerHandle::run_until_signal`]): each core stops accepting and takes the
//! connections queued on its listener. The health-check method (`ping` by default) is
//! answered `TApplicationException` INTERNAL_ERROR `ringsoa: server is shutting
//! down` and its connection closes, so pools that ping on checkout reconnect
//! elsewhere; any other call is still served and its connection closes right after
//! the reply; a connection idle for the drain's grace (100 ms) closes; calls still
//! running at the drain timeout get an error reply.

mod alloc;
mod builder;
mod call;
mod config;
mod conn;
mod conns;
pub mod core;
pub mod detect;
mod end;
mod envelope;
mod fds;
mod handle;
mod handover;
mod hooks;
mod memory;
pub mod shutdown;
mod state;
pub mod watchdog;

pub use builder::ServerBuilder;
pub use config::Config;
pub use handle::ServerHandle;
pub use hooks::{AfterCallHook, CallHook, ConnHook, Hooks};
pub use shutdown::Shutdown;

//! Log routing: events of a target (a prefix of it) at a level or above also go to
//! a file of their own, as the seed stack's rsyslog rules did by logger name. The
//! routes come from config key `log.routes`, a JSON list —
//! `[{"target": "ringsoa::access", "level": "info", "file": "/var/log/app/access.log"}]`
//! — and can change while the process runs ([`Router::set`]).
//!
//! Also: `output`, a writer that never makes a core wait for the log's reader;
//! `throttle`, warnings that would repeat for every call or connection logged once
//! per interval with a count of the rest; and `sparse`, the same for a
//! dependency's lines, as a filter.

mod output;
mod router;
mod sparse;
pub(crate) mod throttle;

pub use output::{non_blocking, WorkerGuard};
pub use router::{RouteLayer, RouteSpec, Router};
pub use sparse::Sparse;

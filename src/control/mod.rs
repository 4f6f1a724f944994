//! The per-core end of the control plane: what a core is given when it starts, the
//! admission check before each call, and the recorder told of each call's outcome.
//!
//! The server and client depend only on this module; the governance and metrics
//! threads fill it (their snapshots reach a core through its [`CoreInit`], their
//! admission rules and recorders are a [`CoreControl`] built per core). Nothing here
//! is shared across cores: each core gets its own values.

mod governed;
pub mod latest;
mod snapshot;

use std::rc::Rc;
use std::time::Duration;

pub use governed::{Governed, Request, Requests, MAX_SERVICES, POLL};
pub use snapshot::{check_name, valid_name, Provider, ServiceName, Snapshot, Source, Switch};

use crate::protocol::{ApplicationException, ApplicationExceptionKind};
use crate::rpc::{CallContext, Dispatched};

/// What a core's factories are given when the core starts, on that core.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CoreInit {
    /// This core's index, from 0.
    pub index: usize,
    /// How many cores the server runs.
    pub cores: usize,
    /// This core's view of config, switches and providers, when the server runs
    /// with governance (`ServerBuilder::governance`).
    pub governance: Option<Rc<Governed>>,
}

impl CoreInit {
    /// The init value of core `index` of `cores`, without governance.
    pub fn new(index: usize, cores: usize) -> Self {
        CoreInit {
            index,
            cores,
            governance: None,
        }
    }
}

/// How a call ended, as the server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The method's result went back.
    Result,
    /// One of the method's declared exceptions went back (a healthy answer).
    Declared,
    /// A `TApplicationException` of this kind went back: unknown method, bad
    /// arguments, or an application error from the handler.
    Application(ApplicationExceptionKind),
    /// A oneway call ran.
    Oneway,
    /// The handler panicked.
    Panic,
    /// The call ran out of time.
    Timeout,
    /// The call ran out of the time its caller gave it, shorter than the server's
    /// own call timeout (if it has one) and than the method usually takes to
    /// answer ([`CoreControl::usually_answers_within`]; before its first answer,
    /// only on a server with a timeout of its own), and was cut off (client side: a
    /// deadline passed down, shorter than the client's call timeout). A request,
    /// but no failure of the method, and left out of the breaker's ratios: counted
    /// as a timeout, a caller with a budget shorter than the method takes would
    /// lock its breaker for every caller.
    Expired,
    /// The call was refused before it ran (admission, or a header over the limits;
    /// client side, also by the downstream's limits, breaker or ACL).
    Refused,
    /// (Client side) the call could not be made or its answer was lost: no
    /// connection, a transport or protocol error, or a draining server.
    Unavailable,
}

impl From<Dispatched> for Outcome {
    fn from(d: Dispatched) -> Self {
        match d {
            Dispatched::Result => Outcome::Result,
            Dispatched::Declared => Outcome::Declared,
            Dispatched::Application(kind) => Outcome::Application(kind),
            Dispatched::Oneway => Outcome::Oneway,
        }
    }
}

/// What admission gave a call, handed back to [`CoreControl::record`] when it
/// ends (a breaker knows its probes by it); `Ticket::default()` for ordinary calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticket(pub u64);

/// A core's admission rules and outcome recorder. Both run on the core, on the
/// request path: they must not block, and should not allocate.
pub trait CoreControl {
    /// Whether the call may run; a refusal is sent to the caller as this
    /// `TApplicationException` (oneway calls are dropped) and recorded as
    /// [`Outcome::Refused`].
    fn admit(&self, cx: &CallContext, method: &str) -> Result<Ticket, ApplicationException> {
        let _ = (cx, method);
        Ok(Ticket::default())
    }

    /// Told of every call's outcome after its reply was written, with the ticket
    /// its admission gave.
    fn record(
        &self,
        cx: &CallContext,
        method: &str,
        ticket: Ticket,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        let _ = (cx, method, ticket, outcome, elapsed);
    }

    /// Whether `method`'s calls that ran to an answer on this core usually took
    /// `elapsed` or less (`None` before any): a call its caller's deadline cut off
    /// sooner than the method usually answers is the caller's impatience
    /// ([`Outcome::Expired`]), one cut off later the method's timeout.
    fn usually_answers_within(&self, method: &str, elapsed: Duration) -> Option<bool> {
        let _ = (method, elapsed);
        None
    }
}

/// Admits everything and records nothing.
impl CoreControl for () {}

/// A core's control of its clients' calls: a breaker per downstream method before
/// each call, and the outcome of each call and of each attempt on a node after.
/// Runs on the calling core; must not block.
pub trait ClientControl {
    /// Whether a call of `service`'s `method` may start; the refusal's message
    /// otherwise.
    fn admit(&self, service: &str, method: &str) -> Result<Ticket, String>;

    /// How a call ended (after all its attempts).
    fn record(
        &self,
        service: &str,
        method: &str,
        ticket: Ticket,
        outcome: Outcome,
        elapsed: Duration,
    );

    /// Whether calls of `service`'s `method` that ran to an answer usually took
    /// `elapsed` or less (`None` before any, or when this control does not
    /// know): a call a deadline passed down cut off sooner than the downstream
    /// usually answers is the caller's impatience ([`Outcome::Expired`]), one cut
    /// off later the downstream's timeout.
    fn usually_answers_within(
        &self,
        service: &str,
        method: &str,
        elapsed: Duration,
    ) -> Option<bool> {
        let _ = (service, method, elapsed);
        None
    }

    /// How one attempt on `node` ended.
    fn record_node(
        &self,
        service: &str,
        node: std::net::SocketAddr,
        outcome: Outcome,
        elapsed: Duration,
    );

    /// Reports `service`'s pool statistics, read from `stats` while the client
    /// lives, whenever they are asked for.
    fn watch_pools(&self, service: &str, stats: PoolSource);
}

/// A client's pool statistics, while it lives.
pub type PoolSource = std::rc::Weak<dyn PoolStats>;

/// What a client's pools report.
pub trait PoolStats {
    /// Every node's health and pool counters on this core.
    fn node_stats(&self) -> Vec<crate::client::NodeStats>;
}

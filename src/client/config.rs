//! What a [`super::Client`] can be told: connection, pool, balance and retry
//! options, and operator hooks.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::balance::BalanceOptions;
use super::conn::ConnOptions;
use super::pool::{CloseReason, PoolOptions};
use super::retry::RetryOptions;
use crate::control::ClientControl;
use crate::rpc::CallError;

/// Everything a [`super::Client`] can be told.
#[derive(Clone, Default)]
pub struct ClientConfig {
    /// The service's name in metrics and breakers (e.g. `app/cluster`; default:
    /// `downstream`, or the service [`super::Client::discover`] follows).
    pub service: String,
    /// The core's recorder and breaker check of downstream calls (e.g.
    /// `ringsoa::metrics::CoreMetrics`).
    pub control: Option<Rc<dyn ClientControl>>,
    /// Connections: app id, protocol, framing, timeouts, tracking.
    pub conn: ConnOptions,
    /// Pools.
    pub pool: PoolOptions,
    /// Node choice and health.
    pub balance: BalanceOptions,
    /// Retries.
    pub retry: RetryOptions,
    /// Hooks.
    pub hooks: Hooks,
}

impl ClientConfig {
    /// Defaults, with this caller's app id.
    pub fn new(app_id: impl Into<String>) -> Self {
        ClientConfig {
            conn: ConnOptions::new(app_id),
            ..ClientConfig::default()
        }
    }

    /// Cuts every wait longer than a year to a year (see
    /// [`crate::deadline::MAX_WAIT`]): a call timeout of `Duration::MAX` would
    /// overflow the call's deadline.
    pub(super) fn bound_waits(&mut self) {
        let (conn, pool) = (&mut self.conn, &mut self.pool);
        crate::deadline::bound([
            ("ping_interval", pool.ping_interval.as_mut()),
            ("max_idle_time", pool.max_idle_time.as_mut()),
            ("keepalive", pool.keepalive.as_mut()),
            ("peek_idle_after", Some(&mut pool.peek_idle_after)),
            ("connect_timeout", Some(&mut conn.connect_timeout)),
            ("call_timeout", Some(&mut conn.call_timeout)),
            ("probe_interval", Some(&mut self.balance.probe_interval)),
        ]);
    }
}

/// What a call hook is told about an attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The node it went to.
    pub node: SocketAddr,
    /// The method.
    pub method: &'a str,
    /// 0 for the first attempt, then 1, 2, … for retries.
    pub retry: u32,
}

/// A hook before each attempt.
pub type BeforeCall = Rc<dyn Fn(&Attempt<'_>)>;
/// A hook after each attempt, with its duration and outcome.
pub type AfterCall = Rc<dyn Fn(&Attempt<'_>, Duration, Result<(), &CallError>)>;
/// A hook after a connection closes.
pub type OnClose = Rc<dyn Fn(SocketAddr, CloseReason)>;

/// Operator hooks; a hook runs on the calling core and must not block.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Before each attempt.
    pub before_call: Option<BeforeCall>,
    /// After each attempt.
    pub after_call: Option<AfterCall>,
    /// After a pooled connection closes.
    pub on_close: Option<OnClose>,
}

//! What the connections of one core share (through an `Rc`: never across threads).

use std::cell::Cell;
use std::sync::Arc;

use super::conns::Conns;
use super::hooks::Hooks;
use super::memory::CoreMemory;
use super::shutdown::Shutdown;
use super::watchdog::Beats;
use super::Config;
use crate::control::{CoreControl, CoreInit};
use crate::logs::throttle::Throttle;

/// Builds a [`CoreControl`] on each core.
pub(crate) type ControlFactory = dyn Fn(&CoreInit) -> Box<dyn CoreControl> + Send + Sync;

/// One core's shared state.
pub struct CoreState<S> {
    /// This core's index, from 0.
    pub index: usize,
    /// This core's service instance.
    pub service: S,
    /// This core's admission rules and outcome recorder, if any.
    pub control: Option<Box<dyn CoreControl>>,
    /// Server configuration.
    pub config: Arc<Config>,
    /// The process-wide drain flag.
    pub shutdown: Arc<Shutdown>,
    /// Calls running now on this core.
    pub in_flight: Cell<usize>,
    /// Open connections on this core.
    pub conns: Conns,
    /// Every core's heartbeat; this core writes only its own.
    pub beats: Arc<Beats>,
    /// Operator hooks.
    pub hooks: Arc<Hooks>,
    /// Rate limits on this core's repeated warnings.
    pub warnings: Warnings,
    /// This core's buffer budgets.
    pub memory: CoreMemory,
}

/// One [`Throttle`] per kind of repeated warning.
#[derive(Debug, Default)]
pub struct Warnings {
    /// A connection that sent bytes this server cannot read.
    pub bad: Throttle,
    /// A request that did not arrive within the read timeout.
    pub slow: Throttle,
    /// A connection whose peer took none of its replies within the write timeout.
    pub stalled: Throttle,
    /// An idle connection closed to admit a new one.
    pub evicted: Throttle,
    /// A new connection refused at the limit.
    pub refused: Throttle,
    /// An accept that failed (out of file descriptors and the like).
    pub accept: Throttle,
    /// A handler that panicked.
    pub panicked: Throttle,
    /// A call that ran past its timeout.
    pub timed_out: Throttle,
    /// A call still running at the drain timeout.
    pub cut_off: Throttle,
}

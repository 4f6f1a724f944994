//! Operator hooks; each runs on the core concerned.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::watchdog::OnStall;
use crate::rpc::CallContext;

/// A hook told of a call: the context and the method name.
pub type CallHook = dyn Fn(&CallContext, &str) + Send + Sync;

/// A hook told of a finished call: context, method name, time taken, and whether a
/// normal reply (result or declared exception) went out.
pub type AfterCallHook = dyn Fn(&CallContext, &str, Duration, bool) + Send + Sync;

/// A hook told of a connection on a core.
pub type ConnHook = dyn Fn(usize, SocketAddr) + Send + Sync;

/// Operator hooks, set through [`super::ServerBuilder`].
#[derive(Default)]
pub struct Hooks {
    pub(crate) on_connected: Option<Box<ConnHook>>,
    pub(crate) on_closed: Option<Box<ConnHook>>,
    pub(crate) on_drain_start: Option<Box<dyn Fn(usize) + Send + Sync>>,
    pub(crate) on_stall: Option<Arc<OnStall>>,
    pub(crate) before_call: Option<Box<CallHook>>,
    pub(crate) after_call: Option<Box<AfterCallHook>>,
}

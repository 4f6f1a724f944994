//! What one [`super::Client`] holds: its settings, nodes and counters, shared by
//! its call loop, its leases and its background task.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::config::ClientConfig;
use super::list::{Aperture, NodeList};
use super::node::NodeState;
use super::retry::RetryBudget;
use super::upkeep::Stop;
use crate::control::{Governed, ServiceName};
use crate::transport::spare::SpareBuffers;

/// The client's state; see the module docs.
pub(super) struct Inner {
    pub config: ClientConfig,
    /// Where the client's window is, with an aperture.
    pub aperture: Option<Aperture>,
    pub nodes: RefCell<Rc<NodeList>>,
    /// The nodes the background task looks at: those that may have idle
    /// connections or are on the failed list. A service may have thousands of
    /// nodes and a client use few; going through 20,000 each tick took
    /// 0.6–0.9 ms of the core.
    pub tended: RefCell<Vec<Rc<NodeState>>>,
    /// The governance view the nodes follow (`Client::discover`) and the service
    /// they are of, asked for news when a call finds no node: a caller that retries
    /// a refused call without awaiting anything else never lets the view's timer
    /// run, and a call made before the providers were first read waits for them.
    pub view: Option<(Rc<Governed>, ServiceName)>,
    pub budget: RefCell<RetryBudget>,
    /// Top-level calls so far: their rpc ids are "1", "2", …
    pub root_calls: Cell<u64>,
    pub maintenance: Cell<bool>,
    /// Ends the background task when the client is dropped.
    pub stop: Rc<Stop>,
    /// Large buffers its connections share between large messages.
    pub spares: Rc<SpareBuffers>,
}

impl Inner {
    /// Puts `node` on the list of nodes to tend, if it is not there yet.
    pub fn tend(&self, node: &Rc<NodeState>) {
        if !node.tended.replace(true) {
            self.tended.borrow_mut().push(node.clone());
        }
    }
}

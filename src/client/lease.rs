//! Checking connections out of a node's pool and back in: leases, the count of
//! connections being opened, and the close hooks (run after the pool is released,
//! so that a hook may look at the client).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use super::conn::Conn;
use super::inner::Inner;
use super::node::NodeState;
use super::pool::{CloseReason, NodePool};
use crate::rpc::CallError;

impl Inner {
    /// A pooled connection that passes its checks at `now`, if there is one.
    pub(super) fn pooled<'a>(&'a self, node: &'a Rc<NodeState>, now: Instant) -> Option<Lease<'a>> {
        let generation = node.generation.get();
        let conn = self.with_pool(node, |pool, closed| {
            pool.checkout(&self.config.pool, generation, now, closed)
        })?;
        Some(Lease {
            client: self,
            node,
            conn: Some(conn),
        })
    }

    /// A pooled connection that passes its checks at `now`, or a new one.
    pub(super) async fn checkout<'a>(
        &'a self,
        node: &'a Rc<NodeState>,
        now: Instant,
    ) -> Result<Lease<'a>, CallError> {
        if let Some(lease) = self.pooled(node, now) {
            return Ok(lease);
        }
        let generation = node.generation.get();
        let connecting = Connecting::new(node);
        // Boxed: connecting is the rare path, and its future (connect plus handshake)
        // would otherwise double the size of every call's future.
        let open = Box::pin(Conn::open(
            node.node.addr,
            &self.config.conn,
            generation,
            &self.spares,
        ));
        let conn = open.await?;
        drop(connecting);
        node.version.set(Some(conn.version));
        node.pool_mut(NodePool::opened);
        Ok(Lease {
            client: self,
            node,
            conn: Some(conn),
        })
    }

    /// Runs `f` on the node's pool with a sink for closed connections; the close
    /// hooks run after the pool is released, so a hook may look at the client.
    pub(super) fn with_pool<R>(
        &self,
        node: &NodeState,
        f: impl FnOnce(&mut NodePool, &mut dyn FnMut(CloseReason)) -> R,
    ) -> R {
        let mut reasons = Vec::new();
        let r = node.pool_mut(|pool| f(pool, &mut |reason| reasons.push(reason)));
        for reason in reasons {
            self.closed(node.node.addr, reason);
        }
        r
    }

    /// Ends a checkout (see [`NodePool::checkin`]); the node is tended while its
    /// pool may hold the connection.
    pub(super) fn checkin(
        &self,
        node: &Rc<NodeState>,
        conn: Box<Conn>,
        verdict: Result<(), CloseReason>,
    ) {
        let generation = node.generation.get();
        self.with_pool(node, |pool, closed| {
            pool.checkin(conn, verdict, &self.config.pool, generation, closed)
        });
        self.tend(node);
    }

    fn closed(&self, addr: SocketAddr, reason: CloseReason) {
        tracing::trace!(%addr, ?reason, "client connection closed");
        if let Some(h) = &self.config.hooks.on_close {
            h(addr, reason);
        }
    }
}

/// Counts a connection being opened until the attempt ends, however it ends.
struct Connecting<'a>(&'a NodeState);

impl<'a> Connecting<'a> {
    fn new(node: &'a NodeState) -> Self {
        node.pool_mut(|p| p.connecting += 1);
        Connecting(node)
    }
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0.pool_mut(|p| p.connecting -= 1);
    }
}

/// A checked-out connection. Dropped without [`Lease::give_back`] — a failed call,
/// or an attempt cancelled by its timeout — it closes the connection.
pub(super) struct Lease<'a> {
    pub client: &'a Inner,
    pub node: &'a Rc<NodeState>,
    pub conn: Option<Box<Conn>>,
}

impl Lease<'_> {
    /// The leased connection.
    pub fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a lease holds its connection")
    }

    /// Returns the connection to the pool after a call that matched its reply, as
    /// last used at `now`.
    pub fn give_back(&mut self, now: Instant) {
        if let Some(mut conn) = self.conn.take() {
            conn.uses += 1;
            conn.last_used = now;
            self.checkin(conn, true);
        }
    }

    fn checkin(&self, conn: Box<Conn>, healthy: bool) {
        let verdict = if healthy {
            Ok(())
        } else {
            Err(CloseReason::Broken)
        };
        self.client.checkin(self.node, conn, verdict);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.checkin(conn, false);
        }
    }
}

//! The client's background task: reaping idle connections, pinging stale ones,
//! probing failed nodes.

use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::conn::{Call, Conn, NoArgs};
use super::inner::Inner;
use super::lease::Lease;
use super::node::{Health, NodeState};
use super::pool::{CloseReason, NodePool};
use crate::flag::Flag;
use crate::race::{race, Either};
use crate::rpc::CallError;
use crate::tracking::OutgoingHeader;

impl Inner {
    /// How often the background task wakes.
    pub(super) fn tick(&self) -> Duration {
        let p = &self.config.pool;
        [
            Some(self.config.balance.probe_interval),
            p.ping_interval,
            p.max_idle_time,
        ]
        .into_iter()
        .flatten()
        .min()
        .map_or(Duration::from_secs(1), |d| d / 2)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// One round of upkeep of the nodes tended ([`Inner::tended`]): reap idle
    /// connections, start due probes and pings. A node with no idle connection
    /// that is not failed leaves the list until a connection comes back to its
    /// pool or it fails.
    pub(super) fn upkeep(self: &Rc<Self>) {
        let now = Instant::now();
        self.spares.trim(now);
        let nodes = std::mem::take(&mut *self.tended.borrow_mut());
        let mut kept = Vec::with_capacity(nodes.len());
        for node in nodes {
            if node.retired() {
                node.tended.set(false);
                continue;
            }
            self.with_pool(&node, |pool, closed| {
                pool.reap(&self.config.pool, now, closed)
            });
            if node.health().probe_due(now) {
                node.health_mut(|h| h.probing = true);
                monoio::spawn(probe(self.clone(), node.clone()));
            }
            if let Some(interval) = self.config.pool.ping_interval {
                let stale = node.pool_mut(|p| p.take_for_ping(interval, now));
                if !stale.is_empty() {
                    monoio::spawn(ping_all(self.clone(), node.clone(), stale));
                }
            }
            if node.pool().idle() > 0 || node.health().is_failed() {
                kept.push(node);
            } else {
                node.tended.set(false);
            }
        }
        // Checkins while the hooks ran may have added nodes: they stay too.
        let mut tended = self.tended.borrow_mut();
        kept.append(&mut tended);
        *tended = kept;
    }

    /// A health-check call on `conn`: any reply that matches proves it works.
    async fn ping(&self, conn: &mut Conn) -> bool {
        let cfg = &self.config;
        let call = Call {
            method: &cfg.pool.ping_method,
            oneway: false,
            header: &OutgoingHeader::default(),
            keep_meta: false,
        };
        let ping = conn.call(&call, &NoArgs);
        matches!(
            monoio::time::timeout(cfg.conn.call_timeout, ping).await,
            Ok(Ok(_)
                | Err(super::conn::Failed {
                    error: CallError::Application(_),
                    ..
                }))
        )
    }
}

/// The background task: upkeep every tick until the client is dropped.
pub(super) async fn maintain(client: Weak<Inner>, stop: Rc<Stop>) {
    loop {
        let Some(tick) = client.upgrade().map(|c| c.tick()) else {
            return;
        };
        if let Either::Right(()) = race(monoio::time::sleep(tick), stop.stopped()).await {
            return;
        }
        match client.upgrade() {
            Some(c) => c.upkeep(),
            None => return,
        }
    }
}

/// Ends the background task as soon as its client is dropped, rather than at its
/// next tick (a service that makes many short-lived clients would otherwise keep a
/// sleeping task for each for up to a second).
#[derive(Default)]
pub(super) struct Stop(Flag);

impl Stop {
    /// Stops the task.
    pub fn stop(&self) {
        self.0.raise();
    }

    fn stopped(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.0.up()
    }
}

/// Active health: connect to a failed node and ping it; restore it on success (the
/// connection joins its pool).
async fn probe(client: Rc<Inner>, node: Rc<NodeState>) {
    let addr = node.node.addr;
    let generation = node.generation.get();
    let ok = match Conn::open(addr, &client.config.conn, generation, &client.spares).await {
        Ok(mut conn) => {
            let alive = client.ping(&mut conn).await;
            if alive {
                node.pool_mut(NodePool::opened);
                Lease {
                    client: &client,
                    node: &node,
                    conn: Some(conn),
                }
                .give_back(Instant::now());
            }
            alive
        }
        Err(_) => false,
    };
    if ok {
        node.health_mut(Health::restore);
        tracing::info!(node = %addr, "node restored by a probe");
    } else {
        let interval = client.config.balance.probe_interval;
        node.health_mut(|h| h.probe_failed(interval, Instant::now()));
        tracing::debug!(node = %addr, "probe failed; node stays failed");
    }
}

/// Pings idle connections that were taken out of the pool; keeps those that answer.
async fn ping_all(client: Rc<Inner>, node: Rc<NodeState>, conns: VecDeque<Box<Conn>>) {
    for mut conn in conns {
        let alive = client.ping(&mut conn).await;
        let verdict = if alive {
            conn.last_used = Instant::now();
            Ok(())
        } else {
            Err(CloseReason::PingFailed)
        };
        client.checkin(&node, conn, verdict);
    }
}

//! [`Client`]: one core's channel to a service — its nodes, a pool per node, node
//! choice, passive and active health, deadlines and safe retries.
//!
//! Build one per core, on that core (it is `!Send`; its background task — reaping,
//! pinging idle connections, probing failed nodes — starts with the first call on
//! the core's runtime and ends when the client is dropped).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::balance::{self, BalanceOptions};
use super::conn::{read_body, Conn, NoArgs, Reply};
use super::node::{Node, NodeState, NodeStats};
use super::pool::{CloseReason, NodePool, PoolOptions};
use super::retry::{self, RetryBudget, RetryOptions};
use super::Options;
use crate::protocol::{Decode, Encode, Protocol};
use crate::rpc::context::TIMEOUT_META;
use crate::rpc::{CallContext, CallError, Channel};
use crate::tracking::RequestHeader;

/// Everything a [`Client`] can be told.
#[derive(Clone, Default)]
pub struct ClientConfig {
    /// Connections: app id, protocol, framing, timeouts, tracking.
    pub conn: Options,
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
            conn: Options::new(app_id),
            ..ClientConfig::default()
        }
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

/// One core's client of one service (see the module docs). Generated client stubs
/// take it (or an `Rc` of it, to share it between stubs) as their channel.
pub struct Client {
    inner: Rc<Inner>,
}

struct Inner {
    config: ClientConfig,
    nodes: RefCell<Rc<[Rc<NodeState>]>>,
    /// Bumped when the node list changes; older connections are closed on return.
    generation: Cell<u64>,
    budget: RefCell<RetryBudget>,
    /// Top-level calls so far: their rpc ids are "1", "2", …
    root_calls: Cell<u64>,
    maintenance: Cell<bool>,
}

impl Client {
    /// A client of the service at `nodes`.
    pub fn new<N: Into<Node>>(nodes: impl IntoIterator<Item = N>, config: ClientConfig) -> Self {
        let budget = RetryBudget::new(&config.retry, Instant::now());
        let client = Client {
            inner: Rc::new(Inner {
                config,
                nodes: RefCell::new(Rc::new([])),
                generation: Cell::new(0),
                budget: RefCell::new(budget),
                root_calls: Cell::new(0),
                maintenance: Cell::new(false),
            }),
        };
        client.set_nodes(nodes);
        client
    }

    /// Replaces the node list (from discovery): a new pool generation. Idle
    /// connections are closed now, connections in use when their call ends; the
    /// health record of a node that stays is kept.
    pub fn set_nodes<N: Into<Node>>(&self, nodes: impl IntoIterator<Item = N>) {
        let inner = &self.inner;
        let old = inner.nodes.borrow().clone();
        for n in old.iter() {
            inner.with_pool(n, |pool, closed| pool.clear(closed));
        }
        inner.generation.set(inner.generation.get() + 1);
        let fresh: Rc<[Rc<NodeState>]> = nodes
            .into_iter()
            .map(|n| {
                let node: Node = n.into();
                let health = old
                    .iter()
                    .find(|o| o.node.addr == node.addr)
                    .map(|o| o.health.borrow().clone())
                    .unwrap_or_default();
                Rc::new(NodeState::new(node, &inner.config.pool, health))
            })
            .collect();
        tracing::debug!(
            nodes = fresh.len(),
            generation = inner.generation.get(),
            "client node list set"
        );
        *inner.nodes.borrow_mut() = fresh;
    }

    /// Every node's health and pool counters on this core.
    pub fn stats(&self) -> Vec<NodeStats> {
        self.inner
            .nodes
            .borrow()
            .iter()
            .map(|n| n.stats())
            .collect()
    }

    /// The protocol replies are encoded in.
    pub fn protocol(&self) -> Protocol {
        self.inner.config.conn.protocol
    }

    /// Makes a call whose arguments and result the caller encodes and decodes itself
    /// (dynamic mode): returns the reply from its message header on (response header
    /// removed, name, seqid and type checked) with its seqid; `None` for oneway calls.
    pub async fn call_raw<A: Encode>(
        &self,
        mut cx: Option<&mut CallContext>,
        method: &str,
        oneway: bool,
        args: &A,
    ) -> Result<Option<(Bytes, i32)>, CallError> {
        let inner = &self.inner;
        inner.start_maintenance();
        let cfg = &inner.config;
        let started = Instant::now();
        let mut deadline = started + cfg.conn.call_timeout;
        if let Some(d) = cx.as_ref().and_then(|cx| cx.deadline) {
            deadline = deadline.min(d);
        }
        let mut header = inner.header_for(cx.as_deref_mut());
        inner.budget.borrow_mut().deposit(started);
        let idempotent = cfg.retry.idempotent.iter().any(|m| m == method);
        let nodes = inner.nodes.borrow().clone();
        let mut tried = Vec::new();
        loop {
            let Some(index) = balance::pick(&nodes, &tried, cfg.balance.policy) else {
                return Err(CallError::Rejected("the service has no nodes".into()));
            };
            let node = &nodes[index];
            let now = Instant::now();
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                return Err(CallError::Timeout);
            };
            if cfg.conn.send_deadline {
                let ms = left.as_millis().max(1).to_string();
                header
                    .meta
                    .get_or_insert_default()
                    .insert(TIMEOUT_META.into(), ms);
            }
            let attempt = Attempt {
                node: node.node.addr,
                method,
                retry: tried.len() as u32,
            };
            if let Some(h) = &cfg.hooks.before_call {
                h(&attempt);
            }
            let sent = Cell::new(false);
            // Pinned where it is made: no copy of the attempt's future per call.
            let call = std::pin::pin!(inner.attempt(node, &header, method, oneway, args, &sent));
            let result = monoio::time::timeout(left, call)
                .await
                .unwrap_or(Err(CallError::Timeout));
            let elapsed = now.elapsed();
            inner.record(node, &result, elapsed, sent.get());
            if let Some(h) = &cfg.hooks.after_call {
                h(&attempt, elapsed, result.as_ref().map(|_| ()));
            }
            let error = match result {
                Ok(reply) => {
                    let reply = reply.map(|r| {
                        if let Some(cx) = cx {
                            cx.reply_meta = r.meta.unwrap_or_default();
                        }
                        (r.msg, r.seqid)
                    });
                    return Ok(reply);
                }
                Err(e) => e,
            };
            let retry = tried.len() < cfg.retry.max_retries as usize
                && retry::is_safe(&error, sent.get(), idempotent)
                && inner.budget.borrow_mut().withdraw(Instant::now());
            if !retry {
                return Err(error);
            }
            tracing::debug!(node = %node.node.addr, method, "retrying after: {error}");
            tried.push(index);
        }
    }
}

impl Inner {
    /// Starts the background task on the first call, on the caller's runtime.
    fn start_maintenance(self: &Rc<Self>) {
        if !self.maintenance.replace(true) {
            monoio::spawn(maintain(Rc::downgrade(self)));
        }
    }

    /// The request header: a child of the caller's context, or a new top-level chain
    /// (new request id, next root rpc id) carrying the context's meta if given.
    fn header_for(&self, cx: Option<&mut CallContext>) -> RequestHeader {
        match cx {
            Some(cx) if !cx.request_id.is_empty() || !cx.seq.is_empty() => RequestHeader {
                seq: Some(cx.next_child_seq()),
                request_id: Some(cx.request_id.clone()),
                meta: Some(cx.meta.clone()),
            },
            other => {
                let n = self.root_calls.get() + 1;
                self.root_calls.set(n);
                // A uuid4 from the core's own generator: no getrandom syscall per call.
                let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes());
                RequestHeader {
                    request_id: Some(id.into_uuid().to_string()),
                    seq: Some(n.to_string()),
                    meta: Some(other.map(|cx| cx.meta.clone()).unwrap_or_default()),
                }
            }
        }
    }

    /// One attempt on one node: a slot, a connection, the call, the connection back.
    async fn attempt<A: Encode>(
        &self,
        node: &Rc<NodeState>,
        header: &RequestHeader,
        method: &str,
        oneway: bool,
        args: &A,
        sent: &Cell<bool>,
    ) -> Result<Option<Reply>, CallError> {
        let Some(_slot) = node.limiter.acquire().await else {
            return Err(CallError::Rejected(
                format!(
                    "{}: {} calls in flight and {} waiting",
                    node.node.addr,
                    node.limiter.in_flight(),
                    node.limiter.waiting()
                )
                .into(),
            ));
        };
        let mut lease = self.checkout(node).await?;
        let conn = lease.conn.as_mut().expect("a lease holds its connection");
        let result = conn
            .call(&self.config.conn, Some(header), method, oneway, args, sent)
            .await;
        // A connection goes back only after a reply that matched its call.
        if matches!(result, Ok(_) | Err(CallError::Application(_))) {
            lease.give_back();
        }
        result
    }

    /// A pooled connection that passes its checks, or a new one.
    async fn checkout<'a>(&'a self, node: &'a NodeState) -> Result<Lease<'a>, CallError> {
        let generation = self.generation.get();
        let now = Instant::now();
        let pooled = self.with_pool(node, |pool, closed| {
            pool.checkout(&self.config.pool, generation, now, closed)
        });
        let conn = match pooled {
            Some(c) => c,
            None => {
                let connecting = Connecting::new(node);
                // Boxed: connecting is the rare path, and its future (connect plus
                // handshake) would otherwise double the size of every call's future.
                let open = Box::pin(Conn::open(node.node.addr, &self.config.conn, generation));
                let c = open.await?;
                drop(connecting);
                node.version.set(Some(c.version));
                node.pool.borrow_mut().opened();
                c
            }
        };
        Ok(Lease {
            client: self,
            node,
            conn: Some(conn),
        })
    }

    /// Passive health: answers count as successes, connection-level failures against
    /// the node. A timeout before anything was sent (the call waited for a slot, or
    /// ran out of time while connecting) says nothing about the node.
    fn record<T>(
        &self,
        node: &NodeState,
        result: &Result<T, CallError>,
        elapsed: Duration,
        sent: bool,
    ) {
        let now = Instant::now();
        let mut health = node.health.borrow_mut();
        match result {
            Ok(_) | Err(CallError::Application(_) | CallError::Declared(_)) => {
                health.success(elapsed, now)
            }
            Err(CallError::Rejected(_)) => {}
            Err(CallError::Timeout) if !sent => {}
            Err(e) => {
                let b = &self.config.balance;
                if health.failure(b.failure_threshold, b.probe_interval, now) {
                    tracing::warn!(node = %node.node.addr, "node failed after {} consecutive failures (last: {e}); probing every {:?}", b.failure_threshold, b.probe_interval);
                }
            }
        }
    }

    /// Runs `f` on the node's pool with a sink for closed connections; the close
    /// hooks run after the pool is released, so a hook may look at the client.
    fn with_pool<R>(
        &self,
        node: &NodeState,
        f: impl FnOnce(&mut NodePool, &mut dyn FnMut(CloseReason)) -> R,
    ) -> R {
        let mut reasons = Vec::new();
        let r = f(&mut node.pool.borrow_mut(), &mut |reason| {
            reasons.push(reason)
        });
        for reason in reasons {
            self.closed(node.node.addr, reason);
        }
        r
    }

    /// Ends a checkout (see [`NodePool::checkin`]).
    fn checkin(&self, node: &NodeState, conn: Conn, verdict: Result<(), CloseReason>) {
        let generation = self.generation.get();
        self.with_pool(node, |pool, closed| {
            pool.checkin(conn, verdict, &self.config.pool, generation, closed)
        });
    }

    fn closed(&self, addr: SocketAddr, reason: CloseReason) {
        tracing::trace!(%addr, ?reason, "client connection closed");
        if let Some(h) = &self.config.hooks.on_close {
            h(addr, reason);
        }
    }

    /// How often the background task wakes.
    fn tick(&self) -> Duration {
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

    /// One round of upkeep: reap idle connections, start due probes and pings.
    fn upkeep(self: &Rc<Self>) {
        let now = Instant::now();
        let generation = self.generation.get();
        let nodes = self.nodes.borrow().clone();
        for node in nodes.iter() {
            self.with_pool(node, |pool, closed| {
                pool.reap(&self.config.pool, now, closed)
            });
            if node.health.borrow().probe_due(now) {
                node.health.borrow_mut().probing = true;
                monoio::spawn(probe(self.clone(), node.clone(), generation));
            }
            if let Some(interval) = self.config.pool.ping_interval {
                let stale = node.pool.borrow_mut().take_for_ping(interval, now);
                if !stale.is_empty() {
                    monoio::spawn(ping_all(self.clone(), node.clone(), stale));
                }
            }
        }
    }

    /// A health-check call on `conn`: any reply that matches proves it works.
    async fn ping(&self, conn: &mut Conn) -> bool {
        let header = RequestHeader {
            request_id: None,
            seq: None,
            meta: None,
        };
        let cfg = &self.config;
        let sent = Cell::new(false);
        let call = conn.call(
            &cfg.conn,
            Some(&header),
            &cfg.pool.ping_method,
            false,
            &NoArgs,
            &sent,
        );
        matches!(
            monoio::time::timeout(cfg.conn.call_timeout, call).await,
            Ok(Ok(_) | Err(CallError::Application(_)))
        )
    }
}

/// Counts a connection being opened until the attempt ends, however it ends.
struct Connecting<'a>(&'a NodeState);

impl<'a> Connecting<'a> {
    fn new(node: &'a NodeState) -> Self {
        node.pool.borrow_mut().connecting += 1;
        Connecting(node)
    }
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0.pool.borrow_mut().connecting -= 1;
    }
}

/// A checked-out connection. Dropped without [`Lease::give_back`] — a failed call,
/// or an attempt cancelled by its timeout — it closes the connection.
struct Lease<'a> {
    client: &'a Inner,
    node: &'a NodeState,
    conn: Option<Conn>,
}

impl Lease<'_> {
    fn give_back(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.uses += 1;
            conn.last_used = Instant::now();
            self.checkin(conn, true);
        }
    }

    fn checkin(&self, conn: Conn, healthy: bool) {
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

/// The background task: upkeep every tick until the client is dropped.
async fn maintain(client: Weak<Inner>) {
    loop {
        let Some(tick) = client.upgrade().map(|c| c.tick()) else {
            return;
        };
        monoio::time::sleep(tick).await;
        match client.upgrade() {
            Some(c) => c.upkeep(),
            None => return,
        }
    }
}

/// Active health: connect to a failed node and ping it; restore it on success (the
/// connection joins its pool).
async fn probe(client: Rc<Inner>, node: Rc<NodeState>, generation: u64) {
    let addr = node.node.addr;
    let ok = match Conn::open(addr, &client.config.conn, generation).await {
        Ok(mut conn) => {
            let alive = client.ping(&mut conn).await;
            if alive {
                node.pool.borrow_mut().opened();
                Lease {
                    client: &client,
                    node: &node,
                    conn: Some(conn),
                }
                .give_back();
            }
            alive
        }
        Err(_) => false,
    };
    let mut health = node.health.borrow_mut();
    if ok {
        health.restore();
        tracing::info!(node = %addr, "node restored by a probe");
    } else {
        health.probe_failed(client.config.balance.probe_interval, Instant::now());
        tracing::debug!(node = %addr, "probe failed; node stays failed");
    }
}

/// Pings idle connections that were taken out of the pool; keeps those that answer.
async fn ping_all(client: Rc<Inner>, node: Rc<NodeState>, conns: Vec<Conn>) {
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

impl Channel for Client {
    async fn call<A: Encode, T: Decode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<T, CallError> {
        let (msg, _) = self
            .call_raw(cx, method, false, args)
            .await?
            .expect("a CALL has a reply");
        read_body(self.protocol(), msg)
    }

    async fn oneway<A: Encode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<(), CallError> {
        self.call_raw(cx, method, true, args).await.map(|_| ())
    }
}

//! [`Client`]: one core's channel to a service — its nodes, a pool per node, node
//! choice, passive and active health, deadlines and safe retries.
//!
//! Build one per core, on that core (it is `!Send`; its background task — reaping,
//! pinging idle connections, probing failed nodes, in `upkeep` — starts with the
//! first call on the core's runtime and ends when the client is dropped).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::balance;
use super::config::{Attempt, ClientConfig};
use super::conn::{read_body, Call, Failed, Reply};
use super::inner::Inner;
use super::list::{Aperture, NodeList};
use super::node::{Node, NodeState, NodeStats};
use super::retry::{self, RetryBudget};
use super::tracker::Tracker;
use super::upkeep;
use crate::control::{Governed, Outcome, PoolStats, Provider, ServiceName, Snapshot, Ticket};
use crate::logs::throttle::warn_throttled;
use crate::protocol::{ApplicationExceptionKind, Decode, Encode, Protocol};
use crate::rpc::{refusal, CallContext, CallError, Channel, Refusal};
use crate::transport::conn::KEEP_CAPACITY;
use crate::transport::spare::SpareBuffers;

/// One core's client of one service (see the module docs). Generated client stubs
/// take it (or an `Rc` of it, to share it between stubs) as their channel.
pub struct Client {
    inner: Rc<Inner>,
}

impl Client {
    /// A client of the service at `nodes`.
    pub fn new<N: Into<Node>>(nodes: impl IntoIterator<Item = N>, config: ClientConfig) -> Self {
        Client::with_view(nodes, config, None)
    }

    fn with_view<N: Into<Node>>(
        nodes: impl IntoIterator<Item = N>,
        mut config: ClientConfig,
        view: Option<(Rc<Governed>, ServiceName)>,
    ) -> Self {
        if config.service.is_empty() {
            config.service = "downstream".into();
        }
        config.bound_waits();
        let budget = RetryBudget::new(&config.retry, Instant::now());
        let aperture = Aperture::new(config.balance.aperture, config.balance.coordinate);
        let spares = match config.pool.spare_buffers {
            0 => Rc::new(SpareBuffers::new(0)),
            cap => {
                SpareBuffers::of_this_thread().unwrap_or_else(|| Rc::new(SpareBuffers::new(cap)))
            }
        };
        let client = Client {
            inner: Rc::new(Inner {
                config,
                aperture,
                nodes: RefCell::default(),
                tended: RefCell::default(),
                view,
                budget: RefCell::new(budget),
                root_calls: Cell::new(0),
                maintenance: Cell::new(false),
                stop: Rc::default(),
                spares,
            }),
        };
        client.set_nodes(nodes);
        if let Some(c) = &client.inner.config.control {
            let stats: Weak<dyn PoolStats> = Rc::downgrade(&client.inner) as _;
            c.watch_pools(&client.inner.config.service, stats);
        }
        client
    }

    /// Replaces the node list (a node given twice counts once). A node that stays
    /// with the same weight keeps its pool, limiter and health; one whose weight
    /// changed keeps its health; a node that left is retired: its idle connections
    /// close now, the ones in use when their call ends.
    pub fn set_nodes<N: Into<Node>>(&self, nodes: impl IntoIterator<Item = N>) {
        self.inner.set_nodes(nodes.into_iter().map(Into::into));
    }

    /// A client of `service` that follows its providers in the registry through
    /// this core's governance view: nodes and weights change as providers come and
    /// go. Until the providers are loaded, calls fail with "the service has no
    /// nodes" (see [`Governed::loaded`] to wait for them).
    pub fn discover(
        governance: &Rc<Governed>,
        service: ServiceName,
        mut config: ClientConfig,
    ) -> Self {
        governance.watch(&service);
        if config.service.is_empty() {
            config.service = service.to_string();
        }
        let (nodes, seen) = governance.with(|s| (nodes_of(s, &service), providers(s, &service)));
        let view = Some((governance.clone(), service.clone()));
        let client = Client::with_view(nodes, config, view);
        let weak = Rc::downgrade(&client.inner);
        let seen = RefCell::new(seen);
        governance.subscribe(move |snap| {
            let Some(inner) = weak.upgrade() else {
                return false;
            };
            // The same list as last time (a snapshot shares what did not change): a
            // service of thousands of nodes costs a core nothing when only config
            // or another service changed.
            let now = providers(snap, &service);
            let mut seen = seen.borrow_mut();
            let unchanged = match (&*seen, &now) {
                (Some(before), Some(now)) => Arc::ptr_eq(before, now),
                (before, now) => before.is_none() && now.is_none(),
            };
            if unchanged {
                return true;
            }
            *seen = now;
            let nodes = nodes_of(snap, &service);
            let count = nodes.len();
            if inner.set_nodes(nodes.into_iter()) {
                tracing::debug!(%service, nodes = count, "providers changed");
            }
            true
        });
        client
    }

    /// Every node's health and pool counters on this core, in address order (not
    /// the order the nodes were given in).
    pub fn stats(&self) -> Vec<NodeStats> {
        self.inner.node_stats()
    }

    /// The protocol replies are encoded in.
    pub fn protocol(&self) -> Protocol {
        self.inner.config.conn.protocol
    }

    /// The decode budget of a reply ([`super::ConnOptions::max_decoded`]).
    pub fn max_decoded(&self) -> usize {
        self.inner.config.conn.max_decoded
    }

    /// Makes a call whose arguments and result the caller encodes and decodes itself
    /// (dynamic mode): returns the reply from its message header on (response header
    /// removed, name, seqid and type checked) with its seqid; `None` for oneway calls.
    pub async fn call_raw<A: Encode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &str,
        oneway: bool,
        args: &A,
    ) -> Result<Option<(Bytes, i32)>, CallError> {
        let call = std::pin::pin!(self.inner.call(cx, method, oneway, args));
        Ok(call.await?.map(|r| (r.msg, r.seqid)))
    }
}

impl PoolStats for Inner {
    fn node_stats(&self) -> Vec<NodeStats> {
        self.nodes.borrow().iter().map(|n| n.stats()).collect()
    }
}

impl Inner {
    /// Sets the node list; whether it changed. The list is kept in address order,
    /// each node once, so that matching the new list against the old is one pass
    /// over both: a service may have thousands of nodes and each core matches them
    /// at every change (hash lookups took an eighth of each core while 200 of 20,000
    /// providers changed a second; a search per node, half).
    fn set_nodes(&self, nodes: impl Iterator<Item = Node>) -> bool {
        let key = |n: &Node| (n.addr, n.weight);
        let mut nodes: Vec<Node> = nodes.collect();
        if !nodes.is_sorted_by_key(key) {
            nodes.sort_unstable_by_key(key);
        }
        nodes.dedup();
        let old = self.nodes.borrow().clone();
        let mut rest = old.iter().peekable();
        let mut fresh = Vec::with_capacity(nodes.len());
        let mut left = Vec::new();
        for node in nodes {
            let mut passed = None;
            while let Some(o) = rest.next_if(|o| key(&o.node) < key(&node)) {
                left.push(o);
                passed = Some(o);
            }
            if let Some(same) = rest.next_if(|o| o.node == node) {
                fresh.push(same.clone());
                continue;
            }
            // A new weight keeps the node's health.
            let mut before = [passed, rest.peek().copied()].into_iter().flatten();
            let health = before
                .find(|o| o.node.addr == node.addr)
                .map(|o| o.health().clone())
                .unwrap_or_default();
            let failed = health.is_failed();
            let new = Rc::new(NodeState::new(node, &self.config.pool, health));
            if failed {
                self.tend(&new);
            }
            fresh.push(new);
        }
        left.extend(rest);
        if left.is_empty() && fresh.len() == old.len() {
            return false;
        }
        for o in left {
            o.retire();
            self.with_pool(o, |pool, closed| pool.clear(closed));
        }
        tracing::debug!(nodes = fresh.len(), "client node list set");
        let latencies = self.config.balance.policy == balance::Policy::P2cEwma;
        *self.nodes.borrow_mut() = Rc::new(NodeList::new(fresh, latencies, self.aperture));
        true
    }

    /// The call loop: pick a node, attempt, retry when safe, within one deadline.
    async fn call<A: Encode>(
        self: &Rc<Self>,
        mut cx: Option<&mut CallContext>,
        method: &str,
        oneway: bool,
        args: &A,
    ) -> Result<Option<Reply>, CallError> {
        self.start_maintenance();
        let cfg = &self.config;
        let ticket = match &cfg.control {
            Some(c) => c
                .admit(&cfg.service, method)
                .map_err(|m| CallError::Rejected(m.into()))?,
            None => Ticket::default(),
        };
        let started = Instant::now();
        let mut deadline = started + cfg.conn.call_timeout;
        // A deadline passed down, before the client's own timeout, binds the call.
        let passed_down = cx
            .as_ref()
            .and_then(|cx| cx.deadline)
            .filter(|&d| d < deadline);
        deadline = passed_down.unwrap_or(deadline);
        self.budget.borrow_mut().deposit(started);
        let idempotent = cfg.retry.idempotent.iter().any(|m| m == method);
        let mut nodes = self.nodes.borrow().clone();
        if let (true, Some((view, service))) = (nodes.is_empty(), &self.view) {
            // The refusal below would not yield: take the view's news here.
            view.refresh();
            nodes = self.nodes.borrow().clone();
            // Made before the providers were first read (a process just started):
            // wait for them, within the call's deadline, rather than refuse.
            if nodes.is_empty() && !view.with(|s| s.services.contains_key(service)) {
                let left = deadline.saturating_duration_since(Instant::now());
                if view.loaded(service, left).await {
                    nodes = self.nodes.borrow().clone();
                }
            }
        }
        let mut tried = Vec::new();
        let mut reply_meta = None;
        let mut now = started;
        let has_context = cx.is_some();
        let result = {
            let mut tracker = Tracker::new(cx.as_deref_mut(), &self.root_calls);
            loop {
                let Some(index) =
                    balance::pick_awake(&nodes, &mut tried, &cfg.balance, method, now)
                else {
                    break Err(CallError::Rejected("the service has no nodes".into()));
                };
                let node = &nodes[index];
                let Some(left) = deadline
                    .checked_duration_since(now)
                    .filter(|d| !d.is_zero())
                else {
                    break Err(CallError::Timeout);
                };
                let attempt = Attempt {
                    node: node.node.addr,
                    method,
                    retry: tried.len() as u32,
                };
                if let Some(h) = &cfg.hooks.before_call {
                    h(&attempt);
                }
                // Boxed: the attempt's future is kilobytes (timeouts, the connection's
                // read and write); inline, it made every caller's future as large and
                // each await copied it (memmove was 4% of a client's CPU). One
                // allocation per attempt costs less.
                let call =
                    Box::pin(self.attempt(node, &mut tracker, now, left, method, oneway, args));
                let result = call.await;
                let end = Instant::now();
                let elapsed = end.saturating_duration_since(now);
                let (outcome, sent) = match &result {
                    Ok(_) => (Ok(()), true),
                    Err(f) => (Err(&f.error), f.sent),
                };
                self.record(
                    node,
                    method,
                    outcome,
                    elapsed,
                    sent,
                    passed_down.is_some(),
                    end,
                );
                if let Some(h) = &cfg.hooks.after_call {
                    h(&attempt, elapsed, outcome);
                }
                if let Some(c) = &cfg.control {
                    c.record_node(&cfg.service, node.node.addr, outcome_of(outcome), elapsed);
                }
                let failed = match result {
                    Ok(mut reply) => {
                        if has_context {
                            reply_meta = reply.as_mut().map(|r| r.meta.take());
                        }
                        break Ok(reply);
                    }
                    Err(f) => f,
                };
                if matches!(failed.error, CallError::ShuttingDown) {
                    // The node drains: none of its idle connections will serve again.
                    self.with_pool(node, |pool, closed| pool.clear(closed));
                }
                let retry = tried.len() < cfg.retry.max_retries as usize
                    && retry::is_safe(&failed.error, failed.sent, idempotent)
                    && (!retry::only_elsewhere(&failed.error)
                        || balance::untried(&nodes, &tried, index))
                    && self.budget.borrow_mut().withdraw(end);
                if !retry {
                    break Err(failed.error);
                }
                tracing::debug!(node = %node.node.addr, method, "retrying after: {}", failed.error);
                tried.push(index);
                now = end;
            }
        };
        if let (Some(cx), Some(meta)) = (cx, reply_meta) {
            cx.reply_meta = meta.unwrap_or_default();
        }
        if let Some(c) = &cfg.control {
            let mut outcome = outcome_of(result.as_ref().map(|_| ()));
            let elapsed = started.elapsed();
            // Cut off by the deadline passed down: the caller's impatience, not the
            // downstream's failure, unless the downstream usually answers sooner
            // (as one that hangs did).
            if passed_down.is_some()
                && result.as_ref().is_err_and(is_timeout)
                && c.usually_answers_within(&cfg.service, method, elapsed) != Some(true)
            {
                outcome = Outcome::Expired;
            }
            c.record(&cfg.service, method, ticket, outcome, elapsed);
        }
        result
    }

    /// Starts the background task on the first call, on the caller's runtime.
    fn start_maintenance(self: &Rc<Self>) {
        if !self.maintenance.replace(true) {
            monoio::spawn(upkeep::maintain(Rc::downgrade(self), self.stop.clone()));
        }
    }

    /// One attempt on one node within `left`: a slot, a connection, the call, the
    /// connection back. Running out of time before the call is written says nothing
    /// was sent.
    ///
    /// Not an `async fn`: one moves its arguments into locals of their own, and
    /// the copies made the attempt's future (boxed by the caller) 1,056 bytes,
    /// past the 1,032 that glibc's per-thread cache serves; it is 976 now.
    #[allow(clippy::too_many_arguments, clippy::manual_async_fn)]
    fn attempt<'a, 't, A: Encode>(
        &'a self,
        node: &'a Rc<NodeState>,
        tracker: &'a mut Tracker<'t>,
        now: Instant,
        left: Duration,
        method: &'a str,
        oneway: bool,
        args: &'a A,
    ) -> impl std::future::Future<Output = Result<Option<Reply>, Failed>> + use<'a, 't, A> {
        async move {
            let unsent = |error| Failed { error, sent: false };
            // The common case needs no timer: no cap on calls in flight, and an idle
            // connection in the pool.
            let capped = node.limiter.capped();
            let fast = if capped { None } else { self.pooled(node, now) };
            let (_slot, mut lease) = match fast {
                Some(lease) => match node.limiter.acquire().await {
                    Some(slot) => (slot, lease),
                    None => unreachable!("a limiter without a cap always grants"),
                },
                None => Box::pin(monoio::time::timeout(left, async {
                    let Some(slot) = node.limiter.acquire().await else {
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
                    let lease = self.checkout(node, now).await?;
                    Ok((slot, lease))
                }))
                .await
                .unwrap_or(Err(CallError::Timeout))
                .map_err(unsent)?,
            };
            let conn = lease.conn();
            let keep_meta = tracker.has_context();
            // The tracking fields are made only for a tracked connection. The budget
            // sent is the attempt's whole budget, time spent waiting for a slot or a
            // connection included, so the server gives up no sooner than the client.
            let header = if conn.version >= 1 || conn.has_header() {
                let budget = self
                    .config
                    .conn
                    .send_deadline
                    .then(|| left.as_millis().max(1) as u64);
                tracker.header(budget)
            } else {
                Default::default()
            };
            let multiplexed;
            let call = Call {
                method: match &self.config.conn.multiplex {
                    Some(service) => {
                        multiplexed = format!("{service}:{method}");
                        &multiplexed
                    }
                    None => method,
                },
                oneway,
                header: &header,
                keep_meta,
            };
            let result = conn.call_until(&call, args, now + left).await;
            let draining = matches!(&result, Ok(Some(r)) if r.draining);
            if draining {
                // The server closes this connection after the reply, and drains.
                drop(lease);
                self.with_pool(node, |pool, closed| pool.clear(closed));
                return result;
            }
            // A connection goes back only after a reply that matched its call.
            if matches!(
                result,
                Ok(_)
                    | Err(Failed {
                        error: CallError::Application(_),
                        ..
                    })
            ) {
                lease.give_back(now);
            }
            result
        }
    }

    /// Passive health: answers count as successes, connection-level failures and
    /// the node's own failures (INTERNAL_ERROR, MISSING_RESULT: a handler that
    /// failed, panicked or timed out) against the node, so that a node failing
    /// every call fast does not draw the calls as the fastest would. A timeout
    /// before anything was sent (the call waited for a slot, or ran out of time
    /// while connecting) says nothing about the node, nor does one under a deadline
    /// `passed_down` from the client's own caller, in less time than the node's
    /// answers usually take: the caller's impatience. Of a ringsoa server's
    /// refusals ([`crate::rpc::refusal`]): by a limit, no failure, but a rest of
    /// the `method` on the node ([`super::node::Rests`], which its answers
    /// shorten); by a breaker, a failure while its list can spare the node, and a
    /// rest of the method on it once it cannot ([`NodeState::can_be_spared`]:
    /// breakers open on every node, as when they share a failing dependency, do
    /// not take them all out of rotation); by access control, an answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
        &self,
        node: &Rc<NodeState>,
        method: &str,
        result: Result<(), &CallError>,
        elapsed: Duration,
        sent: bool,
        passed_down: bool,
        now: Instant,
    ) {
        let success = || {
            node.rests.answered(method);
            node.health_mut(|h| h.success(elapsed, now))
        };
        let impatient = |e: &CallError| {
            passed_down && is_timeout(e) && node.health().answers_slower_than(elapsed)
        };
        match result {
            Err(e) if impatient(e) => {}
            Err(CallError::Application(e)) => match Refusal::of(e) {
                None if node_failed(e.kind) => self.failed(node, e, elapsed, now),
                Some(Refusal::Limited) => node.rests.refused(method, now),
                Some(Refusal::Breaker) if !node.can_be_spared() => node.rests.refused(method, now),
                Some(Refusal::Breaker) => self.failed(node, e, elapsed, now),
                _ => success(),
            },
            Ok(()) | Err(CallError::Declared(_)) => success(),
            Err(CallError::Rejected(_) | CallError::ShuttingDown) => {}
            Err(CallError::Timeout) if !sent => {}
            Err(e) => self.failed(node, e, elapsed, now),
        }
    }

    /// A failure of `node`: on the failed list after the threshold's in a row, or
    /// below the required success rate.
    fn failed(
        &self,
        node: &Rc<NodeState>,
        e: &dyn std::fmt::Display,
        elapsed: Duration,
        now: Instant,
    ) {
        let opts = &self.config.balance;
        let spare = node.can_be_spared();
        if let Some(why) = node.health_mut(|h| h.failure(opts, spare, elapsed, now)) {
            self.tend(node);
            let t = opts.probe_interval;
            let addr = node.node.addr;
            warn_throttled!(
                node.warnings,
                "node {addr} failed: {why} (last: {e}); probing every {t:?}"
            );
        }
    }
}

/// Whether an application exception (not a refusal) says the node failed the
/// call, rather than the caller (an unknown method, bad arguments).
fn node_failed(kind: ApplicationExceptionKind) -> bool {
    matches!(
        kind,
        ApplicationExceptionKind::InternalError | ApplicationExceptionKind::MissingResult
    )
}

impl Drop for Client {
    fn drop(&mut self) {
        self.inner.stop.stop();
    }
}

impl Client {
    /// Keeps a large reply's buffer for the next large message, once its result
    /// is decoded (and holds no view of it), as [`Channel::call`] does; for
    /// replies decoded elsewhere (a [`super::SharedClient`]'s caller).
    pub(crate) fn keep_spare(&self, buf: BytesMut) {
        self.inner.spares.give(buf);
    }
}

impl Channel for Client {
    async fn call<A: Encode, T: Decode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<T, CallError> {
        // Pinned where it is made: the call's future is kilobytes, and each move
        // would copy all of it.
        let call = std::pin::pin!(self.inner.call(cx, method, false, args));
        let reply = call.await?.expect("a CALL has a reply");
        // A large reply's buffer is kept for the next large message once decoded
        // (unless the result still holds a view of it).
        let large = (reply.msg.len() > KEEP_CAPACITY).then(|| reply.msg.clone());
        let body = read_body(self.protocol(), self.max_decoded(), reply);
        if let Some(unit) = large {
            self.inner.spares.recycle(unit);
        }
        body
    }

    async fn oneway<A: Encode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<(), CallError> {
        self.inner.call(cx, method, true, args).await.map(|_| ())
    }
}

/// The list of `service`'s providers in `snap`, if loaded.
fn providers(snap: &Snapshot, service: &ServiceName) -> Option<Arc<[Provider]>> {
    snap.services.get(service).cloned()
}

/// The nodes of `service` in `snap` (none until loaded), in address order.
fn nodes_of(snap: &Snapshot, service: &ServiceName) -> Vec<Node> {
    let providers = snap.providers(service).unwrap_or_default();
    let mut nodes = Vec::with_capacity(providers.len());
    nodes.extend(providers.iter().filter_map(|p| {
        Some(Node {
            addr: p.addr?,
            weight: p.weight,
        })
    }));
    nodes
}

/// Whether a call ran out of time: its own timeout, or the server's answer that
/// it cut the call off at a timeout.
fn is_timeout(e: &CallError) -> bool {
    match e {
        CallError::Timeout => true,
        CallError::Application(e) => refusal::is_timeout(e),
        _ => false,
    }
}

/// How a call or attempt ended, in the recorders' terms (declared exceptions are
/// decoded later, by the stub: here they are answers, so successes).
fn outcome_of(result: Result<(), &CallError>) -> Outcome {
    match result {
        Ok(()) | Err(CallError::Declared(_)) => Outcome::Result,
        // A downstream's refusal (its limit, breaker or ACL) is its own control at
        // work: counted as an application error, it would lock the caller's
        // breaker, whose message then hides the reason.
        Err(CallError::Application(e)) if Refusal::of(e).is_some() => Outcome::Refused,
        Err(CallError::Application(e)) if refusal::is_timeout(e) => Outcome::Timeout,
        Err(CallError::Application(e)) => Outcome::Application(e.kind),
        Err(CallError::Timeout) => Outcome::Timeout,
        Err(CallError::Rejected(_)) => Outcome::Refused,
        Err(_) => Outcome::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::Conn;
    use super::super::node::Health;
    use super::super::pool::NodePool;
    use super::*;
    use std::net::SocketAddr;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A connection reset: a failure of the node.
    fn reset() -> CallError {
        CallError::Transport(std::io::ErrorKind::ConnectionReset.into())
    }

    /// Records how a call of `echo` on `node` ended at `now`.
    fn seen(inner: &Inner, node: &Rc<NodeState>, result: Result<(), &CallError>, now: Instant) {
        inner.record(node, "echo", result, Duration::ZERO, true, false, now);
    }

    /// Records as many failures of `node`, ending at `end`, as fail it.
    fn fail_in_a_row(inner: &Inner, node: &Rc<NodeState>, end: Instant) {
        for _ in 0..inner.config.balance.failure_threshold {
            seen(inner, node, Err(&reset()), end);
        }
    }

    /// A client made on a server core keeps its large buffers with the core's;
    /// elsewhere, or with `spare_buffers` 0, its own.
    #[test]
    fn a_client_on_a_server_core_keeps_its_spare_buffers_with_the_cores() {
        let own = Client::new([at(1)], ClientConfig::new("t"));
        assert_eq!(own.inner.spares.cap(), 16 << 20);
        let core = Rc::new(SpareBuffers::new(5 << 20));
        SpareBuffers::adopt(&core);
        let on_core = Client::new([at(1)], ClientConfig::new("t"));
        assert!(Rc::ptr_eq(&on_core.inner.spares, &core));
        let mut none = ClientConfig::new("t");
        none.pool.spare_buffers = 0;
        let none = Client::new([at(1)], none);
        assert_eq!(none.inner.spares.cap(), 0);
    }

    /// A node put back by its answers (the client failing open) and failed again,
    /// twenty times: one WARN, not twenty.
    #[test]
    fn a_node_failing_again_and_again_logs_a_line_not_a_line_each() {
        let client = Client::new((1..=3).map(at), ClientConfig::new("t"));
        let inner = &client.inner;
        let node = inner.nodes.borrow()[0].clone();
        let now = Instant::now();
        let lines = crate::logs::throttle::lines_logged("ringsoa::client::call", || {
            for _ in 0..20 {
                fail_in_a_row(inner, &node, now);
                assert!(node.health().is_failed());
                seen(inner, &node, Ok(()), now);
            }
        });
        assert_eq!(lines, 1);
    }

    /// A node failed while other calls to it were in flight: their answers leave
    /// it failed; an answer to a call sent to it afterwards (the client failing
    /// open) puts it back.
    #[test]
    fn answers_to_calls_sent_before_a_node_failed_leave_it_failed() {
        let client = Client::new((1..=3).map(at), ClientConfig::new("t"));
        let inner = &client.inner;
        let node = inner.nodes.borrow()[0].clone();
        let failed_at = Instant::now();
        fail_in_a_row(inner, &node, failed_at);
        let ms = Duration::from_millis(1);
        for _ in 0..10 {
            inner.record(&node, "echo", Ok(()), 2 * ms, true, false, failed_at + ms);
        }
        assert!(node.health().is_failed(), "put back by calls in flight");
        inner.record(&node, "echo", Ok(()), ms, true, false, failed_at + 2 * ms);
        assert!(!node.health().is_failed());
    }

    /// Every node failing half its calls (a fault of the caller's own, or of what
    /// they all depend on): by their success rates, nodes leave rotation only
    /// while more than half the list stays; a node that cannot be reached still
    /// leaves by its consecutive failures.
    #[test]
    fn success_rates_take_no_more_than_half_the_nodes_out_of_rotation() {
        let client = Client::new((1..=5).map(at), ClientConfig::new("t"));
        let inner = &client.inner;
        let nodes = inner.nodes.borrow().clone();
        let now = Instant::now();
        for _ in 0..100 {
            for node in nodes.iter() {
                seen(inner, node, Ok(()), now);
                seen(inner, node, Err(&reset()), now);
            }
        }
        let failed = || nodes.iter().filter(|n| n.health().is_failed()).count();
        assert_eq!(failed(), 2, "3 of 5 stay");
        let up = nodes.iter().find(|n| !n.health().is_failed()).unwrap();
        fail_in_a_row(inner, up, now);
        assert_eq!(failed(), 3);
    }

    /// A ringsoa server's refusals: by a limit, none of its node's health; by
    /// access control, an answer (it clears a run of failures); by a breaker, a
    /// failure while the list can spare the node, a rest of the method once it
    /// cannot.
    #[test]
    fn refusals_by_limits_and_acl_fail_no_node_and_breakers_only_while_it_can_be_spared() {
        use crate::protocol::ApplicationException;
        use crate::rpc::refusal;
        let client = Client::new((1..=3).map(at), ClientConfig::new("t"));
        let inner = &client.inner;
        let nodes = inner.nodes.borrow().clone();
        let now = Instant::now();
        let refused = |m: String| CallError::Application(ApplicationException::internal(m));
        let limit = refused(refusal::limited("rate", format_args!("a.echo")));
        let acl = refused(refusal::denied(
            format_args!("caller x"),
            format_args!("a.echo"),
            "acl",
        ));
        let breaker = refused(refusal::breaker(
            format_args!("a.echo"),
            format_args!("open"),
        ));
        let node = &nodes[0];
        for _ in 0..1_000 {
            seen(inner, node, Err(&limit), now);
        }
        assert!(!node.health().is_failed(), "failed by a rate limit");
        let threshold = inner.config.balance.failure_threshold;
        for _ in 0..10 {
            for _ in 1..threshold {
                seen(inner, node, Err(&reset()), now);
            }
            seen(inner, node, Err(&acl), now);
        }
        assert!(!node.health().is_failed(), "a denial is no failure");
        for _ in 0..threshold {
            seen(inner, node, Err(&breaker), now);
        }
        assert!(
            node.health().is_failed(),
            "2 of 3 stay: a breaker's refusals fail it"
        );
        for _ in 0..threshold {
            seen(inner, &nodes[1], Err(&breaker), now);
        }
        assert!(!nodes[1].health().is_failed(), "1 of 3 would stay");
        assert!(nodes[1].rests.resting("echo", now), "it rests");
        assert!(!nodes[1].rests.resting("add", now), "for that method only");
    }

    /// Thousands of nodes replaced by a list with a few changed: a node that stays
    /// keeps its state, one whose weight changed keeps its health only, and one
    /// that left is retired.
    #[test]
    fn a_new_node_list_keeps_what_stays_and_retires_what_left() {
        let client = Client::new((1..=20_000).map(at), ClientConfig::new("t"));
        let before = client.inner.nodes.borrow().clone();
        let now = Instant::now();
        before[1].health_mut(|h| h.fail(now));
        let mut next: Vec<Node> = (2..=20_000).map(|p| Node::from(at(p))).collect();
        next[0].weight = 5; // port 2
        next.push(Node::from(at(20_001)));
        client.set_nodes(next);
        let after = client.inner.nodes.borrow().clone();
        assert_eq!(after.len(), 20_000);
        assert_eq!(before[0].generation.get(), 1, "port 1 left: retired");
        assert!(!Rc::ptr_eq(&after[0], &before[1]), "port 2: a new weight");
        assert_eq!(after[0].node.weight, 5);
        assert!(after[0].health().is_failed(), "its health kept");
        assert!(after[1..19_999]
            .iter()
            .zip(&before[2..])
            .all(|(a, b)| Rc::ptr_eq(a, b) && b.generation.get() == 0));
        assert_eq!(after[19_999].node.addr, at(20_001));
    }

    /// A node list in any order, with a node given twice and an address at two
    /// weights: kept in address order, each node once; the same list again
    /// changes nothing.
    #[test]
    fn a_node_list_in_any_order_is_kept_in_address_order_once_each() {
        let node = |port, weight| Node {
            addr: at(port),
            weight,
        };
        let client = Client::new([at(3), at(1), at(2), at(1)], ClientConfig::new("t"));
        let list = || -> Vec<(u16, u32)> {
            let nodes = client.inner.nodes.borrow().clone();
            nodes
                .iter()
                .map(|n| (n.node.addr.port(), n.node.weight))
                .collect()
        };
        assert_eq!(list(), [(1, 100), (2, 100), (3, 100)]);
        let before = client.inner.nodes.borrow().clone();
        let same = [node(2, 100), node(3, 100), node(1, 100)];
        assert!(!client.inner.set_nodes(same.into_iter()), "nothing changed");
        assert!(Rc::ptr_eq(&before, &client.inner.nodes.borrow()));
        let now = Instant::now();
        before[1].health_mut(|h| h.fail(now));
        let next = [node(3, 100), node(2, 7), node(2, 200), node(1, 100)];
        assert!(client.inner.set_nodes(next.into_iter()));
        assert_eq!(list(), [(1, 100), (2, 7), (2, 200), (3, 100)]);
        let after = client.inner.nodes.borrow().clone();
        assert!(Rc::ptr_eq(&after[0], &before[0]) && Rc::ptr_eq(&after[3], &before[2]));
        assert!(
            after[1..3].iter().all(|n| n.health().is_failed()),
            "port 2's health kept"
        );
        assert!(before[1].retired() && !before[0].retired() && !before[2].retired());
    }

    /// A client of thousands of nodes tends only those that need it: a failed node
    /// until it is restored, a node whose pool holds a connection until it is
    /// empty, and not a node that left.
    #[test]
    fn only_failed_nodes_and_nodes_with_idle_connections_are_tended() {
        let mut rt = crate::runtime::build().unwrap();
        rt.block_on(async {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let live = listener.local_addr().unwrap();
            let mut config = ClientConfig::new("t");
            config.pool.max_idle_time = Some(Duration::from_millis(20));
            config.conn.tracking = false;
            let client = Client::new((1..=20_000).map(at).chain([live]), config);
            let inner = &client.inner;
            let tended = || -> Vec<SocketAddr> {
                inner.tended.borrow().iter().map(|n| n.node.addr).collect()
            };
            let nodes = inner.nodes.borrow().clone();
            inner.upkeep();
            assert_eq!(tended(), [], "nothing to tend");
            fail_in_a_row(inner, &nodes[0], Instant::now());
            assert_eq!(tended(), [at(1)], "failed");
            inner.upkeep();
            assert_eq!(tended(), [at(1)], "still failed, its probe not due");
            nodes[0].health_mut(Health::restore);
            inner.upkeep();
            assert_eq!(tended(), [], "restored");
            let node = &nodes[20_000];
            let conn = Conn::open(live, &inner.config.conn, 0, &inner.spares)
                .await
                .unwrap();
            node.pool_mut(NodePool::opened);
            inner.checkin(node, conn, Ok(()));
            assert_eq!((tended(), node.pool().idle()), (vec![live], 1));
            inner.upkeep();
            assert_eq!(tended(), [live], "its connection not idle long yet");
            monoio::time::sleep(Duration::from_millis(30)).await;
            inner.upkeep();
            assert_eq!((tended(), node.pool().idle()), (vec![], 0), "reaped");
            fail_in_a_row(inner, &nodes[1], Instant::now());
            client.set_nodes((3..=20_000).map(at));
            inner.upkeep();
            assert_eq!(tended(), [], "port 2 left the list");
            let list = inner.nodes.borrow().clone();
            fail_in_a_row(inner, &list[0], Instant::now());
            assert_eq!(tended(), [at(3)], "port 3 failed");
            let mut next: Vec<Node> = (3..=20_000).map(|p| Node::from(at(p))).collect();
            next[0].weight = 7;
            client.set_nodes(next);
            inner.upkeep();
            let fresh = inner.tended.borrow().clone();
            assert_eq!(fresh.len(), 1, "port 3 with its new weight, still failed");
            assert_eq!((fresh[0].node.addr, fresh[0].node.weight), (at(3), 7));
        });
    }
}

//! [`CoreMetrics`]: one core's recorder and breaker check — plain per-method
//! counters and a latency histogram (no atomics), sent to the aggregator as deltas
//! every [`FLUSH`]; the breaker states the aggregator pushes, read with no lock; the
//! core's probes in flight, each with its timeout. The core's client pools are
//! reported only when asked ([`super::Metrics::ask_pools`]): a client of a service
//! with thousands of nodes would otherwise copy all their counters every flush.

use std::cell::{Cell, RefCell};
// foldhash: a method name is looked up on every call, and SipHash cost more than
// the rest of the lookup.
use foldhash::HashMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use hdrhistogram::Histogram;

use super::acl::Acl;
use super::aggregator::OTHER;
use super::breaker::State;
use super::counts::{is_failure, Counts};
use super::latencies::{Latencies, LatencyCounts};
use super::limit::{CoreLimits, Limit, Over};
use std::net::SocketAddr;

use crate::client::NodeStats;
use crate::clock::Stamp;
use crate::control::latest::Mailbox;
use crate::control::{ClientControl, CoreControl, Outcome, PoolSource, Ticket};
use crate::protocol::ApplicationException;
use crate::race::race;
use crate::rpc::refusal;
use crate::rpc::CallContext;

/// How often the aggregator decides while news comes in.
pub const TICK: Duration = Duration::from_millis(10);
/// The most keys a core keeps apart between two flushes.
const KEYS_PER_FLUSH: usize = 64;
/// The most latency counters (26 KiB each) a core keeps from one flush for the
/// next; more keys get new ones.
const KEPT_LATENCIES: usize = 8;

/// How often a core sends its deltas.
pub const FLUSH: Duration = Duration::from_millis(100);

/// A latency histogram in microseconds, 1 µs to 1 hour, 2 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds")
}

/// How one method's calls went on one core since its last delta, counted call by
/// call.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// How the calls ended.
    pub counts: Counts,
    /// Breaker probes that passed, and that failed or timed out.
    pub probes_passed: u64,
    /// See `probes_passed`.
    pub probes_failed: u64,
    /// The latencies (µs) of the calls that ran to an answer (results, declared
    /// exceptions, oneway calls), summed: how long the method usually takes
    /// ([`Answers`]). Not counted for a client's attempts on a node.
    pub answered_us: u64,
}

impl Tally {
    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.probes_passed == 0 && self.probes_failed == 0
    }
}

/// One method's news from one core since its last delta.
#[derive(Debug, Clone)]
pub struct MethodDelta {
    /// The calls' outcomes and the breaker's probes.
    pub tally: Tally,
    /// The calls' latencies (µs): a key's [`Latencies`], drained at the flush.
    pub latency: LatencyCounts,
}

#[cfg(test)]
impl MethodDelta {
    /// No news.
    pub(super) fn new() -> Self {
        MethodDelta {
            tally: Tally::default(),
            latency: LatencyCounts::default(),
        }
    }
}

/// A core's deltas.
#[derive(Debug)]
pub struct Delta {
    /// The core.
    pub core: usize,
    /// Method → news. Server methods by name; a client's calls as
    /// `client:<service>.<method>`, its attempts per node as `node:<service>@<addr>`.
    pub methods: Vec<(String, MethodDelta)>,
    /// The pools of this core's clients, when they were asked for.
    pub pools: Option<PoolsAnswer>,
}

/// A core's pools, as asked for by [`super::Metrics::ask_pools`].
#[derive(Debug)]
pub struct PoolsAnswer {
    /// The request answered (or a later one).
    pub asked: u64,
    /// Its clients' pools: service → nodes.
    pub pools: Vec<(String, Vec<NodeStats>)>,
}

/// One breaker as the cores are told it.
#[derive(Debug, Clone)]
pub struct BreakerView {
    /// Its state.
    pub state: State,
    /// When its ramp started and how long it lasts (for [`State::Ramp`]).
    pub ramp: (Instant, Duration),
    /// The refusal's message.
    pub message: String,
}

/// What a core enforces: every breaker that is not unlocked and the probe rules,
/// the ACL, and this core's share of each rate limit.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The app (for messages).
    pub app: String,
    /// Method → breaker, for breakers not unlocked.
    pub breakers: HashMap<String, BreakerView>,
    /// Probes in flight per core while probing.
    pub probes_per_core: usize,
    /// A probe that takes longer has failed.
    pub probe_timeout: Duration,
    /// Who may call what.
    pub acl: Acl,
    /// Method → this core's share of its limits.
    pub limits: HashMap<String, Limit>,
}

impl Rules {
    /// Whether there is anything to enforce: a breaker, a limit or an ACL.
    fn enforces(&self) -> bool {
        !(self.breakers.is_empty() && self.limits.is_empty() && self.acl.is_open())
    }
}

/// Ticket bits 0–23: the concurrency slot the call holds, plus one (0: none); the
/// bits above: its probe id (0: none).
const SLOT_BITS: u32 = 24;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const _: () = assert!(CoreLimits::MAX_METHODS as u64 <= SLOT_MASK);

struct Probe {
    ticket: u64,
    method: String,
    started: Instant,
}

struct Inner {
    core: usize,
    deltas: Sender<Delta>,
    states_rx: Mailbox<Arc<Rules>>,
    methods: RefCell<MethodTable>,
    states: RefCell<Arc<Rules>>,
    /// Whether `states` has anything to enforce (a breaker, a limit or an ACL),
    /// kept beside it so that the usual call, with nothing, looks at one flag.
    enforcing: Cell<bool>,
    limited: RefCell<CoreLimits>,
    /// Methods whose probe failed here: refused until the aggregator decides.
    relocked: RefCell<Vec<String>>,
    probes: RefCell<Vec<Probe>>,
    next_ticket: std::cell::Cell<u64>,
    /// The clients' pool statistics, while they live.
    pools: RefCell<Vec<(String, PoolSource)>>,
    /// The latest request for the pools, and the latest this core answered.
    pools_asked: Arc<AtomicU64>,
    pools_answered: Cell<u64>,
    /// Where a client call's key is built (no allocation per call).
    key: RefCell<String>,
    /// How long the methods usually take to answer on this core.
    answers: RefCell<Answers>,
}

/// How long each method's calls that ran to an answer took on a core: a moving
/// average of each flush's mean (µs), so that a call its caller's deadline cut off
/// can be told from the method's own timeout
/// ([`CoreControl::usually_answers_within`], and the client's twin). Keys are the
/// service's methods and its clients' calls (`client:<service>.<method>`; and
/// OTHER, where the method table puts the keys past its bound), not the attempts
/// on nodes. A client's service may be an address (the demo's relay targets), so
/// at [`MAX_ANSWERS`] keys those not answered for [`ANSWERS_IDLE`] flushes go, and
/// while none has, new keys are not learned.
#[derive(Default)]
struct Answers {
    /// Key → (moving average, the flush that last moved it).
    usual: HashMap<String, (f64, u64)>,
    flushes: u64,
}

/// The most keys [`Answers`] holds.
const MAX_ANSWERS: usize = 1024;

/// Flushes (a minute's) without an answer after which a key of [`Answers`] may go.
const ANSWERS_IDLE: u64 = 600;

impl Answers {
    /// Takes in a flush's `news`.
    fn learn(&mut self, news: &[(String, MethodDelta)]) {
        self.flushes += 1;
        let now = self.flushes;
        let mut swept = false;
        for (method, d) in news {
            let Some(mean) = answered_mean(&d.tally) else {
                continue;
            };
            if let Some((usual, seen)) = self.usual.get_mut(method) {
                (*usual, *seen) = (blend(*usual, mean), now);
                continue;
            }
            // Swept once a flush at most: a full table of keys still answering
            // costs one pass, not one per new key.
            if self.usual.len() >= MAX_ANSWERS && !swept {
                self.usual.retain(|_, (_, seen)| now - *seen < ANSWERS_IDLE);
                swept = true;
            }
            if self.usual.len() < MAX_ANSWERS {
                self.usual.insert(method.clone(), (mean, now));
            }
        }
    }

    /// The moving average of `method`, if known.
    fn of(&self, method: &str) -> Option<f64> {
        self.usual.get(method).map(|&(usual, _)| usual)
    }
}

/// The mean latency (µs) of the answered calls in `d`, if any.
fn answered_mean(d: &Tally) -> Option<f64> {
    let n = d.counts.successes + d.counts.declared;
    (n > 0 && d.answered_us > 0).then(|| d.answered_us as f64 / n as f64)
}

/// The moving average `usual` with a newer `mean` taken in.
fn blend(usual: f64, mean: f64) -> f64 {
    0.8 * usual + 0.2 * mean
}

/// A core's deltas by key since the last flush, with the last key used checked
/// first (a core's calls mostly repeat one method: one compare, not a hash).
#[derive(Default)]
struct MethodTable {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    last: usize,
    /// Latency counters of keys flushed, for the next flush's keys.
    spare: Vec<Latencies>,
    /// The idle upkeep's waker, woken by the first key after a flush.
    waiting: Option<Waker>,
}

/// A key's news since the last flush.
struct Entry {
    key: String,
    tally: Tally,
    /// Drained into the delta's histogram at the flush.
    latencies: Latencies,
}

impl MethodTable {
    /// The tally of `method` and its latencies, made on first use. Between two
    /// flushes a core keeps at most KEYS_PER_FLUSH keys apart (each holds 26 KiB
    /// of latency counters); the rest are counted together under OTHER.
    fn get(&mut self, method: &str) -> &mut Entry {
        let hit = matches!(self.entries.get(self.last), Some(e) if e.key == method);
        if !hit {
            if self.entries.is_empty() {
                self.wake_upkeep();
            }
            self.last = match self.index.get(method) {
                Some(&i) => i,
                None => {
                    let key = if self.entries.len() < KEYS_PER_FLUSH {
                        method
                    } else {
                        OTHER
                    };
                    match self.index.get(key) {
                        Some(&i) => i,
                        None => {
                            self.index.insert(key.to_string(), self.entries.len());
                            self.entries.push(Entry {
                                key: key.to_string(),
                                tally: Tally::default(),
                                latencies: self.spare.pop().unwrap_or_else(Latencies::new),
                            });
                            self.entries.len() - 1
                        }
                    }
                }
            };
        }
        &mut self.entries[self.last]
    }

    /// Wakes the recorder's upkeep if it waits idle ([`news`]).
    fn wake_upkeep(&mut self) {
        if let Some(w) = self.waiting.take() {
            w.wake();
        }
    }

    /// The tally of `method` since the last flush, if it has one.
    fn peek(&self, method: &str) -> Option<&Tally> {
        self.index.get(method).map(|&i| &self.entries[i].tally)
    }

    /// Everything with news, leaving the table empty.
    fn take(&mut self) -> Vec<(String, MethodDelta)> {
        self.index.clear();
        self.last = 0;
        let mut news = Vec::with_capacity(self.entries.len());
        for mut e in self.entries.drain(..) {
            let latency = e.latencies.drain();
            if self.spare.len() < KEPT_LATENCIES {
                self.spare.push(e.latencies);
            }
            if !e.tally.is_empty() {
                news.push((
                    e.key,
                    MethodDelta {
                        tally: e.tally,
                        latency,
                    },
                ));
            }
        }
        news
    }
}

/// The limited methods of `rules`, for a core that starts with them.
fn limits_of(rules: &Rules) -> CoreLimits {
    let mut limits = CoreLimits::default();
    limits.set_shares(&rules.limits, Stamp::now());
    limits
}

/// One core's recorder and breaker check (see the module docs): a [`CoreControl`]
/// for the server's calls and a [`ClientControl`] for its clients' (cheap to
/// clone: the same core's state).
#[derive(Clone)]
pub struct CoreMetrics(Rc<Inner>);

impl CoreMetrics {
    /// A core's recorder, sending to `deltas`, told breaker states by `states`
    /// and asked for its pools by `pools_asked`; starts its tick on the current
    /// monoio runtime.
    pub fn new(
        core: usize,
        deltas: Sender<Delta>,
        states: Mailbox<Arc<Rules>>,
        initial: Arc<Rules>,
        pools_asked: Arc<AtomicU64>,
    ) -> Self {
        let inner = Rc::new(Inner {
            core,
            deltas,
            states_rx: states,
            methods: RefCell::default(),
            limited: RefCell::new(limits_of(&initial)),
            enforcing: Cell::new(initial.enforces()),
            states: RefCell::new(initial),
            relocked: RefCell::default(),
            probes: RefCell::default(),
            next_ticket: std::cell::Cell::new(1),
            pools: RefCell::default(),
            pools_answered: Cell::new(0),
            pools_asked,
            key: RefCell::default(),
            answers: RefCell::default(),
        });
        monoio::spawn(upkeep(Rc::downgrade(&inner)));
        CoreMetrics(inner)
    }
}

/// A core's recorder's upkeep (ending at its first wake-up after the recorder is
/// dropped): the aggregator's breaker states taken and the pools answered when it
/// rings, the deltas sent every [`FLUSH`] while there are any, and probes timed
/// out when due. An idle core has nothing due and is not woken.
async fn upkeep(weak: Weak<Inner>) {
    let Some(mut bell) = weak.upgrade().and_then(|inner| inner.states_rx.bell()) else {
        return;
    };
    let mut last_flush = Instant::now();
    while let Some(due) = weak.upgrade().map(|inner| inner.due(last_flush)) {
        let woken = async {
            match due {
                Some(at) => monoio::time::sleep(at.saturating_duration_since(Instant::now())).await,
                None => news(&weak).await,
            }
        };
        race(bell.rung(), woken).await;
        let Some(inner) = weak.upgrade() else { break };
        inner.tick();
        let asked = inner.pools_asked.load(Ordering::Relaxed);
        if asked != inner.pools_answered.get() || last_flush.elapsed() >= FLUSH {
            last_flush = Instant::now();
            inner.flush();
        }
    }
}

/// Waits until the recorder has something to flush or a probe to time: a call
/// recorded, a probe started, or the recorder dropped.
async fn news(weak: &Weak<Inner>) {
    std::future::poll_fn(|task| {
        let Some(inner) = weak.upgrade() else {
            return Poll::Ready(());
        };
        if inner.due(Instant::now()).is_some() {
            return Poll::Ready(());
        }
        inner.methods.borrow_mut().waiting = Some(task.waker().clone());
        Poll::Pending
    })
    .await
}

impl Inner {
    /// Takes the newest breaker states the aggregator sent, if any; whether there
    /// were any.
    fn take_states(&self) -> bool {
        let Some(latest) = self.states_rx.take() else {
            return false;
        };
        self.limited
            .borrow_mut()
            .set_shares(&latest.limits, Stamp::now());
        self.enforcing.set(latest.enforces());
        *self.states.borrow_mut() = latest;
        self.relocked.borrow_mut().clear();
        true
    }

    /// When the upkeep is next due (`last_flush`: its last flush): the next flush
    /// while calls are recorded, or the first probe's timeout; `None` when idle.
    fn due(&self, last_flush: Instant) -> Option<Instant> {
        let flush = (!self.methods.borrow().entries.is_empty()).then(|| last_flush + FLUSH);
        let timeout = self.states.borrow().probe_timeout;
        let probe = self
            .probes
            .borrow()
            .iter()
            .map(|p| p.started + timeout)
            .min();
        flush.into_iter().chain(probe).min()
    }

    fn tick(&self) {
        self.take_states();
        let timeout = self.states.borrow().probe_timeout;
        let now = Instant::now();
        let late: Vec<Probe> = {
            let mut probes = self.probes.borrow_mut();
            let (late, keep) = probes.drain(..).partition(|p| now - p.started > timeout);
            *probes = keep;
            late
        };
        for p in late {
            tracing::warn!(
                core = self.core,
                method = p.method.as_str(),
                ?timeout,
                "breaker probe timed out"
            );
            self.probe_ended(&p.method, false);
        }
    }

    fn flush(&self) {
        // The whole table goes: it holds only what was called since the last flush.
        let news = self.methods.borrow_mut().take();
        self.answers.borrow_mut().learn(&news);
        let asked = self.pools_asked.load(Ordering::Relaxed);
        let pools = (asked != self.pools_answered.replace(asked)).then(|| {
            let live = self.pools.borrow();
            let pools = live.iter().filter_map(|(service, stats)| {
                Some((service.clone(), stats.upgrade()?.node_stats()))
            });
            PoolsAnswer {
                asked,
                pools: pools.collect(),
            }
        });
        if !news.is_empty() || pools.is_some() {
            let _ = self.deltas.send(Delta {
                core: self.core,
                methods: news,
                pools,
            });
        }
    }

    /// Builds `<prefix><service><sep><what>` in the reused key buffer.
    fn key<R>(
        &self,
        prefix: &str,
        service: &str,
        sep: char,
        what: &dyn std::fmt::Display,
        f: impl FnOnce(&str) -> R,
    ) -> R {
        use std::fmt::Write;
        let mut key = self.key.borrow_mut();
        key.clear();
        let _ = write!(key, "{prefix}{service}{sep}{what}");
        f(&key)
    }

    fn with_method<R>(&self, method: &str, f: impl FnOnce(&mut Tally, &mut Latencies) -> R) -> R {
        let mut table = self.methods.borrow_mut();
        let e = table.get(method);
        f(&mut e.tally, &mut e.latencies)
    }

    fn probe_ended(&self, method: &str, passed: bool) {
        self.with_method(method, |d, _| {
            if passed {
                d.probes_passed += 1;
            } else {
                d.probes_failed += 1;
            }
        });
        if !passed {
            // Fail fast here until the aggregator has decided (it locks again).
            self.relocked.borrow_mut().push(method.to_string());
            self.flush();
        }
    }
}

impl Inner {
    /// The breaker's verdict: a probe id (0 for none), or the refusal.
    fn breaker(&self, rules: &Rules, method: &str) -> Result<u64, String> {
        let Some(b) = rules.breakers.get(method) else {
            return Ok(0);
        };
        if self.relocked.borrow().iter().any(|m| m == method) {
            return Err(b.message.clone());
        }
        match b.state {
            State::Unlocked => Ok(0),
            State::Locked => Err(b.message.clone()),
            State::Probing => {
                let mut probes = self.probes.borrow_mut();
                if probes.iter().filter(|p| p.method == method).count() >= rules.probes_per_core {
                    return Err(b.message.clone());
                }
                let id = self.next_ticket.get();
                self.next_ticket.set(id + 1);
                probes.push(Probe {
                    ticket: id,
                    method: method.to_string(),
                    started: Instant::now(),
                });
                self.methods.borrow_mut().wake_upkeep();
                Ok(id)
            }
            State::Ramp => {
                let (since, ramp) = b.ramp;
                let share = since.elapsed().as_secs_f64() / ramp.as_secs_f64().max(1e-3);
                if fastrand::f64() < share {
                    Ok(0)
                } else {
                    Err(b.message.clone())
                }
            }
        }
    }
}

impl CoreControl for CoreMetrics {
    fn admit(&self, cx: &CallContext, method: &str) -> Result<Ticket, ApplicationException> {
        if !self.0.enforcing.get() {
            // Nothing to enforce: the usual case, kept apart to stay cheap.
            return Ok(Ticket::default());
        }
        self.0.enforce(&self.0.states.borrow(), cx, method)
    }

    fn record(
        &self,
        _cx: &CallContext,
        method: &str,
        ticket: Ticket,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        self.0.record(method, ticket, outcome, elapsed, true);
    }

    fn usually_answers_within(&self, method: &str, elapsed: Duration) -> Option<bool> {
        self.0.usually_answers_within(method, elapsed)
    }
}

impl Inner {
    /// Admits a call of `method` or refuses it by the ACL, the limits and the
    /// breakers in `rules`.
    #[inline(never)]
    fn enforce(
        &self,
        rules: &Rules,
        cx: &CallContext,
        method: &str,
    ) -> Result<Ticket, ApplicationException> {
        if !rules.acl.is_open() {
            rules
                .acl
                .check(&cx.caller, &rules.app, method)
                .map_err(ApplicationException::internal)?;
        }
        let mut limited = self.limited.borrow_mut();
        let slot = limited.admit(method, Stamp::now).map_err(|over| {
            let what = match over {
                Over::Concurrency => "concurrency",
                Over::Rate => "rate",
            };
            let app = &rules.app;
            ApplicationException::internal(refusal::limited(what, format_args!("{app}.{method}")))
        })?;
        let probe = match self.breaker(rules, method) {
            Ok(probe) => probe,
            Err(refused) => {
                if let Some(slot) = slot {
                    limited.release(slot);
                }
                return Err(ApplicationException::internal(refused));
            }
        };
        let held = slot.map_or(0, |s| s as u64 + 1);
        Ok(Ticket(probe << SLOT_BITS | held))
    }
}

impl Inner {
    /// Records a call of `method` (a key), its answer's latency in [`Answers`] if
    /// it `learns` them.
    fn record(
        &self,
        method: &str,
        ticket: Ticket,
        outcome: Outcome,
        elapsed: Duration,
        learns: bool,
    ) {
        let inner = self;
        inner.with_method(method, |d, latencies| {
            d.counts.add(outcome);
            if outcome != Outcome::Refused {
                let us = (elapsed.as_micros() as u64).max(1);
                latencies.record(us);
                if learns
                    && matches!(
                        outcome,
                        Outcome::Result | Outcome::Declared | Outcome::Oneway
                    )
                {
                    d.answered_us += us;
                }
            }
        });
        let held = ticket.0 & SLOT_MASK;
        if held != 0 {
            inner.limited.borrow_mut().release(held as usize - 1);
        }
        let probe = ticket.0 >> SLOT_BITS;
        if probe != 0 {
            let mut probes = inner.probes.borrow_mut();
            // A probe that already timed out was counted as failed then; one cut
            // off by its caller's deadline proved nothing: its place is free.
            if let Some(i) = probes.iter().position(|p| p.ticket == probe) {
                probes.swap_remove(i);
                drop(probes);
                if outcome != Outcome::Expired {
                    inner.probe_ended(method, !is_failure(outcome));
                }
            }
        }
    }
}

impl Inner {
    /// See [`CoreControl::usually_answers_within`]: for key `method`, from what
    /// the flushes taught and what came since.
    fn usually_answers_within(&self, method: &str, elapsed: Duration) -> Option<bool> {
        let known = self.answers.borrow().of(method);
        let pending = self.methods.borrow().peek(method).and_then(answered_mean);
        let usual = match (known, pending) {
            (Some(usual), Some(mean)) => blend(usual, mean),
            (known, pending) => known.or(pending)?,
        };
        Some(usual <= elapsed.as_micros() as f64)
    }
}

impl ClientControl for CoreMetrics {
    fn admit(&self, service: &str, method: &str) -> Result<Ticket, String> {
        let inner = &self.0;
        let check = || {
            let rules = inner.states.borrow();
            if rules.breakers.is_empty() {
                return Ok(0);
            }
            inner.key("client:", service, '.', &method, |key| {
                inner.breaker(&rules, key)
            })
        };
        // A refusal does not yield, and a caller that retries at once would never
        // let the tick run: it takes the aggregator's news itself.
        let probe = match check() {
            Err(_) if inner.take_states() => check(),
            verdict => verdict,
        }?;
        Ok(Ticket(probe << SLOT_BITS))
    }

    fn record(
        &self,
        service: &str,
        method: &str,
        ticket: Ticket,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        let inner = &self.0;
        inner.key("client:", service, '.', &method, |key| {
            inner.record(key, ticket, outcome, elapsed, true)
        });
    }

    fn usually_answers_within(
        &self,
        service: &str,
        method: &str,
        elapsed: Duration,
    ) -> Option<bool> {
        let inner = &self.0;
        inner.key("client:", service, '.', &method, |key| {
            inner.usually_answers_within(key, elapsed)
        })
    }

    fn record_node(&self, service: &str, node: SocketAddr, outcome: Outcome, elapsed: Duration) {
        let inner = &self.0;
        inner.key("node:", service, '@', &node, |key| {
            inner.record(key, Ticket::default(), outcome, elapsed, false)
        });
    }

    fn watch_pools(&self, service: &str, stats: PoolSource) {
        let mut pools = self.0.pools.borrow_mut();
        pools.retain(|(_, stats)| stats.strong_count() > 0);
        pools.push((service.to_string(), stats));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core's recorder with the default rules, on the current runtime, asked for
    /// its pools by `asked`; with where its deltas go and its rules' publisher.
    fn recorder(
        asked: Arc<AtomicU64>,
    ) -> (
        CoreMetrics,
        (
            crossbeam_channel::Receiver<Delta>,
            crate::control::latest::Publisher<Arc<Rules>>,
        ),
    ) {
        let (deltas, rx) = crossbeam_channel::unbounded();
        let (publish, states) = crate::control::latest::mailbox();
        let options = super::super::MetricsOptions::new("app");
        let init = crate::control::CoreInit::new(0, 1);
        let rules = Arc::new(super::super::aggregator::initial_rules(
            &options, None, &init,
        ));
        let core = CoreMetrics::new(0, deltas, states, rules, asked);
        (core, (rx, publish))
    }

    #[test]
    fn a_core_learns_how_long_its_methods_usually_take_to_answer() {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let (core, _ends) = recorder(Arc::default());
            let cx = CallContext::default();
            let ms = Duration::from_millis;
            let within =
                |method: &str, t| CoreControl::usually_answers_within(&core, method, ms(t));
            let record = |method: &str, outcome, t| {
                CoreControl::record(&core, &cx, method, Ticket::default(), outcome, ms(t))
            };
            // Cut-off calls, failures and refusals teach nothing; answers do, before
            // and after a flush.
            record("echo", Outcome::Timeout, 500);
            record("echo", Outcome::Panic, 1);
            assert_eq!(within("echo", 10), None);
            record("echo", Outcome::Result, 20);
            record("echo", Outcome::Declared, 40);
            assert_eq!(
                (within("echo", 29), within("echo", 30)),
                (Some(false), Some(true))
            );
            core.0.flush();
            assert_eq!(
                (within("echo", 29), within("echo", 30)),
                (Some(false), Some(true))
            );
            // Newer answers move it a fifth of the way.
            record("echo", Outcome::Oneway, 130);
            assert_eq!(
                (within("echo", 49), within("echo", 50)),
                (Some(false), Some(true))
            );
            core.0.flush();
            assert_eq!(within("echo", 50), Some(true));
            assert_eq!(within("sleep_ms", 10), None);
            // A client's calls have theirs, under their own keys; its attempts on
            // nodes none.
            let client = |t| ClientControl::usually_answers_within(&core, "svc", "echo", ms(t));
            assert_eq!(client(10), None);
            let (ok, addr) = (Outcome::Result, "127.0.0.1:1".parse().unwrap());
            ClientControl::record(&core, "svc", "echo", Ticket::default(), ok, ms(10));
            core.record_node("svc", addr, ok, ms(10));
            assert_eq!((client(9), client(10)), (Some(false), Some(true)));
            core.0.flush();
            assert_eq!(client(10), Some(true));
            assert_eq!(within("echo", 50), Some(true), "the server's own apart");
            let answers = core.0.answers.borrow();
            assert!(answers.usual.keys().all(|k| !k.starts_with("node:")));
        });
    }

    #[test]
    fn an_idle_recorder_waits_for_a_call_or_a_ring_not_a_timer() {
        let mut rt = crate::runtime::build().unwrap();
        rt.block_on(async {
            let asked = Arc::new(AtomicU64::new(0));
            let (core, (rx, publish)) = recorder(asked.clone());
            let rules = core.0.states.borrow().clone();
            let settle = || monoio::time::sleep(Duration::from_millis(20));
            monoio::time::sleep(FLUSH).await;
            assert_eq!(core.0.due(Instant::now()), None, "idle: nothing due");
            // A call after an idle flush's time is sent at once; the next then waits
            // for the flush.
            let cx = CallContext::default();
            CoreControl::record(
                &core,
                &cx,
                "echo",
                Ticket::default(),
                Outcome::Result,
                Duration::from_millis(1),
            );
            assert!(core.0.due(Instant::now()).is_some());
            settle().await;
            let sent = rx
                .try_recv()
                .expect("the call's delta, sent when it woke the upkeep");
            assert_eq!(sent.methods.len(), 1);
            assert_eq!(core.0.due(Instant::now()), None, "idle again");
            // The aggregator's rules and a request for the pools ring it.
            let mut newer = (*rules).clone();
            newer.probe_timeout = Duration::from_secs(7);
            publish.publish(Arc::new(newer));
            settle().await;
            assert_eq!(core.0.states.borrow().probe_timeout, Duration::from_secs(7));
            asked.store(1, Ordering::Relaxed);
            publish.ring();
            settle().await;
            let answer = rx.try_recv().expect("the pools' answer");
            assert_eq!(answer.pools.map(|p| p.asked), Some(1));
        });
    }

    #[test]
    fn answers_keep_at_most_their_bound_of_keys_making_room_from_idle_ones() {
        let answered = |key: String| {
            let mut d = MethodDelta::new();
            d.tally.counts.add(Outcome::Result);
            d.tally.answered_us = 10;
            (key, d)
        };
        let mut a = Answers::default();
        let keys: Vec<_> = (0..MAX_ANSWERS + 5)
            .map(|i| answered(format!("client:{i}.m")))
            .collect();
        a.learn(&keys);
        assert_eq!(a.usual.len(), MAX_ANSWERS, "the bound");
        assert_eq!(a.of("client:5.m"), Some(10.0));
        assert_eq!(a.of(&format!("client:{}.m", MAX_ANSWERS)), None, "past it");
        // The first key goes on answering; the rest fall idle and make room.
        for _ in 0..ANSWERS_IDLE {
            a.learn(&keys[..1]);
        }
        a.learn(&[answered("echo".into())]);
        assert_eq!((a.of("echo"), a.of("client:0.m")), (Some(10.0), Some(10.0)));
        assert_eq!(a.usual.len(), 2);
    }

    #[test]
    fn the_method_table_keeps_each_key_apart_up_to_its_bound_then_pools_the_rest() {
        let mut t = MethodTable::default();
        t.get("a").tally.probes_passed += 1;
        t.get("b").tally.probes_passed += 1;
        t.get("a").tally.probes_passed += 1; // not the last key used
        t.get("a").tally.probes_passed += 1; // the last key used
        for i in 2..KEYS_PER_FLUSH + 5 {
            t.get(&format!("m{i}")).tally.probes_passed += 1;
        }
        t.get("b").tally.probes_passed += 1; // kept apart before the bound
        t.get("z").tally.probes_failed += 1; // past the bound
        let news = t.take();
        let of = |k: &str| {
            news.iter()
                .find(|(n, _)| n == k)
                .map(|(_, d)| d.tally.clone())
        };
        assert_eq!(news.len(), KEYS_PER_FLUSH + 1, "the bound, and OTHER");
        assert_eq!(of("a").unwrap().probes_passed, 3);
        assert_eq!(of("b").unwrap().probes_passed, 2);
        let other = of(OTHER).unwrap();
        assert_eq!((other.probes_passed, other.probes_failed), (5, 1));
        assert!(of("z").is_none());
        assert!(t.take().is_empty(), "a flush leaves the table empty");
        t.get("z").tally.probes_failed += 1;
        assert_eq!(t.take()[0].0, "z", "after a flush every key starts afresh");
    }

    #[test]
    fn latencies_reach_each_keys_histogram_at_the_flush_and_only_once() {
        let mut t = MethodTable::default();
        for (key, us) in [("a", 10), ("b", 2_000), ("a", 30), ("a", 5_000_000)] {
            let e = t.get(key);
            e.tally.counts.add(Outcome::Result);
            e.latencies.record(us);
        }
        for i in 0..KEYS_PER_FLUSH {
            let e = t.get(&format!("m{i}"));
            e.tally.counts.add(Outcome::Result);
            e.latencies.record(7);
        }
        let news = t.take();
        let of = |k: &str| {
            let mut h = histogram();
            news.iter()
                .find(|(n, _)| n == k)
                .unwrap()
                .1
                .latency
                .add_to(&mut h);
            h
        };
        let a = of("a");
        assert_eq!((a.len(), a.min(), a.value_at_quantile(0.5)), (3, 10, 30));
        assert!(a.equivalent(a.max(), 5_000_000), "{}", a.max());
        assert_eq!((of("b").len(), of("b").min()), (1, 2_000));
        assert_eq!(of(OTHER).len(), 2, "past the bound, counted together");
        assert_eq!(t.spare.len(), KEPT_LATENCIES);
        t.get("a").tally.counts.add(Outcome::Result);
        let news = t.take();
        let mut again = histogram();
        news[0].1.latency.add_to(&mut again);
        assert_eq!(again.len(), 0, "a flush hands each latency on once");
    }
}

//! Interface control: per-core recorders, the aggregator thread ("doctor") and
//! circuit breakers.
//!
//! - `counts`: how calls ended, and aligned windows of them.
//! - `recorder`: [`CoreMetrics`], a core's recorder and breaker check (a
//!   [`crate::control::CoreControl`]); plain counters, deltas sent every 100 ms.
//! - `aggregator`: the thread that merges the deltas, keeps lifetime totals and
//!   decides the breakers.
//! - [`breaker`]: the breaker rules and their settings (config `breaker.*`, switch
//!   `breaker.<method>`).
//! - [`bad_value`]: the control config values the parsers leave out, logged once.
//!
//! Data flows one way each: deltas cores → aggregator, breaker states aggregator →
//! cores; a core never waits on the aggregator.

pub mod acl;
mod aggregator;
pub mod anomaly;
pub mod bad_value;
pub mod breaker;
mod counts;
mod export;
mod latencies;
pub mod limit;
mod recorder;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use serde::Serialize;

pub use breaker::State;
pub use counts::Counts;
pub use recorder::CoreMetrics;

use crate::control::latest::{self, Publisher};
use crate::control::{CoreInit, Snapshot};
use crate::governance::Governance;
use aggregator::{state_name, MethodRecord};
use bad_value::{BadValue, BadValues};
use recorder::{Delta, PoolsAnswer, Rules};

/// Told of every breaker change: method, state before, state after, reason.
pub type OnChange = Arc<dyn Fn(&str, State, State, &str) + Send + Sync>;

/// How the aggregator runs.
#[derive(Clone)]
pub struct MetricsOptions {
    /// The app (names the breakers: `<app>.<method>`).
    pub app: String,
    /// Where breaker settings and switches come from (none: defaults).
    pub governance: Option<Governance>,
    /// Lock/unlock callback.
    pub on_change: Option<OnChange>,
    /// A statsd agent and the prefix of every name sent to it.
    pub statsd: Option<(std::net::SocketAddr, String)>,
    /// Whether a name is one of the service's methods (the generated
    /// `<Service>Server::knows_method`): an ACL rule, a limit or a breaker switch
    /// of a method the service does not have (a typo) is then left out with a
    /// WARN. `None` takes every name.
    pub knows_method: Option<KnowsMethod>,
}

/// Whether a method name (as called) is one of a service's.
pub type KnowsMethod = fn(&[u8]) -> bool;

/// Whether a method name is one of a service's, when that is known: a
/// [`KnowsMethod`], or a set of names read from an IDL (`ringsoa config set
/// --idl`).
pub type Knows<'a> = Option<&'a dyn Fn(&[u8]) -> bool>;

impl MetricsOptions {
    /// Defaults for `app`.
    pub fn new(app: &str) -> Self {
        MetricsOptions {
            app: app.into(),
            governance: None,
            on_change: None,
            statsd: None,
            knows_method: None,
        }
    }
}

/// A rate limit and how it is split now.
#[derive(Debug, Clone, Serialize)]
pub struct LimitReport {
    /// The process-wide limit (a cluster-wide one already divided).
    pub limit: limit::Limit,
    /// Each core's share: (core index, share).
    pub per_core: Vec<(usize, limit::Limit)>,
}

impl LimitReport {
    /// Core `core`'s share; a core not in the split yet (made after it) gets an
    /// equal share of the cores in it and itself until the next split.
    fn share_of(&self, core: usize) -> limit::Limit {
        self.per_core.iter().find(|(i, _)| *i == core).map_or_else(
            || limit::equal_share(&self.limit, self.per_core.len() + 1),
            |(_, s)| *s,
        )
    }
}

/// One node of a client's pools, summed over the cores.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolReport {
    /// The node's weight.
    pub weight: u32,
    /// On some core's failed list.
    pub failed: bool,
    /// The counters, summed.
    #[serde(flatten)]
    pub pool: crate::client::PoolStats,
}

/// One method as the admin views show it.
#[derive(Debug, Clone, Serialize)]
pub struct MethodReport {
    /// The breaker's state.
    pub state: &'static str,
    /// Why it last locked.
    pub reason: String,
    /// Calls in the breaker's window.
    pub window: Counts,
    /// Calls so far.
    pub lifetime: Counts,
    /// Latency percentiles so far (µs): p50, p90, p99, p99.9, max.
    pub latency_us: [u64; 5],
    /// The switch that holds the breaker open or closed (none for a node, whose
    /// health is its client's, or for the `(unknown)` and `(other)` pools).
    pub switch: Option<String>,
}

struct Shared {
    options: MetricsOptions,
    /// Each core's index and rules mailbox.
    cores: Mutex<Vec<(usize, Publisher<Arc<Rules>>)>>,
    /// The rules last published (none before the aggregator's first publish).
    states: Mutex<Option<Arc<Rules>>>,
    report: Mutex<BTreeMap<String, MethodReport>>,
    anomalies: Mutex<BTreeMap<String, Vec<anomaly::Anomaly>>>,
    /// The limits and their current shares.
    limits: Mutex<BTreeMap<String, LimitReport>>,
    /// The latest request for the cores' pools ([`Metrics::ask_pools`]).
    pools_asked: Arc<AtomicU64>,
    /// Each core's latest answer.
    pools: Mutex<BTreeMap<usize, PoolsAnswer>>,
}

impl Shared {
    fn set_pools(&self, d: &mut Delta) {
        if let Some(answer) = d.pools.take() {
            self.pools
                .lock()
                .expect("not poisoned")
                .insert(d.core, answer);
        }
    }

    /// The indexes of the cores, in registration order.
    fn core_indexes(&self) -> Vec<usize> {
        self.cores
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(i, _)| *i)
            .collect()
    }

    /// Sends each core its own copy of `rules` (so that reading it touches no
    /// other core) with its share of each limit in `self.limits`.
    fn publish_rules(&self, rules: Rules) {
        let mut cores = self.cores.lock().expect("not poisoned");
        let limits = self.limits.lock().expect("not poisoned");
        cores.retain(|(core, tx)| {
            let mine = with_shares(rules.clone(), &limits, *core);
            tx.publish(Arc::new(mine))
        });
        drop(limits);
        *self.states.lock().expect("not poisoned") = Some(Arc::new(rules));
    }

    fn set_report(&self, methods: &BTreeMap<String, MethodRecord>, now_ms: u64) {
        let report = methods
            .iter()
            .map(|(name, m)| {
                let h = &m.latency;
                let q = |p: f64| {
                    if h.is_empty() {
                        0
                    } else {
                        h.value_at_quantile(p)
                    }
                };
                let r = MethodReport {
                    state: state_name(m.breaker.state()),
                    reason: m.breaker.reason.clone(),
                    window: m.window.total(now_ms),
                    lifetime: m.lifetime,
                    latency_us: [q(0.5), q(0.9), q(0.99), q(0.999), h.max()],
                    switch: (!name.starts_with("node:") && !name.starts_with('('))
                        .then(|| breaker::switch_name(name)),
                };
                (name.clone(), r)
            })
            .collect();
        *self.report.lock().expect("not poisoned") = report;
    }
}

/// `rules` with core `core`'s share of each limit.
fn with_shares(mut rules: Rules, limits: &BTreeMap<String, LimitReport>, core: usize) -> Rules {
    for (method, report) in limits {
        rules.limits.insert(method.clone(), report.share_of(core));
    }
    rules
}

/// The running aggregator (cheap to clone; `Send` and `Sync`).
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
    deltas: Sender<Delta>,
}

impl Metrics {
    /// Starts the aggregator thread.
    pub fn start(options: MetricsOptions) -> std::io::Result<Metrics> {
        let shared = Arc::new(Shared {
            states: Mutex::default(),
            options,
            cores: Mutex::default(),
            report: Mutex::default(),
            anomalies: Mutex::default(),
            pools_asked: Arc::default(),
            pools: Mutex::default(),
            limits: Mutex::default(),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("ringsoa-metrics".into())
            .spawn(move || aggregator::run(s, rx))?;
        Ok(Metrics { shared, deltas: tx })
    }

    /// The recorder of the core `init` describes; call it on that core (it starts
    /// a tick task on the core's runtime). Use with `ServerBuilder::control`.
    ///
    /// # Panics
    /// When first called on a thread outside a runtime (see
    /// [`Governance::follow_here`](crate::governance::Governance::follow_here)).
    pub fn core(&self, init: &CoreInit) -> CoreMetrics {
        thread_local! {
            static MINE: std::cell::RefCell<Vec<(std::sync::Weak<Shared>, CoreMetrics)>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        // The same core asking again (its server control, then its clients) gets
        // the same recorder. (The `Weak` keeps the address from being reused.)
        let found = MINE.with_borrow(|v| {
            v.iter()
                .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.shared)))
                .map(|(_, m)| m.clone())
        });
        if let Some(m) = found {
            return m;
        }
        let made = self.make_core(init);
        MINE.with_borrow_mut(|v| v.push((Arc::downgrade(&self.shared), made.clone())));
        made
    }

    fn make_core(&self, init: &CoreInit) -> CoreMetrics {
        let (tx, rx) = latest::mailbox();
        // Under the cores' lock (taken before the rules' and the limits' ones, as a
        // publish does): a publish lands either in `initial` or in the mailbox,
        // never in neither.
        let mut cores = self.shared.cores.lock().expect("not poisoned");
        let published = self.shared.states.lock().expect("not poisoned").clone();
        let initial = Arc::new(match published {
            Some(rules) => {
                let limits = self.shared.limits.lock().expect("not poisoned");
                with_shares((*rules).clone(), &limits, init.index)
            }
            None => {
                let o = &self.shared.options;
                let snap = o.governance.as_ref().map(|g| g.snapshot());
                aggregator::initial_rules(o, snap.as_deref(), init)
            }
        });
        cores.push((init.index, tx));
        drop(cores);
        let asked = self.shared.pools_asked.clone();
        CoreMetrics::new(init.index, self.deltas.clone(), rx, initial, asked)
    }

    /// Every method seen so far: its breaker, window, totals and latency.
    pub fn report(&self) -> BTreeMap<String, MethodReport> {
        self.shared.report.lock().expect("not poisoned").clone()
    }

    /// Every rate limit and its current split over the cores.
    pub fn limits(&self) -> BTreeMap<String, LimitReport> {
        self.shared.limits.lock().expect("not poisoned").clone()
    }

    /// Asks every core for its clients' pools (answered within a core's 10 ms
    /// tick); returns the request's number for
    /// [`Metrics::pools_answered`]. Pools are read only when asked: a service of
    /// thousands of nodes has as many counters per core.
    pub fn ask_pools(&self) -> u64 {
        let asked = self.shared.pools_asked.fetch_add(1, Ordering::Relaxed) + 1;
        for (_, core) in self.shared.cores.lock().expect("not poisoned").iter() {
            core.ring();
        }
        asked
    }

    /// Whether every core has answered request `asked` (or a later one).
    pub fn pools_answered(&self, asked: u64) -> bool {
        let answers = self.shared.pools.lock().expect("not poisoned");
        let answered = |core| answers.get(&core).is_some_and(|a| a.asked >= asked);
        self.shared.core_indexes().into_iter().all(answered)
    }

    /// The clients' pools as the cores last reported them ([`Metrics::ask_pools`]),
    /// summed over the cores: service → node → counters (and whether any core has
    /// the node on its failed list).
    pub fn pools(&self) -> BTreeMap<String, BTreeMap<String, PoolReport>> {
        let mut out: BTreeMap<String, BTreeMap<String, PoolReport>> = BTreeMap::new();
        let answers = self.shared.pools.lock().expect("not poisoned");
        for (service, nodes) in answers.values().flat_map(|a| &a.pools) {
            for n in nodes {
                let r = out
                    .entry(service.clone())
                    .or_default()
                    .entry(n.node.addr.to_string())
                    .or_default();
                r.weight = n.node.weight;
                r.pool.merge(&n.pool);
                r.failed |= n.failed;
            }
        }
        out
    }

    /// The methods whose error ratio or p99 departs from its recent mean now.
    pub fn anomalies(&self) -> BTreeMap<String, Vec<anomaly::Anomaly>> {
        self.shared.anomalies.lock().expect("not poisoned").clone()
    }

    /// The Prometheus text exposition of every method's calls, latency, breaker
    /// and anomaly flags.
    pub fn prometheus(&self) -> String {
        export::prometheus(self.app(), &self.report(), &self.anomalies())
    }

    /// The app.
    pub fn app(&self) -> &str {
        &self.shared.options.app
    }
}

/// Why a process would leave out config value `key = value` (a switch when
/// `switch`) of interface control (`acl.*`, `limit.*`, `breaker.*`,
/// `metrics.key_idle_ms`, `log.routes`, switches `breaker.*`), and what it
/// would use instead; `None` when it takes it or the key is none of these. For
/// tools that write values, so that a typo is refused before any process reads it;
/// with `knows`, a key naming a method the service does not have is refused too.
pub fn check_value(key: &str, value: &str, switch: bool, knows: Knows<'_>) -> Option<BadValue> {
    if !switch && key == "log.routes" {
        let why = crate::logs::Router::parse(value).err()?;
        let mut bad = BadValues::default();
        bad.note(key, value, why, "the routes before it stay");
        return bad.into_first();
    }
    let mut snap = Snapshot::empty("check", "check");
    let values = if switch {
        &mut snap.switches
    } else {
        &mut snap.config
    };
    Arc::make_mut(values).insert(key.to_string(), value.to_string());
    aggregator::parse(Some(&snap), knows).3.into_first()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Node, NodeStats, PoolStats as Counters};
    use crate::control::{CoreControl, Outcome, PoolStats};
    use crate::governance::{Backend, GovernanceOptions};
    use crate::rpc::CallContext;
    use std::time::{Duration, Instant};

    /// Runs `f` on a monoio runtime with the metrics of app `app` under `state`, once
    /// the aggregator has published its first rules (asked for by a first core, 0 of
    /// `cores`).
    fn with_published(state: &str, cores: usize, f: impl FnOnce(&Metrics)) {
        let gov = GovernanceOptions::new("app", "c", Backend::Embedded(state.into()));
        let gov = Governance::start(gov).unwrap();
        assert!(gov.wait_ready(Duration::from_secs(5)));
        let mut o = MetricsOptions::new("app");
        o.governance = Some(gov);
        let metrics = Metrics::start(o).unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let _early = metrics.make_core(&CoreInit::new(0, cores));
            let deadline = Instant::now() + Duration::from_secs(5);
            while metrics.shared.states.lock().unwrap().is_none() {
                assert!(Instant::now() < deadline, "no publish");
                std::thread::sleep(Duration::from_millis(5));
            }
            f(&metrics);
        });
    }

    #[test]
    fn a_core_made_after_a_publish_enforces_its_share_of_each_limit() {
        let state = "[apps.app.config]\n\"limit.echo.qps\" = \"1000\"\n";
        with_published(state, 2, |metrics| {
            // Its share is half of 1,000/s: one call, then 500 calls a second.
            let late = metrics.make_core(&CoreInit::new(1, 2));
            let cx = CallContext::default();
            let start = Instant::now();
            let (mut tried, mut admitted) = (0, 0);
            while start.elapsed() < Duration::from_millis(200) {
                tried += 1;
                admitted += usize::from(late.admit(&cx, "echo").is_ok());
            }
            // At most the share (a stall of this thread only lowers the count: the
            // bucket holds a tenth of a second), and more than the first call (the
            // share is not nothing; about 100 are expected).
            let share = 1.0 + 500.0 * start.elapsed().as_secs_f64();
            let ok = (admitted as f64) <= share + 1.0 && admitted >= 10;
            assert!(
                ok,
                "admitted {admitted} of {tried} in 200 ms: expected {share:.0}"
            );
        });
    }

    #[test]
    fn a_core_holds_its_concurrency_limit_and_each_ended_call_frees_its_slot() {
        let state = "[apps.app.config]\n\"limit.echo.concurrency\" = \"2\"\n";
        with_published(state, 1, |metrics| {
            // The only core: its share is the whole limit, two calls at once.
            let core = metrics.make_core(&CoreInit::new(0, 1));
            let cx = CallContext::default();
            let a = core.admit(&cx, "echo").expect("the first call");
            let b = core.admit(&cx, "echo").expect("the second call");
            let refused = core.admit(&cx, "echo").expect_err("a third at once");
            assert_eq!(
                refused.message.as_deref(),
                Some("ringsoa: concurrency limit of app.echo reached: call refused")
            );
            assert!(core.admit(&cx, "ping").is_ok(), "ping has no limit");
            core.record(&cx, "echo", a, Outcome::Result, Duration::from_millis(1));
            let c = core
                .admit(&cx, "echo")
                .expect("the slot the first call freed");
            assert!(core.admit(&cx, "echo").is_err(), "two in flight again");
            for t in [b, c] {
                core.record(&cx, "echo", t, Outcome::Timeout, Duration::from_millis(1));
            }
            for _ in 0..2 {
                assert!(core.admit(&cx, "echo").is_ok(), "both slots freed");
            }
        });
    }

    #[test]
    fn the_lock_callback_is_told_and_the_views_follow() {
        let told = Arc::new(Mutex::new(Vec::new()));
        let log = told.clone();
        let mut o = MetricsOptions::new("app");
        o.on_change = Some(Arc::new(move |m: &str, from, to, why: &str| {
            log.lock()
                .unwrap()
                .push((m.to_string(), from, to, why.to_string()));
        }));
        let metrics = Metrics::start(o).unwrap();
        let mut d = recorder::MethodDelta::new();
        for _ in 0..30 {
            d.tally.counts.add(Outcome::Timeout);
        }
        let delta = Delta {
            core: 0,
            methods: vec![("m".into(), d)],
            pools: None,
        };
        metrics.deltas.send(delta).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while told.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "no callback");
            std::thread::sleep(Duration::from_millis(5));
        }
        let (m, from, to, why) = told.lock().unwrap()[0].clone();
        assert_eq!(
            (m.as_str(), from, to),
            ("m", State::Unlocked, State::Locked)
        );
        assert!(why.contains("30 of 30 calls timed out"), "{why}");
        while metrics.report().get("m").map(|r| r.state) != Some("LOCKED") {
            assert!(Instant::now() < deadline, "the report did not follow");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(metrics
            .prometheus()
            .contains("ringsoa_breaker_state{app=\"app\",method=\"m\"} 1"));
    }

    #[test]
    fn pools_are_read_only_when_asked_and_a_gone_client_leaves_the_answer() {
        struct Counted(std::cell::Cell<usize>);
        impl PoolStats for Counted {
            fn node_stats(&self) -> Vec<NodeStats> {
                self.0.set(self.0.get() + 1);
                let pool = Counters {
                    created: self.0.get() as u64,
                    ..Counters::default()
                };
                let node = Node::from(std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
                vec![NodeStats {
                    node,
                    failed: false,
                    consecutive_failures: 0,
                    version: None,
                    pool,
                }]
            }
        }
        let metrics = Metrics::start(MetricsOptions::new("app")).unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let metrics = &metrics;
            let answered = |asked| async move {
                let deadline = Instant::now() + Duration::from_secs(5);
                while !metrics.pools_answered(asked) {
                    assert!(Instant::now() < deadline, "the core did not answer");
                    monoio::time::sleep(Duration::from_millis(2)).await;
                }
            };
            let core = metrics.core(&CoreInit::new(0, 1));
            let client = std::rc::Rc::new(Counted(Default::default()));
            crate::control::ClientControl::watch_pools(
                &core,
                "svc",
                std::rc::Rc::downgrade(&client) as _,
            );
            // Flushes go by (the core's calls are sent): its pools are not read.
            monoio::time::sleep(recorder::FLUSH * 3).await;
            assert_eq!(client.0.get(), 0, "pools read unasked");
            answered(metrics.ask_pools()).await;
            assert_eq!(client.0.get(), 1, "read once when asked");
            let report = metrics.pools();
            assert_eq!(report["svc"]["127.0.0.1:9"].pool.created, 1, "{report:?}");
            answered(metrics.ask_pools()).await;
            assert_eq!(metrics.pools()["svc"]["127.0.0.1:9"].pool.created, 2);
            drop(client);
            answered(metrics.ask_pools()).await;
            assert!(metrics.pools().is_empty(), "{:?}", metrics.pools());
        });
    }
}

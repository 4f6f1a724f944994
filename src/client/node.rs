//! A node as one core's client sees it: its pool, its concurrency limiter, its
//! health — consecutive failures (passive), the failed list and the next probe
//! (active), and a peak-EWMA of latency for the P2C policy — and its methods'
//! rests after its limits refused their calls.

use std::cell::{Cell, Ref, RefCell};
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::balance::BalanceOptions;
use super::limit::Limiter;
use super::list::{Counted, Tally, LOAD_ONE};
use super::pool::{NodePool, PoolOptions, PoolStats};
use crate::logs::throttle::Throttle;

/// A node of a service: where it listens and its weight (from the registry when it
/// has one; equal weights otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Node {
    /// The node's address.
    pub addr: SocketAddr,
    /// Relative share of calls; 0 takes the node out of rotation while a node of a
    /// higher weight can take the call.
    pub weight: u32,
}

/// The weight of a node given without one.
pub const DEFAULT_WEIGHT: u32 = 100;

impl From<SocketAddr> for Node {
    fn from(addr: SocketAddr) -> Self {
        Node {
            addr,
            weight: DEFAULT_WEIGHT,
        }
    }
}

/// One node's state on this core, as [`super::Client::stats`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    /// The node.
    pub node: Node,
    /// On the failed list (K consecutive failures, not yet restored by a probe).
    pub failed: bool,
    /// Consecutive failed calls or connects.
    pub consecutive_failures: u32,
    /// Tracking version of the last connection opened (0 native), if any.
    pub version: Option<i32>,
    /// The node's pool.
    pub pool: PoolStats,
}

/// A node's state on this core. Its pool and health change only through
/// [`NodeState::pool_mut`] and [`NodeState::health_mut`], which keep what the node
/// adds to its list's [`Tally`] up to date.
pub(crate) struct NodeState {
    pub node: Node,
    pool: RefCell<NodePool>,
    pub limiter: Limiter,
    health: RefCell<Health>,
    /// Tracking version of the last connection opened.
    pub version: Cell<Option<i32>>,
    /// Bumped when the node leaves the client's list: its connections still in
    /// use are closed when they come back.
    pub generation: Cell<u64>,
    /// On its client's list of nodes to tend ([`super::inner::Inner::tended`]).
    pub tended: Cell<bool>,
    /// The tally of the list the node is on (a retired node's is that of a list
    /// no longer in use), and what the node adds to it (`None` before it joins
    /// a list).
    tally: RefCell<Rc<Tally>>,
    counted: Cell<Option<Counted>>,
    /// The load of one connection ([`LOAD_ONE`] ÷ weight, weight 0 as 1).
    per_connection: u64,
    /// Its "node failed" warnings: with every node failing and the client failing
    /// open, a node an answer put back fails again within calls.
    pub warnings: Throttle,
    /// Its methods' rests after its limits refused their calls.
    pub rests: Rests,
}

impl NodeState {
    pub fn new(node: Node, opts: &PoolOptions, health: Health) -> Self {
        NodeState {
            node,
            pool: RefCell::default(),
            limiter: Limiter::new(opts.max_in_flight, opts.max_waiters),
            health: RefCell::new(health),
            version: Cell::new(None),
            generation: Cell::new(0),
            tended: Cell::new(false),
            tally: RefCell::default(),
            counted: Cell::default(),
            per_connection: LOAD_ONE / node.weight.max(1) as u64,
            warnings: Throttle::default(),
            rests: Rests::default(),
        }
    }

    /// The node's pool.
    pub fn pool(&self) -> Ref<'_, NodePool> {
        self.pool.borrow()
    }

    /// The node's health.
    pub fn health(&self) -> Ref<'_, Health> {
        self.health.borrow()
    }

    /// Changes the node's pool; its tally follows (only its count of open
    /// connections counts there).
    pub fn pool_mut<R>(&self, f: impl FnOnce(&mut NodePool) -> R) -> R {
        let mut pool = self.pool.borrow_mut();
        let open = pool.open();
        let r = f(&mut pool);
        let changed = pool.open() != open;
        drop(pool);
        if changed {
            self.recount();
        }
        r
    }

    /// Changes the node's health; its tally follows.
    pub fn health_mut<R>(&self, f: impl FnOnce(&mut Health) -> R) -> R {
        let r = f(&mut self.health.borrow_mut());
        self.recount();
        r
    }

    /// The node's load: open connections per unit of weight, in fixed point.
    pub fn load(&self) -> u64 {
        self.pool.borrow().open() as u64 * self.per_connection
    }

    /// Whether the node may leave rotation by its success rate: one of weight 0
    /// always; else while its list can spare it ([`Tally::can_spare_one`]).
    pub fn can_be_spared(&self) -> bool {
        self.node.weight == 0 || self.tally.borrow().can_spare_one()
    }

    /// What the node adds to its list's tally.
    pub fn counted(&self) -> Counted {
        self.counted.get().unwrap_or_default()
    }

    /// Counts the node in `tally` (its list's, from now on).
    pub fn join(&self, tally: &Rc<Tally>) {
        *self.tally.borrow_mut() = tally.clone();
        let now = self.counting();
        self.counted.set(Some(now));
        tally.change(self.node.weight > 0, None, Some(now));
    }

    fn recount(&self) {
        let Some(before) = self.counted.get() else {
            return;
        };
        let now = self.counting();
        if before != now {
            self.counted.set(Some(now));
            let weighted = self.node.weight > 0;
            self.tally
                .borrow()
                .change(weighted, Some(before), Some(now));
        }
    }

    fn counting(&self) -> Counted {
        let health = self.health.borrow();
        Counted {
            load: self.load(),
            failed: health.is_failed(),
            latency: health
                .latency_ns()
                .filter(|_| self.tally.borrow().latencies()),
        }
    }

    /// Takes the node out of its client's list: its idle connections are for the
    /// caller to close; the ones in use close when they come back.
    pub fn retire(&self) {
        self.generation.set(self.generation.get() + 1);
    }

    /// Whether the node has left its client's list.
    pub fn retired(&self) -> bool {
        self.generation.get() > 0
    }

    /// The weight used for balancing (never 0).
    pub fn weight(&self) -> f64 {
        self.node.weight.max(1) as f64
    }

    pub fn stats(&self) -> NodeStats {
        let pool = self.pool.borrow();
        let health = self.health.borrow();
        NodeStats {
            node: self.node,
            failed: health.is_failed(),
            consecutive_failures: health.consecutive,
            version: self.version.get(),
            pool: PoolStats {
                idle: pool.idle(),
                in_use: pool.in_use,
                created: pool.created,
                closed: pool.closed,
                failed_checks: pool.failed_checks,
                waiters: self.limiter.waiting(),
            },
        }
    }
}

/// The shortest rest of a node whose limit refused a call.
pub(crate) const REST_MIN: Duration = Duration::from_millis(5);

/// The longest rest.
pub(crate) const REST_MAX: Duration = Duration::from_secs(1);

/// A node whose limits refuse calls (a ringsoa server's rate or concurrency limit,
/// [`crate::rpc::Refusal::Limited`]) is not failing, but its share of the calls is
/// more than it takes, as when its limit is lower than its peers': it rests, passed
/// over while another node can take the call ([`super::balance::pick_awake`]).
/// Each refusal after a rest doubles the next (from [`REST_MIN`] to [`REST_MAX`]),
/// and each answer halves it, so that a node's share settles near what its limit
/// admits, with a refusal or two (sent to other nodes within the retry budget) for
/// each call admitted. Refusals while it rests (calls sent before it, or while
/// every node rested) lengthen nothing: counted, the refusals of the calls in
/// flight doubled it again and again, and under an overload of every node rests
/// grew long enough to leave a node's capacity unused. The rest is a method's
/// ([`Rests`]): a node whose limit on one method refuses its calls still takes
/// its share of the others.
#[derive(Debug, Default)]
struct Rest {
    until: Option<Instant>,
    length: Duration,
}

impl Rest {
    /// Its limit refused a call at `now`. While it rests this says nothing new
    /// (the call was sent before the rest began, or while every node rested):
    /// only a refusal after a rest lengthens the next.
    fn refused(&mut self, now: Instant) {
        if self.resting(now) {
            return;
        }
        self.length = (self.length * 2).clamp(REST_MIN, REST_MAX);
        self.until = Some(now + self.length);
    }

    /// It answered a call; whether its rests are over (the next refusal brings
    /// the shortest).
    fn answered(&mut self) -> bool {
        if self.until.is_some() {
            self.length /= 2;
            if self.length < REST_MIN {
                *self = Rest::default();
            }
        }
        self.until.is_none()
    }

    /// Whether it rests at `now`.
    fn resting(&self, now: Instant) -> bool {
        self.until.is_some_and(|t| now < t)
    }
}

/// The most methods a node keeps rests of; past it, a method's refusals start a
/// rest only in place of one that has ended.
const MOST_RESTS: usize = 64;

/// A node's rests ([`Rest`]), one per method its limits refused calls of, kept
/// until answers end them: empty, as it is while no limit refuses, a call looks
/// at it once to choose the node and once to record its answer.
#[derive(Debug, Default)]
pub(crate) struct Rests(RefCell<Vec<(Box<str>, Rest)>>);

impl Rests {
    /// Its limit refused a call of `method` at `now`.
    pub fn refused(&self, method: &str, now: Instant) {
        let mut rests = self.0.borrow_mut();
        if let Some((_, rest)) = rests.iter_mut().find(|(m, _)| **m == *method) {
            return rest.refused(now);
        }
        if rests.len() >= MOST_RESTS {
            let Some(ended) = rests.iter().position(|(_, r)| !r.resting(now)) else {
                return;
            };
            rests.swap_remove(ended);
        }
        let mut rest = Rest::default();
        rest.refused(now);
        rests.push((method.into(), rest));
    }

    /// It answered a call of `method`. Inlined for its every-call case, no rest
    /// at all: out of line, a client's call took 23 instructions more (callgrind,
    /// `ringsoa-perf load --full-stack`, 16 callers).
    #[inline(always)]
    pub fn answered(&self, method: &str) {
        if !self.0.borrow().is_empty() {
            self.answered_resting(method);
        }
    }

    fn answered_resting(&self, method: &str) {
        let mut rests = self.0.borrow_mut();
        let Some(i) = rests.iter().position(|(m, _)| **m == *method) else {
            return;
        };
        if rests[i].1.answered() {
            rests.swap_remove(i);
        }
    }

    /// Whether `method` rests on it at `now`.
    pub fn resting(&self, method: &str, now: Instant) -> bool {
        (self.0.borrow().iter()).any(|(m, rest)| **m == *method && rest.resting(now))
    }
}

/// Passive and active health of one node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    consecutive: u32,
    /// Its last calls' outcomes, for the success rate.
    recent: Outcomes,
    /// Set while the node is on the failed list.
    failed: Option<Failed>,
    /// A probe is under way.
    pub probing: bool,
    latency: PeakEwma,
    /// How long its answers take: a moving average of their latencies (ns), with
    /// none of the failures that raise `latency`.
    answers_ns: Option<f64>,
}

impl Health {
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Whether a probe is due.
    pub fn probe_due(&self, now: Instant) -> bool {
        !self.probing && self.failed.is_some_and(|f| f.next_probe <= now)
    }

    /// A call or connect that took `latency` until `now` worked. A failed node
    /// that answers a call sent to it while failed (every node had failed, and
    /// the client failed open) is back in rotation with a clean record, as after a
    /// probe: a full window again before it fails by its success rate, rather
    /// than at its next failure, and its latency estimate from this answer, not
    /// from the failures. An answer to a call sent before it failed leaves it
    /// failed: a node failing half its calls would otherwise be put back by the
    /// other half, still in flight.
    pub fn success(&mut self, latency: Duration, now: Instant) {
        self.consecutive = 0;
        let sent = now.checked_sub(latency).unwrap_or(now);
        if self.failed.is_some_and(|f| sent >= f.since) {
            // A probe under way finishes as it would.
            *self = Health {
                probing: self.probing,
                ..Health::default()
            };
        }
        self.recent.push(false);
        self.latency.observe(latency, now);
        let ns = latency.as_nanos() as f64;
        self.answers_ns = Some(self.answers_ns.map_or(ns, |was| 0.8 * was + 0.2 * ns));
    }

    /// Whether its answers usually take `elapsed` or more (`false` before any):
    /// a call cut off sooner by its caller's deadline says nothing of the node.
    pub fn answers_slower_than(&self, elapsed: Duration) -> bool {
        self.answers_ns
            .is_some_and(|ns| ns >= elapsed.as_nanos() as f64)
    }

    /// A call or connect failed; `Some` (why) when this failure puts the node on
    /// the failed list: the `failure_threshold`-th in a row, or, if its list can
    /// `spare` it, one that brings its recent calls below the required success
    /// rate. The latency estimate doubles (at least the failure's own time): a
    /// node failing some of its calls fast does not look the fastest.
    pub fn failure(
        &mut self,
        opts: &BalanceOptions,
        spare: bool,
        elapsed: Duration,
        now: Instant,
    ) -> Option<Tripped> {
        self.latency.penalize(elapsed, now);
        self.consecutive = self.consecutive.saturating_add(1);
        self.recent.push(true);
        if self.is_failed() {
            return None;
        }
        let why = if self.consecutive >= opts.failure_threshold.max(1) {
            Tripped::Consecutive(self.consecutive)
        } else {
            let rate = opts.success_rate.filter(|_| spare)?;
            let (failed, of) = self.recent.last(rate.window)?;
            if f64::from(of - failed) >= rate.required * f64::from(of) {
                return None;
            }
            Tripped::SuccessRate { failed, of }
        };
        self.failed = Some(Failed {
            since: now,
            next_probe: now + opts.probe_interval,
        });
        Some(why)
    }

    /// A probe failed: try again after `probe_interval`.
    pub fn probe_failed(&mut self, probe_interval: Duration, now: Instant) {
        self.probing = false;
        let since = self.failed.map_or(now, |f| f.since);
        self.failed = Some(Failed {
            since,
            next_probe: now + probe_interval,
        });
    }

    /// A probe worked: back in rotation with a clean record (its latency estimate
    /// too: scored as a node with no reply yet, not by the failures that took it
    /// out).
    pub fn restore(&mut self) {
        *self = Health::default();
    }

    /// The latency estimate in nanoseconds as last observed (`None` before any
    /// reply).
    pub fn latency_ns(&self) -> Option<f64> {
        self.latency.stamp.map(|_| self.latency.cost_ns)
    }

    /// The latency estimate decayed to `now` (`None` before any reply): a node
    /// passed over after a slow reply is tried again as its estimate fades, as
    /// Finagle's and tower's peak EWMA do.
    pub fn latency_at(&self, now: Instant) -> Option<f64> {
        self.latency
            .stamp
            .map(|t| self.latency.cost_ns * decay(t, now))
    }
}

#[cfg(test)]
impl Health {
    /// Puts the node on the failed list at once (probed a second later).
    pub fn fail(&mut self, now: Instant) {
        let once = BalanceOptions {
            failure_threshold: 1,
            probe_interval: Duration::from_secs(1),
            ..BalanceOptions::default()
        };
        self.failure(&once, true, Duration::ZERO, now);
    }
}

/// A node on the failed list: since when, and when to probe it next.
#[derive(Debug, Clone, Copy)]
struct Failed {
    since: Instant,
    next_probe: Instant,
}

/// Why a node went on the failed list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tripped {
    /// This many failures in a row.
    Consecutive(u32),
    /// `failed` of its last `of` calls failed.
    SuccessRate { failed: u32, of: u32 },
}

impl fmt::Display for Tripped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tripped::Consecutive(k) => write!(f, "{k} consecutive failures"),
            Tripped::SuccessRate { failed, of } => {
                write!(f, "{failed} of its last {of} calls failed")
            }
        }
    }
}

/// The most calls a success-rate window looks at.
const WINDOW_MAX: u32 = u128::BITS;

/// Whether each of a node's last calls failed, the latest in the lowest bit.
#[derive(Debug, Clone, Copy, Default)]
struct Outcomes {
    failed: u128,
    seen: u32,
}

impl Outcomes {
    fn push(&mut self, failed: bool) {
        self.failed = self.failed << 1 | u128::from(failed);
        self.seen = self.seen.saturating_add(1);
    }

    /// Of the last `window` calls (at most [`WINDOW_MAX`]): how many failed, and
    /// `window`; `None` before that many calls.
    fn last(&self, window: u32) -> Option<(u32, u32)> {
        let window = window.clamp(1, WINDOW_MAX);
        let mask = u128::MAX >> (WINDOW_MAX - window);
        (self.seen >= window).then(|| ((self.failed & mask).count_ones(), window))
    }
}

/// Finagle's peak EWMA: a sample above the estimate replaces it at once (latency
/// spikes are believed immediately); below it, the estimate decays toward the sample
/// with a time constant, so an idle node's old estimate fades as new samples arrive.
#[derive(Debug, Clone, Default)]
struct PeakEwma {
    cost_ns: f64,
    stamp: Option<Instant>,
}

/// The EWMA time constant (Finagle's `decayTime` default).
const DECAY: Duration = Duration::from_secs(10);

/// The most that failures double an estimate to: unbounded, a thousand failures
/// in a row (a client failing open through an outage) made it infinite, and with
/// it the mean latency that a node with no reply yet is scored with.
const PENALTY_MAX: Duration = Duration::from_secs(60);

/// The weight an estimate stamped at `then` keeps at `now`.
fn decay(then: Instant, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(then).as_secs_f64();
    (-elapsed / DECAY.as_secs_f64()).exp()
}

impl PeakEwma {
    fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        let w = self.stamp.map_or(1.0, |t| decay(t, now));
        self.stamp = Some(now);
        if rtt > self.cost_ns {
            self.cost_ns = rtt;
        } else {
            self.cost_ns = self.cost_ns * w + rtt * (1.0 - w);
        }
    }

    /// A failure: the estimate, decayed to `now`, doubles up to [`PENALTY_MAX`],
    /// and is at least the failure's time (a node with no reply yet starts from
    /// that).
    fn penalize(&mut self, elapsed: Duration, now: Instant) {
        let was = self.stamp.map_or(0.0, |t| self.cost_ns * decay(t, now));
        let doubled = (2.0 * was).min(PENALTY_MAX.as_nanos() as f64);
        self.cost_ns = doubled.max(elapsed.as_nanos() as f64);
        self.stamp = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::SuccessRate;

    #[test]
    fn a_rest_doubles_with_each_refusal_after_a_rest_and_halves_with_each_answer() {
        let (mut rest, t0) = (Rest::default(), Instant::now());
        let ms = Duration::from_millis;
        assert!(!rest.resting(t0));
        rest.refused(t0);
        assert!(rest.resting(t0 + ms(4)) && !rest.resting(t0 + ms(5)));
        // A refusal while it rests (a call sent before) says nothing new.
        rest.refused(t0 + ms(1));
        assert!(!rest.resting(t0 + ms(5)));
        let t1 = t0 + ms(5);
        rest.refused(t1);
        let t2 = t1 + ms(10);
        rest.refused(t2);
        assert!(rest.resting(t2 + ms(19)) && !rest.resting(t2 + ms(20)));
        let mut t = t2;
        for _ in 0..20 {
            t += REST_MAX;
            rest.refused(t);
        }
        assert!(rest.resting(t + REST_MAX - ms(1)) && !rest.resting(t + REST_MAX));
        // Answers halve it; below the shortest, the rest ends.
        let mut rest = Rest::default();
        rest.refused(t0);
        rest.refused(t1);
        rest.answered();
        rest.refused(t2);
        assert!(rest.resting(t2 + ms(9)) && !rest.resting(t2 + ms(10)));
        rest.answered();
        assert!(rest.resting(t2), "the rest under way goes on");
        rest.answered();
        assert!(!rest.resting(t2));
        rest.refused(t2);
        assert!(!rest.resting(t2 + REST_MIN), "from the shortest again");
    }

    #[test]
    fn a_nodes_rests_are_its_methods_and_end_with_their_answers() {
        let (rests, t0) = (Rests::default(), Instant::now());
        rests.refused("a", t0);
        assert!(rests.resting("a", t0) && !rests.resting("b", t0));
        rests.answered("b");
        assert!(rests.resting("a", t0), "another method's answer");
        rests.answered("a");
        assert!(!rests.resting("a", t0) && rests.0.borrow().is_empty());
        // Past the most kept, a method rests only in place of one whose rest ended.
        for i in 0..MOST_RESTS {
            rests.refused(&format!("m{i}"), t0);
        }
        rests.refused("late", t0);
        assert!(!rests.resting("late", t0));
        let t1 = t0 + REST_MIN;
        rests.refused("late", t1);
        assert!(rests.resting("late", t1) && rests.0.borrow().len() == MOST_RESTS);
    }

    #[test]
    fn k_consecutive_failures_fail_a_node_and_a_success_resets_the_count() {
        let now = Instant::now();
        let t = Duration::from_secs(1);
        let opts = BalanceOptions {
            failure_threshold: 3,
            probe_interval: t,
            ..BalanceOptions::default()
        };
        let mut h = Health::default();
        let ms = Duration::from_millis(1);
        let fail = |h: &mut Health| h.failure(&opts, true, ms, now);
        assert!(fail(&mut h).is_none() && fail(&mut h).is_none());
        h.success(ms, now);
        assert!(fail(&mut h).is_none() && fail(&mut h).is_none());
        assert_eq!(
            fail(&mut h),
            Some(Tripped::Consecutive(3)),
            "the third in a row fails it"
        );
        assert!(h.is_failed() && !h.probe_due(now) && h.probe_due(now + t));
        assert_eq!(fail(&mut h), None, "already failed: reported once");
        h.probing = true;
        assert!(!h.probe_due(now + t), "one probe at a time");
        h.probe_failed(t, now + t);
        assert!(h.is_failed() && h.probe_due(now + 2 * t));
        h.restore();
        assert!(!h.is_failed() && h.consecutive == 0);
        assert_eq!(h.latency_at(now), None, "a clean record");
    }

    #[test]
    fn the_latency_estimate_fades_with_time_and_doubles_at_each_failure() {
        let now = Instant::now();
        let ms = |n: u64| Duration::from_millis(n).as_nanos() as f64;
        let mut h = Health::default();
        assert_eq!(h.latency_at(now), None);
        h.success(Duration::from_millis(300), now);
        assert_eq!(h.latency_at(now), Some(ms(300)));
        let later = h.latency_at(now + DECAY).unwrap();
        assert!(
            (later - ms(300) / std::f64::consts::E).abs() < 1.0,
            "{later}"
        );
        assert_eq!(h.latency_ns(), Some(ms(300)), "as last observed");
        let opts = BalanceOptions::default();
        let mut h = Health::default();
        h.success(Duration::from_millis(1), now);
        h.failure(&opts, true, Duration::from_micros(100), now);
        assert_eq!(h.latency_at(now), Some(ms(2)), "doubled");
        h.failure(&opts, true, Duration::from_millis(50), now);
        assert_eq!(
            h.latency_at(now),
            Some(ms(50)),
            "at least the failure's time"
        );
        let mut fresh = Health::default();
        fresh.failure(&opts, true, Duration::from_millis(3), now);
        assert_eq!(fresh.latency_at(now), Some(ms(3)));
        for _ in 0..2_000 {
            fresh.failure(&opts, true, Duration::from_millis(3), now);
        }
        let most = PENALTY_MAX.as_nanos() as f64;
        assert_eq!(fresh.latency_at(now), Some(most), "doubled up to a bound");
        let later = now + Duration::from_millis(1);
        fresh.success(Duration::from_millis(1), later);
        assert_eq!(
            fresh.latency_at(later),
            Some(ms(1)),
            "back by an answer: afresh"
        );
    }

    #[test]
    fn a_node_below_the_success_rate_over_its_last_calls_fails() {
        let now = Instant::now();
        let opts = BalanceOptions {
            failure_threshold: 3,
            success_rate: Some(SuccessRate {
                required: 0.8,
                window: 10,
            }),
            ..BalanceOptions::default()
        };
        let ms = Duration::from_millis(1);
        let mut h = Health::default();
        // Every other call fails: never 3 in a row, but 5 of the last 10.
        for i in 0..9 {
            if i % 2 == 0 {
                assert_eq!(
                    h.failure(&opts, true, ms, now),
                    None,
                    "call {i}: too few calls yet"
                );
            } else {
                h.success(ms, now);
            }
        }
        h.success(ms, now);
        assert_eq!(
            h.failure(&opts, false, ms, now),
            None,
            "its list cannot spare it"
        );
        h.success(ms, now);
        assert_eq!(
            h.failure(&opts, true, ms, now),
            Some(Tripped::SuccessRate { failed: 5, of: 10 })
        );
        assert!(h.is_failed());
        h.success(ms, now);
        assert!(h.is_failed(), "an answer to a call sent before it failed");
        h.success(ms, now + ms);
        assert!(
            !h.is_failed(),
            "one sent after: back, as when the client failed open"
        );
        assert_eq!(
            h.failure(&opts, true, ms, now),
            None,
            "its failures forgotten"
        );
        h.restore();
        // A clean record: the window fills again before it judges.
        for _ in 0..2 {
            h.success(ms, now);
            assert_eq!(h.failure(&opts, true, ms, now), None);
        }
        // 2 of the last 10 failed: 80% succeeded, as required.
        for _ in 0..6 {
            h.success(ms, now);
        }
        assert_eq!(h.recent.last(10), Some((2, 10)));
        assert_eq!(
            h.failure(&opts, true, ms, now),
            Some(Tripped::SuccessRate { failed: 3, of: 10 })
        );
        // One call in five fails: 80% succeed, as required; failures older than
        // the window no longer count.
        let mut h = Health::default();
        for i in 0..200 {
            if i % 5 == 0 {
                assert_eq!(h.failure(&opts, true, ms, now), None, "call {i}");
            } else {
                h.success(ms, now);
            }
        }
        assert_eq!(h.recent.last(128), Some((25, 128)), "calls 72 to 199");
        assert_eq!(h.recent.last(1_000), Some((25, 128)), "at most 128");
        // Without the rule, only consecutive failures count.
        let consecutive_only = BalanceOptions {
            success_rate: None,
            ..opts
        };
        for _ in 0..2 {
            h.failure(&consecutive_only, true, ms, now);
            h.success(ms, now);
        }
        assert!(!h.is_failed());
    }

    #[test]
    fn peak_ewma_believes_spikes_at_once_and_decays_slowly() {
        let now = Instant::now();
        let mut e = PeakEwma::default();
        e.observe(Duration::from_micros(100), now);
        assert_eq!(e.cost_ns, 100_000.0);
        e.observe(Duration::from_micros(900), now);
        assert_eq!(e.cost_ns, 900_000.0, "a spike replaces the estimate");
        e.observe(Duration::from_micros(100), now + Duration::from_secs(1));
        let expected = 900_000.0 * (-0.1f64).exp() + 100_000.0 * (1.0 - (-0.1f64).exp());
        assert!((e.cost_ns - expected).abs() < 1.0);
    }
}

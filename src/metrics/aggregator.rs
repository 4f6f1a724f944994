//! The aggregator thread: merges the cores' deltas into per-method windows and
//! lifetime totals, decides the breakers, and pushes their states to the cores
//! when they change. It decides a tick after news from the cores or a new
//! governance snapshot (switches and rules), and every tick while a breaker is not
//! unlocked (its timers run); otherwise it wakes every flush while rate limits'
//! shares follow demand, and else once a second, for the series and statsd.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use hdrhistogram::Histogram;

use super::acl::Acl;
use super::anomaly::{Anomaly, Kind, Series, MIN_CALLS, MIN_CALLS_P99};
use super::bad_value::BadValues;
use super::breaker::{Breaker, Force, Probes, Settings, State};
use super::counts::{Counts, Window};
use super::export::Statsd;
use super::limit::{self, Limit};
use super::recorder::{histogram, BreakerView, Delta, Rules, FLUSH, TICK};
use super::{Knows, KnowsMethod, LimitReport, MetricsOptions, Shared};
use crate::control::{CoreInit, ServiceName, Snapshot};
use crate::governance::Governance;
use crate::rpc::refusal::breaker;

/// One method's merged record.
pub struct MethodRecord {
    /// The breaker's window.
    pub window: Window,
    /// Every call so far.
    pub lifetime: Counts,
    /// Every call's latency so far (µs).
    pub latency: Histogram<u64>,
    /// Probe news since the breaker last decided.
    probes: Probes,
    /// The breaker.
    pub breaker: Breaker,
    /// When the cores last told of calls (ms since the aggregator started).
    last_news_ms: u64,
}

/// Runs the aggregator until the process ends.
pub fn run(shared: Arc<Shared>, deltas: Receiver<Delta>) {
    let started = Instant::now();
    let mut methods: BTreeMap<String, MethodRecord> = BTreeMap::new();
    let mut last_decide = Instant::now();
    let mut last_report = Instant::now();
    let mut last_shares = Instant::now();
    let mut settings = Settings::default();
    let mut demand = Demand::default();
    // The snapshot version the settings were last parsed from.
    let mut parsed: Option<Option<u64>> = None;
    let mut second = Second::new(&shared);
    let mut acl = Acl::default();
    let mut limits: HashMap<String, Limit> = HashMap::new();
    // The config values the last parse left out (each logged once while it stays).
    let mut left_out = BadValues::default();
    // Deltas merged (or a snapshot published) since the last decision; a breaker
    // whose timers run.
    let (mut news, mut timed) = (false, false);
    let mut changes = shared
        .options
        .governance
        .as_ref()
        .map_or_else(crossbeam_channel::never, Governance::changes);
    loop {
        // Idle, it wakes for the next second's series (and every flush while
        // limits' shares follow demand), or at news.
        let wait = if news || timed {
            TICK.saturating_sub(last_decide.elapsed())
        } else if !limits.is_empty() {
            FLUSH
        } else {
            Second::LENGTH.saturating_sub(second.started.elapsed())
        };
        let first = crossbeam_channel::select! {
            recv(deltas) -> d => match d {
                Ok(d) => Some(d),
                Err(_) => return,
            },
            recv(changes) -> c => {
                if c.is_err() {
                    changes = crossbeam_channel::never();
                }
                news = true;
                None
            }
            default(wait) => None,
        };
        for mut d in first.into_iter().chain(deltas.try_iter()) {
            let now_ms = started.elapsed().as_millis() as u64;
            let idle_ms = settings.key_idle.as_millis() as u64;
            for gone in cap_keys(&mut methods, &mut d, now_ms, idle_ms) {
                demand.forget(&gone);
                second.forget(&gone);
                tracing::debug!(
                    key = gone,
                    "metrics: a key idle for {idle_ms} ms gives its place to a new one"
                );
            }
            demand.add(&d);
            second.add(&d);
            shared.set_pools(&mut d);
            merge(&mut methods, d, now_ms, &settings);
            news = true;
        }
        second.roll(&shared);
        if last_decide.elapsed() < TICK {
            continue;
        }
        news = false;
        last_decide = Instant::now();
        let snap = shared.options.governance.as_ref().map(|g| g.snapshot());
        // Settings, ACL and limits are parsed again only when the snapshot changed.
        let version = snap.as_ref().map(|s| s.version);
        let mut rules_changed = false;
        if parsed != Some(version) {
            parsed = Some(version);
            let knows = known(&shared.options.knows_method);
            let (fresh, fresh_acl, fresh_limits, bad) = parse(snap.as_deref(), knows);
            bad.log_new(&left_out);
            left_out = bad;
            rules_changed = fresh.probes_per_core != settings.probes_per_core
                || fresh.probe_timeout != settings.probe_timeout
                || fresh_acl != acl
                || fresh_limits != limits;
            settings = fresh;
            acl = fresh_acl;
            limits = fresh_limits;
        }
        // Limit shares follow demand: re-split every flush.
        if !limits.is_empty() && last_shares.elapsed() >= FLUSH {
            demand.roll(last_shares.elapsed());
            last_shares = Instant::now();
            rules_changed = true;
        }
        let now = Instant::now();
        let now_ms = (now - started).as_millis() as u64;
        let mut changed = rules_changed;
        for (method, m) in methods.iter_mut() {
            // A node's health is the client's to judge (its failed list and
            // probes), not a breaker's.
            if method.starts_with("node:") {
                continue;
            }
            let force = Force::of(snap.as_deref(), method);
            let probes = std::mem::take(&mut m.probes);
            if let Some(before) =
                m.breaker
                    .decide(now, now_ms, &mut m.window, probes, &settings, force)
            {
                changed = true;
                let after = m.breaker.state();
                let name = format!("{}.{method}", shared.options.app);
                match after {
                    State::Locked => {
                        tracing::warn!(breaker = %name, reason = %m.breaker.reason, "circuit breaker locked")
                    }
                    State::Unlocked => tracing::info!(breaker = %name, "circuit breaker unlocked"),
                    _ => {
                        tracing::info!(breaker = %name, state = ?after, "circuit breaker recovering")
                    }
                }
                if let Some(cb) = &shared.options.on_change {
                    cb(method, before, after, &m.breaker.reason);
                }
            }
        }
        timed = methods
            .values()
            .any(|m| m.breaker.state() != State::Unlocked);
        if changed {
            publish(&shared, &methods, &settings, &acl, &limits, &demand);
        }
        // The admin views' copy (percentiles cost a pass over each histogram).
        if changed || last_report.elapsed() >= FLUSH {
            last_report = now;
            shared.set_report(&methods, now_ms);
        }
    }
}

/// The most keys (methods, downstream methods, nodes) the aggregator keeps apart;
/// beyond, new ones are counted together as [`OTHER`] (callers naming methods or
/// relay targets must not make it grow without bound).
pub const MAX_KEYS: usize = 256;
/// The key that stands for every key beyond [`MAX_KEYS`].
pub const OTHER: &str = "(other)";

/// Makes room for `d`'s new keys: in a full table a new key takes the place of the
/// key idle longest, if that one has had no calls for `idle_ms` and its breaker is
/// unlocked (nodes and downstreams come and go, and those long gone must not keep
/// new ones out), else it is counted as [`OTHER`]. Returns the keys let go.
fn cap_keys(
    methods: &mut BTreeMap<String, MethodRecord>,
    d: &mut Delta,
    now_ms: u64,
    idle_ms: u64,
) -> Vec<String> {
    let mut known = methods.len();
    let mut gone = Vec::new();
    for (name, _) in d.methods.iter_mut() {
        if let Some(m) = methods.get_mut(name.as_str()) {
            // Has news: not to be let go for another key of this delta.
            m.last_news_ms = now_ms;
            continue;
        }
        if known < MAX_KEYS {
            known += 1;
            continue;
        }
        let idle = methods
            .iter()
            .filter(|(_, m)| {
                now_ms.saturating_sub(m.last_news_ms) >= idle_ms
                    && m.breaker.state() == State::Unlocked
                    && m.probes.passed + m.probes.failed == 0
            })
            .min_by_key(|(_, m)| m.last_news_ms)
            .map(|(k, _)| k.clone());
        match idle {
            Some(k) => {
                methods.remove(&k);
                gone.push(k);
            }
            None => *name = OTHER.to_string(),
        }
    }
    gone
}

fn merge(methods: &mut BTreeMap<String, MethodRecord>, d: Delta, now_ms: u64, s: &Settings) {
    for (name, delta) in d.methods {
        let m = methods.entry(name).or_insert_with(|| MethodRecord {
            window: Window::new(s.buckets, s.bucket_ms),
            lifetime: Counts::default(),
            latency: histogram(),
            probes: Probes::default(),
            breaker: Breaker::new(Instant::now()),
            last_news_ms: now_ms,
        });
        m.last_news_ms = now_ms;
        if !m.window.has_shape(s.buckets, s.bucket_ms) {
            m.window = Window::new(s.buckets, s.bucket_ms);
        }
        m.window.add(now_ms, &delta.tally.counts);
        m.lifetime.merge(&delta.tally.counts);
        delta.latency.add_to(&mut m.latency);
        m.probes.passed += delta.tally.probes_passed;
        m.probes.failed += delta.tally.probes_failed;
    }
}

/// Sends every core its rules: the breakers that are not unlocked, the ACL, and
/// its share of each limit.
fn publish(
    shared: &Shared,
    methods: &BTreeMap<String, MethodRecord>,
    s: &Settings,
    acl: &Acl,
    limits: &HashMap<String, Limit>,
    demand: &Demand,
) {
    let app = &shared.options.app;
    let breakers: foldhash::HashMap<String, BreakerView> = methods
        .iter()
        .filter(|(_, m)| m.breaker.state() != State::Unlocked)
        .map(|(method, m)| {
            let state = m.breaker.state();
            let name = format_args!("{app}.{method}");
            let message = match state {
                State::Locked => breaker(name, format_args!("open ({})", m.breaker.reason)),
                State::Probing => breaker(name, format_args!("recovering (probing)")),
                _ => breaker(name, format_args!("recovering (ramp)")),
            };
            let view = BreakerView {
                state,
                ramp: (m.breaker.ramp_since(), s.ramp),
                message,
            };
            (method.clone(), view)
        })
        .collect();
    let rules = Rules {
        app: app.clone(),
        breakers,
        probes_per_core: s.probes_per_core,
        probe_timeout: s.probe_timeout,
        acl: acl.clone(),
        limits: Default::default(),
    };
    let cores = shared.core_indexes();
    *shared.limits.lock().expect("not poisoned") = limits
        .iter()
        .map(|(m, l)| {
            let shares = limit::split(l, &demand.of(m, &cores));
            let per_core = cores.iter().copied().zip(shares).collect();
            let report = LimitReport {
                limit: *l,
                per_core,
            };
            (m.clone(), report)
        })
        .collect();
    shared.publish_rules(rules);
}

/// Recent calls per method and core (admitted and refused), for the limits' split.
#[derive(Default)]
pub struct Demand {
    /// Calls since the last roll, by method and core.
    fresh: HashMap<String, HashMap<usize, u64>>,
    /// Calls per second, smoothed, by method and core.
    rate: HashMap<String, HashMap<usize, f64>>,
}

impl Demand {
    fn add(&mut self, d: &Delta) {
        for (m, delta) in &d.methods {
            *self
                .fresh
                .entry(m.clone())
                .or_default()
                .entry(d.core)
                .or_default() += delta.tally.counts.requests + delta.tally.counts.refused;
        }
    }

    /// Folds the calls of the last `elapsed` into the smoothed rates.
    fn roll(&mut self, elapsed: std::time::Duration) {
        let secs = elapsed.as_secs_f64().max(1e-3);
        for rates in self.rate.values_mut() {
            for r in rates.values_mut() {
                *r *= 0.5;
            }
        }
        for (m, cores) in self.fresh.drain() {
            let rates = self.rate.entry(m).or_default();
            for (core, n) in cores {
                *rates.entry(core).or_default() += 0.5 * n as f64 / secs;
            }
        }
    }

    /// Drops what it knows of `method`.
    fn forget(&mut self, method: &str) {
        self.fresh.remove(method);
        self.rate.remove(method);
    }

    /// The smoothed rates of `method` on `cores` (in their order).
    fn of(&self, method: &str, cores: &[usize]) -> Vec<f64> {
        let rates = self.rate.get(method);
        cores
            .iter()
            .map(|c| rates.and_then(|r| r.get(c)).copied().unwrap_or(0.0))
            .collect()
    }
}

/// Each second's calls by method: for anomaly alerts and statsd.
struct Second {
    started: Instant,
    calls: BTreeMap<String, (Counts, Histogram<u64>)>,
    series: BTreeMap<String, [Series; 2]>,
    statsd: Option<Statsd>,
}

impl Second {
    /// How often the series take a point and statsd gets its lines.
    const LENGTH: Duration = Duration::from_secs(1);

    fn new(shared: &Shared) -> Self {
        let statsd = shared.options.statsd.as_ref().and_then(|(to, prefix)| match Statsd::new(*to, prefix) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(%to, error = %e, "cannot open the statsd socket: no statsd lines");
                None
            }
        });
        Second {
            started: Instant::now(),
            calls: BTreeMap::new(),
            series: BTreeMap::new(),
            statsd,
        }
    }

    fn add(&mut self, d: &Delta) {
        for (m, delta) in &d.methods {
            let (c, h) = self
                .calls
                .entry(m.clone())
                .or_insert_with(|| (Counts::default(), histogram()));
            c.merge(&delta.tally.counts);
            delta.latency.add_to(h);
        }
    }

    /// Drops what it knows of `method`.
    fn forget(&mut self, method: &str) {
        self.calls.remove(method);
        self.series.remove(method);
    }

    /// Once a second: anomaly points and flags, and the statsd lines.
    fn roll(&mut self, shared: &Shared) {
        if self.started.elapsed() < Self::LENGTH {
            return;
        }
        self.started = Instant::now();
        for (m, a) in self.observe() {
            tracing::warn!(method = m.as_str(), kind = ?a.kind, value = a.value, mean = a.mean, stddev = a.stddev, "anomaly: departs more than 3 standard deviations from its recent mean");
        }
        let flags = self
            .series
            .iter()
            .map(|(m, s)| {
                (
                    m.clone(),
                    s.iter()
                        .filter_map(Series::flag)
                        .cloned()
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, l)| !l.is_empty())
            .collect();
        *shared.anomalies.lock().expect("not poisoned") = flags;
        if let Some(statsd) = &mut self.statsd {
            statsd.send(&self.calls);
        }
        self.calls.clear();
    }

    /// Adds the second's points to each method's history (the error ratio of a
    /// second with [`MIN_CALLS`] calls, the p99 of one with [`MIN_CALLS_P99`]);
    /// returns the flags raised.
    fn observe(&mut self) -> Vec<(String, Anomaly)> {
        let mut raised = Vec::new();
        for (m, (c, h)) in &self.calls {
            if c.requests < MIN_CALLS {
                continue;
            }
            let series = self.series.entry(m.clone()).or_default();
            let failed = (c.timeouts + c.system + c.application) as f64 / c.requests as f64;
            // The ratio's deviation is at least one call's share of the second: a
            // second of 20 calls cannot tell a ratio more finely, and up to three
            // sporadic failures in it are not a burst.
            let floor = (1.0 / c.requests as f64).max(0.01);
            let ratio = series[0].observe(Kind::ErrorRatio, failed, floor, 0.0);
            let p99 = (c.requests >= MIN_CALLS_P99).then(|| {
                let p99 = h.value_at_quantile(0.99) as f64;
                series[1].observe(Kind::P99, p99, 100.0, 0.1)
            });
            raised.extend(
                ratio
                    .into_iter()
                    .chain(p99.flatten())
                    .map(|a| (m.clone(), a)),
            );
        }
        raised
    }
}

/// A state's name as the views show it.
pub fn state_name(s: State) -> &'static str {
    match s {
        State::Unlocked => "UNLOCKED",
        State::Locked => "LOCKED",
        State::Probing => "RECOVER (probing)",
        State::Ramp => "RECOVER (ramp)",
    }
}

/// `knows` as [`Knows`].
fn known(knows: &Option<KnowsMethod>) -> Knows<'_> {
    knows.as_ref().map(|f| f as &dyn Fn(&[u8]) -> bool)
}

/// What a cluster override left out as bad gives way to.
const APP_WIDE: &str = "the app-wide value is in force";

/// The settings, ACL and limits in `snap`'s config, and the values they leave out
/// (breaker switches included); `knows` tells the service's methods, when given.
/// A cluster's override left out gives way to the app-wide value of its key, when
/// that one is taken.
pub(super) fn parse(
    snap: Option<&Snapshot>,
    knows: Knows<'_>,
) -> (Settings, Acl, HashMap<String, Limit>, BadValues) {
    let first = parse_once(snap, knows);
    let Some(snap) = snap else { return first };
    let mut mended = snap.clone();
    let mut keys = Vec::new();
    for b in first.3.iter() {
        let layers = [
            (&snap.config, &snap.app_config, &mut mended.config),
            (&snap.switches, &snap.app_switches, &mut mended.switches),
        ];
        for (now, app, into) in layers {
            let (Some(v), Some(app_v)) = (now.get(&b.key), app.get(&b.key)) else {
                continue;
            };
            if v != app_v && b.is(v) {
                Arc::make_mut(into).insert(b.key.clone(), app_v.clone());
                keys.push(b.key.clone());
            }
        }
    }
    if keys.is_empty() {
        return first;
    }
    let (settings, acl, limits, again) = parse_once(Some(&mended), knows);
    // An override whose app-wide value is bad too stays left out, as it was.
    keys.retain(|k| !again.iter().any(|a| &a.key == k));
    let mut bad = first.3;
    bad.say_then(&keys, APP_WIDE);
    (settings, acl, limits, bad)
}

fn parse_once(
    snap: Option<&Snapshot>,
    knows: Knows<'_>,
) -> (Settings, Acl, HashMap<String, Limit>, BadValues) {
    let own = snap.and_then(|s| {
        let own = ServiceName::new(&s.app, &s.cluster).ok()?;
        s.providers(&own).map(<[_]>::len)
    });
    let mut bad = BadValues::default();
    let parsed = (
        Settings::from_config(snap, &mut bad),
        Acl::from_config(snap, knows, &mut bad),
        limit::from_config(snap, own.unwrap_or(1), knows, &mut bad),
    );
    Force::check(snap, knows, &mut bad);
    (parsed.0, parsed.1, parsed.2, bad)
}

/// Core `init`'s rules before the aggregator's first publish: nothing locked, and
/// the settings, ACL and limits (split equally) of `snap`'s config, so that the
/// config a process starts with holds from its first call.
pub fn initial_rules(o: &MetricsOptions, snap: Option<&Snapshot>, init: &CoreInit) -> Rules {
    let (s, acl, limits, _) = parse(snap, known(&o.knows_method));
    Rules {
        app: o.app.clone(),
        breakers: Default::default(),
        probes_per_core: s.probes_per_core,
        probe_timeout: s.probe_timeout,
        acl,
        limits: limits
            .iter()
            .map(|(m, l)| (m.clone(), limit::equal_share(l, init.cores)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Outcome;
    use crate::metrics::latencies::Latencies;
    use crate::metrics::recorder::MethodDelta;

    #[test]
    fn the_initial_rules_hold_the_config_a_process_starts_with() {
        let mut snap = Snapshot::empty("a", "c");
        Arc::make_mut(&mut snap.config).insert("acl.deny".into(), "evil".into());
        Arc::make_mut(&mut snap.config).insert("limit.echo.qps".into(), "1000".into());
        Arc::make_mut(&mut snap.config).insert("breaker.probes_per_core".into(), "3".into());
        let rules = initial_rules(&MetricsOptions::new("a"), Some(&snap), &CoreInit::new(1, 2));
        assert!(rules.acl.check("evil", "a", "ping").is_err());
        assert!(rules.acl.check("good", "a", "ping").is_ok());
        assert_eq!(rules.limits["echo"].qps, Some(500.0), "an equal share");
        assert_eq!(rules.probes_per_core, 3);
        let open = initial_rules(&MetricsOptions::new("a"), None, &CoreInit::new(0, 2));
        assert!(open.acl.is_open() && open.limits.is_empty());
    }

    #[test]
    fn a_cluster_override_left_out_gives_way_to_the_app_wide_value() {
        use crate::metrics::breaker::Force;
        let mut snap = Snapshot::empty("a", "c");
        let set = |m: &mut Arc<std::collections::BTreeMap<String, String>>, k: &str, v: &str| {
            Arc::make_mut(m).insert(k.into(), v.into());
        };
        set(&mut snap.app_config, "limit.echo.qps", "1000");
        set(&mut snap.app_config, "breaker.min_requests", "7");
        set(&mut snap.app_config, "limit.add.qps", "x");
        set(&mut snap.app_switches, "breaker.echo", "\"open\"");
        (snap.config, snap.switches) = (snap.app_config.clone(), snap.app_switches.clone());
        // The cluster's overrides: three bad ones over good app-wide values, one
        // over a bad app-wide value, one with no app-wide value.
        set(&mut snap.config, "limit.echo.qps", "lots");
        set(&mut snap.config, "breaker.min_requests", "-1");
        set(&mut snap.switches, "breaker.echo", "\"sideways\"");
        set(&mut snap.config, "limit.add.qps", "y");
        set(&mut snap.config, "limit.ping.qps", "z");
        let (settings, _, limits, bad) = parse(Some(&snap), None);
        assert_eq!(limits["echo"].qps, Some(1000.0));
        assert_eq!(settings.min_requests, 7);
        assert_eq!(Force::of(Some(&snap), "echo"), Force::Open);
        assert!(!limits.contains_key("add") && !limits.contains_key("ping"));
        let then: HashMap<&str, (&str, &str)> = bad
            .iter()
            .map(|b| (b.key.as_str(), (b.value.as_str(), b.then)))
            .collect();
        assert_eq!(then.len(), 5, "{then:?}");
        assert_eq!(then["limit.echo.qps"], ("lots", APP_WIDE));
        assert_eq!(then["breaker.min_requests"], ("-1", APP_WIDE));
        assert_eq!(then["breaker.echo"], ("\"sideways\"", APP_WIDE));
        assert_eq!(then["limit.add.qps"], ("y", "no limit from it"));
        assert_eq!(then["limit.ping.qps"], ("z", "no limit from it"));
    }

    #[test]
    fn two_cores_merge_to_exact_sums_and_the_reference_percentiles() {
        let s = Settings::default();
        let mut reference = histogram();
        let mut want = Counts::default();
        let mut methods = BTreeMap::new();
        let outcomes = [
            Outcome::Result,
            Outcome::Declared,
            Outcome::Timeout,
            Outcome::Refused,
        ];
        for core in 0..2 {
            for tick in 0..5 {
                let (mut d, mut latencies) = (MethodDelta::new(), Latencies::new());
                for i in 0..1000u64 {
                    let o = outcomes[(i as usize + core) % outcomes.len()];
                    let us = 1 + (i * 7919 + tick * 104_729 + core as u64 * 13) % 250_000;
                    d.tally.counts.add(o);
                    want.add(o);
                    latencies.record(us);
                    reference.record(us).unwrap();
                }
                d.latency = latencies.drain();
                let delta = Delta {
                    core,
                    methods: vec![("m".to_string(), d)],
                    pools: None,
                };
                merge(&mut methods, delta, 0, &s);
            }
        }
        let m = &methods["m"];
        assert_eq!(m.lifetime, want);
        assert_eq!(m.window.total(0), want, "all in the current window");
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                m.latency.value_at_quantile(q),
                reference.value_at_quantile(q),
                "q{q}"
            );
        }
        assert_eq!(m.latency.len(), reference.len());
    }

    /// Adds a second of `n` calls of `m` (80–119 µs, `slow` of them 5 ms instead,
    /// `failed` of them application errors); the flags raised.
    fn second(s: &mut Second, n: u64, slow: u64, failed: u64) -> Vec<(String, Anomaly)> {
        let (mut d, mut latencies) = (MethodDelta::new(), Latencies::new());
        for i in 0..n {
            let o = if i < failed {
                Outcome::Application(crate::protocol::ApplicationExceptionKind::InternalError)
            } else {
                Outcome::Result
            };
            d.tally.counts.add(o);
            latencies.record(if i < slow { 5_000 } else { 80 + i % 40 });
        }
        d.latency = latencies.drain();
        s.add(&Delta {
            core: 0,
            methods: vec![("m".into(), d)],
            pools: None,
        });
        let raised = s.observe();
        s.calls.clear();
        raised
    }

    /// A history of 15 steady seconds of `n` calls each.
    fn steady(n: u64) -> Second {
        let mut s = Second {
            started: Instant::now(),
            calls: BTreeMap::new(),
            series: BTreeMap::new(),
            statsd: None,
        };
        for i in 0..15 {
            assert_eq!(second(&mut s, n, 0, 0), [], "steady second {i}");
        }
        s
    }

    /// The one flag in `raised`.
    fn one(raised: Vec<(String, Anomaly)>) -> (String, Anomaly) {
        assert_eq!(raised.len(), 1, "{raised:?}");
        raised.into_iter().next().unwrap()
    }

    #[test]
    fn a_slow_call_or_three_failures_flag_nothing_a_slow_share_and_an_error_burst_do() {
        // 50 calls a second: their p99 would be the slowest call, and one call the
        // machine slowed is no anomaly; three failed calls are not a burst, four
        // and more are.
        let mut s = steady(50);
        assert_eq!(second(&mut s, 50, 1, 0), [], "one slow call of 50");
        assert_eq!(second(&mut s, 50, 0, 3), [], "three failed calls of 50");
        let (m, a) = one(second(&mut s, 50, 0, 4));
        assert_eq!((&*m, a.kind), ("m", Kind::ErrorRatio));
        // 200 calls a second: one slow call is within the p99, 5% are not.
        let mut s = steady(200);
        assert_eq!(second(&mut s, 200, 1, 0), [], "one slow call of 200");
        let (m, a) = one(second(&mut s, 200, 10, 0));
        assert_eq!((&*m, a.kind), ("m", Kind::P99));
        assert!((5_000.0..5_100.0).contains(&a.value), "{a:?}");
    }

    /// A delta of one call of each of `names`.
    fn calls(names: &[&str]) -> Delta {
        let methods = names
            .iter()
            .map(|n| {
                let mut d = MethodDelta::new();
                d.tally.counts.add(Outcome::Result);
                (n.to_string(), d)
            })
            .collect();
        Delta {
            core: 0,
            methods,
            pools: None,
        }
    }

    /// `cap_keys` then `merge`, as the aggregator runs them; the keys let go.
    fn feed(
        methods: &mut BTreeMap<String, MethodRecord>,
        names: &[&str],
        now_ms: u64,
    ) -> Vec<String> {
        let mut d = calls(names);
        let gone = cap_keys(methods, &mut d, now_ms, 1000);
        merge(methods, d, now_ms, &Settings::default());
        gone
    }

    #[test]
    fn a_full_table_gives_the_place_of_a_long_idle_key_to_a_new_one() {
        let mut methods = BTreeMap::new();
        let old: Vec<String> = (0..MAX_KEYS)
            .map(|i| format!("node:s@10.0.0.{i}"))
            .collect();
        let old: Vec<&str> = old.iter().map(String::as_str).collect();
        assert!(feed(&mut methods, &old, 0).is_empty());
        // Full, and nothing idle long enough: the newcomer is counted as (other).
        assert!(feed(&mut methods, &["node:s@10.0.1.1"], 500).is_empty());
        assert!(methods.contains_key(OTHER) && !methods.contains_key("node:s@10.0.1.1"));
        // A key with calls since, and a key whose breaker is locked, stay.
        feed(&mut methods, &[old[7]], 900);
        let locked = methods.get_mut(old[3]).unwrap();
        let s = Settings::default();
        locked.breaker.decide(
            Instant::now(),
            900,
            &mut locked.window,
            Probes::default(),
            &s,
            Force::Open,
        );
        assert_eq!(locked.breaker.state(), State::Locked);
        let gone = feed(&mut methods, &["node:s@10.0.1.2", "node:s@10.0.1.3"], 1500);
        assert_eq!(gone.len(), 2, "{gone:?}");
        for k in &gone {
            assert!(k != old[3] && k != old[7] && k != OTHER, "{gone:?}");
            assert!(!methods.contains_key(k), "{k} let go");
        }
        for k in ["node:s@10.0.1.2", "node:s@10.0.1.3", old[3], old[7], OTHER] {
            assert!(methods.contains_key(k), "{k}");
        }
        assert_eq!(methods["node:s@10.0.1.2"].lifetime.requests, 1);
        assert_eq!(
            methods.len(),
            MAX_KEYS + 1,
            "the table (with (other)) does not grow"
        );
    }
}

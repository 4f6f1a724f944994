//! The aggregator thread: merges the cores' deltas into per-method windows and
//! lifetime totals, decides the breakers every tick, and pushes their states to
//! the cores when they change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use hdrhistogram::Histogram;

use super::breaker::{Breaker, Force, Probes, Settings, State};
use super::counts::{Counts, Window};
use super::recorder::{histogram, BreakerStates, BreakerView, Delta, FLUSH, TICK};
use super::Shared;

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
}

/// Runs the aggregator until the process ends.
pub fn run(shared: Arc<Shared>, deltas: Receiver<Delta>) {
    let started = Instant::now();
    let mut methods: BTreeMap<String, MethodRecord> = BTreeMap::new();
    let mut last_decide = Instant::now();
    let mut last_report = Instant::now();
    let mut settings = Settings::default();
    loop {
        match deltas.recv_timeout(TICK) {
            Ok(d) => merge(&mut methods, d, started, &settings),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        for d in deltas.try_iter() {
            merge(&mut methods, d, started, &settings);
        }
        if last_decide.elapsed() < TICK {
            continue;
        }
        last_decide = Instant::now();
        let snap = shared.options.governance.as_ref().map(|g| g.snapshot());
        let fresh = Settings::from_config(snap.as_deref());
        let rules_changed = fresh.probes_per_core != settings.probes_per_core
            || fresh.probe_timeout != settings.probe_timeout;
        settings = fresh;
        let now = Instant::now();
        let now_ms = (now - started).as_millis() as u64;
        let mut changed = rules_changed;
        for (method, m) in methods.iter_mut() {
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
        if changed {
            publish(&shared, &methods, &settings);
        }
        // The admin views' copy (percentiles cost a pass over each histogram).
        if changed || last_report.elapsed() >= FLUSH {
            last_report = now;
            shared.set_report(&methods, now_ms);
        }
    }
}

fn merge(methods: &mut BTreeMap<String, MethodRecord>, d: Delta, started: Instant, s: &Settings) {
    let now_ms = started.elapsed().as_millis() as u64;
    for (name, delta) in d.methods {
        let m = methods.entry(name).or_insert_with(|| MethodRecord {
            window: Window::new(s.buckets, s.bucket_ms),
            lifetime: Counts::default(),
            latency: histogram(),
            probes: Probes::default(),
            breaker: Breaker::new(Instant::now()),
        });
        if !m.window.has_shape(s.buckets, s.bucket_ms) {
            m.window = Window::new(s.buckets, s.bucket_ms);
        }
        m.window.add(now_ms, &delta.counts);
        m.lifetime.merge(&delta.counts);
        let _ = m.latency.add(&delta.latency);
        m.probes.passed += delta.probes_passed;
        m.probes.failed += delta.probes_failed;
    }
}

/// Sends every core the breakers that are not unlocked.
fn publish(shared: &Shared, methods: &BTreeMap<String, MethodRecord>, s: &Settings) {
    let app = &shared.options.app;
    let views: HashMap<String, BreakerView> = methods
        .iter()
        .filter(|(_, m)| m.breaker.state() != State::Unlocked)
        .map(|(method, m)| {
            let state = m.breaker.state();
            let message = match state {
                State::Locked => format!(
                    "ringsoa: circuit breaker {app}.{method} is open ({}): call refused",
                    m.breaker.reason
                ),
                State::Probing => format!(
                    "ringsoa: circuit breaker {app}.{method} is recovering (probing): call refused"
                ),
                _ => format!(
                    "ringsoa: circuit breaker {app}.{method} is recovering (ramp): call refused"
                ),
            };
            let view = BreakerView {
                state,
                ramp: (m.breaker.ramp_since(), s.ramp),
                message,
            };
            (method.clone(), view)
        })
        .collect();
    let states = BreakerStates {
        methods: views,
        probes_per_core: s.probes_per_core,
        probe_timeout: s.probe_timeout,
    };
    shared.publish_states(states);
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

/// The default probe rules, before any decision.
pub fn initial_states() -> BreakerStates {
    let s = Settings::default();
    BreakerStates {
        methods: HashMap::new(),
        probes_per_core: s.probes_per_core,
        probe_timeout: s.probe_timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Outcome;
    use crate::metrics::recorder::MethodDelta;

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
                let mut d = MethodDelta {
                    counts: Counts::default(),
                    latency: histogram(),
                    probes_passed: 0,
                    probes_failed: 0,
                };
                for i in 0..1000u64 {
                    let o = outcomes[(i as usize + core) % outcomes.len()];
                    let us = 1 + (i * 7919 + tick * 104_729 + core as u64 * 13) % 250_000;
                    d.counts.add(o);
                    want.add(o);
                    d.latency.record(us).unwrap();
                    reference.record(us).unwrap();
                }
                let delta = Delta {
                    core,
                    methods: vec![("m".to_string(), d)],
                };
                merge(&mut methods, delta, Instant::now(), &s);
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
}

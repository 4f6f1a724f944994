//! [`CoreMetrics`]: one core's recorder and breaker check — plain per-method
//! counters and a latency histogram (no atomics), sent to the aggregator as deltas
//! every [`FLUSH`]; the breaker states the aggregator pushes, read with no lock; the
//! core's probes in flight, each with its timeout.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hdrhistogram::Histogram;

use super::breaker::State;
use super::counts::{is_failure, Counts};
use crate::control::{CoreControl, Outcome, Ticket};
use crate::protocol::ApplicationException;
use crate::rpc::CallContext;

/// How often a core looks for new breaker states and timed-out probes.
pub const TICK: Duration = Duration::from_millis(10);
/// How often a core sends its deltas.
pub const FLUSH: Duration = Duration::from_millis(100);

/// A latency histogram in microseconds, 1 µs to 1 hour, 2 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds")
}

/// One method's news from one core since its last delta.
#[derive(Debug, Clone)]
pub struct MethodDelta {
    /// How the calls ended.
    pub counts: Counts,
    /// Their latencies (µs).
    pub latency: Histogram<u64>,
    /// Breaker probes that passed, and that failed or timed out.
    pub probes_passed: u64,
    /// See `probes_passed`.
    pub probes_failed: u64,
}

impl MethodDelta {
    fn new() -> Self {
        MethodDelta {
            counts: Counts::default(),
            latency: histogram(),
            probes_passed: 0,
            probes_failed: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.probes_passed == 0 && self.probes_failed == 0
    }
}

/// A core's deltas.
#[derive(Debug)]
pub struct Delta {
    /// The core.
    pub core: usize,
    /// Method → news.
    pub methods: Vec<(String, MethodDelta)>,
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

/// Every breaker that is not unlocked, and the probe rules.
#[derive(Debug, Clone)]
pub struct BreakerStates {
    /// Method → breaker, for breakers not unlocked.
    pub methods: HashMap<String, BreakerView>,
    /// Probes in flight per core while probing.
    pub probes_per_core: usize,
    /// A probe that takes longer has failed.
    pub probe_timeout: Duration,
}

struct Probe {
    ticket: u64,
    method: String,
    started: Instant,
}

struct Inner {
    core: usize,
    deltas: Sender<Delta>,
    states_rx: Receiver<Arc<BreakerStates>>,
    methods: RefCell<HashMap<String, MethodDelta>>,
    states: RefCell<Arc<BreakerStates>>,
    /// Methods whose probe failed here: refused until the aggregator decides.
    relocked: RefCell<Vec<String>>,
    probes: RefCell<Vec<Probe>>,
    next_ticket: std::cell::Cell<u64>,
}

/// One core's recorder and breaker check (see the module docs); a [`CoreControl`].
pub struct CoreMetrics(Rc<Inner>);

impl CoreMetrics {
    /// A core's recorder, sending to `deltas` and told breaker states by `states`;
    /// starts its tick on the current monoio runtime.
    pub fn new(
        core: usize,
        deltas: Sender<Delta>,
        states: Receiver<Arc<BreakerStates>>,
        initial: Arc<BreakerStates>,
    ) -> Self {
        let inner = Rc::new(Inner {
            core,
            deltas,
            states_rx: states,
            methods: RefCell::default(),
            states: RefCell::new(initial),
            relocked: RefCell::default(),
            probes: RefCell::default(),
            next_ticket: std::cell::Cell::new(1),
        });
        let weak: Weak<Inner> = Rc::downgrade(&inner);
        monoio::spawn(async move {
            let mut last_flush = Instant::now();
            loop {
                monoio::time::sleep(TICK).await;
                let Some(inner) = weak.upgrade() else { break };
                inner.tick();
                if last_flush.elapsed() >= FLUSH {
                    last_flush = Instant::now();
                    inner.flush();
                }
            }
        });
        CoreMetrics(inner)
    }
}

impl Inner {
    fn tick(&self) {
        if let Some(latest) = self.states_rx.try_iter().last() {
            *self.states.borrow_mut() = latest;
            self.relocked.borrow_mut().clear();
        }
        let timeout = self.states.borrow().probe_timeout;
        let now = Instant::now();
        let late: Vec<Probe> = {
            let mut probes = self.probes.borrow_mut();
            let (late, keep) = probes.drain(..).partition(|p| now - p.started > timeout);
            *probes = keep;
            late
        };
        for p in late {
            tracing::warn!(core = self.core, method = %p.method, ?timeout, "breaker probe timed out");
            self.probe_ended(&p.method, false);
        }
    }

    fn flush(&self) {
        let mut methods = self.methods.borrow_mut();
        let news: Vec<(String, MethodDelta)> = methods
            .iter_mut()
            .filter(|(_, d)| !d.is_empty())
            .map(|(m, d)| (m.clone(), std::mem::replace(d, MethodDelta::new())))
            .collect();
        if !news.is_empty() {
            let _ = self.deltas.send(Delta {
                core: self.core,
                methods: news,
            });
        }
    }

    fn with_method<R>(&self, method: &str, f: impl FnOnce(&mut MethodDelta) -> R) -> R {
        let mut methods = self.methods.borrow_mut();
        if let Some(d) = methods.get_mut(method) {
            return f(d);
        }
        f(methods
            .entry(method.to_string())
            .or_insert_with(MethodDelta::new))
    }

    fn probe_ended(&self, method: &str, passed: bool) {
        self.with_method(method, |d| {
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

impl CoreControl for CoreMetrics {
    fn admit(&self, _cx: &CallContext, method: &str) -> Result<Ticket, ApplicationException> {
        let inner = &self.0;
        let states = inner.states.borrow();
        let Some(b) = states.methods.get(method) else {
            return Ok(Ticket::default());
        };
        let refuse = || Err(ApplicationException::internal(b.message.clone()));
        if inner.relocked.borrow().iter().any(|m| m == method) {
            return refuse();
        }
        match b.state {
            State::Unlocked => Ok(Ticket::default()),
            State::Locked => refuse(),
            State::Probing => {
                let mut probes = inner.probes.borrow_mut();
                if probes.iter().filter(|p| p.method == method).count() >= states.probes_per_core {
                    return refuse();
                }
                let ticket = inner.next_ticket.get();
                inner.next_ticket.set(ticket + 1);
                probes.push(Probe {
                    ticket,
                    method: method.to_string(),
                    started: Instant::now(),
                });
                Ok(Ticket(ticket))
            }
            State::Ramp => {
                let (since, ramp) = b.ramp;
                let share = since.elapsed().as_secs_f64() / ramp.as_secs_f64().max(1e-3);
                if fastrand::f64() < share {
                    Ok(Ticket::default())
                } else {
                    refuse()
                }
            }
        }
    }

    fn record(
        &self,
        _cx: &CallContext,
        method: &str,
        ticket: Ticket,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        let inner = &self.0;
        inner.with_method(method, |d| {
            d.counts.add(outcome);
            if outcome != Outcome::Refused {
                let _ = d.latency.record((elapsed.as_micros() as u64).max(1));
            }
        });
        if ticket.0 != 0 {
            let mut probes = inner.probes.borrow_mut();
            // A probe that already timed out was counted as failed then.
            if let Some(i) = probes.iter().position(|p| p.ticket == ticket.0) {
                probes.swap_remove(i);
                drop(probes);
                inner.probe_ended(method, !is_failure(outcome));
            }
        }
    }
}

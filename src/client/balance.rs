//! Which node gets the next call.
//!
//! Candidates are the nodes not yet tried by this call and not on the failed list;
//! when none is left, nodes already tried (a retry may go back to the only node), and
//! when every node has failed, all of them: the client fails open, like Finagle,
//! rather than refusing every call while the prober works.

use std::rc::Rc;
use std::time::Duration;

use super::node::NodeState;

/// How a node is chosen among the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// The seed's soft load: at random (by weight) among the nodes whose open
    /// connections, divided by weight, are below the average.
    #[default]
    SoftLoad,
    /// Power of two choices: of two nodes drawn at random (by weight), the one with
    /// the lower peak-EWMA latency × (calls in flight + 1) ÷ weight.
    P2cEwma,
}

/// Node choice and health settings.
#[derive(Debug, Clone)]
pub struct BalanceOptions {
    /// The choice policy.
    pub policy: Policy,
    /// Consecutive connect or call failures that put a node on the failed list
    /// (Finagle's failure accrual: 5).
    pub failure_threshold: u32,
    /// How often a failed node is probed (connect and ping) to restore it.
    pub probe_interval: Duration,
}

impl Default for BalanceOptions {
    fn default() -> Self {
        BalanceOptions {
            policy: Policy::SoftLoad,
            failure_threshold: 5,
            probe_interval: Duration::from_secs(5),
        }
    }
}

/// Picks a node for a call that has already tried `tried`; `None` with no nodes.
/// Allocates nothing: candidate sets are filters over the node list.
pub(crate) fn pick(nodes: &[Rc<NodeState>], tried: &[usize], policy: Policy) -> Option<usize> {
    let healthy = |i: usize| !nodes[i].health.borrow().is_failed();
    let fresh = |i: usize| healthy(i) && !tried.contains(&i);
    let level: &dyn Fn(usize) -> bool = if (0..nodes.len()).any(fresh) {
        &fresh
    } else if (0..nodes.len()).any(healthy) {
        &healthy
    } else {
        &|_| true
    };
    let candidates = || (0..nodes.len()).filter(|&i| level(i));
    match candidates().count() {
        0 => None,
        1 => candidates().next(),
        _ => Some(match policy {
            Policy::SoftLoad => soft_load(nodes, candidates),
            Policy::P2cEwma => p2c(nodes, candidates),
        }),
    }
}

fn soft_load<I: Iterator<Item = usize>>(
    nodes: &[Rc<NodeState>],
    candidates: impl Fn() -> I,
) -> usize {
    let load = |i: usize| nodes[i].pool.borrow().open() as f64 / nodes[i].weight();
    let (sum, n) = candidates().fold((0.0, 0), |(s, n), i| (s + load(i), n + 1));
    let average = sum / n as f64;
    if candidates().any(|i| load(i) < average) {
        by_weight(
            nodes,
            || candidates().filter(|&i| load(i) < average),
            fastrand::f64(),
        )
    } else {
        by_weight(nodes, candidates, fastrand::f64())
    }
}

fn p2c<I: Iterator<Item = usize>>(nodes: &[Rc<NodeState>], candidates: impl Fn() -> I) -> usize {
    let a = by_weight(nodes, &candidates, fastrand::f64());
    let b = by_weight(nodes, || candidates().filter(|&i| i != a), fastrand::f64());
    let score = |i: usize| {
        let n = &nodes[i];
        n.health.borrow().latency_ns() * (n.limiter.in_flight() + 1) as f64 / n.weight()
    };
    if score(b) < score(a) {
        b
    } else {
        a
    }
}

/// The node of a non-empty `set` where `draw` (uniform in [0, 1)) falls on the
/// weight line.
fn by_weight<I: Iterator<Item = usize>>(
    nodes: &[Rc<NodeState>],
    set: impl Fn() -> I,
    draw: f64,
) -> usize {
    let total: f64 = set().map(|i| nodes[i].weight()).sum();
    let mut point = draw * total;
    let mut last = 0;
    for i in set() {
        point -= nodes[i].weight();
        if point < 0.0 {
            return i;
        }
        last = i;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::node::{Health, Node};
    use crate::client::pool::PoolOptions;

    fn nodes(weights: &[u32]) -> Vec<Rc<NodeState>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| {
                let addr = format!("127.0.0.1:{}", 1000 + i).parse().unwrap();
                let node = Node { addr, weight };
                Rc::new(NodeState::new(
                    node,
                    &PoolOptions::default(),
                    Health::default(),
                ))
            })
            .collect()
    }

    fn fail(n: &NodeState) {
        let now = std::time::Instant::now();
        n.health
            .borrow_mut()
            .failure(1, Duration::from_secs(1), now);
    }

    #[test]
    fn weights_split_the_draws() {
        let ns = nodes(&[100, 300]);
        let both = || 0..2;
        assert_eq!(by_weight(&ns, both, 0.0), 0);
        assert_eq!(by_weight(&ns, both, 0.2499), 0);
        assert_eq!(by_weight(&ns, both, 0.25), 1);
        assert_eq!(by_weight(&ns, both, 0.9999), 1);
    }

    #[test]
    fn soft_load_prefers_nodes_below_the_average() {
        let ns = nodes(&[100, 100, 100]);
        ns[0].pool.borrow_mut().opened();
        ns[0].pool.borrow_mut().opened();
        ns[1].pool.borrow_mut().opened();
        for _ in 0..200 {
            assert_eq!(
                pick(&ns, &[], Policy::SoftLoad),
                Some(2),
                "only node 2 is below"
            );
        }
    }

    #[test]
    fn failed_and_tried_nodes_are_skipped_until_nothing_else_is_left() {
        let ns = nodes(&[100, 100, 100]);
        fail(&ns[1]);
        for _ in 0..100 {
            assert_eq!(pick(&ns, &[0], Policy::SoftLoad), Some(2));
            assert_ne!(pick(&ns, &[], Policy::P2cEwma), Some(1));
        }
        assert!(
            matches!(pick(&ns, &[0, 2], Policy::SoftLoad), Some(0 | 2)),
            "tried, not failed"
        );
        fail(&ns[0]);
        fail(&ns[2]);
        assert!(
            pick(&ns, &[], Policy::SoftLoad).is_some(),
            "all failed: fail open"
        );
        assert_eq!(pick(&[], &[], Policy::SoftLoad), None);
    }

    #[test]
    fn p2c_picks_the_faster_of_two() {
        let ns = nodes(&[100, 100]);
        let now = std::time::Instant::now();
        ns[0]
            .health
            .borrow_mut()
            .success(Duration::from_millis(5), now);
        ns[1]
            .health
            .borrow_mut()
            .success(Duration::from_millis(1), now);
        for _ in 0..100 {
            assert_eq!(pick(&ns, &[], Policy::P2cEwma), Some(1));
        }
    }
}

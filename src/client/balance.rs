//! Which node gets the next call.
//!
//! Candidates are the nodes not yet tried by this call and not on the failed list;
//! when none is left, nodes already tried (a retry may go back to the only node), and
//! when every node has failed, all of them: the client fails open, like Finagle,
//! rather than refusing every call while the prober works. Within that set, nodes of
//! weight 0 are left out while any node of a higher weight is in it (as Dubbo's and
//! Kitex's weighted choices do): weight 0 takes a node out of rotation without
//! deregistering it, and when only such nodes are left they share the calls evenly.

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
    /// P2C: the latency a node is scored with before its first reply, when no node
    /// has one yet (tower's `default_rtt`). Once some node has replied, a new node is
    /// scored with their average, so it neither takes every call (as with 0) nor
    /// starves (as with a large guess) before its own replies count.
    pub initial_latency: Duration,
}

impl Default for BalanceOptions {
    fn default() -> Self {
        BalanceOptions {
            policy: Policy::SoftLoad,
            failure_threshold: 5,
            probe_interval: Duration::from_secs(5),
            initial_latency: Duration::from_millis(1),
        }
    }
}

/// Picks a node for a call that has already tried `tried`; `None` with no nodes.
/// Allocates nothing: candidate sets are filters over the node list.
pub(crate) fn pick(
    nodes: &[Rc<NodeState>],
    tried: &[usize],
    opts: &BalanceOptions,
) -> Option<usize> {
    let healthy = |i: usize| !nodes[i].health.borrow().is_failed();
    let fresh = |i: usize| healthy(i) && !tried.contains(&i);
    let level: &dyn Fn(usize) -> bool = if (0..nodes.len()).any(fresh) {
        &fresh
    } else if (0..nodes.len()).any(healthy) {
        &healthy
    } else {
        &|_| true
    };
    let weighted = |i: usize| level(i) && nodes[i].node.weight > 0;
    let level: &dyn Fn(usize) -> bool = if (0..nodes.len()).any(weighted) {
        &weighted
    } else {
        level
    };
    let candidates = || (0..nodes.len()).filter(|&i| level(i));
    match candidates().count() {
        0 => None,
        1 => candidates().next(),
        _ => Some(match opts.policy {
            Policy::SoftLoad => soft_load(nodes, candidates),
            Policy::P2cEwma => p2c(nodes, candidates, opts.initial_latency),
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

fn p2c<I: Iterator<Item = usize>>(
    nodes: &[Rc<NodeState>],
    candidates: impl Fn() -> I,
    initial: Duration,
) -> usize {
    let a = by_weight(nodes, &candidates, fastrand::f64());
    let b = by_weight(nodes, || candidates().filter(|&i| i != a), fastrand::f64());
    let latency = |i: usize| nodes[i].health.borrow().latency_ns();
    let unknown = || {
        // A node with no reply yet: the average of those with one, else the default.
        let (sum, n) = (0..nodes.len())
            .filter_map(latency)
            .fold((0.0, 0u32), |(s, n), l| (s + l, n + 1));
        if n == 0 {
            initial.as_nanos() as f64
        } else {
            sum / n as f64
        }
    };
    let score = |i: usize| {
        let n = &nodes[i];
        let l = latency(i).unwrap_or_else(unknown);
        l * (n.limiter.in_flight() + 1) as f64 / n.weight()
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

    fn soft() -> BalanceOptions {
        BalanceOptions::default()
    }

    fn p2c_opts() -> BalanceOptions {
        BalanceOptions {
            policy: Policy::P2cEwma,
            ..BalanceOptions::default()
        }
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
    fn weight_0_takes_a_node_out_while_another_can_serve() {
        let ns = nodes(&[0, 100, 0]);
        for opts in [soft(), p2c_opts()] {
            for _ in 0..200 {
                assert_eq!(pick(&ns, &[], &opts), Some(1));
            }
            // Its retry, with node 1 tried, goes to a node of weight 0, not back.
            let mut seen = [0u32; 3];
            for _ in 0..200 {
                seen[pick(&ns, &[1], &opts).unwrap()] += 1;
            }
            assert!(seen[0] > 0 && seen[2] > 0 && seen[1] == 0, "{seen:?}");
        }
        fail(&ns[1]);
        assert_ne!(pick(&ns, &[], &soft()), Some(1), "the weighted node failed");
        let zeros = nodes(&[0, 0]);
        let mut seen = [0u32; 2];
        for _ in 0..200 {
            seen[pick(&zeros, &[], &soft()).unwrap()] += 1;
        }
        assert!(
            seen[0] > 50 && seen[1] > 50,
            "all 0: shared evenly {seen:?}"
        );
    }

    #[test]
    fn soft_load_prefers_nodes_below_the_average() {
        let ns = nodes(&[100, 100, 100]);
        ns[0].pool.borrow_mut().opened();
        ns[0].pool.borrow_mut().opened();
        ns[1].pool.borrow_mut().opened();
        for _ in 0..200 {
            assert_eq!(pick(&ns, &[], &soft()), Some(2), "only node 2 is below");
        }
    }

    #[test]
    fn failed_and_tried_nodes_are_skipped_until_nothing_else_is_left() {
        let ns = nodes(&[100, 100, 100]);
        fail(&ns[1]);
        for _ in 0..100 {
            assert_eq!(pick(&ns, &[0], &soft()), Some(2));
            assert_ne!(pick(&ns, &[], &p2c_opts()), Some(1));
        }
        assert!(
            matches!(pick(&ns, &[0, 2], &soft()), Some(0 | 2)),
            "tried, not failed"
        );
        fail(&ns[0]);
        fail(&ns[2]);
        assert!(pick(&ns, &[], &soft()).is_some(), "all failed: fail open");
        assert_eq!(pick(&[], &[], &soft()), None);
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
            assert_eq!(pick(&ns, &[], &p2c_opts()), Some(1));
        }
    }

    #[test]
    fn p2c_scores_a_new_node_with_the_average_not_zero() {
        let ns = nodes(&[100, 100, 100]);
        let now = std::time::Instant::now();
        for (n, ms) in [(0, 2), (1, 4)] {
            ns[n]
                .health
                .borrow_mut()
                .success(Duration::from_millis(ms), now);
        }
        // Node 2 has no reply yet: scored 3 ms, between the two. With 0 it would win
        // every draw it is in (about two thirds of the calls).
        let mut picks = [0u32; 3];
        for _ in 0..3000 {
            picks[pick(&ns, &[], &p2c_opts()).unwrap()] += 1;
        }
        assert!(picks[2] > 600 && picks[2] < 1400, "{picks:?}");
        assert!(picks[0] > picks[2] && picks[2] > picks[1], "{picks:?}");
    }
}

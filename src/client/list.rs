//! A client's node list and the sums kept over it as its nodes change, so that a
//! call chooses a node without going through every node: a service may have
//! thousands of providers, and going through 2,000 of them took about 27 µs a call
//! (20,000: 0.65 ms), several times what the call itself costs.
//!
//! Each listed node adds what it [`Counted`] to its list's [`Tally`], and changes
//! that whenever its pool or health changes (they change only through
//! [`NodeState::pool_mut`] and [`NodeState::health_mut`]); the list holds the
//! running totals of its weights, so that a draw by weight is a binary search.
//!
//! With an [`Aperture`], the list also holds its window: the nodes a client keeps
//! its calls on.

use std::cell::{Cell, RefCell};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::ops::Deref;
use std::rc::Rc;

use super::balance::Coordinate;
use super::node::NodeState;

/// A node's load in fixed point: open connections × [`LOAD_ONE`] ÷ weight.
pub(crate) const LOAD_ONE: u64 = 1 << 32;

/// Whether a node's `load` is below the average of `n` nodes' loads summing to
/// `sum` (the soft load's rule, in integers: `load < sum / n`).
pub(crate) fn below_average(load: u64, sum: u128, n: u128) -> bool {
    load as u128 * n < sum
}

/// What a listed node adds to its list's [`Tally`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Counted {
    /// Its load ([`LOAD_ONE`] per connection per unit of weight).
    pub load: u64,
    /// On the failed list.
    pub failed: bool,
    /// Its latency estimate in nanoseconds, once it has one.
    pub latency: Option<f64>,
}

/// Sums over a list's nodes, kept as they change.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Whether the latencies are summed (only P2C reads them: a soft-load client's
    /// calls then change nothing here).
    latencies: bool,
    /// Nodes of weight above 0 on the list.
    weighted: usize,
    /// Nodes of weight above 0 not on the failed list.
    ok: Cell<usize>,
    /// The sum of their loads.
    load: Cell<u128>,
    /// The sum and count of the latency estimates known (every node).
    latency: Cell<(f64, usize)>,
    /// Changes with every change of `ok` or `load` (and of which nodes they count).
    version: Cell<u64>,
}

impl Tally {
    /// Nodes of weight above 0 not on the failed list.
    pub fn ok(&self) -> usize {
        self.ok.get()
    }

    /// Whether a node of weight above 0 in rotation may leave it by its success
    /// rate: only while more than half the list's nodes of weight above 0 stay,
    /// so that calls every node fails (a fault of the caller's own, or of what
    /// they all depend on) do not crowd onto the last few.
    pub fn can_spare_one(&self) -> bool {
        2 * self.ok.get().saturating_sub(1) >= self.weighted
    }

    /// The sum of those nodes' loads.
    pub fn load(&self) -> u128 {
        self.load.get()
    }

    /// Whether the nodes' latencies count.
    pub fn latencies(&self) -> bool {
        self.latencies
    }

    /// The mean of the latency estimates known, if any is (summed only when the
    /// list was made to sum them).
    pub fn mean_latency(&self) -> Option<f64> {
        let (sum, n) = self.latency.get();
        (n > 0).then(|| sum / n as f64)
    }

    fn version(&self) -> u64 {
        self.version.get()
    }

    /// Replaces what a node of weight above 0 (`weighted`) added, `before`, by `now`.
    pub fn change(&self, weighted: bool, before: Option<Counted>, now: Option<Counted>) {
        let counts = |c: &Counted| weighted && !c.failed;
        let (was, is) = (before.filter(counts), now.filter(counts));
        if was.map(|c| c.load) != is.map(|c| c.load) {
            if let Some(c) = was {
                self.ok.set(self.ok.get() - 1);
                self.load.set(self.load.get() - c.load as u128);
            }
            if let Some(c) = is {
                self.ok.set(self.ok.get() + 1);
                self.load.set(self.load.get() + c.load as u128);
            }
            self.version.set(self.version.get() + 1);
        }
        let (was, is) = (before.and_then(|c| c.latency), now.and_then(|c| c.latency));
        if was != is {
            let (mut sum, mut n) = self.latency.get();
            if let Some(l) = was {
                (sum, n) = (sum - l, n - 1);
            }
            if let Some(l) = is {
                (sum, n) = (sum + l, n + 1);
            }
            // Once no estimate is left, no rounding is either.
            self.latency.set(if n == 0 { (0.0, 0) } else { (sum, n) });
        }
    }
}

/// A client's aperture: how many nodes its window holds, and where it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Aperture {
    pub size: usize,
    place: Place,
}

/// Where an aperture's window is.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// After a point on the ring of the nodes' address hashes, drawn once per
    /// client, so that the clients of a service, each on its own part of the ring,
    /// share its nodes by chance.
    Drawn(u64),
    /// By the client's place among the service's clients.
    Planned(Coordinate),
}

impl Aperture {
    /// An aperture of `size` nodes placed by `coordinate`, or at a random point
    /// without one; `None` for 0 (every node).
    pub fn new(size: usize, coordinate: Option<Coordinate>) -> Option<Aperture> {
        let place = coordinate.map_or_else(|| Place::Drawn(fastrand::u64(..)), Place::Planned);
        (size > 0).then_some(Aperture { size, place })
    }

    /// The window among `nodes`, in list order: `size` of the nodes of weight
    /// above 0, or empty (every node) when there are no more than `size` of them.
    /// Drawn, the nodes whose address hashes follow the point on the ring (a node
    /// that joins or leaves the list moves at most one node into or out of the
    /// window); planned, the `size` nodes from the coordinate's start on, in list
    /// order and round.
    fn window(&self, nodes: &[Rc<NodeState>]) -> Box<[usize]> {
        let weighted = (nodes.iter().enumerate()).filter(|(_, n)| n.node.weight > 0);
        let mut window: Box<[usize]> = match self.place {
            Place::Drawn(point) => {
                let mut ring: Vec<(u64, usize)> = weighted
                    .map(|(i, n)| (ring_hash(n.node.addr).wrapping_sub(point), i))
                    .collect();
                if ring.len() <= self.size {
                    return Box::default();
                }
                ring.select_nth_unstable(self.size - 1);
                ring[..self.size].iter().map(|&(_, i)| i).collect()
            }
            Place::Planned(c) => {
                let listed: Vec<usize> = weighted.map(|(i, _)| i).collect();
                if listed.len() <= self.size {
                    return Box::default();
                }
                let start = c.start(listed.len());
                listed
                    .iter()
                    .cycle()
                    .skip(start)
                    .take(self.size)
                    .copied()
                    .collect()
            }
        };
        window.sort_unstable();
        window
    }
}

/// A node's place on the aperture's ring.
fn ring_hash(addr: SocketAddr) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    addr.hash(&mut h);
    h.finish()
}

/// A client's nodes in address order, with the running totals of their weights and
/// the sums of their [`Tally`].
#[derive(Default)]
pub(crate) struct NodeList {
    nodes: Box<[Rc<NodeState>]>,
    /// With an aperture, the nodes of its window (indices, in list order); empty
    /// for every node.
    window: Box<[usize]>,
    /// The sum of the weights of the nodes up to each one (weight 0 adds nothing).
    running: Box<[u64]>,
    tally: Rc<Tally>,
    /// The nodes below the average load, as of a version of the tally.
    below: RefCell<Below>,
}

/// The nodes of weight above 0, not failed, whose load is below the average, with
/// the running totals of their weights; as of `version` of the tally.
#[derive(Default)]
struct Below {
    version: Option<u64>,
    nodes: Vec<usize>,
    running: Vec<u64>,
}

impl NodeList {
    /// The list of `nodes`, each of which now counts in the list's tally (their
    /// latencies too if `latencies`), with the window of `aperture`.
    pub fn new(nodes: Vec<Rc<NodeState>>, latencies: bool, aperture: Option<Aperture>) -> Self {
        let tally = Rc::new(Tally {
            latencies,
            weighted: nodes.iter().filter(|n| n.node.weight > 0).count(),
            ..Tally::default()
        });
        let mut total = 0u64;
        let running = nodes
            .iter()
            .map(|n| {
                n.join(&tally);
                total += n.node.weight as u64;
                total
            })
            .collect();
        NodeList {
            window: aperture.map_or_else(Box::default, |a| a.window(&nodes)),
            nodes: nodes.into(),
            running,
            tally,
            below: RefCell::default(),
        }
    }

    /// The nodes of the aperture's window; empty when calls may go to every node.
    pub fn window(&self) -> &[usize] {
        &self.window
    }

    /// The sums over the list.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// A node drawn at random by weight among those of weight above 0 (`None` when
    /// there are none).
    pub fn draw(&self) -> Option<usize> {
        draw(&self.running)
    }

    /// Whether the nodes below the average load are known as of the tally's
    /// latest change ([`NodeList::draw_below`] goes through no node then).
    pub fn below_known(&self) -> bool {
        self.below.borrow().version == Some(self.tally.version())
    }

    /// A node drawn at random by weight among the nodes below the average load
    /// (counted as in the tally; of weight above 0, not failed), or `None` when
    /// there are none; going through the list only when a node's load or
    /// health changed since the last time.
    pub fn draw_below(&self) -> Option<usize> {
        let t = &self.tally;
        let mut below = self.below.borrow_mut();
        if below.version != Some(t.version()) {
            let (sum, n) = (t.load(), t.ok() as u128);
            let Below { nodes, running, .. } = &mut *below;
            nodes.clear();
            running.clear();
            let mut total = 0u64;
            for (i, node) in self.nodes.iter().enumerate() {
                let c = node.counted();
                if node.node.weight > 0 && !c.failed && below_average(c.load, sum, n) {
                    nodes.push(i);
                    total += node.node.weight as u64;
                    running.push(total);
                }
            }
            below.version = Some(t.version());
        }
        draw(&below.running).map(|i| below.nodes[i])
    }
}

impl Deref for NodeList {
    type Target = [Rc<NodeState>];

    fn deref(&self) -> &[Rc<NodeState>] {
        &self.nodes
    }
}

/// The index where a uniform draw falls on the weight line of `running` (the
/// running totals of the weights), by binary search.
fn draw(running: &[u64]) -> Option<usize> {
    let total = *running.last().filter(|&&t| t > 0)?;
    let point = fastrand::u64(0..total);
    Some(running.partition_point(|&t| t <= point))
}

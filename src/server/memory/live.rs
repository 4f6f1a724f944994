//! The buffer budgets in force: published by the memory follower, taken in by
//! each core at its upkeep.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Budgets;
use crate::protocol::budget::Allowance;
use crate::transport::budget::BufferBudget;
use crate::transport::spare::SpareBuffers;

/// The budgets every core should have now: set by the memory follower, read by
/// each core's upkeep (one atomic load, and a lock only when they changed).
#[derive(Debug)]
pub struct LiveBudgets {
    version: AtomicU64,
    budgets: Mutex<Budgets>,
}

impl LiveBudgets {
    pub(super) fn new(budgets: Budgets) -> Self {
        LiveBudgets {
            version: AtomicU64::new(0),
            budgets: Mutex::new(budgets),
        }
    }

    /// The budgets and their version, if it is not `seen`.
    pub fn since(&self, seen: u64) -> Option<(u64, Budgets)> {
        (self.version.load(Ordering::Acquire) != seen).then(|| self.current())
    }

    /// The budgets and their version.
    fn current(&self) -> (u64, Budgets) {
        let budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        (self.version.load(Ordering::Acquire), *budgets)
    }

    pub(super) fn set(&self, to: Budgets) {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        *budgets = to;
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// One core's buffer budgets, following the [`LiveBudgets`].
#[derive(Debug)]
pub struct CoreMemory {
    /// What the decoded containers of this core's calls in flight may still take.
    pub decode_pool: Rc<Allowance>,
    /// What this core's connections may still buffer of requests still arriving.
    pub buffer_budget: Rc<BufferBudget>,
    /// This core's large buffers kept between large messages.
    pub spare_buffers: Rc<SpareBuffers>,
    live: Arc<LiveBudgets>,
    /// The version of the budgets in force, and they.
    now: Cell<(u64, Budgets)>,
}

impl CoreMemory {
    /// Budgets as `live` has them now.
    pub fn new(live: Arc<LiveBudgets>) -> Self {
        let now = live.current();
        let b = now.1;
        CoreMemory {
            decode_pool: Rc::new(Allowance::new(b.decoded)),
            buffer_budget: Rc::new(BufferBudget::new(b.buffered)),
            spare_buffers: Rc::new(SpareBuffers::new(b.spares)),
            live,
            now: Cell::new(now),
        }
    }

    /// Takes in budgets changed since the last look, and lets go of spare buffers
    /// nobody took: the core's upkeep.
    pub fn upkeep(&self) {
        let (seen, was) = self.now.get();
        if let Some((version, to)) = self.live.since(seen) {
            self.buffer_budget.resize(was.buffered, to.buffered);
            self.decode_pool.resize(was.decoded, to.decoded);
            self.spare_buffers.set_cap(to.spares);
            self.now.set((version, to));
        }
        self.spare_buffers.trim(Instant::now());
    }
}

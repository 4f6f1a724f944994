//! A core's open connections: how many, which are idle since when, and closing the
//! longest-idle one to make room for a newcomer (as nginx reuses keep-alive
//! connections) instead of refusing it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// One connection's entry: its idle state and the signals the core sends it.
#[derive(Default)]
pub struct Slot {
    /// When it started waiting for a request, by the core's tick count.
    idle_since: Cell<Option<u64>>,
    evicted: Cell<bool>,
    /// The drain started: look at the connection's state again.
    nudged: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// What woke a connection waiting for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Close: the core needs room for a new connection.
    Evicted,
    /// The drain started.
    Drain,
}

impl Slot {
    /// Marks the connection idle (waiting for a request) or busy.
    pub fn set_idle(&self, idle: Option<u64>) {
        self.idle_since.set(idle);
    }

    /// Waits for the core's next signal to this connection.
    pub fn signal(&self) -> impl Future<Output = Signal> + '_ {
        std::future::poll_fn(move |task| self.poll_signal(task))
    }

    /// The core's next signal to this connection, if one came; else `task` is
    /// woken when one comes.
    pub fn poll_signal(&self, task: &mut Context<'_>) -> Poll<Signal> {
        if self.evicted.get() {
            Poll::Ready(Signal::Evicted)
        } else if self.nudged.replace(false) {
            Poll::Ready(Signal::Drain)
        } else {
            // Keep the stored waker when it wakes the same task (no clone).
            let waker = match self.waker.take() {
                Some(w) if w.will_wake(task.waker()) => w,
                _ => task.waker().clone(),
            };
            self.waker.set(Some(waker));
            Poll::Pending
        }
    }

    fn evict(&self) {
        self.evicted.set(true);
        self.wake();
    }

    fn nudge(&self) {
        self.nudged.set(true);
        self.wake();
    }

    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The open connections of one core.
#[derive(Default)]
pub struct Conns {
    slots: RefCell<HashMap<u64, Rc<Slot>>>,
    next: Cell<u64>,
    /// A counter that orders idle periods without reading the clock.
    ticks: Cell<u64>,
}

impl Conns {
    /// Open connections now.
    pub fn len(&self) -> usize {
        self.slots.borrow().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.borrow().is_empty()
    }

    /// The next value of the core's idle-ordering counter.
    pub fn tick(&self) -> u64 {
        let t = self.ticks.get() + 1;
        self.ticks.set(t);
        t
    }

    /// Registers a new connection; its slot is removed by [`Conns::remove`].
    pub fn add(&self) -> (u64, Rc<Slot>) {
        let id = self.next.get();
        self.next.set(id + 1);
        let slot = Rc::new(Slot::default());
        self.slots.borrow_mut().insert(id, slot.clone());
        (id, slot)
    }

    /// Forgets a closed connection.
    pub fn remove(&self, id: u64) {
        self.slots.borrow_mut().remove(&id);
    }

    /// Tells every connection that the drain started.
    pub fn nudge_all(&self) {
        for s in self.slots.borrow().values() {
            s.nudge();
        }
    }

    /// Evicts the connection idle for longest; false if none is idle.
    pub fn evict_longest_idle(&self) -> bool {
        let slots = self.slots.borrow();
        let oldest = slots
            .values()
            .filter(|s| !s.evicted.get())
            .filter_map(|s| s.idle_since.get().map(|t| (s, t)))
            .min_by_key(|(_, t)| *t);
        match oldest {
            Some((slot, _)) => {
                slot.evict();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_is_evicted_and_busy_ones_never() {
        let conns = Conns::default();
        let (_, busy) = conns.add();
        let (_, old) = conns.add();
        let (_, young) = conns.add();
        old.set_idle(Some(conns.tick()));
        young.set_idle(Some(conns.tick()));
        assert!(conns.evict_longest_idle());
        assert!(old.evicted.get() && !young.evicted.get() && !busy.evicted.get());
        assert!(conns.evict_longest_idle());
        assert!(young.evicted.get());
        assert!(!conns.evict_longest_idle(), "only busy ones are left");
        assert_eq!(conns.len(), 3);
    }
}

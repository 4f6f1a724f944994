//! [`BufferBudget`]: what one core's connections may hold, together, of requests
//! still arriving. Each connection's first [`super::conn::KEEP_CAPACITY`] bytes are
//! its own; a read buffer grows past that only with bytes taken from the budget,
//! and waits (within its read timeout) while the budget has none, so that many
//! connections each sending most of a large message cannot take the process's
//! memory. When the budget is out, one connection at a time may go past it (the
//! overdraft): connections each holding part of an unframed message, whose length
//! is known only at its end, would otherwise all wait for each other. The most held
//! is thus the budget and one message. Shared through an `Rc`: never across threads.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::protocol::budget::Allowance;

/// Bytes of partly arrived requests a core may hold beyond each connection's own
/// first [`super::conn::KEEP_CAPACITY`], and one connection's overdraft past them.
#[derive(Debug)]
pub struct BufferBudget {
    left: Allowance,
    /// Whether a connection is past the budget.
    overdrawn: Cell<bool>,
    waiting: RefCell<Vec<Waker>>,
}

/// What [`BufferBudget::poll_take`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The bytes asked for.
    Bytes,
    /// The overdraft: as much as the taker needs, until it gives the overdraft back.
    Overdraft,
}

impl BufferBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        BufferBudget {
            left: Allowance::new(bytes),
            overdrawn: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
        }
    }

    /// Takes `n` bytes, or the overdraft when the budget lacks them and nobody has
    /// it, or says when to try again.
    pub fn poll_take(&self, n: usize, task: &mut Context<'_>) -> Poll<Taken> {
        if self.left.take(n) {
            return Poll::Ready(Taken::Bytes);
        }
        if !self.overdrawn.replace(true) {
            return Poll::Ready(Taken::Overdraft);
        }
        self.waiting.borrow_mut().push(task.waker().clone());
        Poll::Pending
    }

    /// Gives back `n` bytes, and the overdraft if `overdraft`; wakes whoever waits.
    pub fn give(&self, n: usize, overdraft: bool) {
        if n == 0 && !overdraft {
            return;
        }
        self.left.give(n);
        if overdraft {
            self.overdrawn.set(false);
        }
        self.wake_all();
    }

    /// Changes the budget from `from` bytes to `to` (see [`Allowance::resize`]);
    /// wakes whoever waits when it grew.
    pub fn resize(&self, from: usize, to: usize) {
        self.left.resize(from, to);
        if to > from {
            self.wake_all();
        }
    }

    fn wake_all(&self) {
        for w in std::mem::take(&mut *self.waiting.borrow_mut()) {
            w.wake();
        }
    }
}

/// What one connection took from its core's [`BufferBudget`], given back once its
/// message is whole and when it is dropped. Without a budget it holds nothing and
/// covers everything.
#[derive(Debug, Default)]
pub struct Charge {
    budget: Option<Rc<BufferBudget>>,
    bytes: usize,
    overdraft: bool,
}

impl Charge {
    /// A charge against `budget`, holding nothing yet.
    pub fn new(budget: Rc<BufferBudget>) -> Self {
        Charge {
            budget: Some(budget),
            bytes: 0,
            overdraft: false,
        }
    }

    /// Whether a buffer of `bytes` (beyond the connection's own) is paid for.
    pub fn covers(&self, bytes: usize) -> bool {
        self.overdraft || self.bytes >= bytes || self.budget.is_none()
    }

    /// Whether it holds anything to give back.
    pub fn holds(&self) -> bool {
        self.overdraft || self.bytes > 0
    }

    /// Pays for a buffer of `bytes` in all, waiting while the budget lacks what more
    /// that takes and another connection has the overdraft.
    pub async fn hold(&mut self, bytes: usize) {
        let Some(budget) = &self.budget else {
            return;
        };
        if self.covers(bytes) {
            return;
        }
        let more = bytes - self.bytes;
        match std::future::poll_fn(|task| budget.poll_take(more, task)).await {
            Taken::Bytes => self.bytes = bytes,
            Taken::Overdraft => self.overdraft = true,
        }
    }

    /// Gives back everything held.
    pub fn release(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give(self.bytes, self.overdraft);
        }
        self.bytes = 0;
        self.overdraft = false;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A budget of 100 bytes, and a waker that counts its wakes.
    fn budget_and_waker() -> (Rc<BufferBudget>, Arc<Count>, Waker) {
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        (Rc::new(BufferBudget::new(100)), woken, waker)
    }

    fn ready(f: impl Future<Output = ()>, task: &mut Context<'_>) -> bool {
        std::pin::pin!(f).poll(task).is_ready()
    }

    #[test]
    fn a_charge_takes_bytes_then_the_overdraft_then_waits_and_gives_everything_back() {
        let (budget, woken, waker) = budget_and_waker();
        let mut task = Context::from_waker(&waker);
        let [mut a, mut b, mut c, mut d] = [(); 4].map(|_| Charge::new(budget.clone()));
        assert!(ready(a.hold(60), &mut task));
        assert!(a.covers(60) && !a.covers(61));
        // Holding less than it has takes nothing.
        assert!(ready(a.hold(50), &mut task));
        assert_eq!(budget.left.left(), 40);
        // More than is left: the overdraft, which covers any size.
        assert!(ready(b.hold(70), &mut task));
        assert!(b.covers(1 << 40) && b.holds());
        assert_eq!(budget.left.left(), 40, "the overdraft takes no bytes");
        // What is left still goes to whoever it suffices for.
        assert!(ready(c.hold(30), &mut task));
        {
            // Neither bytes nor the overdraft: wait, taking nothing.
            let mut more = std::pin::pin!(d.hold(20));
            assert!(more.as_mut().poll(&mut task).is_pending());
            assert_eq!(budget.left.left(), 10);
            b.release();
            assert_eq!(woken.0.load(Ordering::Relaxed), 1, "the waiter is woken");
            assert!(!b.holds());
            assert!(more.as_mut().poll(&mut task).is_ready());
        }
        assert!(d.covers(1 << 40), "the overdraft given back is taken again");
        a.release();
        assert_eq!(budget.left.left(), 70);
        drop((c, d));
        assert_eq!(
            budget.left.left(),
            100,
            "a dropped charge gives back what it held"
        );
        assert!(!budget.overdrawn.get());
        // Without a budget, nothing is held back.
        let mut free = Charge::default();
        assert!(free.covers(1 << 40));
        assert!(ready(free.hold(1 << 40), &mut task));
    }

    #[test]
    fn a_budget_lowered_while_held_owes_and_a_raised_one_wakes_the_waiters() {
        let (budget, woken, waker) = budget_and_waker();
        let mut task = Context::from_waker(&waker);
        let [mut a, mut b, mut c] = [(); 3].map(|_| Charge::new(budget.clone()));
        assert!(ready(a.hold(80), &mut task));
        assert!(ready(b.hold(50), &mut task), "the overdraft");
        budget.resize(100, 40);
        a.release();
        assert_eq!(budget.left.left(), 40, "the new total once all is back");
        {
            let mut more = std::pin::pin!(c.hold(60));
            assert!(more.as_mut().poll(&mut task).is_pending());
            budget.resize(40, 60);
            assert_eq!(woken.0.load(Ordering::Relaxed), 1, "raised: woken");
            assert!(more.as_mut().poll(&mut task).is_ready());
        }
        assert_eq!(budget.left.left(), 0);
    }
}

//! [`BufferBudget`]: what one core's connections may hold, together, of requests
//! still arriving. Each connection's first [`super::conn::KEEP_CAPACITY`] bytes are
//! its own; a read buffer grows past that only with bytes taken from the budget,
//! and waits (within its read timeout) while the budget has none, so that many
//! connections each sending most of a large message cannot take the process's
//! memory. Shared through an `Rc`: never across threads.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Bytes of partly arrived requests a core may hold beyond each connection's own
/// first [`super::conn::KEEP_CAPACITY`].
#[derive(Debug)]
pub struct BufferBudget {
    left: Cell<usize>,
    waiting: RefCell<Vec<Waker>>,
}

impl BufferBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        BufferBudget {
            left: Cell::new(bytes),
            waiting: RefCell::new(Vec::new()),
        }
    }

    /// Bytes not taken now.
    pub fn left(&self) -> usize {
        self.left.get()
    }

    /// Takes `n` bytes, or says when to try again.
    pub fn poll_take(&self, n: usize, task: &mut Context<'_>) -> Poll<()> {
        match self.left.get().checked_sub(n) {
            Some(rest) => {
                self.left.set(rest);
                Poll::Ready(())
            }
            None => {
                self.waiting.borrow_mut().push(task.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Gives back `n` bytes, and wakes whoever waits for some.
    pub fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.left.set(self.left.get() + n);
        for w in std::mem::take(&mut *self.waiting.borrow_mut()) {
            w.wake();
        }
    }
}

/// What one connection took from its core's [`BufferBudget`], given back once its
/// message is whole and when it is dropped. Without a budget it holds nothing.
#[derive(Debug, Default)]
pub struct Charge {
    budget: Option<Rc<BufferBudget>>,
    bytes: usize,
}

impl Charge {
    /// A charge against `budget`, holding nothing yet.
    pub fn new(budget: Rc<BufferBudget>) -> Self {
        Charge {
            budget: Some(budget),
            bytes: 0,
        }
    }

    /// The bytes held.
    pub fn held(&self) -> usize {
        self.bytes
    }

    /// Holds `bytes` in all, waiting while the budget lacks what more that takes.
    pub async fn hold(&mut self, bytes: usize) {
        if let (Some(budget), Some(more)) = (&self.budget, bytes.checked_sub(self.bytes)) {
            std::future::poll_fn(|task| budget.poll_take(more, task)).await;
        }
        self.bytes = self.bytes.max(bytes);
    }

    /// Gives back everything held.
    pub fn release(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give(self.bytes);
        }
        self.bytes = 0;
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

    #[test]
    fn a_charge_waits_for_what_it_lacks_and_gives_everything_back() {
        let budget = Rc::new(BufferBudget::new(100));
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let mut task = Context::from_waker(&waker);
        let mut a = Charge::new(budget.clone());
        let mut b = Charge::new(budget.clone());
        assert!(std::pin::pin!(a.hold(60)).poll(&mut task).is_ready());
        assert_eq!((a.held(), budget.left()), (60, 40));
        // Holding less than it has takes nothing.
        assert!(std::pin::pin!(a.hold(50)).poll(&mut task).is_ready());
        assert_eq!((a.held(), budget.left()), (60, 40));
        {
            let mut more = std::pin::pin!(b.hold(70));
            assert!(more.as_mut().poll(&mut task).is_pending());
            assert_eq!(budget.left(), 40, "a waiting charge takes nothing");
            a.release();
            assert_eq!(woken.0.load(Ordering::Relaxed), 1, "the waiter is woken");
            assert!(more.as_mut().poll(&mut task).is_ready());
        }
        assert_eq!((a.held(), b.held(), budget.left()), (0, 70, 30));
        drop(b);
        assert_eq!(
            budget.left(),
            100,
            "a dropped charge gives back what it held"
        );
        // Without a budget, nothing is held back.
        let mut free = Charge::default();
        assert!(std::pin::pin!(free.hold(1 << 40))
            .poll(&mut task)
            .is_ready());
    }
}

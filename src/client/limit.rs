//! A core-local cap on concurrent calls to one node, with a bounded line of waiters
//! served first come, first served. No locks and no atomics: it lives on one core.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use crate::flag::Flag;

/// Counts calls in flight to a node and, when capped, makes the excess wait.
#[derive(Default)]
pub(crate) struct Limiter {
    cap: Option<usize>,
    max_waiters: usize,
    in_flight: Cell<usize>,
    waiters: RefCell<VecDeque<Rc<Waiter>>>,
}

/// Raised when a finishing call hands its slot to this waiter.
type Waiter = Flag;

/// A slot for one call; dropping it frees the slot (or hands it to the next waiter).
pub(crate) struct Permit<'a>(&'a Limiter);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Removes a waiter that gave up (its call timed out or was dropped) from the line,
/// or passes on a slot it was granted but never used.
struct Waiting<'a> {
    limiter: &'a Limiter,
    waiter: Rc<Waiter>,
    /// False once the granted slot became a [`Permit`].
    armed: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.waiter.is_up() {
            self.limiter.release();
        } else {
            let mut line = self.limiter.waiters.borrow_mut();
            line.retain(|w| !Rc::ptr_eq(w, &self.waiter));
        }
    }
}

impl Limiter {
    /// At most `cap` calls at once (none: no cap), and at most `max_waiters` waiting.
    pub fn new(cap: Option<usize>, max_waiters: usize) -> Self {
        Limiter {
            cap,
            max_waiters,
            ..Limiter::default()
        }
    }

    /// Whether calls may have to wait for a slot.
    pub fn capped(&self) -> bool {
        self.cap.is_some()
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Takes a slot, waiting in line while the cap is reached; `None` when the line is
    /// full too.
    pub async fn acquire(&self) -> Option<Permit<'_>> {
        let free = self.cap.is_none_or(|cap| self.in_flight.get() < cap);
        if free && self.waiters.borrow().is_empty() {
            self.in_flight.set(self.in_flight.get() + 1);
            return Some(Permit(self));
        }
        if self.waiters.borrow().len() >= self.max_waiters {
            return None;
        }
        let waiter = Rc::new(Waiter::default());
        self.waiters.borrow_mut().push_back(waiter.clone());
        let mut waiting = Waiting {
            limiter: self,
            waiter: waiter.clone(),
            armed: true,
        };
        waiter.up().await;
        // The slot passed from the finished call to this one: in_flight is unchanged.
        waiting.armed = false;
        Some(Permit(self))
    }

    fn release(&self) {
        let next = self.waiters.borrow_mut().pop_front();
        match next {
            Some(w) => w.raise(),
            None => self.in_flight.set(self.in_flight.get() - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn the_cap_makes_callers_wait_in_order_and_the_line_is_bounded() {
        let l = Limiter::new(Some(1), 2);
        let first = pin!(l.acquire());
        let Poll::Ready(Some(p1)) = poll(first) else {
            panic!("a free slot is taken at once")
        };
        let mut second = pin!(l.acquire());
        let mut third = pin!(l.acquire());
        assert!(poll(second.as_mut()).is_pending());
        assert!(poll(third.as_mut()).is_pending());
        assert_eq!(l.waiting(), 2);
        assert!(
            matches!(poll(pin!(l.acquire())), Poll::Ready(None)),
            "the line is full"
        );
        drop(p1);
        assert_eq!(l.in_flight(), 1, "the slot passed to the first waiter");
        assert!(
            poll(third.as_mut()).is_pending(),
            "first come, first served"
        );
        let Poll::Ready(Some(p2)) = poll(second) else {
            panic!("second was granted")
        };
        drop(p2);
        let Poll::Ready(Some(p3)) = poll(third) else {
            panic!("third was granted")
        };
        drop(p3);
        assert_eq!((l.in_flight(), l.waiting()), (0, 0));
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_the_line_and_passes_on_a_granted_slot() {
        let l = Limiter::new(Some(1), 4);
        let Poll::Ready(Some(p1)) = poll(pin!(l.acquire())) else {
            panic!()
        };
        {
            let mut gone = pin!(l.acquire());
            assert!(poll(gone.as_mut()).is_pending());
        }
        assert_eq!(l.waiting(), 0, "a dropped waiter leaves the line");
        {
            let mut granted = pin!(l.acquire());
            assert!(poll(granted.as_mut()).is_pending());
            drop(p1); // grants the slot to `granted`, which is dropped unused
        }
        assert_eq!(l.in_flight(), 0, "the unused slot was freed");
        assert!(matches!(poll(pin!(l.acquire())), Poll::Ready(Some(_))));
    }

    #[test]
    fn without_a_cap_it_only_counts() {
        let l = Limiter::new(None, 0);
        let Poll::Ready(Some(a)) = poll(pin!(l.acquire())) else {
            panic!()
        };
        let Poll::Ready(Some(b)) = poll(pin!(l.acquire())) else {
            panic!()
        };
        assert_eq!(l.in_flight(), 2);
        drop((a, b));
        assert_eq!(l.in_flight(), 0);
    }
}

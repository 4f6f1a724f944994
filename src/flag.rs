//! A flag that one task of a core waits for and code on the same core raises: a
//! client's stop, a slot handed to a waiting call, a doorbell heard, a service's
//! providers arrived.

use std::cell::Cell;
use std::future::Future;
use std::task::{Poll, Waker};

/// Raised once or many times; waited for by one task at a time.
#[derive(Default)]
pub(crate) struct Flag {
    up: Cell<bool>,
    waiter: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flag")
            .field("up", &self.up.get())
            .finish_non_exhaustive()
    }
}

impl Flag {
    /// Raises the flag and wakes its waiter, if one waits.
    pub(crate) fn raise(&self) {
        self.up.set(true);
        if let Some(w) = self.waiter.take() {
            w.wake();
        }
    }

    /// Whether the flag is up.
    pub(crate) fn is_up(&self) -> bool {
        self.up.get()
    }

    /// Waits until the flag is up, and leaves it up.
    pub(crate) fn up(&self) -> impl Future<Output = ()> + '_ {
        self.wait(false)
    }

    /// Waits until the flag is up, and lowers it: raises since the last wait are
    /// heard together, and the next wait waits for the next raise.
    pub(crate) fn lowered(&self) -> impl Future<Output = ()> + '_ {
        self.wait(true)
    }

    fn wait(&self, lower: bool) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |task| {
            let up = if lower {
                self.up.replace(false)
            } else {
                self.up.get()
            };
            if up {
                return Poll::Ready(());
            }
            self.waiter.set(Some(task.waker().clone()));
            Poll::Pending
        })
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::Context;

    use super::*;

    fn poll(f: std::pin::Pin<&mut impl Future<Output = ()>>) -> Poll<()> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_flag_stays_up_or_is_lowered_by_the_wait() {
        let flag = Flag::default();
        assert!(poll(pin!(flag.up())).is_pending());
        flag.raise();
        flag.raise();
        assert!(poll(pin!(flag.up())).is_ready());
        assert!(flag.is_up(), "up() leaves it up");
        assert!(poll(pin!(flag.lowered())).is_ready());
        assert!(!flag.is_up(), "two raises heard by one wait");
        assert!(poll(pin!(flag.lowered())).is_pending());
    }

    #[test]
    fn a_raise_wakes_the_waiting_task() {
        let flag = std::rc::Rc::new(Flag::default());
        let mut rt = crate::runtime::build().unwrap();
        rt.block_on(async {
            let raiser = flag.clone();
            monoio::spawn(async move {
                monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                raiser.raise();
            });
            flag.lowered().await;
        });
    }
}

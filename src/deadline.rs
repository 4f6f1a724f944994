//! [`Deadline`]: one connection's call timer (client or server), moved to each
//! call's deadline instead of made anew. Moving a timer to a later deadline is a
//! store, where a timer per call cost an insert and a removal in the core's timer
//! wheel and put the timer's 700 bytes into every call's future.
//!
//! A pooled client connection serves calls of different tasks, and monoio's timer
//! keeps the first waker it is polled with. So the timer is always polled with the
//! deadline's own waker, which passes the wake to the task waiting now.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use monoio::time::Sleep;

use crate::race::{race, Either};

/// The longest any timer waits: a year. monoio's timer panics on a deadline too far
/// ahead (a wait of `u64::MAX` milliseconds, say), so settings and the budgets
/// callers send that are longer are cut to it.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Cuts each setting (named, `None` when unset) to [`MAX_WAIT`], with a WARN for
/// each that was longer.
pub(crate) fn bound<'a>(settings: impl IntoIterator<Item = (&'a str, Option<&'a mut Duration>)>) {
    for (what, setting) in settings {
        if let Some(setting) = setting.filter(|s| **s > MAX_WAIT) {
            tracing::warn!("{what} of {setting:?} cut to a year: timers wait at most that long");
            *setting = MAX_WAIT;
        }
    }
}

/// A reusable deadline (see the module docs).
pub(crate) struct Deadline {
    sleep: Pin<Box<Sleep>>,
    current: Arc<Current>,
    /// Wakes `current`'s task; the only waker the timer ever sees.
    waker: Waker,
}

/// The waker of the task waiting on the deadline now.
#[derive(Default)]
struct Current(Mutex<Option<Waker>>);

impl Wake for Current {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let task = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Deadline {
    /// A deadline at `at` (the timer starts on the first poll).
    pub fn new(at: Instant) -> Self {
        let current = Arc::new(Current::default());
        Deadline {
            sleep: Box::pin(monoio::time::sleep_until(monoio::time::Instant::from_std(
                at,
            ))),
            waker: Waker::from(current.clone()),
            current,
        }
    }

    /// Moves the deadline to `at`.
    pub fn reset(&mut self, at: Instant) {
        self.sleep
            .as_mut()
            .reset(monoio::time::Instant::from_std(at));
    }

    /// Ready once the deadline has passed; until then the calling task is woken
    /// when it does.
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut task = self.current.0.lock().unwrap_or_else(|e| e.into_inner());
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        self.sleep
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }

    /// Waits for the deadline.
    pub async fn elapsed(&mut self) {
        std::future::poll_fn(|cx| self.poll_elapsed(cx)).await
    }

    /// Runs `f` until `at` on the timer in `slot` (made there on first use):
    /// `None` when the deadline came first.
    pub async fn run<F: Future>(
        slot: &mut Option<Deadline>,
        at: Instant,
        f: F,
    ) -> Option<F::Output> {
        let timer = match slot {
            Some(t) => {
                t.reset(at);
                t
            }
            None => slot.insert(Deadline::new(at)),
        };
        // Pinned here: the race then moves a pointer, not `f` (a call's future is
        // hundreds of bytes).
        let f = std::pin::pin!(f);
        let result = match race(f, timer.elapsed()).await {
            Either::Left(v) => Some(v),
            Either::Right(()) => None,
        };
        timer.release();
        result
    }

    /// Lets go of the waiting task's waker (its call ended), so that a finished
    /// task is not kept alive until the deadline.
    pub fn release(&mut self) {
        self.current
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The case monoio's timer alone gets wrong: the deadline moved and then
    /// awaited by a second task wakes that task, not the first.
    #[test]
    fn a_moved_deadline_wakes_the_task_waiting_now() {
        let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let t0 = Instant::now();
            let mut deadline = Deadline::new(t0 + Duration::from_millis(200));
            let first = monoio::spawn(async move {
                let r = monoio::time::timeout(Duration::from_millis(20), deadline.elapsed()).await;
                (r, deadline)
            });
            let (gave_up, mut deadline) = first.await;
            assert!(
                gave_up.is_err(),
                "the first task gave up before the deadline"
            );
            let second = monoio::spawn(async move {
                deadline.reset(t0 + Duration::from_millis(60));
                deadline.elapsed().await;
                t0.elapsed()
            });
            let waited = monoio::time::timeout(Duration::from_secs(2), second)
                .await
                .expect("the second task was woken at its deadline");
            assert!(waited >= Duration::from_millis(60), "{waited:?}");
        });
    }
}

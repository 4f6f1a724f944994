//! A mailbox that holds only the newest value, for state published to a core
//! (governance snapshots, breaker rules): a value not read yet is worth nothing
//! once a newer one exists. A core that does not look for a while (a handler
//! blocking it, a view nobody follows) holds one value, not every one since; a
//! channel held them all, each a full copy of the state. Each publish rings the
//! mailbox's doorbell, which the core's task that reads it waits for.

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::bell::{doorbell, Bell, Ringer};

/// A mailbox's two ends.
pub fn mailbox<T>() -> (Publisher<T>, Mailbox<T>) {
    let slot = Arc::new(Mutex::new(None));
    let (ringer, bell) = doorbell();
    (
        Publisher(Arc::downgrade(&slot), ringer),
        Mailbox(slot, Cell::new(Some(bell))),
    )
}

/// The writing end, on the thread that publishes.
#[derive(Debug)]
pub struct Publisher<T>(Weak<Mutex<Option<T>>>, Ringer);

impl<T> Publisher<T> {
    /// Replaces what the mailbox holds by `value`; false (and `value` dropped)
    /// once the mailbox is gone.
    pub fn publish(&self, value: T) -> bool {
        let Some(slot) = self.0.upgrade() else {
            return false;
        };
        // Assigned after the lock is released: the old value's drop runs outside.
        let old = slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(value);
        drop(old);
        self.1.ring();
        true
    }

    /// Wakes the mailbox's reader without a new value (to answer a request).
    pub(crate) fn ring(&self) {
        self.1.ring();
    }
}

/// The reading end, on the core.
pub struct Mailbox<T>(Arc<Mutex<Option<T>>>, Cell<Option<Bell>>);

impl<T> std::fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").finish_non_exhaustive()
    }
}

impl<T> Mailbox<T> {
    /// The doorbell each publish rings, for the one task that waits for news
    /// (`None` once taken).
    pub(crate) fn bell(&self) -> Option<Bell> {
        self.1.take()
    }

    /// The newest value published since the last take, if any.
    pub fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_value_is_kept() {
        let (tx, rx) = mailbox();
        assert_eq!(rx.take(), None);
        let first = Arc::new(1);
        assert!(tx.publish(first.clone()));
        for n in 2..=1000 {
            assert!(tx.publish(Arc::new(n)));
        }
        // The values never read are gone, not queued.
        assert_eq!(Arc::strong_count(&first), 1);
        assert_eq!(rx.take().as_deref(), Some(&1000));
        assert_eq!(rx.take(), None);
        drop(rx);
        assert!(!tx.publish(Arc::new(0)), "the mailbox is gone");
    }
}

//! How much memory decoding one message may take beyond its own bytes.
//!
//! Strings and binaries cost at most their length on the wire, but containers can
//! cost far more than their encoding: an empty struct is one byte on the wire and
//! tens of bytes in memory, so 16 MiB of them would decode to most of a gigabyte.
//! Generated decoders charge each container's element memory before allocating it;
//! a reader refuses a charge over its message's budget, and over the budget its core
//! shares among the calls it has in flight, when it has one.

use std::cell::Cell;
use std::rc::Rc;

use super::{ProtocolError, ProtocolErrorKind};

/// The default decode budget of one message: a server's per request
/// (`ServerConfig::max_decoded`) and a client's per reply
/// (`ConnOptions::max_decoded`).
pub const DEFAULT_MAX_DECODED: usize = 64 << 20;

/// Bytes a core's holders may still take, under a total that may change while
/// they hold some: a total lowered below what is held is owed, and what comes
/// back pays the debt before it can be taken again. Shared through an `Rc`:
/// never across threads.
#[derive(Debug, Default)]
pub struct Allowance {
    left: Cell<usize>,
    owed: Cell<usize>,
}

impl Allowance {
    /// A total of `bytes`, none taken.
    pub fn new(bytes: usize) -> Self {
        Allowance {
            left: Cell::new(bytes),
            owed: Cell::new(0),
        }
    }

    /// Bytes that may be taken now.
    pub fn left(&self) -> usize {
        self.left.get()
    }

    /// Takes `n` bytes if that many are left.
    #[inline]
    pub fn take(&self, n: usize) -> bool {
        match self.left.get().checked_sub(n) {
            Some(rest) => {
                self.left.set(rest);
                true
            }
            None => false,
        }
    }

    /// Gives back `n` bytes taken before, paying what is owed first.
    #[inline]
    pub fn give(&self, n: usize) {
        let owed = self.owed.get();
        let paid = owed.min(n);
        self.owed.set(owed - paid);
        self.left.set(self.left.get() + (n - paid));
    }

    /// Changes the total from `from` to `to`: what is left grows or shrinks by the
    /// difference, and what it cannot shrink by is owed.
    pub fn resize(&self, from: usize, to: usize) {
        if to >= from {
            self.give(to - from);
        } else {
            let less = from - to;
            let left = self.left.get();
            let cut = left.min(less);
            self.left.set(left - cut);
            self.owed.set(self.owed.get() + (less - cut));
        }
    }
}

/// A reader's decode budget: unlimited unless set. What it took from its pool goes
/// back when it is dropped (with its reader, after the call).
#[derive(Debug, Default)]
pub struct DecodeBudget {
    /// Bytes this message may still take (`None`: unlimited).
    left: Option<usize>,
    /// Bytes charged so far.
    used: usize,
    /// What the core has left for all of its calls in flight, if shared.
    pool: Option<Rc<Allowance>>,
    /// What a refusal names as the limit (`None`: the message's decode budget).
    limit: Option<&'static str>,
}

impl DecodeBudget {
    /// At most `per_message` bytes, drawn from `pool` (a core's budget, returned
    /// by the caller with [`DecodeBudget::used`] once the call is over).
    pub fn new(per_message: usize, pool: Option<Rc<Allowance>>) -> Self {
        DecodeBudget {
            left: Some(per_message),
            used: 0,
            pool,
            limit: None,
        }
    }

    /// At most `per_message` bytes, a refusal naming `limit` (the setting a
    /// person raises, e.g. a client's) as what it is over.
    pub fn named(per_message: usize, limit: &'static str) -> Self {
        let mut budget = DecodeBudget::new(per_message, None);
        budget.limit = Some(limit);
        budget
    }

    /// Bytes charged so far.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Takes `bytes` from the budget, or refuses.
    #[inline]
    pub fn charge(&mut self, bytes: usize) -> Result<(), ProtocolError> {
        let Some(left) = self.left else {
            return Ok(());
        };
        if bytes > left {
            let what = self.limit.unwrap_or("the message's decode budget");
            return Err(self.refuse(bytes, what));
        }
        if let Some(pool) = &self.pool {
            if !pool.take(bytes) {
                return Err(self.refuse(bytes, "the core's decode budget for calls in flight"));
            }
        }
        self.left = Some(left - bytes);
        self.used += bytes;
        Ok(())
    }

    #[cold]
    fn refuse(&self, bytes: usize, what: &str) -> ProtocolError {
        ProtocolError::new(
            ProtocolErrorKind::SizeLimit,
            format!(
                "decoding would take {} more bytes of memory than {what} allows ({} used)",
                bytes, self.used
            ),
        )
    }
}

impl Drop for DecodeBudget {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.as_ref().filter(|_| self.used > 0) {
            pool.give(self.used);
        }
    }
}

/// The memory `n` elements of `T` take: what a decoder charges for a container.
#[inline]
pub fn element_cost<T>(n: usize) -> usize {
    n.saturating_mul(std::mem::size_of::<T>().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_message_and_the_pool_and_are_counted() {
        let mut unlimited = DecodeBudget::default();
        assert!(unlimited.charge(usize::MAX).is_ok());
        let pool = Rc::new(Allowance::new(100));
        let mut b = DecodeBudget::new(60, Some(pool.clone()));
        b.charge(50).unwrap();
        assert_eq!((b.used(), pool.left()), (50, 50));
        let e = b.charge(11).unwrap_err();
        assert!(e.message.contains("message's decode budget"), "{e:?}");
        let mut other = DecodeBudget::new(60, Some(pool.clone()));
        let e = other.charge(51).unwrap_err();
        assert!(e.message.contains("core's decode budget"), "{e:?}");
        drop(b);
        assert_eq!(pool.left(), 100, "given back with its reader");
        assert_eq!(element_cost::<u64>(3), 24);
        assert_eq!(element_cost::<u64>(usize::MAX), usize::MAX);
    }

    #[test]
    fn an_allowance_lowered_below_what_is_held_is_owed_until_given_back() {
        let a = Allowance::new(100);
        assert!(a.take(80));
        a.resize(100, 50);
        assert_eq!(a.left(), 0, "30 of the 50 less are owed");
        assert!(!a.take(1));
        a.give(20);
        assert_eq!(a.left(), 0, "what comes back pays the debt first");
        a.give(60);
        assert_eq!(a.left(), 50, "all back: the new total");
        a.resize(50, 120);
        assert_eq!(a.left(), 120);
        assert!(a.take(120));
        a.resize(120, 0);
        a.resize(0, 10);
        assert_eq!(a.left(), 0, "raised while in debt: the debt shrinks first");
        a.give(120);
        assert_eq!(a.left(), 10);
    }
}

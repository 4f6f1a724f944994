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

/// A reader's decode budget: unlimited unless set. What it took from its pool goes
/// back when it is dropped (with its reader, after the call).
#[derive(Debug, Default)]
pub struct DecodeBudget {
    /// Bytes this message may still take (`None`: unlimited).
    left: Option<usize>,
    /// Bytes charged so far.
    used: usize,
    /// What the core has left for all of its calls in flight, if shared.
    pool: Option<Rc<Cell<usize>>>,
    /// What a refusal names as the limit (`None`: the message's decode budget).
    limit: Option<&'static str>,
}

impl DecodeBudget {
    /// At most `per_message` bytes, drawn from `pool` (a core's budget, returned
    /// by the caller with [`DecodeBudget::used`] once the call is over).
    pub fn new(per_message: usize, pool: Option<Rc<Cell<usize>>>) -> Self {
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
            if bytes > pool.get() {
                return Err(self.refuse(bytes, "the core's decode budget for calls in flight"));
            }
            pool.set(pool.get() - bytes);
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
        if let Some(pool) = &self.pool {
            pool.set(pool.get() + self.used);
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
        let pool = Rc::new(Cell::new(100));
        let mut b = DecodeBudget::new(60, Some(pool.clone()));
        b.charge(50).unwrap();
        assert_eq!((b.used(), pool.get()), (50, 50));
        let e = b.charge(11).unwrap_err();
        assert!(e.message.contains("message's decode budget"), "{e:?}");
        let mut other = DecodeBudget::new(60, Some(pool.clone()));
        let e = other.charge(51).unwrap_err();
        assert!(e.message.contains("core's decode budget"), "{e:?}");
        drop(b);
        assert_eq!(pool.get(), 100, "given back with its reader");
        assert_eq!(element_cost::<u64>(3), 24);
        assert_eq!(element_cost::<u64>(usize::MAX), usize::MAX);
    }
}

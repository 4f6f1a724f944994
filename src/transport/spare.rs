//! [`SpareBuffers`]: one core's large buffers, kept between large messages.
//!
//! A connection gives back any buffer that grew past [`KEEP_CAPACITY`] once its
//! message is done, so that idle connections hold little. Freed, such a buffer's
//! pages went back to the system (or not) as the allocator decided, and the next
//! large message paid for faulting its pages in afresh and for growing its buffer
//! step by step, copying as it grew. Kept here instead, up to a cap for the whole
//! core, the next large message on any of the core's connections takes one that
//! fits. What nobody has taken for a while is let go ([`SpareBuffers::trim`]).
//! Shared through an `Rc`: never across threads.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::conn::KEEP_CAPACITY;

/// How long spare buffers are kept when none is taken.
pub const SPARE_IDLE: Duration = Duration::from_secs(1);

thread_local! {
    /// The spare buffers of the server core running on this thread, if one is.
    static THIS_CORE: RefCell<Option<Rc<SpareBuffers>>> = const { RefCell::new(None) };
}

/// One core's spare large buffers (see the module docs).
#[derive(Debug)]
pub struct SpareBuffers {
    /// Empty buffers, each over `KEEP_CAPACITY`.
    bufs: RefCell<Vec<BytesMut>>,
    /// Their capacities together.
    held: Cell<usize>,
    /// The most they may hold together.
    cap: Cell<usize>,
    /// When one was last given or taken.
    used: Cell<Instant>,
}

impl SpareBuffers {
    /// Keeps at most `cap` bytes of buffers (0: none).
    pub fn new(cap: usize) -> Self {
        SpareBuffers {
            bufs: RefCell::new(Vec::new()),
            held: Cell::new(0),
            cap: Cell::new(cap),
            used: Cell::new(Instant::now()),
        }
    }

    /// The smallest kept buffer with room for `n` bytes, if there is one.
    pub fn take(&self, n: usize) -> Option<BytesMut> {
        let mut bufs = self.bufs.borrow_mut();
        let (i, _) = bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= n)
            .min_by_key(|(_, b)| b.capacity())?;
        let buf = bufs.swap_remove(i);
        self.held.set(self.held.get() - buf.capacity());
        self.used.set(Instant::now());
        Some(buf)
    }

    /// Keeps `buf`, emptied, if it is large and fits under the cap; else drops it.
    pub fn give(&self, mut buf: BytesMut) {
        buf.clear();
        // One whose front was consumed (a frame after its length, a reply sent in
        // parts) gets its whole allocation back, with no copy; one that shares its
        // memory, or starts where its memory does, stays as it is.
        let _ = buf.try_reclaim(buf.capacity() + 1);
        let size = buf.capacity();
        if size <= KEEP_CAPACITY || self.held.get() + size > self.cap.get() {
            return;
        }
        self.held.set(self.held.get() + size);
        self.bufs.borrow_mut().push(buf);
        self.used.set(Instant::now());
    }

    /// Keeps the buffer of a large message cut from a connection's read buffer,
    /// once its reader is done with it and nothing else holds a part of it (a
    /// handler or a decoded reply may keep one). A small one is simply dropped.
    pub fn recycle(&self, unit: Bytes) {
        if unit.len() > KEEP_CAPACITY {
            if let Ok(buf) = unit.try_into_mut() {
                self.give(buf);
            }
        }
    }

    /// Lets every buffer go when none was given or taken for [`SPARE_IDLE`].
    pub fn trim(&self, now: Instant) {
        if self.held.get() > 0 && now.duration_since(self.used.get()) >= SPARE_IDLE {
            self.bufs.borrow_mut().clear();
            self.held.set(0);
        }
    }

    /// Keeps at most `cap` bytes from now on, letting go of the largest buffers
    /// until what is kept fits.
    pub fn set_cap(&self, cap: usize) {
        self.cap.set(cap);
        let mut bufs = self.bufs.borrow_mut();
        bufs.sort_unstable_by_key(BytesMut::capacity);
        while self.held.get() > cap {
            let Some(buf) = bufs.pop() else { break };
            self.held.set(self.held.get() - buf.capacity());
        }
    }

    /// Bytes of buffers kept now.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// The most they may hold together now.
    pub fn cap(&self) -> usize {
        self.cap.get()
    }

    /// Makes `spares` this thread's: a server core's, so that the clients made on
    /// it keep their large buffers there, within the core's budget.
    pub(crate) fn adopt(spares: &Rc<SpareBuffers>) {
        THIS_CORE.with(|c| *c.borrow_mut() = Some(spares.clone()));
    }

    /// The spare buffers of the server core running on this thread (its
    /// `ServerBuilder::spare_buffers`, fitted to a memory limit), if one is.
    pub fn of_this_thread() -> Option<Rc<SpareBuffers>> {
        THIS_CORE.with(|c| c.borrow().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_smallest_buffer_that_fits_is_taken_and_the_cap_holds() {
        let s = SpareBuffers::new(10 * MIB);
        s.give(BytesMut::with_capacity(4 * MIB));
        s.give(BytesMut::with_capacity(2 * MIB));
        // Small buffers and buffers past the cap are not kept.
        s.give(BytesMut::with_capacity(KEEP_CAPACITY));
        s.give(BytesMut::with_capacity(5 * MIB));
        assert_eq!(s.held(), 6 * MIB);
        assert!(s.take(5 * MIB).is_none());
        assert_eq!(s.take(MIB).unwrap().capacity(), 2 * MIB);
        assert_eq!(s.held(), 4 * MIB);
        assert_eq!(s.take(3 * MIB).unwrap().capacity(), 4 * MIB);
        assert_eq!(s.held(), 0);
        assert!(s.take(1).is_none());
    }

    #[test]
    fn a_given_buffer_comes_back_empty_and_none_are_kept_with_no_cap() {
        let s = SpareBuffers::new(4 * MIB);
        let mut b = BytesMut::with_capacity(MIB);
        b.extend_from_slice(&[7; 1000]);
        let at = b.as_ptr();
        s.give(b);
        let b = s.take(MIB).unwrap();
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), at, "the same memory");
        s.give(BytesMut::with_capacity(MIB));
        s.give(BytesMut::with_capacity(2 * MIB));
        s.set_cap(2 * MIB);
        assert_eq!(s.held(), MIB, "a lowered cap lets the largest go");
        s.give(BytesMut::with_capacity(2 * MIB));
        assert_eq!(s.held(), MIB, "and holds");
        let none = SpareBuffers::new(0);
        none.give(BytesMut::with_capacity(MIB));
        assert_eq!(none.held(), 0);
    }

    #[test]
    fn a_buffer_whose_front_was_consumed_comes_back_whole() {
        let s = SpareBuffers::new(4 * MIB);
        let mut b = BytesMut::with_capacity(MIB);
        b.extend_from_slice(&[1; 1000]);
        let start = b.as_ptr();
        bytes::Buf::advance(&mut b, 600);
        s.give(b);
        let b = s.take(MIB).expect("its whole capacity");
        assert_eq!((b.as_ptr(), b.capacity()), (start, MIB));
        // A frame cut from a read buffer, after its 4-byte length.
        let mut read = BytesMut::with_capacity(MIB);
        read.extend_from_slice(&[2; 2000]);
        let start = read.as_ptr();
        let mut frame = read.split_to(1000);
        bytes::Buf::advance(&mut frame, 4);
        drop(read);
        s.give(frame.freeze().try_into_mut().unwrap());
        let b = s.take(MIB).expect("its whole capacity");
        assert_eq!((b.as_ptr(), b.capacity()), (start, MIB));
    }

    #[test]
    fn buffers_nobody_uses_for_a_second_are_let_go() {
        let s = SpareBuffers::new(4 * MIB);
        s.give(BytesMut::with_capacity(MIB));
        let now = Instant::now();
        s.trim(now);
        assert_eq!(s.held(), MIB, "just used");
        s.trim(now + SPARE_IDLE);
        assert_eq!(s.held(), 0);
    }
}

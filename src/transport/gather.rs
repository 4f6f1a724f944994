//! Large shared byte strings sent from where they are.
//!
//! A reply that returns a large `binary` or `string` it was given (an echo, a
//! proxy's payload, a cached blob), or a request that carries one (an upload),
//! would copy it into the connection's write buffer, and the kernel would copy it
//! again into the socket. Written through
//! [`WriteBuf`], a string of at least [`LINK_MIN`] bytes is linked instead: the
//! write buffer keeps a reference to it and where it goes, and the connection
//! sends the buffer and its links with one gathering write ([`Gather`]).

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use monoio::buf::IoVecBuf;

use crate::protocol::Sink;

/// The shortest byte string a [`WriteBuf`] sink links rather than copies. Below
/// it links saved no CPU a call: echoes of 4 and 8 KiB over 128 connections took
/// 2–9% more with them (the kernel's time rose more than the copy's fell), 12 KiB
/// 3% less, 16 KiB 5–21% less (perf/RESULTS.md).
pub const LINK_MIN: usize = 16 * 1024;

/// The most pieces one gathering write takes (Linux's `IOV_MAX`); a longer batch
/// goes out in more writes.
const MAX_PIECES: usize = 1024;

/// A byte string sent in place, before the write buffer's byte `at`.
#[derive(Debug)]
pub struct Link {
    at: usize,
    bytes: Bytes,
}

/// The bytes linked into `links` after the write buffer's byte `mark`: a message
/// begun at `mark` starts with a header, so its links lie strictly after it.
pub fn linked_after(links: &[Link], mark: usize) -> usize {
    links
        .iter()
        .rev()
        .take_while(|l| l.at > mark)
        .map(|l| l.bytes.len())
        .sum()
}

/// Drops the links after the write buffer's byte `mark` (see [`linked_after`]).
pub fn unlink_after(links: &mut Vec<Link>, mark: usize) {
    while links.last().is_some_and(|l| l.at > mark) {
        links.pop();
    }
}

/// A connection's write buffer and its links, as a writer's [`Sink`]: byte
/// strings of at least its threshold given to [`Sink::put_shared`] are linked,
/// not copied.
#[derive(Debug)]
pub struct WriteBuf {
    /// The bytes written.
    pub(crate) buf: BytesMut,
    /// The strings linked between them, in order.
    pub(crate) links: Vec<Link>,
    min: usize,
}

impl WriteBuf {
    /// An empty buffer that links nothing until [`WriteBuf::link_from`] says so.
    pub fn new() -> Self {
        WriteBuf {
            buf: BytesMut::new(),
            links: Vec::new(),
            min: usize::MAX,
        }
    }

    /// Links shared strings of `min` bytes or more from now on (`usize::MAX`: none).
    #[inline]
    pub fn link_from(&mut self, min: usize) {
        self.min = min;
    }

    /// Links `v` where the buffer ends now.
    #[cold]
    #[inline(never)]
    fn link(&mut self, v: &Bytes) {
        self.links.push(Link {
            at: self.buf.len(),
            bytes: v.clone(),
        });
    }
}

impl Default for WriteBuf {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method hands on to the `BytesMut`, whose implementation is sound.
unsafe impl BufMut for WriteBuf {
    #[inline]
    fn remaining_mut(&self) -> usize {
        self.buf.remaining_mut()
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise is the same as `BytesMut`'s.
        unsafe { self.buf.advance_mut(cnt) }
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.buf.chunk_mut()
    }

    #[inline]
    fn put_slice(&mut self, src: &[u8]) {
        self.buf.extend_from_slice(src);
    }
}

impl Sink for WriteBuf {
    #[inline]
    fn put_shared(&mut self, v: &Bytes) {
        if v.len() >= self.min {
            self.link(v);
        } else {
            self.buf.extend_from_slice(v);
        }
    }
}

/// A write buffer and its links as the pieces of one gathering write, from
/// `skip` bytes on (what earlier writes of the same batch sent). Owns them while
/// the write is under way; [`Gather::into_parts`] gives them back.
pub struct Gather {
    buf: BytesMut,
    links: Vec<Link>,
    pieces: Vec<libc::iovec>,
    left: usize,
}

impl Gather {
    /// The pieces of `buf` with `links`, after the first `skip` bytes, set out in
    /// `pieces` (emptied first; kept for its capacity).
    pub fn new(buf: BytesMut, links: Vec<Link>, mut pieces: Vec<libc::iovec>, skip: usize) -> Self {
        pieces.clear();
        let linked: usize = links.iter().map(|l| l.bytes.len()).sum();
        let left = buf.len() + linked - skip;
        let mut skip = skip;
        let mut add = |piece: &[u8]| {
            if pieces.len() == MAX_PIECES || skip >= piece.len() {
                skip -= skip.min(piece.len());
                return;
            }
            let piece = &piece[skip..];
            skip = 0;
            pieces.push(libc::iovec {
                iov_base: piece.as_ptr() as *mut libc::c_void,
                iov_len: piece.len(),
            });
        };
        let mut from = 0;
        for link in &links {
            add(&buf[from..link.at]);
            add(&link.bytes);
            from = link.at;
        }
        add(&buf[from..]);
        Gather {
            buf,
            links,
            pieces,
            left,
        }
    }

    /// The bytes of the batch still to go. One write takes at most `IOV_MAX`
    /// pieces, so it may send fewer even when the socket has room.
    pub fn left(&self) -> usize {
        self.left
    }

    /// The write buffer, the links and the pieces' vector, as given.
    pub fn into_parts(self) -> (BytesMut, Vec<Link>, Vec<libc::iovec>) {
        (self.buf, self.links, self.pieces)
    }
}

// SAFETY: the pieces point into the buffer's and the links' heap memory, which
// the `Gather` owns and does not change or move while it lives (moving the
// `Gather` moves only the handles).
unsafe impl IoVecBuf for Gather {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.pieces.as_ptr()
    }

    fn read_iovec_len(&self) -> usize {
        self.pieces.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(g: &Gather) -> Vec<Vec<u8>> {
        g.pieces
            .iter()
            .map(|p| {
                // SAFETY: each piece points into memory `g` owns.
                unsafe { std::slice::from_raw_parts(p.iov_base as *const u8, p.iov_len) }.to_vec()
            })
            .collect()
    }

    fn linked(parts: &[&[u8]], min: usize) -> (BytesMut, Vec<Link>) {
        let mut out = WriteBuf::new();
        out.link_from(min);
        for part in parts {
            out.put_shared(&Bytes::copy_from_slice(part));
        }
        (out.buf, out.links)
    }

    #[test]
    fn short_strings_are_copied_and_long_ones_linked_in_order() {
        let (buf, links) = linked(&[b"ab", b"long one", b"cd", b"another", b"e"], 5);
        assert_eq!(&buf[..], b"abcde");
        assert_eq!(linked_after(&links, 0), 15);
        let g = Gather::new(buf, links, Vec::new(), 0);
        assert_eq!(g.left(), 20);
        let want: Vec<&[u8]> = vec![b"ab", b"long one", b"cd", b"another", b"e"];
        assert_eq!(pieces(&g), want);
    }

    #[test]
    fn a_batch_sent_in_part_resumes_where_it_stopped() {
        let whole: Vec<u8> = b"ablong onecd".to_vec();
        for skip in 0..=whole.len() {
            let (buf, links) = linked(&[b"ab", b"long one", b"cd"], 5);
            let g = Gather::new(buf, links, Vec::new(), skip);
            assert_eq!(pieces(&g).concat(), &whole[skip..], "after {skip} bytes");
            assert_eq!(g.left(), whole.len() - skip);
            assert!(pieces(&g).iter().all(|p| !p.is_empty()));
        }
    }

    #[test]
    fn a_message_s_links_are_counted_and_dropped_by_its_mark() {
        let (buf, links) = linked(&[b"1", b"first link"], 5);
        let mut out = WriteBuf { buf, links, min: 5 };
        let mark = out.buf.len();
        out.put_slice(b"head");
        out.put_shared(&Bytes::from_static(b"second link"));
        out.put_slice(b"tail");
        assert_eq!(linked_after(&out.links, mark), 11);
        unlink_after(&mut out.links, mark);
        assert_eq!(out.links.len(), 1);
        assert_eq!(linked_after(&out.links, 0), 10);
    }

    #[test]
    fn more_pieces_than_one_write_takes_go_out_in_more_writes() {
        let parts: Vec<Vec<u8>> = (0..2000).map(|i| vec![i as u8; 8]).collect();
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let (buf, links) = linked(&refs, 8);
        let g = Gather::new(buf, links, Vec::new(), 0);
        assert_eq!(g.pieces.len(), MAX_PIECES);
        assert_eq!(pieces(&g).concat().len(), MAX_PIECES * 8);
        assert_eq!(g.left(), 2000 * 8);
        let (buf, links, kept) = g.into_parts();
        let g = Gather::new(buf, links, kept, MAX_PIECES * 8);
        assert_eq!(g.left(), (2000 - MAX_PIECES) * 8);
        let rest = pieces(&g);
        assert_eq!(rest.concat().len(), (2000 - MAX_PIECES) * 8);
        assert_eq!(rest[0], vec![MAX_PIECES as u8; 8], "the next part first");
    }
}

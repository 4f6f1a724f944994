//! Socket reads on monoio that append to a buffer.
//!
//! monoio's `read` into a `BytesMut` writes from the buffer's *start* (its
//! `write_ptr` is `as_mut_ptr`), so reading a request that arrives in pieces must go
//! through a slice of the spare capacity.

use bytes::BytesMut;
use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::AsyncReadRent;

/// `buf` with room for at least `room` more bytes after its contents, as the slice
/// of its spare capacity that a read appends into (`into_inner` gives it back).
#[inline]
pub fn spare(mut buf: BytesMut, room: usize) -> SliceMut<BytesMut> {
    buf.reserve(room);
    let (len, cap) = (buf.len(), buf.capacity());
    buf.slice_mut(len..cap)
}

/// Reads once from `r` into `buf` after its current contents, making room for at
/// least `room` more bytes first. Returns the bytes read (0 at EOF) and the buffer.
pub async fn read_append<R: AsyncReadRent>(
    r: &mut R,
    buf: BytesMut,
    room: usize,
) -> (std::io::Result<usize>, BytesMut) {
    let (res, slice) = r.read(spare(buf, room)).await;
    (res, slice.into_inner())
}

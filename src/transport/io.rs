//! Socket reads on monoio that append to a buffer.
//!
//! monoio's `read` into a `BytesMut` writes from the buffer's *start* (its
//! `write_ptr` is `as_mut_ptr`), so reading a request that arrives in pieces must go
//! through a slice of the spare capacity.

use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

/// Reads once from `r` into `buf` after its current contents, making room for at
/// least `room` more bytes first. Returns the bytes read (0 at EOF) and the buffer.
pub async fn read_append<R: AsyncReadRent>(
    r: &mut R,
    mut buf: BytesMut,
    room: usize,
) -> (std::io::Result<usize>, BytesMut) {
    buf.reserve(room);
    let (len, cap) = (buf.len(), buf.capacity());
    let (res, slice) = r.read(buf.slice_mut(len..cap)).await;
    (res, slice.into_inner())
}

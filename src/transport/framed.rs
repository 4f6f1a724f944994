//! TFramedTransport: each message is preceded by its length as a 4-byte big-endian
//! integer. The length is checked against the maximum before the body is buffered.

use bytes::{BufMut, BytesMut};

use crate::protocol::{ProtocolError, ProtocolErrorKind};

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The body length of the frame at the start of `buf`, or `None` if fewer than four
/// bytes have arrived. A length of zero or above `max` is an error: the connection
/// should be closed without reading further.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, ProtocolError> {
    let Some(len) = declared_len(buf) else {
        return Ok(None);
    };
    if len == 0 {
        return Err(ProtocolError::new(
            ProtocolErrorKind::InvalidData,
            "frame of length zero",
        ));
    }
    if len > max {
        return Err(ProtocolError::new(
            ProtocolErrorKind::SizeLimit,
            format!("frame of {len} bytes exceeds the maximum of {max}"),
        ));
    }
    Ok(Some(len))
}

/// The body length the frame at the start of `buf` declares, unchecked (`None`
/// if fewer than four bytes have arrived).
pub fn declared_len(buf: &[u8]) -> Option<usize> {
    let head = buf.get(..HEADER_LEN)?;
    Some(u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize)
}

/// Starts a frame at the end of `buf`: reserves the length prefix. Returns the mark
/// that [`finish_frame`] takes.
pub fn begin_frame(buf: &mut BytesMut) -> usize {
    let mark = buf.len();
    buf.put_u32(0);
    mark
}

/// Ends the frame begun at `mark`, whose body is what `buf` holds after the prefix
/// and `linked` bytes sent from elsewhere ([`super::gather`]): fills in its length,
/// or removes the prefix if nothing was written (a oneway call's empty answer).
/// Returns the body length.
pub fn finish_frame(buf: &mut BytesMut, mark: usize, linked: usize) -> usize {
    let len = buf.len() - mark - HEADER_LEN + linked;
    if len == 0 {
        buf.truncate(mark);
    } else {
        buf[mark..mark + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    }
    len
}

/// Appends one frame to `buf`: `body` writes the message between [`begin_frame`]
/// and [`finish_frame`]. Returns the body length.
pub fn write_frame(buf: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) -> usize {
    let mark = begin_frame(buf);
    body(buf);
    finish_frame(buf, mark, 0)
}

//! Per-connection auto-detection of framing and protocol from the first bytes.
//!
//! Strict binary starts `0x80 0x01`, compact `0x82`; framed transport puts a 4-byte
//! big-endian length before either. THeader/TTHeader (`0x0F 0xFF` after the length)
//! is recognised and refused with a clear reason, not misread.

use crate::protocol::Protocol;
use crate::transport::Framing;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// The connection speaks this.
    Speaks(Framing, Protocol),
    /// Not enough bytes yet.
    NeedMore,
    /// Not Thrift that ringsoa serves; the reason is for the log.
    Unsupported(&'static str),
}

fn protocol_at(b: &[u8]) -> Option<Result<Protocol, &'static str>> {
    match b {
        [] => None,
        [0x80] => None,
        [0x80, 0x01, ..] => Some(Ok(Protocol::Binary)),
        [0x82, ..] => Some(Ok(Protocol::Compact)),
        [0x0f] => None,
        [0x0f, 0xff, ..] => Some(Err("THeader framing is not supported")),
        _ => Some(Err("not a strict binary or compact Thrift message")),
    }
}

/// Detects framing and protocol from the bytes received so far.
pub fn detect(buf: &[u8]) -> Detected {
    match protocol_at(buf) {
        Some(Ok(p)) => return Detected::Speaks(Framing::Buffered, p),
        None => return Detected::NeedMore,
        Some(Err(_)) => {}
    }
    // A frame length: its top byte is 0 for any frame under 16 MiB.
    if buf.len() < 5 {
        return if buf[0] == 0 {
            Detected::NeedMore
        } else {
            Detected::Unsupported("not a strict binary or compact Thrift message")
        };
    }
    match protocol_at(&buf[4..]) {
        Some(Ok(p)) => Detected::Speaks(Framing::Framed, p),
        None => Detected::NeedMore,
        Some(Err(reason)) => Detected::Unsupported(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_all_four_forms_and_waits_for_bytes() {
        use Detected::*;
        assert_eq!(
            detect(&[0x80, 0x01, 0, 1]),
            Speaks(Framing::Buffered, Protocol::Binary)
        );
        assert_eq!(
            detect(&[0x82, 0x21]),
            Speaks(Framing::Buffered, Protocol::Compact)
        );
        assert_eq!(
            detect(&[0, 0, 0, 9, 0x80, 0x01]),
            Speaks(Framing::Framed, Protocol::Binary)
        );
        assert_eq!(
            detect(&[0, 0, 0, 9, 0x82]),
            Speaks(Framing::Framed, Protocol::Compact)
        );
        for prefix in [
            &[][..],
            &[0x80],
            &[0],
            &[0, 0, 0],
            &[0, 0, 0, 9],
            &[0, 0, 0, 9, 0x80],
        ] {
            assert_eq!(detect(prefix), NeedMore, "{prefix:?}");
        }
        assert!(matches!(detect(b"GET / HTTP/1.1"), Unsupported(_)));
        assert!(
            matches!(detect(&[0, 0, 0, 9, 0x0f, 0xff]), Unsupported(r) if r.contains("THeader"))
        );
        assert!(matches!(detect(&[0x80, 0x02]), Unsupported(_)));
    }
}

//! Per-connection auto-detection of framing and protocol from the first bytes.
//!
//! Strict binary starts `0x80 0x01`, compact `0x82`; framed transport puts a 4-byte
//! big-endian length before either, or before a header ([`crate::transport::header`]:
//! TTHeader `0x10 0x00`, THeader `0x0F 0xFF`), whose payload protocol is read per
//! message. HTTP is recognised and refused with a reason that says so; so is
//! non-strict binary (no protocol version), unless the server accepts it.

use crate::protocol::Protocol;
use crate::transport::header::HeaderKind;
use crate::transport::Framing;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// The connection speaks this.
    Speaks(Framing, Protocol),
    /// Non-strict binary in this framing (only when asked to accept it).
    NonStrict(Framing),
    /// Not enough bytes yet.
    NeedMore,
    /// Not Thrift that ringsoa serves; the reason is for the log.
    Unsupported(&'static str),
}

const NOT_THRIFT: &str = "not a strict binary or compact Thrift message";

const NON_STRICT: &str = "non-strict binary (a message with no protocol version, as \
     TBinaryProtocol(strict_write=False) writes), which this server does not accept \
     (ServerBuilder::accept_non_strict_binary, ringsoa-demo --accept-non-strict-binary)";

/// Whether `b` starts like a non-strict binary message: a name length under 256,
/// then the name's first bytes, letters, digits, `_`, `.` or `:`.
fn non_strict_at(b: &[u8]) -> bool {
    match b {
        [0, 0, 0, n, name @ ..] if *n > 0 && !name.is_empty() => name
            .iter()
            .take(*n as usize)
            .all(|c| c.is_ascii_alphanumeric() || b"_.:".contains(c)),
        _ => false,
    }
}

/// The protocol of a message starting at `b`; in a frame (`framed`), a header counts
/// as binary (each header names its payload's protocol).
fn protocol_at(b: &[u8], framed: bool) -> Option<Result<Protocol, &'static str>> {
    if framed && HeaderKind::of(b).is_some() {
        return Some(Ok(Protocol::Binary));
    }
    match b {
        [] | [0x80] => None,
        [0x80, 0x01, ..] => Some(Ok(Protocol::Binary)),
        [0x82, ..] => Some(Ok(Protocol::Compact)),
        // The start of a header's magic, or of a header framed again inside.
        [0x0f] | [0x10] if framed => None,
        [0, ..] if framed && b.len() < 6 => None,
        _ => Some(Err(NOT_THRIFT)),
    }
}

/// Whether the bytes start an HTTP request (or HTTP/2's preface).
fn is_http(b: &[u8]) -> bool {
    [
        &b"GET "[..],
        b"POST",
        b"PUT ",
        b"HEAD",
        b"DELE",
        b"OPTI",
        b"PATC",
        b"PRI ",
    ]
    .iter()
    .any(|m| b.starts_with(m))
}

/// Detects framing and protocol from the bytes received so far; non-strict binary
/// is accepted when `non_strict`, else refused with a reason that names it.
pub fn detect(buf: &[u8], non_strict: bool) -> Detected {
    match protocol_at(buf, false) {
        Some(Ok(p)) => return Detected::Speaks(Framing::Buffered, p),
        None => return Detected::NeedMore,
        Some(Err(_)) => {}
    }
    if is_http(buf) {
        return Detected::Unsupported("the peer is speaking HTTP, not Thrift");
    }
    // A frame length: its top byte is 0 for any frame under 16 MiB.
    if buf.len() < 5 {
        return if buf[0] == 0 {
            Detected::NeedMore
        } else {
            Detected::Unsupported(NOT_THRIFT)
        };
    }
    match protocol_at(&buf[4..], true) {
        Some(Ok(p)) => Detected::Speaks(Framing::Framed, p),
        None => Detected::NeedMore,
        Some(Err(reason)) => {
            let framing = if non_strict_at(buf) {
                Framing::Buffered
            } else if non_strict_at(&buf[4..]) {
                Framing::Framed
            } else {
                return Detected::Unsupported(reason);
            };
            match non_strict {
                true => Detected::NonStrict(framing),
                false => Detected::Unsupported(NON_STRICT),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_all_four_forms_and_waits_for_bytes() {
        use Detected::*;
        assert_eq!(
            detect(&[0x80, 0x01, 0, 1], false),
            Speaks(Framing::Buffered, Protocol::Binary)
        );
        assert_eq!(
            detect(&[0x82, 0x21], false),
            Speaks(Framing::Buffered, Protocol::Compact)
        );
        assert_eq!(
            detect(&[0, 0, 0, 9, 0x80, 0x01], false),
            Speaks(Framing::Framed, Protocol::Binary)
        );
        assert_eq!(
            detect(&[0, 0, 0, 9, 0x82], false),
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
            assert_eq!(detect(prefix, false), NeedMore, "{prefix:?}");
        }
        assert!(matches!(detect(b"GET / HTTP/1.1", false), Unsupported(r) if r.contains("HTTP")));
        // Headers: framed, their payload's protocol read per message.
        for magic in [[0x0f, 0xff], [0x10, 0x00]] {
            let mut b = vec![0, 0, 0, 9];
            assert_eq!(detect(&[0, 0, 0, 9, magic[0]], false), NeedMore);
            b.extend_from_slice(&magic);
            assert_eq!(detect(&b, false), Speaks(Framing::Framed, Protocol::Binary));
            assert!(matches!(detect(&magic, false), Unsupported(_)));
            // Framed twice (Apache's Python THeaderTransport over TFramedTransport).
            let mut b = vec![0, 0, 0, 20, 0, 0, 0, 16];
            assert_eq!(detect(&b, false), NeedMore);
            b.extend_from_slice(&magic);
            assert_eq!(detect(&b, false), Speaks(Framing::Framed, Protocol::Binary));
        }
        assert!(matches!(detect(&[0x80, 0x02], false), Unsupported(_)));
    }

    #[test]
    fn non_strict_binary_is_named_as_such() {
        let buffered = b"\0\0\0\x04echo\x01\0\0\0\x01";
        let mut framed = vec![0, 0, 0, 13];
        framed.extend_from_slice(buffered);
        for b in [&buffered[..], &framed, b"\0\0\0\x0fDemo:relay_whoami"] {
            assert_eq!(detect(b, false), Detected::Unsupported(NON_STRICT), "{b:?}");
        }
        assert_eq!(
            detect(buffered, true),
            Detected::NonStrict(Framing::Buffered)
        );
        assert_eq!(detect(&framed, true), Detected::NonStrict(Framing::Framed));
        // Strict forms are read as before when non-strict is accepted.
        assert_eq!(
            detect(&[0, 0, 0, 9, 0x80, 0x01], true),
            Detected::Speaks(Framing::Framed, Protocol::Binary)
        );
        for other in [&b"\0\0\0\x04ec\xffo"[..], b"\0\0\0\0\x01", b"hello"] {
            assert_eq!(
                detect(other, false),
                Detected::Unsupported(NOT_THRIFT),
                "{other:?}"
            );
        }
    }
}

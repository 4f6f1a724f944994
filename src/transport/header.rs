//! The header transports of other Thrift stacks, each inside a frame (after the
//! 4-byte length): TTHeader (CloudWeGo Kitex and Volo, magic `0x1000`) and THeader
//! (fbthrift and Apache Thrift's header transport, magic `0x0FFF`).
//!
//! ```text
//! u16 MAGIC | u16 FLAGS | u32 SEQID | u16 HSIZE (header bytes after this ÷ 4)
//! TTHeader: u8 PROTOCOL, u8 NTRANS + ids, infos (u8 id; 0x01 string pairs,
//!           0x10 int-key pairs, 0x11 ACL token, 0x00 padding), all sizes u16
//! THeader:  varint PROTOCOL, varint NTRANS + ids, infos (varint id; 1 and 2 string
//!           pairs with varint lengths; any other id ends them), padding
//! payload:  the message (TTHeader's may carry its own 4-byte length)
//! ```
//!
//! Decoding checks every length against the frame before reading; string pairs are
//! bounded by the caller's limits; THeader's zlib transform is named in the header
//! (the payload is inflated by [`inflate`], within a size limit); other transforms
//! (zstd, TTHeader's) and protocols other than binary and compact are refused with
//! a clear error.

use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::{Protocol, ProtocolError, ProtocolErrorKind};

/// Which header a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    /// CloudWeGo's TTHeader (Kitex, Volo): magic `0x1000`.
    TTHeader,
    /// fbthrift's and Apache's THeader: magic `0x0FFF`.
    THeader,
}

impl HeaderKind {
    /// The header a frame body starts with, if any (a plain message starts `0x80` or
    /// `0x82`, so neither magic can be mistaken for one), also one framed a second
    /// time inside it (Apache's Python `THeaderTransport` over `TFramedTransport`).
    pub fn of(frame: &[u8]) -> Option<HeaderKind> {
        match frame {
            [0x10, 0x00, ..] | [0, _, _, _, 0x10, 0x00, ..] => Some(HeaderKind::TTHeader),
            [0x0f, 0xff, ..] | [0, _, _, _, 0x0f, 0xff, ..] => Some(HeaderKind::THeader),
            _ => None,
        }
    }

    fn magic(self) -> u16 {
        match self {
            HeaderKind::TTHeader => 0x1000,
            HeaderKind::THeader => 0x0fff,
        }
    }
}

/// TTHeader's int keys that ringsoa reads or writes.
pub mod int_key {
    /// The caller's service name.
    pub const FROM_SERVICE: u16 = 3;
    /// The callee's service name.
    pub const TO_SERVICE: u16 = 6;
    /// The method called.
    pub const TO_METHOD: u16 = 9;
    /// The call's timeout in milliseconds (decimal text).
    pub const RPC_TIMEOUT: u16 = 12;
    /// Volo clients send "3".
    pub const WITH_HEADER: u16 = 16;
    /// The message type of a reply (a digit, or one raw byte from Volo servers).
    pub const MSG_TYPE: u16 = 22;
}

/// THeader's well-known string key for the caller's timeout in milliseconds.
pub const THEADER_TIMEOUT: &str = "client_timeout";

/// A header, decoded or to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// TTHeader or THeader.
    pub kind: HeaderKind,
    /// The flags word (echoed in replies).
    pub flags: u16,
    /// The header's sequence id (the Thrift seqid for TTHeader; echoed in replies).
    pub seqid: u32,
    /// The payload's protocol.
    pub protocol: Protocol,
    /// TTHeader only: the payload carries its own 4-byte length ("TTHeaderFramed").
    pub framed_payload: bool,
    /// The header frame sits inside another frame: its own 4-byte length comes first.
    pub nested: bool,
    /// TTHeader's int-key pairs.
    pub ints: Vec<(u16, String)>,
    /// String pairs (THeader's KEYVALUE, TTHeader's 0x01).
    pub strings: Vec<(String, String)>,
    /// THeader's PKEYVALUE pairs: persistent, sent once and meant for every later
    /// message on the connection too (fbthrift's `setPersistentHeader`).
    pub persistent: Vec<(String, String)>,
    /// THeader's zlib transform (1): the payload is zlib-compressed.
    pub zlib: bool,
}

impl Header {
    /// A header of `kind` with no pairs.
    pub fn new(kind: HeaderKind, seqid: u32, protocol: Protocol) -> Self {
        Header {
            kind,
            flags: 0,
            seqid,
            protocol,
            framed_payload: false,
            nested: false,
            ints: Vec::new(),
            strings: Vec::new(),
            persistent: Vec::new(),
            zlib: false,
        }
    }

    /// The value of TTHeader int key `key`.
    pub fn int(&self, key: u16) -> Option<&str> {
        self.ints
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of string key `key`.
    pub fn string(&self, key: &str) -> Option<&str> {
        self.strings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Limits on a header's string pairs.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimits {
    /// Pairs, int and string together.
    pub entries: usize,
    /// Bytes of one key or value.
    pub item: usize,
}

fn bad(message: impl Into<std::borrow::Cow<'static, str>>) -> ProtocolError {
    ProtocolError::new(ProtocolErrorKind::InvalidData, message)
}

/// A bounds-checked reader over a header's bytes.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| bad("a header field runs past the header's end"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ProtocolError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn varint(&mut self) -> Result<u32, ProtocolError> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.u8()?;
            v |= u32::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("a header varint is longer than 5 bytes"))
    }

    fn text(&mut self, len: usize, limits: &HeaderLimits) -> Result<String, ProtocolError> {
        if len > limits.item {
            return Err(bad(format!(
                "a header key or value of {len} bytes exceeds the limit of {}",
                limits.item
            )));
        }
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn done(&self) -> bool {
        self.at >= self.b.len()
    }
}

fn protocol(id: u32, kind: HeaderKind) -> Result<Protocol, ProtocolError> {
    match id {
        0 => Ok(Protocol::Binary),
        2 => Ok(Protocol::Compact),
        n => Err(bad(format!(
            "{kind:?} protocol id {n} is not supported (binary 0 and compact 2 are)"
        ))),
    }
}

/// Whether the transforms named are THeader's zlib alone (else none at all).
fn transforms(ids: &[u32], kind: HeaderKind) -> Result<bool, ProtocolError> {
    match ids {
        [] => Ok(false),
        [1] if kind == HeaderKind::THeader => Ok(true),
        _ => {
            let named: Vec<String> = ids
                .iter()
                .map(|id| {
                    let name = match id {
                        1 => "zlib",
                        5 => "zstd",
                        _ => "unknown",
                    };
                    format!("{id} ({name})")
                })
                .collect();
            Err(bad(format!(
                "{kind:?} transform {} is not supported (THeader's zlib alone is): send without it",
                named.join(" then ")
            )))
        }
    }
}

/// Decodes the header at the start of `frame` (a frame body whose first bytes
/// [`HeaderKind::of`] recognised) and returns it with the payload (the message,
/// without TTHeader's inner length).
pub fn decode(frame: &Bytes, limits: &HeaderLimits) -> Result<(Header, Bytes), ProtocolError> {
    let kind = HeaderKind::of(frame).ok_or_else(|| bad("not a TTHeader or THeader frame"))?;
    let nested = frame[0] == 0;
    let start = if nested {
        let inner = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        if inner != frame.len() - 4 {
            return Err(bad("a header frame inside a frame does not fill it"));
        }
        4
    } else {
        0
    };
    let mut c = Cursor {
        b: frame,
        at: start + 2,
    };
    let flags = c.u16()?;
    let s = c.take(4)?;
    let seqid = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    let words = c.u16()? as usize;
    let mut h = Cursor {
        b: c.take(words * 4)?,
        at: 0,
    };
    let body = c.at;
    let mut header = Header {
        flags,
        seqid,
        nested,
        ..Header::new(kind, seqid, Protocol::Binary)
    };
    let mut pairs = 0usize;
    let mut count = |n: usize| {
        pairs += n;
        if pairs > limits.entries {
            Err(bad(format!(
                "the header has more than {} pairs",
                limits.entries
            )))
        } else {
            Ok(())
        }
    };
    match kind {
        HeaderKind::TTHeader => {
            header.protocol = protocol(h.u8()?.into(), kind)?;
            let n = h.u8()? as usize;
            let ids: Vec<u32> = h.take(n)?.iter().map(|&b| b.into()).collect();
            transforms(&ids, kind)?;
            while !h.done() {
                match h.u8()? {
                    0x00 => {}
                    0x01 => {
                        let n = h.u16()? as usize;
                        count(n)?;
                        for _ in 0..n {
                            let k = h.u16()? as usize;
                            let key = h.text(k, limits)?;
                            let v = h.u16()? as usize;
                            let value = h.text(v, limits)?;
                            header.strings.push((key, value));
                        }
                    }
                    0x10 => {
                        let n = h.u16()? as usize;
                        count(n)?;
                        for _ in 0..n {
                            let key = h.u16()?;
                            let v = h.u16()? as usize;
                            let value = h.text(v, limits)?;
                            header.ints.push((key, value));
                        }
                    }
                    0x11 => {
                        let n = h.u16()? as usize;
                        h.take(n)?;
                    }
                    id => return Err(bad(format!("unknown TTHeader info id {id:#04x}"))),
                }
            }
        }
        HeaderKind::THeader => {
            header.protocol = protocol(h.varint()?, kind)?;
            let n = h.varint()? as usize;
            let mut ids = Vec::new();
            for _ in 0..n.min(8) {
                ids.push(h.varint()?);
            }
            if n > 8 {
                return Err(bad(format!("THeader names {n} transforms")));
            }
            header.zlib = transforms(&ids, kind)?;
            // KEYVALUE (1) and PKEYVALUE (2); padding (0) or any other id ends them.
            while !h.done() {
                let pairs = match h.varint()? {
                    1 => &mut header.strings,
                    2 => &mut header.persistent,
                    _ => break,
                };
                let n = h.varint()? as usize;
                count(n)?;
                for _ in 0..n {
                    let k = h.varint()? as usize;
                    let key = h.text(k, limits)?;
                    let v = h.varint()? as usize;
                    let value = h.text(v, limits)?;
                    pairs.push((key, value));
                }
            }
        }
    }
    let mut payload = frame.slice(body..);
    if kind == HeaderKind::TTHeader && !matches!(payload.first(), Some(0x80 | 0x82)) {
        // TTHeaderFramed: the message has its own length.
        let whole = payload.len() >= 4
            && u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize
                == payload.len() - 4;
        if !whole {
            return Err(bad(
                "the TTHeader payload is neither a message nor one framed message",
            ));
        }
        payload = payload.slice(4..);
        header.framed_payload = true;
    }
    Ok((header, payload))
}

fn put_varint(out: &mut BytesMut, mut v: usize) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Writes `h` (magic to padding) into `out`; the payload follows, after a 4-byte
/// length when `h.framed_payload`. Keys and values longer than a TTHeader length
/// can say are cut at 65,535 bytes. A nested header's own length is the caller's
/// to write ([`finish_nested`]).
pub fn encode(out: &mut BytesMut, h: &Header) {
    out.put_u16(h.kind.magic());
    out.put_u16(h.flags);
    out.put_u32(h.seqid);
    let size_at = out.len();
    out.put_u16(0);
    let start = out.len();
    let proto = match h.protocol {
        Protocol::Binary => 0u8,
        Protocol::Compact => 2,
    };
    fn short(s: &str) -> &[u8] {
        &s.as_bytes()[..s.len().min(u16::MAX as usize)]
    }
    match h.kind {
        HeaderKind::TTHeader => {
            out.put_u8(proto);
            out.put_u8(0);
            if !h.strings.is_empty() {
                out.put_u8(0x01);
                out.put_u16(h.strings.len().min(u16::MAX as usize) as u16);
                for (k, v) in h.strings.iter().take(u16::MAX as usize) {
                    for s in [short(k), short(v)] {
                        out.put_u16(s.len() as u16);
                        out.put_slice(s);
                    }
                }
            }
            if !h.ints.is_empty() {
                out.put_u8(0x10);
                out.put_u16(h.ints.len().min(u16::MAX as usize) as u16);
                for (k, v) in h.ints.iter().take(u16::MAX as usize) {
                    out.put_u16(*k);
                    let v = short(v);
                    out.put_u16(v.len() as u16);
                    out.put_slice(v);
                }
            }
        }
        HeaderKind::THeader => {
            out.put_u8(proto);
            if h.zlib {
                out.put_slice(&[1, 1]);
            } else {
                out.put_u8(0);
            }
            for (id, pairs) in [(1, &h.strings), (2, &h.persistent)] {
                if pairs.is_empty() {
                    continue;
                }
                out.put_u8(id);
                put_varint(out, pairs.len());
                for (k, v) in pairs {
                    for s in [k, v] {
                        put_varint(out, s.len());
                        out.put_slice(s.as_bytes());
                    }
                }
            }
        }
    }
    let pad = (4 - (out.len() - start) % 4) % 4;
    out.put_bytes(0, pad);
    let words = ((out.len() - start) / 4).min(u16::MAX as usize) as u16;
    out[size_at..size_at + 2].copy_from_slice(&words.to_be_bytes());
}

/// The most a zlib payload may inflate to, as a multiple of its own size (past
/// [`INFLATE_FLOOR`]): a few KiB of zlib can claim gigabytes, and the memory a
/// connection makes a server hold stays within a multiple of what it sent.
pub const INFLATE_RATIO: usize = 128;

/// What any zlib payload may inflate to, whatever its ratio.
pub const INFLATE_FLOOR: usize = 64 * 1024;

/// Inflates the payload of a header with the zlib transform. One that is not zlib,
/// or would inflate past `max` bytes or past [`INFLATE_RATIO`] times its size (if
/// that is more than [`INFLATE_FLOOR`]), is an error; no more than that limit plus
/// one byte is ever inflated.
pub fn inflate(payload: &[u8], max: usize) -> Result<Bytes, ProtocolError> {
    let by_ratio = payload
        .len()
        .saturating_mul(INFLATE_RATIO)
        .max(INFLATE_FLOOR);
    let limit = max.min(by_ratio);
    let mut out = Vec::new();
    let mut z = flate2::read::ZlibDecoder::new(payload).take(limit as u64 + 1);
    z.read_to_end(&mut out)
        .map_err(|e| bad(format!("the THeader zlib payload does not inflate: {e}")))?;
    if out.len() > limit {
        let why = if limit == max {
            format!("past the maximum message size of {max} bytes")
        } else {
            format!(
                "to more than {INFLATE_RATIO} times its {} bytes (send it without the transform)",
                payload.len()
            )
        };
        return Err(ProtocolError::new(
            ProtocolErrorKind::SizeLimit,
            format!("the THeader zlib payload inflates {why}"),
        ));
    }
    Ok(out.into())
}

/// The first (at most `n`) bytes a zlib payload inflates to, for a payload that may
/// be cut short (a refused request's first bytes): enough to read its message
/// header from. What does not inflate ends the bytes given.
pub fn inflate_head(payload: &[u8], n: usize) -> Bytes {
    let mut out = Vec::with_capacity(n);
    // An error (bad zlib) leaves what inflated before it, which is all there is.
    let _ = flate2::Decompress::new(true).decompress_vec(
        payload,
        &mut out,
        flate2::FlushDecompress::None,
    );
    out.into()
}

/// Replaces `out[at..]` (a payload) with its zlib compression: the zlib transform.
pub fn deflate_tail(out: &mut BytesMut, at: usize) {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let packed = z
        .write_all(&out[at..])
        .and_then(|()| z.finish())
        .expect("compressing into memory cannot fail");
    out.truncate(at);
    out.extend_from_slice(&packed);
}

/// Fills in the inner length of a nested header frame begun at `at` (where 4 bytes
/// were reserved) now that its payload is written.
pub fn finish_nested(out: &mut BytesMut, at: usize) {
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// The message type of a reply payload (binary `80 01 00 TT`, compact `82 TV`), as
/// TTHeader's MsgType wants it.
pub fn message_type(payload: &[u8]) -> Option<u8> {
    match payload {
        [0x80, 0x01, _, t, ..] => Some(*t),
        [0x82, tv, ..] => Some(tv >> 5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeaderLimits = HeaderLimits {
        entries: 64,
        item: 4096,
    };

    fn frame(h: &Header, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        if h.nested {
            out.put_u32(0);
        }
        encode(&mut out, h);
        if h.framed_payload {
            out.put_u32(payload.len() as u32);
        }
        out.put_slice(payload);
        if h.nested {
            finish_nested(&mut out, 0);
        }
        out.freeze()
    }

    #[test]
    fn the_zlib_transform_round_trips_and_inflates_within_its_limit() {
        let mut h = Header::new(HeaderKind::THeader, 3, Protocol::Binary);
        h.zlib = true;
        let message = [0x80, 0x01, 0x00, 0x01, 0, 0, 0, 4, b'e', b'c', b'h', b'o'].repeat(50);
        let mut packed = BytesMut::from(&message[..]);
        deflate_tail(&mut packed, 0);
        assert!(packed.len() < message.len() / 4, "{} bytes", packed.len());
        let f = frame(&h, &packed);
        // Transforms: 1 of them, zlib (1); as Apache's Python writes them.
        assert_eq!(&f[10..13], &[0, 1, 1]);
        let (back, payload) = decode(&f, &LIMITS).unwrap();
        assert_eq!(back, h);
        assert_eq!(&inflate(&payload, 4096).unwrap()[..], &message[..]);
        // A bomb: 16 MiB of zeros in some 16 KiB, against a 1 MiB limit.
        let mut bomb = BytesMut::zeroed(16 << 20);
        deflate_tail(&mut bomb, 0);
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let e = inflate(&bomb, 1 << 20).unwrap_err();
        assert_eq!(e.kind, ProtocolErrorKind::SizeLimit);
        assert!(e
            .message
            .contains("inflates past the maximum message size of 1048576 bytes"));
        // Within 32 MiB, but over the ratio.
        let e = inflate(&bomb, 32 << 20).unwrap_err();
        assert_eq!(e.kind, ProtocolErrorKind::SizeLimit);
        let want = format!("inflates to more than 128 times its {} bytes", bomb.len());
        assert!(e.message.contains(&want), "{}", e.message);
        // Under the floor any ratio goes: 60 KiB of zeros.
        let mut small = BytesMut::zeroed(60 << 10);
        deflate_tail(&mut small, 0);
        assert_eq!(inflate(&small, 32 << 20).unwrap().len(), 60 << 10);
        let e = inflate(&message, 1 << 20).unwrap_err();
        assert!(e.message.contains("does not inflate"), "{}", e.message);
    }

    #[test]
    fn the_head_of_a_cut_zlib_payload_inflates() {
        // 1 MiB that does not compress much, cut to its first quarter.
        let message: Vec<u8> = (0u32..1 << 18)
            .flat_map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes())
            .collect();
        let mut packed = BytesMut::from(&message[..]);
        deflate_tail(&mut packed, 0);
        let cut = &packed[..packed.len() / 4];
        assert_eq!(&inflate_head(cut, 4096)[..], &message[..4096]);
        let some = inflate_head(cut, 1 << 20);
        assert!(
            some.len() > 4096 && some.len() < message.len(),
            "{}",
            some.len()
        );
        assert_eq!(&some[..], &message[..some.len()]);
        // Not zlib: nothing.
        assert!(inflate_head(&message[..100], 4096).is_empty());
    }

    #[test]
    fn theader_persistent_pairs_are_kept_apart() {
        // As fbthrift writes them: protocol 0, no transforms, KEYVALUE (1) with
        // a=b, PKEYVALUE (2) with k=v, padding to a whole word; then the message.
        let info = [0, 0, 1, 1, 1, b'a', 1, b'b', 2, 1, 1, b'k', 1, b'v', 0, 0];
        let mut f = vec![0x0f, 0xff, 0, 0, 0, 0, 0, 9, 0, info.len() as u8 / 4];
        f.extend_from_slice(&info);
        f.extend_from_slice(&[0x80, 0x01, 0x00, 0x01, 0, 0, 0, 0]);
        let (h, payload) = decode(&Bytes::from(f), &LIMITS).unwrap();
        assert_eq!(h.strings, [("a".to_string(), "b".to_string())]);
        assert_eq!(h.persistent, [("k".to_string(), "v".to_string())]);
        assert_eq!(payload.len(), 8);
    }

    #[test]
    fn both_kinds_round_trip_with_their_pairs() {
        let msg = [0x80, 0x01, 0x00, 0x01, 0, 0, 0, 0];
        for kind in [HeaderKind::TTHeader, HeaderKind::THeader] {
            for (framed, nested) in [(false, false), (kind == HeaderKind::TTHeader, true)] {
                let mut h = Header::new(kind, 7, Protocol::Compact);
                h.flags = 1;
                h.framed_payload = framed;
                h.nested = nested;
                h.strings = vec![
                    ("RPC_TRANSIT_a".into(), "b".into()),
                    ("k".into(), "".into()),
                ];
                if kind == HeaderKind::TTHeader {
                    h.ints = vec![(int_key::FROM_SERVICE, "svc".into())];
                } else {
                    h.persistent = vec![("tenant".into(), "t1".into())];
                }
                let f = frame(&h, &msg);
                let extra = usize::from(framed) * 4 + usize::from(nested) * 4;
                assert_eq!((f.len() - msg.len() - extra) % 4, 2, "{kind:?}");
                let (back, payload) = decode(&f, &LIMITS).unwrap();
                assert_eq!(back, h);
                assert_eq!(&payload[..], &msg[..]);
            }
        }
    }

    #[test]
    fn volo_bytes_decode() {
        // A Volo client's request header, as its encoder writes it: protocol 0, no
        // transforms, int pairs WithHeader "3" and FromService "c", padding.
        let mut f = vec![0x10, 0x00, 0, 0, 0, 0, 0, 5, 0, 4];
        f.extend_from_slice(&[0, 0, 0x10, 0, 2, 0, 16, 0, 1, b'3', 0, 3, 0, 1, b'c', 0]);
        f.extend_from_slice(&[0x80, 0x01, 0x00, 0x01]);
        let (h, payload) = decode(&Bytes::from(f), &LIMITS).unwrap();
        assert_eq!(h.seqid, 5);
        assert_eq!(h.int(int_key::FROM_SERVICE), Some("c"));
        assert_eq!(h.int(int_key::WITH_HEADER), Some("3"));
        assert_eq!(&payload[..], &[0x80, 0x01, 0x00, 0x01]);
    }

    #[test]
    fn hostile_headers_are_errors() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x10, 0x00, 0, 0], "past the header's end"),
            (
                &[0x10, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff],
                "past the header's end",
            ),
            (
                &[0x10, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 4, 0, 0, 0],
                "protocol id 4",
            ),
            (
                &[0x10, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 0],
                "transform 1 (zlib)",
            ),
            (
                &[0x0f, 0xff, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 5, 0],
                "transform 5 (zstd)",
            ),
            (
                &[0x0f, 0xff, 0, 0, 0, 0, 0, 1, 0, 1, 0, 2, 1, 1],
                "transform 1 (zlib) then 1 (zlib) is not supported",
            ),
            (
                &[0x10, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0x42, 0],
                "info id 0x42",
            ),
            (
                &[0x10, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0xff],
                "past the header's end",
            ),
            (
                &[
                    0x0f, 0xff, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f,
                ],
                "more than 64 pairs",
            ),
            (
                &[0x10, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 9, 9],
                "neither a message",
            ),
            (
                &[0, 0, 0, 9, 0x10, 0x00, 0, 0, 0, 0, 0, 0, 0, 0],
                "does not fill it",
            ),
        ];
        for (bytes, words) in cases {
            let e = decode(&Bytes::copy_from_slice(bytes), &LIMITS).unwrap_err();
            assert!(e.message.contains(words), "{bytes:02x?}: {}", e.message);
        }
    }

    #[test]
    fn reply_message_types_are_read_from_either_protocol() {
        assert_eq!(message_type(&[0x80, 0x01, 0x00, 0x03]), Some(3));
        assert_eq!(message_type(&[0x82, 0x41]), Some(2));
        assert_eq!(message_type(&[0x00]), None);
    }
}

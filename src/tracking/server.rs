//! The server's side of tracking: the handshake, request headers in, response
//! headers out.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{negotiate, UpgradeArgs, UpgradeReply, HANDSHAKE_METHOD};
use crate::protocol::{
    Decode, Encode, MessageType, ProtocolError, ProtocolReader, ProtocolWriter, TType, Text,
};

/// What a peer may put in tracking fields. Larger values are refused with a clear
/// error: a handshake closes its connection, a call gets a `TApplicationException`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the caller's app id.
    pub caller: usize,
    /// Bytes of a request id or rpc id.
    pub id: usize,
    /// Entries of a request header's meta.
    pub meta_entries: usize,
    /// Bytes of one meta key or value.
    pub meta_item: usize,
}

impl Default for Limits {
    /// 256-byte ids, 64 meta entries of at most 4 KiB each.
    fn default() -> Self {
        Limits {
            caller: 256,
            id: 256,
            meta_entries: 64,
            meta_item: 4096,
        }
    }
}

/// A connection's tracking state after its handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The negotiated version (1 or 2).
    pub version: i32,
    /// The caller's app id.
    pub caller: std::sync::Arc<str>,
}

/// Answers a handshake whose message header has been read (`seqid` is its seqid):
/// reads [`UpgradeArgs`] from `r`, writes the bare [`UpgradeReply`] to `w`. A
/// caller id over the limit is an error: the connection should close.
pub fn answer_handshake<R: ProtocolReader, W: ProtocolWriter>(
    r: &mut R,
    w: &mut W,
    seqid: i32,
    limits: &Limits,
) -> Result<Handshake, ProtocolError> {
    let args = UpgradeArgs::decode(r)?;
    let caller = args.app_id.unwrap_or_default();
    if caller.len() > limits.caller {
        return Err(ProtocolError::new(
            crate::protocol::ProtocolErrorKind::SizeLimit,
            format!(
                "tracking handshake: a caller id of {} bytes exceeds the limit of {}",
                caller.len(),
                limits.caller
            ),
        ));
    }
    let (version, reply) = negotiate(args.version);
    w.write_message_begin(HANDSHAKE_METHOD, MessageType::Reply, seqid);
    UpgradeReply { version: reply }.encode(w);
    Ok(Handshake {
        version,
        caller: caller.into(),
    })
}

/// The fields of a request header as a server reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomingHeader {
    /// The request id ("" when absent).
    pub request_id: String,
    /// The rpc id ("" when absent).
    pub seq: String,
    /// The meta.
    pub meta: BTreeMap<String, String>,
    /// Set when the header holds more than the limits allow (it was read past, and
    /// the over-limit values dropped): the call should be refused with this reason.
    pub over_limits: Option<String>,
}

/// Reads a request header. An error means the bytes are not a header at all.
pub fn read_request_header<R: ProtocolReader>(
    r: &mut R,
    limits: &Limits,
) -> Result<IncomingHeader, ProtocolError> {
    let mut h = IncomingHeader::default();
    let over = &mut h.over_limits;
    let mark = r.read_struct_begin()?;
    loop {
        match r.read_field_begin()? {
            (TType::Stop, _) => break,
            (TType::String, 1) => h.request_id = bounded(r, limits.id, "request id", over)?.into(),
            (TType::String, 2) => h.seq = bounded(r, limits.id, "rpc id", over)?.into(),
            (TType::Map, 3) => {
                let meta = &mut h.meta;
                read_meta(r, meta.len(), limits, over, |k, v| insert_meta(meta, k, v))?;
            }
            (other, _) => r.skip(other)?,
        }
    }
    r.read_struct_end(mark);
    Ok(h)
}

/// Reads a header's meta map, handing each entry to `each` as it lies in the input
/// (not yet checked as UTF-8: see [`text`]), within `limits`: past them it is read
/// past and `over` says why. `taken` is how many entries the header's meta fields
/// before this one held (a header may repeat its meta field: the limit is on all of
/// them together). Returns this map's entries.
pub(super) fn read_meta<R: ProtocolReader>(
    r: &mut R,
    taken: usize,
    limits: &Limits,
    over: &mut Option<String>,
    mut each: impl FnMut(Bytes, Bytes) -> Result<(), ProtocolError>,
) -> Result<usize, ProtocolError> {
    let (k, v, n) = r.read_map_begin()?;
    // An empty map carries no element types in the compact protocol.
    let strings = n == 0 || (k == TType::String && v == TType::String);
    let n_all = taken + n;
    if n_all > limits.meta_entries || !strings {
        if over.is_none() {
            *over = Some(if strings {
                format!(
                    "the tracking header's meta has {n_all} entries; the limit is {}",
                    limits.meta_entries
                )
            } else {
                "the tracking header's meta is not a map<string, string>".into()
            });
        }
        for _ in 0..n {
            r.skip(k)?;
            r.skip(v)?;
        }
        return Ok(n);
    }
    for _ in 0..n {
        let key = bounded_raw(r, limits.meta_item, "meta key", over)?;
        let value = bounded_raw(r, limits.meta_item, "meta value", over)?;
        if over.is_none() {
            each(key, value)?;
        }
    }
    Ok(n)
}

/// The bytes of a string of at most `limit` bytes, as they lie in the input (no
/// copy); a longer one is noted in `over` and read as empty.
fn bounded_raw<R: ProtocolReader>(
    r: &mut R,
    limit: usize,
    what: &str,
    over: &mut Option<String>,
) -> Result<Bytes, ProtocolError> {
    let raw = r.read_binary()?;
    if raw.len() > limit {
        if over.is_none() {
            *over = Some(format!(
                "a tracking {what} of {} bytes exceeds the limit of {limit}",
                raw.len()
            ));
        }
        return Ok(Bytes::new());
    }
    Ok(raw)
}

/// A string of at most `limit` bytes, checked as UTF-8 ([`bounded_raw`]).
fn bounded<R: ProtocolReader>(
    r: &mut R,
    limit: usize,
    what: &str,
    over: &mut Option<String>,
) -> Result<Text, ProtocolError> {
    text(bounded_raw(r, limit, what, over)?, what)
}

/// A tracking field's bytes (a `what`) checked as UTF-8.
fn text(raw: Bytes, what: &str) -> Result<Text, ProtocolError> {
    Text::from_utf8(raw).map_err(|_| {
        ProtocolError::new(
            crate::protocol::ProtocolErrorKind::InvalidData,
            format!("a tracking {what} is not UTF-8"),
        )
    })
}

/// Takes a meta entry read by [`read_meta`] into `meta`, checked as UTF-8.
pub(super) fn insert_meta(
    meta: &mut BTreeMap<String, String>,
    key: Bytes,
    value: Bytes,
) -> Result<(), ProtocolError> {
    meta.insert(
        text(key, "meta key")?.into(),
        text(value, "meta value")?.into(),
    );
    Ok(())
}

/// Writes the version-2 `ResponseHeader {1: map<string, string> meta}` (meta omitted
/// when empty, as thriftpy2 does).
pub fn write_response_header<W: ProtocolWriter>(w: &mut W, meta: &BTreeMap<String, String>) {
    let mark = w.write_struct_begin();
    if !meta.is_empty() {
        w.write_field_begin(TType::Map, 1);
        w.write_map_begin(TType::String, TType::String, meta.len());
        for (k, v) in meta {
            w.write_string(k);
            w.write_string(v);
        }
    }
    w.write_struct_end(mark);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BinaryReader, BinaryWriter};
    use crate::tracking::RequestHeader;

    fn header(entries: usize, value: usize) -> bytes::Bytes {
        let mut buf = bytes::BytesMut::new();
        RequestHeader {
            request_id: Some("r".into()),
            seq: Some("1.2".into()),
            meta: Some(
                (0..entries)
                    .map(|i| (format!("k{i}"), "v".repeat(value)))
                    .collect(),
            ),
        }
        .encode(&mut BinaryWriter::new(&mut buf));
        buf.freeze()
    }

    #[test]
    fn request_headers_within_limits_are_read_whole() {
        let mut r = BinaryReader::new(header(2, 3));
        let h = read_request_header(&mut r, &Limits::default()).unwrap();
        assert_eq!(h.over_limits, None);
        assert_eq!((h.request_id.as_str(), h.seq.as_str()), ("r", "1.2"));
        assert_eq!(h.meta.len(), 2);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn oversized_meta_is_skipped_and_reported() {
        let limits = Limits::default();
        for (entries, value, what) in [(65, 1, "65 entries"), (1, 4097, "meta value of 4097")] {
            let mut r = BinaryReader::new(header(entries, value));
            let h = read_request_header(&mut r, &limits).unwrap();
            let over = h.over_limits;
            assert!(
                over.as_deref().is_some_and(|m| m.contains(what)),
                "{over:?}"
            );
            assert!(h.meta.is_empty());
            assert_eq!(r.remaining(), 0, "the whole header is consumed");
        }
    }

    #[test]
    fn a_repeated_meta_field_counts_against_one_limit() {
        // Found by the `tracking` fuzz target: each map within the limit, together over.
        let mut buf = bytes::BytesMut::new();
        let w = &mut BinaryWriter::new(&mut buf);
        let mark = w.write_struct_begin();
        for part in 0..2 {
            w.write_field_begin(TType::Map, 3);
            w.write_map_begin(TType::String, TType::String, 40);
            for i in 0..40 {
                w.write_string(&format!("k{part}.{i}"));
                w.write_string("v");
            }
        }
        w.write_struct_end(mark);
        let mut r = BinaryReader::new(buf.freeze());
        let h = read_request_header(&mut r, &Limits::default()).unwrap();
        let over = h.over_limits.as_deref();
        assert!(over.is_some_and(|m| m.contains("80 entries")), "{over:?}");
        assert!(h.meta.len() <= Limits::default().meta_entries);
        assert_eq!(r.remaining(), 0, "the whole header is consumed");
    }

    /// Meta whose one entry is `key` → `value`, as a request header's field 3 or a
    /// response header's field 1.
    fn meta_header(field: i16, key: &[u8], value: &[u8]) -> bytes::Bytes {
        let mut buf = bytes::BytesMut::new();
        let w = &mut BinaryWriter::new(&mut buf);
        let mark = w.write_struct_begin();
        w.write_field_begin(TType::Map, field);
        w.write_map_begin(TType::String, TType::String, 1);
        w.write_binary(key);
        w.write_binary(value);
        w.write_struct_end(mark);
        buf.freeze()
    }

    #[test]
    fn meta_that_is_not_utf8_is_an_error_where_it_is_kept() {
        let bad = meta_header(3, b"k", b"\xff");
        let e = read_request_header(&mut BinaryReader::new(bad), &Limits::default()).unwrap_err();
        assert!(
            e.message.contains("a tracking meta value is not UTF-8"),
            "{e}"
        );
        // A client keeps a reply's meta only for a call with a context; without
        // one it reads it past, noting only whether the server drains.
        let read = |key: &[u8], keep| {
            let h = meta_header(1, key, b"1");
            crate::tracking::read_response_header(&mut BinaryReader::new(h), keep)
        };
        let e = read(b"\xfe", true).unwrap_err();
        assert!(
            e.message.contains("a tracking meta key is not UTF-8"),
            "{e}"
        );
        let passed = read(b"\xfe", false).unwrap();
        assert_eq!((passed.meta, passed.draining), (None, false));
        let draining = crate::tracking::DRAINING_META.as_bytes();
        for keep in [false, true] {
            let h = read(draining, keep).unwrap();
            assert!(h.draining, "kept: {keep}");
            assert_eq!(h.meta.is_some(), keep);
        }
    }
}

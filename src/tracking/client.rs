//! The client's side of tracking: the handshake offer and request headers written
//! straight from borrowed values.

use std::collections::BTreeMap;

use super::server::{insert_meta, read_meta, Limits};
use super::{UpgradeArgs, UpgradeReply, CURRENT_VERSION};
use super::{DRAINING_META, TIMEOUT_META};
use crate::protocol::{ProtocolError, ProtocolErrorKind, ProtocolReader, ProtocolWriter, TType};

/// The handshake's arguments: this caller's app id, version 2 offered.
pub fn upgrade_args(app_id: &str) -> UpgradeArgs {
    UpgradeArgs {
        app_id: Some(app_id.to_string()),
        version: Some(CURRENT_VERSION),
    }
}

/// The connection's version from the server's reply (1 when it sent none).
pub fn accepted_version(reply: &UpgradeReply) -> i32 {
    reply.version.map_or(1, |v| v.clamp(1, CURRENT_VERSION))
}

/// The fields of one request header, borrowed from the call's context.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutgoingHeader<'a> {
    /// The request id (omitted when `None`, as in a health-check ping).
    pub request_id: Option<&'a str>,
    /// The rpc id.
    pub seq: Option<&'a str>,
    /// The meta to pass on.
    pub meta: Option<&'a BTreeMap<String, String>>,
    /// The remaining time budget, sent as meta [`TIMEOUT_META`] in place of any
    /// inherited one.
    pub budget_ms: Option<u64>,
}

/// Writes `RequestHeader {1: request_id, 2: seq, 3: meta}` with the meta in key
/// order and the budget in its place among them: the bytes thriftpy2 writes for the
/// same values, without building a header value per call.
pub fn write_request_header<W: ProtocolWriter>(w: &mut W, h: &OutgoingHeader<'_>) {
    let mark = w.write_struct_begin();
    if let Some(id) = h.request_id {
        w.write_field_begin(TType::String, 1);
        w.write_string(id);
    }
    if let Some(seq) = h.seq {
        w.write_field_begin(TType::String, 2);
        w.write_string(seq);
    }
    let empty = BTreeMap::new();
    let meta = h.meta.unwrap_or(&empty);
    if h.meta.is_some() || h.budget_ms.is_some() {
        let mut digits = itoa::Buffer::new();
        let budget = h.budget_ms.map(|ms| digits.format(ms));
        let inherited = meta.contains_key(TIMEOUT_META);
        let len = meta.len() + usize::from(budget.is_some() && !inherited);
        w.write_field_begin(TType::Map, 3);
        w.write_map_begin(TType::String, TType::String, len);
        let mut pending = budget;
        for (k, v) in meta {
            if let Some(b) = pending.filter(|_| k.as_str() >= TIMEOUT_META) {
                w.write_string(TIMEOUT_META);
                w.write_string(b);
                pending = None;
                if k == TIMEOUT_META {
                    continue;
                }
            }
            if budget.is_some() && k == TIMEOUT_META {
                continue;
            }
            w.write_string(k);
            w.write_string(v);
        }
        if let Some(b) = pending {
            w.write_string(TIMEOUT_META);
            w.write_string(b);
        }
    }
    w.write_struct_end(mark);
}

/// What a client takes from a version-2 response header.
#[derive(Debug, Default)]
pub struct ResponseMeta {
    /// The header's meta, when kept and not empty.
    pub meta: Option<BTreeMap<String, String>>,
    /// Whether the server said it closes the connection after this reply
    /// ([`DRAINING_META`]).
    pub draining: bool,
}

/// Reads a version-2 `ResponseHeader {1: meta}` within the limits a server holds
/// request headers to (64 entries of at most 4 KiB), keeping its meta only when
/// `keep` (a call whose caller has a context to put it in; a kept key or value that
/// is not UTF-8 is an error): otherwise it is read past as a skipped field is, each
/// entry looked at where it lies for [`DRAINING_META`] alone. A header over the
/// limits is an error for that call either way: a reply of a few megabytes of tiny
/// entries would otherwise take some ten times its size in memory.
pub fn read_response_header<R: ProtocolReader>(
    r: &mut R,
    keep: bool,
) -> Result<ResponseMeta, ProtocolError> {
    let (limits, mut over) = (Limits::default(), None);
    let (mut head, mut taken) = (ResponseMeta::default(), 0);
    let mark = r.read_struct_begin()?;
    loop {
        match r.read_field_begin()? {
            (TType::Stop, _) => break,
            (TType::Map, 1) => {
                let (meta, draining) = (&mut head.meta, &mut head.draining);
                taken += read_meta(r, taken, &limits, &mut over, |k, v| {
                    *draining |= k == DRAINING_META.as_bytes();
                    match keep {
                        true => insert_meta(meta.get_or_insert_with(BTreeMap::new), k, v),
                        false => Ok(()),
                    }
                })?;
            }
            (other, _) => r.skip(other)?,
        }
    }
    r.read_struct_end(mark);
    match over {
        None => Ok(head),
        Some(why) => Err(ProtocolError::new(
            ProtocolErrorKind::SizeLimit,
            format!("the reply's tracking header is over the limits: {why}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BinaryWriter, Encode};
    use crate::tracking::RequestHeader;

    fn bytes_of(f: impl FnOnce(&mut BinaryWriter<'_, bytes::BytesMut>)) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        f(&mut BinaryWriter::new(&mut buf));
        buf.to_vec()
    }

    #[test]
    fn headers_written_in_place_equal_the_generated_encoding() {
        let meta: BTreeMap<String, String> = [("a", "1"), ("ringsoa.timeout_ms", "9"), ("z", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (meta, budget) in [
            (meta.clone(), Some(250)),
            (meta.clone(), None),
            (BTreeMap::new(), Some(7)),
            (BTreeMap::new(), None),
            (
                [("b".to_string(), "x".to_string())].into_iter().collect(),
                Some(1_000_000),
            ),
        ] {
            let mut expected_meta = meta.clone();
            if let Some(b) = budget {
                expected_meta.insert(TIMEOUT_META.into(), b.to_string());
            }
            let expected = bytes_of(|w| {
                RequestHeader {
                    request_id: Some("id".into()),
                    seq: Some("1.1".into()),
                    meta: Some(expected_meta),
                }
                .encode(w)
            });
            let got = bytes_of(|w| {
                write_request_header(
                    w,
                    &OutgoingHeader {
                        request_id: Some("id"),
                        seq: Some("1.1"),
                        meta: Some(&meta),
                        budget_ms: budget,
                    },
                )
            });
            assert_eq!(got, expected, "{meta:?} {budget:?}");
        }
        let empty = bytes_of(|w| write_request_header(w, &OutgoingHeader::default()));
        assert_eq!(empty, [0]);
    }
}

//! Calls that came in a header transport (TTHeader, THeader): the request header's
//! values become the call's context, and the reply goes back in the same header
//! (same kind, flags, sequence id, protocol and payload framing).

use std::collections::BTreeMap;

use bytes::{BufMut, BytesMut};

use crate::protocol::{ProtocolError, ProtocolErrorKind};
use crate::rpc::context::TIMEOUT_META;
use crate::rpc::CallContext;
use crate::tracking::server::Limits;
use crate::transport::conn::MessageConn;
use crate::transport::framed;
use crate::transport::header::{self, int_key, Header, HeaderKind, HeaderLimits, THEADER_TIMEOUT};

/// The limits of a request header's pairs: the tracking meta's, plus room for
/// TTHeader's int keys.
pub fn limits(l: &Limits) -> HeaderLimits {
    HeaderLimits {
        entries: l.meta_entries + 32,
        item: l.meta_item,
    }
}

/// Keeps a THeader request's persistent (PKEYVALUE) pairs in `kept`, the
/// connection's (a key sent again takes its new value), and adds each kept pair
/// the request does not set itself to the request's pairs, as fbthrift's THeader
/// does: a client sends such a pair once, and it counts for every later call on
/// the connection. More than `limit` kept ends the connection.
pub fn persist(
    kept: &mut Vec<(String, String)>,
    h: &mut Header,
    limit: usize,
) -> Result<(), ProtocolError> {
    for (key, value) in h.persistent.drain(..) {
        if let Some(i) = kept.iter().position(|(k, _)| *k == key) {
            kept[i].1 = value;
        } else if kept.len() < limit {
            kept.push((key, value));
        } else {
            return Err(ProtocolError::new(
                ProtocolErrorKind::SizeLimit,
                format!("THeader persistent pairs: more than {limit} on one connection"),
            ));
        }
    }
    for (key, value) in kept.iter() {
        if !h.strings.iter().any(|(k, _)| k == key) {
            h.strings.push((key.clone(), value.clone()));
        }
    }
    Ok(())
}

/// Puts the header's values into `cx`: the caller (TTHeader's FromService,
/// THeader's `client_id`) when within the caller limit, the timeout (TTHeader's
/// RPCTimeout, THeader's `client_timeout`, in ms) as [`TIMEOUT_META`], and every
/// string pair as meta.
pub fn seed(cx: &mut CallContext, h: &Header, limits: &Limits) {
    let (caller, timeout) = match h.kind {
        HeaderKind::TTHeader => (h.int(int_key::FROM_SERVICE), h.int(int_key::RPC_TIMEOUT)),
        HeaderKind::THeader => (h.string("client_id"), h.string(THEADER_TIMEOUT)),
    };
    if let Some(c) = caller.filter(|c| c.len() <= limits.caller) {
        cx.caller = c.into();
    }
    cx.meta = h.strings.iter().cloned().collect();
    if let Some(ms) = timeout.filter(|t| t.parse::<u64>().is_ok()) {
        cx.meta.insert(TIMEOUT_META.into(), ms.into());
    }
}

/// Wraps the reply written since `mark` (a frame begun on `conn`) in the header
/// that answers `request`, with `meta` as its string pairs; a oneway call's empty
/// reply stays empty. The header is made apart and put in front of the payload in
/// place: the payload moves once within the write buffer, nothing else is copied.
/// A request with the zlib transform gets its reply compressed too, as fbthrift's
/// and Apache's Go servers answer.
pub fn wrap_reply(
    conn: &mut MessageConn,
    mark: usize,
    request: &Header,
    meta: &BTreeMap<String, String>,
) {
    let out = conn.out();
    let at = mark + framed::HEADER_LEN;
    if out.len() <= at {
        return;
    }
    let mut reply = Header {
        flags: request.flags,
        framed_payload: request.framed_payload,
        nested: request.nested,
        strings: meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        zlib: request.zlib,
        ..Header::new(request.kind, request.seqid, request.protocol)
    };
    if request.kind == HeaderKind::TTHeader {
        if let Some(t) = header::message_type(&out[at..]) {
            reply.ints.push((int_key::MSG_TYPE, t.to_string()));
        }
    }
    if reply.zlib {
        header::deflate_tail(out, at);
    }
    let payload_len = out.len() - at;
    let mut head = BytesMut::new();
    if reply.nested {
        head.put_u32(0);
    }
    header::encode(&mut head, &reply);
    if reply.framed_payload {
        head.put_u32(payload_len as u32);
    }
    if reply.nested {
        let inner = (head.len() - 4 + payload_len) as u32;
        head[..4].copy_from_slice(&inner.to_be_bytes());
    }
    out.resize(out.len() + head.len(), 0);
    out.copy_within(at..at + payload_len, at + head.len());
    out[at..at + head.len()].copy_from_slice(&head);
}

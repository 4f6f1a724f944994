//! Calls that came in a header transport (TTHeader, THeader): the request header's
//! values become the call's context, and the reply goes back in the same header
//! (same kind, flags, sequence id, protocol and payload framing).

use std::collections::BTreeMap;

use bytes::BufMut;

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
/// reply stays empty. The payload is copied once, behind the header.
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
    let payload = out.split_off(at);
    let mut reply = Header {
        strings: meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ..Header::new(request.kind, request.seqid, request.protocol)
    };
    reply.flags = request.flags;
    reply.framed_payload = request.framed_payload;
    if request.kind == HeaderKind::TTHeader {
        if let Some(t) = header::message_type(&payload) {
            reply.ints.push((int_key::MSG_TYPE, t.to_string()));
        }
    }
    reply.nested = request.nested;
    if reply.nested {
        out.put_u32(0);
    }
    header::encode(out, &reply);
    if reply.framed_payload {
        out.put_u32(payload.len() as u32);
    }
    out.extend_from_slice(&payload);
    if reply.nested {
        header::finish_nested(out, at);
    }
}

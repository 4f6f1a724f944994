//! A call's header when the connection speaks a header transport: what Volo and
//! Kitex clients put in TTHeader, and fbthrift's and Apache's in THeader.

use crate::protocol::Protocol;
use crate::rpc::context::TIMEOUT_META;
use crate::transport::header::{int_key, Header, HeaderKind, HeaderLimits, THEADER_TIMEOUT};

use super::conn::Call;

/// Limits on a reply header's pairs.
pub const REPLY_LIMITS: HeaderLimits = HeaderLimits {
    entries: 256,
    item: 64 * 1024,
};

/// The request header of `call`: the caller's app id, the method (without a
/// multiplexing prefix), the remaining time in ms, and the context's meta.
pub fn request(
    kind: HeaderKind,
    seqid: i32,
    protocol: Protocol,
    app_id: &str,
    call: &Call<'_>,
) -> Header {
    let mut h = Header::new(kind, seqid as u32, protocol);
    let method = call.method.split_once(':').map_or(call.method, |(_, m)| m);
    let budget = call.header.budget_ms.map(|ms| ms.to_string());
    let meta = call
        .header
        .meta
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != TIMEOUT_META)
        .map(|(k, v)| (k.clone(), v.clone()));
    match kind {
        HeaderKind::TTHeader => {
            h.ints.push((int_key::WITH_HEADER, "3".into()));
            h.ints.push((int_key::FROM_SERVICE, app_id.into()));
            h.ints.push((int_key::TO_METHOD, method.into()));
            if let Some(ms) = budget {
                h.ints.push((int_key::RPC_TIMEOUT, ms));
            }
            h.strings.extend(meta);
        }
        HeaderKind::THeader => {
            h.strings.push(("client_id".into(), app_id.into()));
            if let Some(ms) = budget {
                h.strings.push((THEADER_TIMEOUT.into(), ms));
            }
            h.strings.extend(meta);
        }
    }
    h
}

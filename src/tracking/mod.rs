//! The Eleme tracking extension (thriftpy2 `contrib/tracking`), both sides.
//!
//! On a new connection a tracked client calls [`HANDSHAKE_METHOD`] (seqid 0) with
//! [`UpgradeArgs`]; the server replies with a bare [`UpgradeReply`] as the REPLY body
//! (no `_result` wrapper, no response header), carrying a version only if the client
//! sent one. From then on, at version ≥ 1 the client writes a bare [`RequestHeader`]
//! before every CALL or ONEWAY message, and at version 2 the server writes a bare
//! [`ResponseHeader`] before every reply, EXCEPTION replies included (the Python
//! server forgets it there). A server without the method answers UNKNOWN_METHOD and
//! the client goes on natively. State is per connection. The structs are generated
//! by ringsoa's own code generator from `src/tracking/tracking.thrift`.
//!
//! Both sides live here: [`server`] answers the handshake (a connection's first
//! message), reads request headers into the call context and writes response
//! headers; [`client`] offers the handshake and writes request headers straight
//! from the call context (no per-call header value to build). What a peer may put
//! in these fields is bounded ([`Limits`]).

mod generated {
    ringsoa::include_idl!("ringsoa_tracking.rs");
}

pub mod client;
pub mod server;

pub use client::{read_response_header, write_request_header, OutgoingHeader, ResponseMeta};
pub use server::{write_response_header, Limits};

pub use generated::tracking::{RequestHeader, ResponseHeader, UpgradeArgs, UpgradeReply};

/// The handshake method's name (the `v2` is a header-format generation, not the
/// protocol version).
pub const HANDSHAKE_METHOD: &str = "__thriftpy_tracing_method_name__v2";

/// The request-meta key that carries the caller's remaining time budget, in whole
/// milliseconds, when the request was sent. A relative budget, not a wall-clock
/// deadline, so hosts need not share a clock. ringsoa clients set it on every tracked
/// call and ringsoa servers shorten the call's timeout to it.
pub const TIMEOUT_META: &str = "ringsoa.timeout_ms";

/// The response-meta key a draining ringsoa server sets (value `1`) on the replies
/// of tracked connections it closes right after the reply, so that a ringsoa client
/// does not pool the connection (nor the node's other idle ones) in the moment
/// before the close arrives.
pub const DRAINING_META: &str = "ringsoa.draining";

/// The highest tracking version ringsoa speaks: request and response headers.
pub const CURRENT_VERSION: i32 = 2;

/// The server's side of the handshake: from the version the client sent (if any),
/// the connection's version and the version to put in the reply.
///
/// ringsoa replies `min(client, server)` (clamped to at least 1, since a handshake is
/// an upgrade); the Python server replies its own CURRENT, which desyncs a client
/// that is older than the server.
pub fn negotiate(client: Option<i32>) -> (i32, Option<i32>) {
    match client {
        None => (1, None),
        Some(v) => {
            let v = v.clamp(1, CURRENT_VERSION);
            (v, Some(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_negotiate_down_never_up() {
        assert_eq!(negotiate(None), (1, None));
        assert_eq!(negotiate(Some(1)), (1, Some(1)));
        assert_eq!(negotiate(Some(2)), (2, Some(2)));
        assert_eq!(negotiate(Some(3)), (2, Some(2)));
        assert_eq!(negotiate(Some(0)), (1, Some(1)));
    }
}

//! What a server speaks, asked when it closed the connection on a call without a
//! reply (as thriftpy2's and Apache's servers do with a protocol or transport other
//! than theirs): a call of a method no service has is sent in each protocol and
//! transport, and only the server's own gets an answer (`UNKNOWN_METHOD`), which
//! executes nothing.

use std::time::Duration;

use ringsoa::client::{Client, ClientConfig, ConnOptions, Node, RetryOptions};
use ringsoa::protocol::{Encode, Protocol, ProtocolWriter};
use ringsoa::rpc::CallError;
use ringsoa::transport::header::HeaderKind;
use ringsoa::transport::Framing;

/// The method the probe calls: not a name an IDL can declare.
const METHOD: &str = "ringsoa.probe";

/// Each wire tried, in this order, with the `ringsoa call` flags that choose it.
const WIRES: [(Protocol, Framing, Option<HeaderKind>, &str); 6] = [
    (
        Protocol::Binary,
        Framing::Buffered,
        None,
        "--protocol binary --transport buffered",
    ),
    (
        Protocol::Binary,
        Framing::Framed,
        None,
        "--protocol binary --transport framed",
    ),
    (
        Protocol::Compact,
        Framing::Buffered,
        None,
        "--protocol compact --transport buffered",
    ),
    (
        Protocol::Compact,
        Framing::Framed,
        None,
        "--protocol compact --transport framed",
    ),
    (
        Protocol::Binary,
        Framing::Framed,
        Some(HeaderKind::TTHeader),
        "--transport ttheader",
    ),
    (
        Protocol::Binary,
        Framing::Framed,
        Some(HeaderKind::THeader),
        "--transport theader",
    ),
];

/// Whether `e` is a server closing (or resetting) the connection before it
/// replied, during the tracking handshake or the call.
pub fn closed_unanswered(e: &CallError) -> bool {
    let io = match e {
        CallError::Connect { source, .. } => source,
        CallError::Transport(io) => io,
        _ => return false,
    };
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        io.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// The flags of the first wire other than `tried`'s that the server at `node`
/// answers within `wait`, if any does.
pub async fn server_wire(node: Node, tried: &ConnOptions, wait: Duration) -> Option<&'static str> {
    for (protocol, framing, header, flags) in WIRES {
        if (protocol, framing, header) == (tried.protocol, tried.framing, tried.header) {
            continue;
        }
        let conn = ConnOptions {
            protocol,
            framing,
            header,
            header_in_frame: false,
            header_zlib: false,
            header_persistent: Vec::new(),
            tracking: false,
            connect_timeout: wait,
            call_timeout: wait,
            ..tried.clone()
        };
        let config = ClientConfig {
            conn,
            retry: RetryOptions {
                max_retries: 0,
                ..RetryOptions::default()
            },
            ..ClientConfig::default()
        };
        let client = Client::new(vec![node], config);
        match client.call_raw(None, METHOD, false, &NoArgs).await {
            Ok(_) | Err(CallError::Application(_)) => return Some(flags),
            Err(_) => {}
        }
    }
    None
}

/// An empty arguments struct.
struct NoArgs;

impl Encode for NoArgs {
    fn encode<W: ProtocolWriter>(&self, w: &mut W) {
        let mark = w.write_struct_begin();
        w.write_struct_end(mark);
    }
}

//! The server side of a generated service, and the reply helpers it shares with the
//! server (so that every reply begins the same way).

use crate::protocol::{
    ApplicationException, ApplicationExceptionKind, Encode, MessageHeader, MessageType,
    ProtocolError, ProtocolReader, ProtocolWriter, TType,
};

use super::CallContext;

/// What [`Dispatch::dispatch`] did with a call: which kind of reply it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    /// The method's result.
    Result,
    /// One of the method's declared exceptions (in the result struct).
    Declared,
    /// A `TApplicationException` of this kind: unknown method, bad arguments, or
    /// an application error the handler returned.
    Application(ApplicationExceptionKind),
    /// A oneway call ran; nothing was written.
    Oneway,
}

/// A service that serves calls: implemented by generated code for each IDL service.
///
/// Futures need not be `Send`: a service instance lives on one core.
#[allow(async_fn_in_trait)]
pub trait Dispatch {
    /// The service's name in the IDL.
    const NAME: &'static str;

    /// Whether this is a set of services ([`super::Multiplexed`]) that takes
    /// multiplexed names (`Service:method`) whole; a single service takes plain names.
    const MULTIPLEXED: bool = false;

    /// Whether calls prefixed `service` (`service:method`) are this one's.
    fn serves(&self, service: &[u8]) -> bool {
        service == Self::NAME.as_bytes()
    }

    /// Whether `method` (as a call names it on the wire) is one this service
    /// serves. A call of any other name is admitted, recorded, hooked and logged
    /// as [`UNKNOWN_METHOD`]: the names callers choose never become metric keys or
    /// breakers (see [`crate::metrics`]).
    fn knows(&self, method: &[u8]) -> bool;

    /// Serves the call whose header is `msg`: decodes its arguments from `r`, runs the
    /// handler, and writes the reply (with the response header when the context's
    /// tracking version asks for one) to `w`. Unknown methods and undecodable
    /// arguments get a `TApplicationException`; a returned error means the input
    /// could not even be skipped and the connection should close.
    async fn dispatch<R: ProtocolReader, W: ProtocolWriter>(
        &self,
        cx: &mut CallContext,
        msg: &MessageHeader,
        r: &mut R,
        w: &mut W,
    ) -> Result<Dispatched, ProtocolError>;
}

/// The name under which calls of methods the service does not have are admitted,
/// recorded, hooked and logged.
pub const UNKNOWN_METHOD: &str = "(unknown)";

/// Writes what precedes a reply: the version-2 tracking response header
/// ([`crate::tracking::write_response_header`]), then the message header.
pub fn begin_reply<W: ProtocolWriter>(
    cx: &CallContext,
    w: &mut W,
    name: &str,
    kind: MessageType,
    seqid: i32,
) {
    begin_reply_bytes(cx, w, name.as_bytes(), kind, seqid);
}

/// [`begin_reply`] for a method name as it came.
fn begin_reply_bytes<W: ProtocolWriter>(
    cx: &CallContext,
    w: &mut W,
    name: &[u8],
    kind: MessageType,
    seqid: i32,
) {
    if cx.version >= 2 {
        crate::tracking::write_response_header(w, &cx.response_meta);
    }
    w.write_message_begin_bytes(name, kind, seqid);
}

/// Writes a whole `TApplicationException` reply for the call `msg`.
pub fn write_exception<W: ProtocolWriter>(
    cx: &CallContext,
    w: &mut W,
    msg: &MessageHeader,
    exc: &ApplicationException,
) {
    begin_reply_bytes(cx, w, &msg.name, MessageType::Exception, msg.seqid);
    exc.encode(w);
}

/// Answers a call to a method the service lacks: skips its arguments and writes
/// UNKNOWN_METHOD (oneway calls get nothing).
pub fn unknown_method<R: ProtocolReader, W: ProtocolWriter>(
    cx: &CallContext,
    service: &str,
    msg: &MessageHeader,
    r: &mut R,
    w: &mut W,
) -> Result<Dispatched, ProtocolError> {
    r.skip(TType::Struct)?;
    if msg.kind == MessageType::Oneway {
        return Ok(Dispatched::Oneway);
    }
    let exc = ApplicationException::new(
        ApplicationExceptionKind::UnknownMethod,
        format!(
            "unknown method {} of service {service}",
            String::from_utf8_lossy(&msg.name)
        ),
    );
    write_exception(cx, w, msg, &exc);
    Ok(Dispatched::Application(exc.kind))
}

/// Answers a call whose arguments failed to decode with PROTOCOL_ERROR.
pub fn bad_arguments<W: ProtocolWriter>(
    cx: &CallContext,
    msg: &MessageHeader,
    w: &mut W,
    err: &ProtocolError,
) -> Dispatched {
    if msg.kind == MessageType::Oneway {
        return Dispatched::Oneway;
    }
    let exc = ApplicationException::new(
        ApplicationExceptionKind::ProtocolError,
        format!("bad arguments: {}", err.message),
    );
    write_exception(cx, w, msg, &exc);
    Dispatched::Application(exc.kind)
}

//! The server side of a generated service, and the reply helpers it shares with the
//! server (so the tracking response header is written in one place).

use crate::protocol::{
    ApplicationException, ApplicationExceptionKind, Encode, MessageHeader, MessageType,
    ProtocolError, ProtocolReader, ProtocolWriter, TType,
};

use super::CallContext;

/// What [`Dispatch::dispatch`] did with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    /// A reply (result or exception) was written.
    Replied,
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

/// Writes what precedes a reply: the version-2 tracking `ResponseHeader {1: map<string,
/// string> meta}` (meta omitted when empty, as thriftpy2 does), then the message header.
pub fn begin_reply<W: ProtocolWriter>(
    cx: &CallContext,
    w: &mut W,
    name: &str,
    kind: MessageType,
    seqid: i32,
) {
    if cx.version >= 2 {
        let mark = w.write_struct_begin();
        if !cx.response_meta.is_empty() {
            w.write_field_begin(TType::Map, 1);
            w.write_map_begin(TType::String, TType::String, cx.response_meta.len());
            for (k, v) in &cx.response_meta {
                w.write_string(k);
                w.write_string(v);
            }
        }
        w.write_struct_end(mark);
    }
    w.write_message_begin(name, kind, seqid);
}

/// Writes a whole `TApplicationException` reply for the call `msg`.
pub fn write_exception<W: ProtocolWriter>(
    cx: &CallContext,
    w: &mut W,
    msg: &MessageHeader,
    exc: &ApplicationException,
) {
    let name = String::from_utf8_lossy(&msg.name);
    begin_reply(cx, w, &name, MessageType::Exception, msg.seqid);
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
    Ok(Dispatched::Replied)
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
    Dispatched::Replied
}

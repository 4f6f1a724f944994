//! Whole calls: a method found by name, its CALL message from JSON, its reply to JSON.

use bytes::{Bytes, BytesMut};
use serde_json::Value as Json;

use crate::client::conn::reply_reader;
use crate::idl::model::{Function, Program, StructKind};
use crate::protocol::{with_codec, Codec, MessageType, Protocol, ProtocolReader, ProtocolWriter};
use crate::rpc::channel::check_reply;
use crate::rpc::CallError;

use super::{decode_fields, encode_fields, DynamicError};

/// A service method found in a program.
pub struct Method<'p> {
    /// The program it was found in.
    pub program: &'p Program,
    /// The service's name.
    pub service: String,
    /// The function (maybe inherited through `extends`).
    pub function: &'p Function,
}

/// Finds `Service.method` (or `module.Service.method`), inherited methods included.
pub fn method<'p>(program: &'p Program, name: &str) -> Result<Method<'p>, DynamicError> {
    let (service, func) = name.rsplit_once('.').ok_or_else(|| {
        DynamicError::NotFound(format!("`{name}` is not of the form Service.method"))
    })?;
    let id = program
        .find_service(service)
        .ok_or_else(|| DynamicError::NotFound(format!("no service `{service}` in the IDL")))?;
    let function = program
        .all_functions(id)
        .into_iter()
        .find(|f| f.name == func)
        .ok_or_else(|| {
            DynamicError::NotFound(format!("service `{service}` has no method `{func}`"))
        })?;
    Ok(Method {
        program,
        service: program.service(id).name.clone(),
        function,
    })
}

/// What a successful call brought back.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The result (`null` for void).
    Success(Json),
    /// A declared exception: the `throws` field's name and the exception as JSON.
    Declared {
        /// The field name in `throws (…)`.
        name: String,
        /// The exception.
        value: Json,
    },
}

/// Encodes a whole CALL (ONEWAY for oneway methods) message with `args` (an object
/// keyed by argument name), unframed.
pub fn encode_call(
    m: &Method,
    args: &Json,
    protocol: Protocol,
    seqid: i32,
) -> Result<Bytes, DynamicError> {
    fn write<W: ProtocolWriter>(
        m: &Method,
        args: &Json,
        seqid: i32,
        w: &mut W,
    ) -> Result<(), DynamicError> {
        let kind = if m.function.oneway {
            MessageType::Oneway
        } else {
            MessageType::Call
        };
        w.write_message_begin(&m.function.name, kind, seqid);
        encode_fields(m.program, &m.function.args, StructKind::Struct, args, w)
    }
    let mut buf = BytesMut::new();
    with_codec!(protocol, C => write(m, args, seqid, &mut C::writer(&mut buf))?);
    Ok(buf.freeze())
}

/// Decodes the reply message to call `seqid` of `m`, its containers held to
/// `max_decoded` bytes of memory ([`crate::client::ConnOptions::max_decoded`]). A
/// `TApplicationException` reply is `Err(DynamicError::Application)`.
pub fn decode_reply(
    m: &Method,
    bytes: Bytes,
    protocol: Protocol,
    seqid: i32,
    max_decoded: usize,
) -> Result<Reply, DynamicError> {
    fn read<R: ProtocolReader>(m: &Method, seqid: i32, mut r: R) -> Result<Reply, DynamicError> {
        check_reply(&mut r, &m.function.name, seqid).map_err(|e| match e {
            CallError::Application(a) => DynamicError::Application(a),
            CallError::Protocol(p) => DynamicError::Protocol(p),
            other => DynamicError::NotFound(other.to_string()),
        })?;
        let fields = m.function.result_fields();
        let Json::Object(mut obj) = decode_fields(m.program, &fields, &mut r)? else {
            unreachable!("decode_fields returns an object")
        };
        if let Some(v) = obj.remove("success") {
            return Ok(Reply::Success(v));
        }
        if let Some((name, value)) = obj.into_iter().next() {
            return Ok(Reply::Declared { name, value });
        }
        if m.function.returns.is_none() {
            return Ok(Reply::Success(Json::Null));
        }
        Err(crate::protocol::ApplicationException::new(
            crate::protocol::ApplicationExceptionKind::MissingResult,
            format!("{} returned no result", m.function.name),
        )
        .into())
    }
    with_codec!(protocol, C => read(m, seqid, reply_reader::<C>(bytes, max_decoded)))
}

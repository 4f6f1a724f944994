//! The client side of a generated service: a [`Channel`] carries one encoded call and
//! brings back its decoded result struct.

use bytes::BytesMut;

use crate::protocol::{
    with_codec, ApplicationException, ApplicationExceptionKind, Codec, Decode, Encode,
    MessageHeader, MessageType, Protocol, ProtocolError, ProtocolErrorKind, ProtocolReader,
    ProtocolWriter,
};

use super::{CallContext, CallError, Dispatch, Dispatched};

/// Carries calls to a service. Generated client stubs are generic over it; the
/// pooled, tracked TCP channel comes with the client.
#[allow(async_fn_in_trait)]
pub trait Channel {
    /// Sends `args` as a CALL of `method` and decodes the reply's result struct `T`.
    async fn call<A: Encode, T: Decode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<T, CallError>;

    /// Sends `args` as a ONEWAY call of `method`; nothing comes back.
    async fn oneway<A: Encode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<(), CallError>;
}

/// Checks a reply header against its call and reads an EXCEPTION reply's body. Names
/// are compared without a multiplexing prefix (`Service:method`): Apache's
/// multiplexing servers answer such a call as plain `method`.
pub fn check_reply<R: ProtocolReader>(
    r: &mut R,
    method: &str,
    seqid: i32,
) -> Result<(), CallError> {
    let MessageHeader {
        name,
        kind,
        seqid: got,
    } = r.read_message_begin()?;
    fn plain(name: &[u8]) -> &[u8] {
        name.iter()
            .position(|&b| b == b':')
            .map_or(name, |at| &name[at + 1..])
    }
    if got != seqid || plain(&name) != plain(method.as_bytes()) {
        return Err(ProtocolError::new(
            ProtocolErrorKind::InvalidData,
            format!(
                "reply {}#{got} does not match call {method}#{seqid}",
                crate::logs::escape_controls(&String::from_utf8_lossy(&name))
            ),
        )
        .into());
    }
    match kind {
        MessageType::Reply => Ok(()),
        MessageType::Exception => Err(ApplicationException::decode(r)?.into()),
        other => Err(ApplicationException::new(
            ApplicationExceptionKind::InvalidMessageType,
            format!("reply has message type {other:?}"),
        )
        .into()),
    }
}

/// A channel to a service instance in this process, through the real codec: every
/// call is encoded, dispatched and decoded as it would be over a socket. For tests
/// of handlers and of generated code.
pub struct InProcess<S> {
    service: S,
    protocol: Protocol,
    seqid: std::cell::Cell<i32>,
}

impl<S: Dispatch> InProcess<S> {
    /// A channel to `service` speaking `protocol`.
    pub fn new(service: S, protocol: Protocol) -> Self {
        InProcess {
            service,
            protocol,
            seqid: std::cell::Cell::new(0),
        }
    }

    async fn roundtrip<A: Encode>(
        &self,
        method: &'static str,
        kind: MessageType,
        args: &A,
    ) -> Result<(BytesMut, i32, Dispatched), CallError> {
        let seqid = self.seqid.get().wrapping_add(1);
        self.seqid.set(seqid);
        let mut req = BytesMut::new();
        let mut out = BytesMut::new();
        let mut cx = CallContext::default();
        let done = with_codec!(self.protocol, C => {
            let mut w = C::writer(&mut req);
            w.write_message_begin(method, kind, seqid);
            args.encode(&mut w);
            let mut r = C::reader(req.freeze());
            let msg = r.read_message_begin()?;
            self.service
                .dispatch(&mut cx, &msg, &mut r, &mut C::writer(&mut out))
                .await?
        });
        Ok((out, seqid, done))
    }
}

impl<S: Dispatch> Channel for InProcess<S> {
    async fn call<A: Encode, T: Decode>(
        &self,
        _cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<T, CallError> {
        let (out, seqid, _) = self.roundtrip(method, MessageType::Call, args).await?;
        fn read<R: ProtocolReader, T: Decode>(
            mut r: R,
            method: &str,
            seqid: i32,
        ) -> Result<T, CallError> {
            check_reply(&mut r, method, seqid)?;
            Ok(T::decode(&mut r)?)
        }
        with_codec!(self.protocol, C => read(C::reader(out.freeze()), method, seqid))
    }

    async fn oneway<A: Encode>(
        &self,
        _cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<(), CallError> {
        let (out, _, done) = self.roundtrip(method, MessageType::Oneway, args).await?;
        debug_assert!(done == Dispatched::Oneway && out.is_empty());
        Ok(())
    }
}

/// Forwards to the channel behind a reference or an `Rc` (a per-core client shared
/// by several stubs).
macro_rules! forward_channel {
    ($($ptr:ty),*) => {$(
        impl<C: Channel> Channel for $ptr {
            async fn call<A: Encode, T: Decode>(
                &self,
                cx: Option<&mut CallContext>,
                method: &'static str,
                args: &A,
            ) -> Result<T, CallError> {
                (**self).call(cx, method, args).await
            }

            async fn oneway<A: Encode>(
                &self,
                cx: Option<&mut CallContext>,
                method: &'static str,
                args: &A,
            ) -> Result<(), CallError> {
                (**self).oneway(cx, method, args).await
            }
        }
    )*};
}

forward_channel!(&C, std::rc::Rc<C>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BinaryReader, BinaryWriter, ProtocolWriter};

    #[test]
    fn a_reply_to_another_call_is_refused_and_its_name_shown_on_one_line() {
        let mut buf = Vec::new();
        BinaryWriter::new(&mut buf).write_message_begin_bytes(
            b"ec\nho\x1b[2J",
            MessageType::Reply,
            7,
        );
        let e = check_reply(&mut BinaryReader::new(buf.into()), "echo", 7).unwrap_err();
        assert_eq!(
            e.to_string(),
            "thrift protocol error (InvalidData): reply ec\\nho\\u{1b}[2J#7 does not match call echo#7"
        );
        let mut buf = Vec::new();
        BinaryWriter::new(&mut buf).write_message_begin_bytes(b"Demo:echo", MessageType::Reply, 8);
        check_reply(&mut BinaryReader::new(buf.into()), "echo", 8).unwrap();
    }
}

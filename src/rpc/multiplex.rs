//! Several services on one port, as Apache Thrift's `TMultiplexedProcessor`: a call
//! named `Service:method` goes to that service, an un-prefixed call to the first
//! (default) service, so plain clients of the default service keep working.

use crate::protocol::{
    ApplicationException, ApplicationExceptionKind, MessageHeader, ProtocolError, ProtocolReader,
    ProtocolWriter, TType,
};

use super::dispatch::{write_exception, Dispatch, Dispatched};
use super::CallContext;

/// Two services (or more, nested) served on one port:
/// `Multiplexed::new(ThriftTestServer::new(h), Multiplexed::new(Second…, Third…))`.
/// Replies carry the plain method name, as Apache's servers write them.
pub struct Multiplexed<A, B> {
    first: A,
    rest: B,
}

impl<A: Dispatch, B: Dispatch> Multiplexed<A, B> {
    /// `first` answers un-prefixed calls and calls prefixed with its name; `rest`
    /// answers calls prefixed with its name (or any of its names, when nested).
    pub fn new(first: A, rest: B) -> Self {
        Multiplexed { first, rest }
    }
}

/// Routes `msg` to `service`: a multiplexed set takes the prefixed name, a single
/// service the plain one.
async fn route<S: Dispatch, R: ProtocolReader, W: ProtocolWriter>(
    service: &S,
    at: usize,
    cx: &mut CallContext,
    msg: &MessageHeader,
    r: &mut R,
    w: &mut W,
) -> Result<Dispatched, ProtocolError> {
    if S::MULTIPLEXED {
        return service.dispatch(cx, msg, r, w).await;
    }
    let plain = MessageHeader {
        name: msg.name.slice(at + 1..),
        kind: msg.kind,
        seqid: msg.seqid,
    };
    service.dispatch(cx, &plain, r, w).await
}

impl<A: Dispatch, B: Dispatch> Dispatch for Multiplexed<A, B> {
    const NAME: &'static str = A::NAME;
    const MULTIPLEXED: bool = true;

    fn serves(&self, service: &[u8]) -> bool {
        self.first.serves(service) || self.rest.serves(service)
    }

    fn knows(&self, method: &[u8]) -> bool {
        let Some(at) = method.iter().position(|&b| b == b':') else {
            return self.first.knows(method);
        };
        let (service, plain) = (&method[..at], &method[at + 1..]);
        // As `route` passes it on: a multiplexed set takes the prefixed name.
        let name = |multiplexed: bool| if multiplexed { method } else { plain };
        if self.first.serves(service) {
            self.first.knows(name(A::MULTIPLEXED))
        } else {
            self.rest.serves(service) && self.rest.knows(name(B::MULTIPLEXED))
        }
    }

    async fn dispatch<R: ProtocolReader, W: ProtocolWriter>(
        &self,
        cx: &mut CallContext,
        msg: &MessageHeader,
        r: &mut R,
        w: &mut W,
    ) -> Result<Dispatched, ProtocolError> {
        let Some(at) = msg.name.iter().position(|&b| b == b':') else {
            return self.first.dispatch(cx, msg, r, w).await;
        };
        let service = &msg.name[..at];
        if self.first.serves(service) {
            route(&self.first, at, cx, msg, r, w).await
        } else if self.rest.serves(service) {
            route(&self.rest, at, cx, msg, r, w).await
        } else {
            r.skip(TType::Struct)?;
            if msg.kind == crate::protocol::MessageType::Oneway {
                return Ok(Dispatched::Oneway);
            }
            let exc = ApplicationException::new(
                ApplicationExceptionKind::UnknownMethod,
                format!(
                    "no service {} on this server (call {})",
                    String::from_utf8_lossy(service),
                    String::from_utf8_lossy(&msg.name)
                ),
            );
            write_exception(cx, w, msg, &exc);
            Ok(Dispatched::Application(exc.kind))
        }
    }
}

//! `TApplicationException`: the standard error reply (`struct {1: string message,
//! 2: i32 type}`), sent as an EXCEPTION message.

use super::{Decode, Encode, ProtocolError, ProtocolReader, ProtocolWriter, TType};

/// The standard `TApplicationException` type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplicationExceptionKind {
    /// 0: anything else.
    Unknown,
    /// 1: the server has no such method.
    UnknownMethod,
    /// 2: a message type the receiver did not expect.
    InvalidMessageType,
    /// 3: the reply names another method.
    WrongMethodName,
    /// 4: the reply's seqid is not the call's.
    BadSequenceId,
    /// 5: a non-void reply without a result or exception.
    MissingResult,
    /// 6: the handler failed in a way it did not declare.
    InternalError,
    /// 7: the arguments could not be decoded.
    ProtocolError,
    /// 8: a transform (THeader) is not supported.
    InvalidTransform,
    /// 9: the protocol is not supported.
    InvalidProtocol,
    /// 10: the client type is not supported.
    UnsupportedClientType,
    /// Any other code, preserved.
    Other(i32),
}

impl ApplicationExceptionKind {
    /// The wire code.
    pub fn code(self) -> i32 {
        use ApplicationExceptionKind::*;
        match self {
            Unknown => 0,
            UnknownMethod => 1,
            InvalidMessageType => 2,
            WrongMethodName => 3,
            BadSequenceId => 4,
            MissingResult => 5,
            InternalError => 6,
            ProtocolError => 7,
            InvalidTransform => 8,
            InvalidProtocol => 9,
            UnsupportedClientType => 10,
            Other(c) => c,
        }
    }

    /// The kind for a wire code.
    pub fn from_code(code: i32) -> Self {
        use ApplicationExceptionKind::*;
        match code {
            0 => Unknown,
            1 => UnknownMethod,
            2 => InvalidMessageType,
            3 => WrongMethodName,
            4 => BadSequenceId,
            5 => MissingResult,
            6 => InternalError,
            7 => ProtocolError,
            8 => InvalidTransform,
            9 => InvalidProtocol,
            10 => UnsupportedClientType,
            c => Other(c),
        }
    }
}

/// A `TApplicationException`. `message` is optional on the wire: thriftpy2 omits it
/// for UNKNOWN_METHOD, and it is written only when present. Shown on one line:
/// the peer's control characters (line breaks, terminal escapes) are escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TApplicationException {kind:?}: {}", crate::logs::escape_controls(message.as_deref().unwrap_or("")))]
pub struct ApplicationException {
    /// Field 2, `type`.
    pub kind: ApplicationExceptionKind,
    /// Field 1, `message`.
    pub message: Option<String>,
}

impl ApplicationException {
    /// An exception with a message.
    pub fn new(kind: ApplicationExceptionKind, message: impl Into<String>) -> Self {
        ApplicationException {
            kind,
            message: Some(message.into()),
        }
    }

    /// INTERNAL_ERROR with a message: what an undeclared handler error becomes.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ApplicationExceptionKind::InternalError, message)
    }
}

impl Encode for ApplicationException {
    fn encode<W: ProtocolWriter>(&self, w: &mut W) {
        let mark = w.write_struct_begin();
        if let Some(m) = &self.message {
            w.write_field_begin(TType::String, 1);
            w.write_string(m);
        }
        w.write_field_begin(TType::I32, 2);
        w.write_i32(self.kind.code());
        w.write_struct_end(mark);
    }
}

impl Decode for ApplicationException {
    fn decode<R: ProtocolReader>(r: &mut R) -> Result<Self, ProtocolError> {
        let mark = r.read_struct_begin()?;
        let mut out = ApplicationException {
            kind: ApplicationExceptionKind::Unknown,
            message: None,
        };
        loop {
            match r.read_field_begin()? {
                (TType::Stop, _) => break,
                (TType::String, 1) => out.message = Some(r.read_string()?),
                (TType::I32, 2) => out.kind = ApplicationExceptionKind::from_code(r.read_i32()?),
                (t, _) => r.skip(t)?,
            }
        }
        r.read_struct_end(mark);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_message_is_shown_on_one_line() {
        let e = ApplicationException::internal("boom\n\u{1b}[2Jsecond line");
        assert_eq!(
            e.to_string(),
            "TApplicationException InternalError: boom\\n\\u{1b}[2Jsecond line"
        );
        assert_eq!(e.message.as_deref(), Some("boom\n\u{1b}[2Jsecond line"));
    }
}

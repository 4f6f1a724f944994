//! Wire type codes (`TType`) and message types, common to both protocols.

use super::{ProtocolError, ProtocolErrorKind};

pub use ringsoa_build::TType;

/// The type for a TBinaryProtocol type code; unknown codes are an error.
#[inline]
pub fn ttype_from_u8(code: u8) -> Result<TType, ProtocolError> {
    TType::from_code(code).ok_or_else(|| unknown_type_code(code))
}

#[cold]
fn unknown_type_code(code: u8) -> ProtocolError {
    ProtocolError::new(
        ProtocolErrorKind::InvalidData,
        format!("unknown type code {code}"),
    )
}

/// The kind of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// A request that expects a reply.
    Call = 1,
    /// A normal reply (the `_result` struct).
    Reply = 2,
    /// A `TApplicationException` reply.
    Exception = 3,
    /// A request that expects no reply.
    Oneway = 4,
}

impl MessageType {
    /// The message type for a wire code; unknown codes are an error.
    pub fn from_u8(code: u8) -> Result<MessageType, ProtocolError> {
        match code {
            1 => Ok(MessageType::Call),
            2 => Ok(MessageType::Reply),
            3 => Ok(MessageType::Exception),
            4 => Ok(MessageType::Oneway),
            _ => Err(ProtocolError::new(
                ProtocolErrorKind::InvalidData,
                format!("unknown message type {code}"),
            )),
        }
    }
}

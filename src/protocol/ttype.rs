//! Wire type codes (`TType`) and message types, common to both protocols.

use super::{ProtocolError, ProtocolErrorKind};

/// The type of a value on the wire, with Apache Thrift's TBinaryProtocol codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TType {
    /// Field-stop marker; not a value.
    Stop = 0,
    /// Return type of a void method; never on the wire as a value.
    Void = 1,
    /// bool
    Bool = 2,
    /// byte / i8
    I8 = 3,
    /// double
    Double = 4,
    /// i16
    I16 = 6,
    /// i32 (and enums)
    I32 = 8,
    /// i64
    I64 = 10,
    /// string and binary
    String = 11,
    /// struct, union, exception
    Struct = 12,
    /// map
    Map = 13,
    /// set
    Set = 14,
    /// list
    List = 15,
    /// uuid (Apache Thrift 0.19+)
    Uuid = 16,
}

impl TType {
    /// The type for a TBinaryProtocol type code; unknown codes are an error.
    pub fn from_u8(code: u8) -> Result<TType, ProtocolError> {
        Ok(match code {
            0 => TType::Stop,
            1 => TType::Void,
            2 => TType::Bool,
            3 => TType::I8,
            4 => TType::Double,
            6 => TType::I16,
            8 => TType::I32,
            10 => TType::I64,
            11 => TType::String,
            12 => TType::Struct,
            13 => TType::Map,
            14 => TType::Set,
            15 => TType::List,
            16 => TType::Uuid,
            _ => {
                return Err(ProtocolError::new(
                    ProtocolErrorKind::InvalidData,
                    format!("unknown type code {code}"),
                ))
            }
        })
    }
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

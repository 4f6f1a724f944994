//! Wire type codes (`TType`), shared by the IDL model and ringsoa's codecs.

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
    /// The type for a TBinaryProtocol type code; `None` for an unknown code.
    #[inline]
    pub fn from_code(code: u8) -> Option<TType> {
        Some(match code {
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
            _ => return None,
        })
    }
}

//! The error every decoder returns on bad or short input.

use std::borrow::Cow;

/// What went wrong while reading, with `TProtocolException`'s type codes where they
/// exist (`Truncated` is ours: the input ended inside a value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolErrorKind {
    /// Anything else.
    Unknown = 0,
    /// Bytes that are not valid for the protocol or the expected type.
    InvalidData = 1,
    /// A negative length.
    NegativeSize = 2,
    /// A length beyond what the input holds or the configured maximum.
    SizeLimit = 3,
    /// A message header with a wrong version or protocol id.
    BadVersion = 4,
    /// A feature the reader does not support.
    NotImplemented = 5,
    /// Nesting deeper than the limit.
    DepthLimit = 6,
    /// The input ended inside a value.
    Truncated = 7,
}

/// A decoding error: its kind and a message saying what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("thrift protocol error ({kind:?}): {message}")]
pub struct ProtocolError {
    /// The kind, for programs.
    pub kind: ProtocolErrorKind,
    /// What was found, for people.
    pub message: Cow<'static, str>,
}

impl ProtocolError {
    /// A new error.
    pub fn new(kind: ProtocolErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        ProtocolError {
            kind,
            message: message.into(),
        }
    }

    /// The input ended inside a value.
    #[cold]
    pub fn truncated() -> Self {
        ProtocolError::new(ProtocolErrorKind::Truncated, "input ends inside a value")
    }

    /// A required field was absent from a struct.
    #[cold]
    pub fn missing_field(strukt: &'static str, field: &'static str) -> Self {
        ProtocolError::new(
            ProtocolErrorKind::InvalidData,
            format!("required field {strukt}.{field} is missing"),
        )
    }

    /// A container's element type differs from the declared one.
    #[cold]
    pub fn wrong_element_type(expected: super::TType, found: super::TType) -> Self {
        ProtocolError::new(
            ProtocolErrorKind::InvalidData,
            format!("container element type {found:?} where {expected:?} was declared"),
        )
    }

    /// True when more input could complete the value (for incremental readers).
    pub fn is_truncated(&self) -> bool {
        self.kind == ProtocolErrorKind::Truncated
    }
}

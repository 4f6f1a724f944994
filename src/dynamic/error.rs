//! Errors of dynamic mode, with the JSON path where a value was wrong.

use crate::protocol::{ApplicationException, ProtocolError};

/// What went wrong while encoding JSON or decoding a reply.
#[derive(Debug, thiserror::Error)]
pub enum DynamicError {
    /// A JSON value does not fit the IDL type; `path` says where (`item.children[2]`,
    /// empty for the arguments object itself).
    #[error("{}: {message}", if path.is_empty() { "the arguments" } else { path })]
    Json {
        /// Where in the arguments.
        path: String,
        /// What was expected and found.
        message: String,
    },
    /// No such service or method in the IDL.
    #[error("{0}")]
    NotFound(String),
    /// The reply bytes were bad or did not match the call.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The server answered with a `TApplicationException`.
    #[error(transparent)]
    Application(#[from] ApplicationException),
}

impl DynamicError {
    /// A JSON mismatch at the current level.
    pub(crate) fn json(message: impl Into<String>) -> Self {
        DynamicError::Json {
            path: String::new(),
            message: message.into(),
        }
    }

    /// Prefixes the path with an enclosing field name or index.
    pub(crate) fn at(self, segment: &str) -> Self {
        match self {
            DynamicError::Json { path, message } => {
                let path = match (path.is_empty(), path.starts_with('[')) {
                    (true, _) => segment.to_owned(),
                    (false, true) => format!("{segment}{path}"),
                    (false, false) => format!("{segment}.{path}"),
                };
                DynamicError::Json { path, message }
            }
            other => other,
        }
    }
}

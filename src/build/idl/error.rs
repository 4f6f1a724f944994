//! IDL errors: where (file:line:column) and what was expected.

use std::fmt;
use std::path::PathBuf;

/// A position in an IDL file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
}

/// An error in an IDL file or its includes. Its `Debug` form is its one-line
/// `Display` form too, so that a build script's `.unwrap()` prints
/// `file:line:col: message` rather than the struct.
#[derive(Clone, PartialEq, Eq)]
pub struct IdlError {
    /// The file the error is in.
    pub file: PathBuf,
    /// Where in the file (line 0 when the error concerns the whole file).
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

impl IdlError {
    /// A new error.
    pub fn new(file: impl Into<PathBuf>, pos: Pos, message: impl Into<String>) -> Self {
        IdlError {
            file: file.into(),
            pos,
            message: message.into(),
        }
    }
}

impl fmt::Display for IdlError {
    /// `file:line:col: message`, or `file: message` for the whole file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.pos.line,
                self.pos.col,
                self.message
            )
        }
    }
}

impl fmt::Debug for IdlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for IdlError {}

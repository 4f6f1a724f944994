//! The Thrift IDL: the grammar thriftpy2 and Apache Thrift accept.
//!
//! - [`lexer`]: tokens with line and column (logos).
//! - [`ast`]: what one file says, as written ([`ast::Document`]).
//! - [`parser`]: recursive descent from tokens to the AST, with errors that say what
//!   was expected where.
//! - [`model`]: the resolved program: every type reference bound to its definition,
//!   typedefs seen through, constants and defaults evaluated and checked.
//! - [`resolve`]: loading a file and its includes, and building the model.

pub mod ast;
pub mod error;
pub mod lexer;
pub mod model;
pub mod parser;
pub mod resolve;

pub use error::IdlError;
pub use model::Program;
pub use resolve::{load, load_str};

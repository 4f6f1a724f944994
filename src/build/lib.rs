//! ringsoa-build: the Thrift IDL compiler and Rust code generator behind
//! ringsoa's generated code, alone, for a service's build script: Thrift IDL in, Rust
//! code in `OUT_DIR` out, no external compiler and no generated code checked in.
//!
//! ```ignore
//! // build.rs ([build-dependencies] ringsoa-build)
//! fn main() {
//!     ringsoa_build::compile(&["idl/demo.thrift"]).unwrap();
//! }
//! // lib.rs ([dependencies] ringsoa)
//! mod idl {
//!     ringsoa::include_idl!();
//! }
//! use idl::demo::{DemoHandler, DemoServer, Item};
//! ```
//!
//! # Layout
//!
//! - [`idl`]: the lexer, parser and resolver; the result is the [`idl::model`].
//! - [`codegen`]: Rust code from the model, formatted.
//! - [`Builder`]: the options a build script sets, and where the code is written.
//! - [`TType`], [`parse_uuid`]: the wire facts the model needs.

#![warn(missing_docs)]

pub mod codegen;
pub mod idl;

mod builder;
mod ttype;
mod uuid;

pub use builder::{compile, BinaryType, Builder, Collections, StringType, OUTPUT_FILE};
pub use ttype::TType;
pub use uuid::{format_uuid, parse_uuid};

//! ringsoa: Thrift RPC and service governance, thread-per-core on io_uring.
//!
//! # Layout
//!
//! - [`protocol`]: TBinaryProtocol and TCompactProtocol writers and readers, skipping,
//!   `TApplicationException`: every byte that crosses the wire.
//! - [`transport`]: message boundaries: framed (length-prefixed) and buffered
//!   (unframed, found by a resumable scanner), with a maximum message size.
//! - [`idl`], [`codegen`]: the Thrift IDL compiler and Rust code generator, from
//!   the `ringsoa-build` crate (`src/build/`), which a service's build script
//!   depends on alone.
//! - [`rpc`]: what generated code stands on: the call context, handler errors, the
//!   dispatcher and client-channel traits.
//! - [`tracking`]: the Eleme tracking extension (handshake, request and response
//!   headers) that thriftpy2's `TTrackedClient` speaks.
//! - [`server`]: the thread-per-core io_uring server: one pinned monoio runtime and
//!   SO_REUSEPORT listener per core, auto-detected framing and protocol, drain.
//! - [`control`]: the per-core end of the control plane: the core's init value, the
//!   admission check and the outcome recorder that the server calls.
//! - [`client`]: calling services: core-local pools per node, node choice with
//!   passive and active health, deadlines, safe retries.
//! - [`runtime`]: the per-thread io_uring runtime everything above runs on.
//! - [`dynamic`]: encoding and decoding any method's arguments and results from and
//!   to JSON with an IDL parsed at run time.

#![warn(missing_docs)]

/// Re-exported for generated code (`binary` fields are `bytes::Bytes`).
pub use bytes;

// Generated code names this crate `::ringsoa`; let the crate's own generated code
// (the tracking structs) do the same.
extern crate self as ringsoa;

pub use ringsoa_build::{codegen, idl};

pub mod addr;
pub mod admin;
mod bell;
pub mod client;
mod clock;
pub mod control;
mod deadline;
pub mod dynamic;
mod flag;
pub mod governance;
pub mod logs;
pub mod metrics;
pub mod protocol;
mod race;
pub mod rpc;
pub mod runtime;
pub mod server;
pub mod tracking;
pub mod transport;

/// Includes the code that `ringsoa_build::compile` generated in this crate's `OUT_DIR`.
///
/// ```ignore
/// mod idl {
///     ringsoa::include_idl!();
/// }
/// ```
#[macro_export]
macro_rules! include_idl {
    () => {
        include!(concat!(env!("OUT_DIR"), "/ringsoa_idl.rs"));
    };
    ($file:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $file));
    };
}

//! Calling services.
//!
//! - [`simple`]: a single-connection tracked client (one call at a time); the pooled,
//!   balanced client comes next.

pub mod simple;

pub use simple::{Options, SimpleClient};

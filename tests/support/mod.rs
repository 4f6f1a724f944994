//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod golden;
pub mod process;
pub mod wire;
pub mod zk;

/// Runs `f` to completion on ringsoa's runtime (io_uring, timer).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    ringsoa::runtime::build().unwrap().block_on(f)
}

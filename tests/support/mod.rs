//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod golden;
pub mod process;
pub mod wire;

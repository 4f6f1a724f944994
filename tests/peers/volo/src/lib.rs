//! The demo contract as Volo generates it.
#![allow(warnings, clippy::all)]
include!(concat!(env!("OUT_DIR"), "/volo_demo.rs"));

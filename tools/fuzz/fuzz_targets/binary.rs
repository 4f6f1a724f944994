//! TBinaryProtocol decoding of arbitrary bytes (strict and non-strict).
#![no_main]
mod common;

use ringsoa::protocol::BinaryReader;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::decode_all(BinaryReader::new, data);
    common::decode_all(|b| BinaryReader::new(b).with_strict_read(false), data);
});

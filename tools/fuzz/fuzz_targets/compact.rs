//! TCompactProtocol decoding of arbitrary bytes.
#![no_main]
mod common;

use ringsoa::protocol::CompactReader;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::decode_all(CompactReader::new, data);
});

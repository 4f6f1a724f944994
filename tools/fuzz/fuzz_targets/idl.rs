//! The IDL lexer, parser and resolver on arbitrary text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ringsoa::idl::load_str("fuzz.thrift", text, &[] as &[&str]);
    }
});

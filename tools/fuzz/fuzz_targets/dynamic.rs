//! Dynamic mode's decoder (the IDL parsed at run time, the reply as JSON) on
//! arbitrary bytes: the demo IDL's methods' replies and every struct of it, binary
//! or compact. Never a panic; a decoded reply prints as JSON.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use ringsoa::dynamic::{decode_fields, decode_reply, method, Reply};
use ringsoa::idl::model::Program;
use ringsoa::protocol::{BinaryReader, CompactReader, Protocol};

const METHODS: [&str; 10] = [
    "Demo.ping",
    "Demo.echo",
    "Demo.roundtrip",
    "Demo.add",
    "Demo.fail",
    "Demo.sleep_ms",
    "Demo.fire",
    "Demo.fired",
    "Demo.whoami",
    "Demo.relay_whoami",
];

fn program() -> &'static Program {
    static P: OnceLock<Program> = OnceLock::new();
    P.get_or_init(|| {
        let src = include_str!("../../../src/bin/ringsoa-demo/demo.thrift");
        ringsoa::idl::load_str("demo.thrift", src, &[] as &[&str]).expect("the demo IDL loads")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let p = program();
    let protocol = if pick & 0x80 == 0 {
        Protocol::Binary
    } else {
        Protocol::Compact
    };
    let bytes = Bytes::copy_from_slice(rest);
    let m = method(p, METHODS[(pick & 0x7f) as usize % METHODS.len()]).expect("a demo method");
    if let Ok(reply) = decode_reply(&m, bytes.clone(), protocol, 1) {
        let json = match reply {
            Reply::Success(v) => v,
            Reply::Declared { value, .. } => value,
        };
        serde_json::to_string(&json).expect("decoded JSON prints");
    }
    for file in &p.files {
        for s in &file.structs {
            let _ = match protocol {
                Protocol::Binary => {
                    decode_fields(p, &s.fields, &mut BinaryReader::new(bytes.clone()))
                }
                Protocol::Compact => {
                    decode_fields(p, &s.fields, &mut CompactReader::new(bytes.clone()))
                }
            };
        }
    }
});

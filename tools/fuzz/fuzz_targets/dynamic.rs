//! Dynamic mode's decoder (the IDL parsed at run time, the reply as JSON) on
//! arbitrary bytes: a reply to one of the demo IDL's methods (its message header
//! written here, the body from the fuzzer) and every struct of the IDL, binary or
//! compact. Never a panic; a decoded reply prints as JSON.
#![no_main]

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use ringsoa::dynamic::{decode_fields, decode_reply, method, Method, Reply};
use ringsoa::idl::model::{Field, Program};
use ringsoa::protocol::{BinaryCodec, Codec, CompactCodec, MessageType, Protocol, ProtocolWriter};

fn program() -> &'static Program {
    static P: OnceLock<Program> = OnceLock::new();
    P.get_or_init(|| {
        let src = include_str!("../../../src/bin/ringsoa-demo/demo.thrift");
        ringsoa::idl::load_str("demo.thrift", src, &[] as &[&str]).expect("the demo IDL loads")
    })
}

/// Every method of the demo IDL's service.
fn methods() -> &'static [Method<'static>] {
    static M: OnceLock<Vec<Method<'static>>> = OnceLock::new();
    M.get_or_init(|| {
        let p = program();
        let id = p.find_service("Demo").expect("the demo IDL has Demo");
        p.all_functions(id)
            .iter()
            .map(|f| method(p, &format!("Demo.{}", f.name)).expect("a method of Demo"))
            .collect()
    })
}

/// A reply (or, when `exception`, an exception) message to `name`, seqid 1, with
/// `body` after its header.
fn reply<C: Codec>(name: &str, exception: bool, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    let kind = if exception {
        MessageType::Exception
    } else {
        MessageType::Reply
    };
    C::writer(&mut buf).write_message_begin(name, kind, 1);
    buf.extend_from_slice(body);
    buf.freeze()
}

/// `bytes` read as a struct with `fields`.
fn structure<C: Codec>(p: &Program, fields: &[Field], bytes: &Bytes) -> Option<serde_json::Value> {
    decode_fields(p, fields, &mut C::reader(bytes.clone())).ok()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let p = program();
    let protocol = if pick & 0x80 == 0 {
        Protocol::Binary
    } else {
        Protocol::Compact
    };
    let exception = pick & 0x40 != 0;
    let methods = methods();
    let m = &methods[(pick & 0x3f) as usize % methods.len()];
    let name = &m.function.name;
    let msg = match protocol {
        Protocol::Binary => reply::<BinaryCodec>(name, exception, body),
        Protocol::Compact => reply::<CompactCodec>(name, exception, body),
    };
    if let Ok(reply) = decode_reply(m, msg, protocol, 1, 1 << 20) {
        let json = match reply {
            Reply::Success(v) => v,
            Reply::Declared { value, .. } => value,
        };
        serde_json::to_string(&json).expect("decoded JSON prints");
    }
    let bytes = Bytes::copy_from_slice(body);
    for file in &p.files {
        for s in &file.structs {
            let _ = match protocol {
                Protocol::Binary => structure::<BinaryCodec>(p, &s.fields, &bytes),
                Protocol::Compact => structure::<CompactCodec>(p, &s.fields, &bytes),
            };
        }
    }
});

//! The tracking extension on arbitrary bytes (binary or compact, by the first
//! byte): the server's request header and handshake, and the client's response
//! header, kept and read past. Never a panic, and what is kept stays within the
//! limits.
#![no_main]

use bytes::{Bytes, BytesMut};
use ringsoa::protocol::{BinaryCodec, Codec, CompactCodec, ProtocolReader};
use ringsoa::tracking::server::{answer_handshake, read_request_header};
use ringsoa::tracking::{read_response_header, Limits};

const LIMITS: Limits = Limits {
    caller: 16,
    id: 16,
    meta_entries: 4,
    meta_item: 16,
};

fn check<C: Codec>(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(h) = read_request_header(&mut C::reader(bytes.clone()), &LIMITS) {
        // Over-limit values are dropped, whether or not the call is then refused.
        assert!(h.request_id.len() <= LIMITS.id && h.seq.len() <= LIMITS.id);
        assert!(h.meta.len() <= LIMITS.meta_entries);
        for (k, v) in &h.meta {
            assert!(k.len() <= LIMITS.meta_item && v.len() <= LIMITS.meta_item);
        }
    }
    // A reply's header read past says whether the server drains as the kept one
    // does, when both read.
    let heads = [false, true].map(|keep| read_response_header(&mut C::reader(bytes.clone()), keep));
    if let [Ok(passed), Ok(kept)] = &heads {
        assert_eq!(passed.draining, kept.draining);
        assert!(passed.meta.is_none());
        let meta = kept.meta.as_ref().map_or(0, |m| m.len());
        assert!(meta <= Limits::default().meta_entries);
    }
    let mut out = BytesMut::new();
    let answered = answer_handshake(&mut C::reader(bytes), &mut C::writer(&mut out), 7, &LIMITS);
    if let Ok(shake) = answered {
        assert!(shake.caller.len() <= LIMITS.caller);
        assert!(matches!(shake.version, 0..=2));
        let reply = C::reader(out.freeze())
            .read_message_begin()
            .expect("the reply decodes");
        assert_eq!(reply.seqid, 7);
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    if pick & 1 == 0 {
        check::<BinaryCodec>(rest);
    } else {
        check::<CompactCodec>(rest);
    }
});

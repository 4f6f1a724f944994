//! TTHeader and THeader decoding on arbitrary frames (with either magic put in
//! front half the time, so the fuzzer reaches the info blocks): never a panic, and
//! what decodes re-encodes to a header that decodes to the same values; a payload
//! under the zlib transform inflates or fails, within its limit, and its head
//! (what a refused request is answered from) is the start of what it inflates to.
#![no_main]

use bytes::{Bytes, BytesMut};
use ringsoa::transport::header::{decode, encode, inflate, inflate_head, HeaderLimits};

const LIMITS: HeaderLimits = HeaderLimits {
    entries: 64,
    item: 4096,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut frame = match pick % 4 {
        0 => vec![0x10, 0x00],
        1 => vec![0x0f, 0xff],
        _ => Vec::new(),
    };
    frame.extend_from_slice(rest);
    let Ok((h, payload)) = decode(&Bytes::from(frame), &LIMITS) else {
        return;
    };
    let mut again = BytesMut::new();
    if h.nested {
        again.extend_from_slice(&[0, 0, 0, 0]);
    }
    encode(&mut again, &h);
    if h.framed_payload {
        again.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    }
    again.extend_from_slice(&payload);
    if h.nested {
        ringsoa::transport::header::finish_nested(&mut again, 0);
    }
    let (back, back_payload) =
        decode(&again.freeze(), &LIMITS).expect("a re-encoded header decodes");
    assert_eq!(back, h);
    assert_eq!(back_payload, payload);
    if h.zlib {
        let head = inflate_head(&payload, 1024);
        assert!(head.len() <= 1024);
        if let Ok(plain) = inflate(&payload, 1 << 16) {
            assert!(plain.len() <= 1 << 16);
            assert_eq!(&plain[..head.len()], &head[..], "the head is the start");
        }
    }
});

//! Protocol readers and framing on edge cases and hostile input: every error is an
//! error (never a panic), and sizes are refused before anything is allocated.

mod support;

use bytes::{Bytes, BytesMut};
use ringsoa::protocol::{
    skip::skip, BinaryReader, BinaryWriter, CompactReader, CompactWriter, MessageType, Protocol,
    ProtocolErrorKind, ProtocolReader, ProtocolWriter, TType,
};
use ringsoa::transport::{framed, scan::Scanner, DEFAULT_MAX_MESSAGE};
use support::golden::cases;

fn message_cases() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    cases()
        .into_iter()
        .filter(|c| c.message.is_some())
        .map(|c| (c.name, c.binary, c.compact))
        .collect()
}

#[test]
fn strict_binary_is_the_default_and_non_strict_is_an_option() {
    // Non-strict header: name length, name, type byte, seqid.
    let mut old = vec![0, 0, 0, 4];
    old.extend_from_slice(b"ping");
    old.push(MessageType::Call as u8);
    old.extend_from_slice(&7i32.to_be_bytes());
    old.push(0); // empty args struct
    let err = BinaryReader::new(Bytes::from(old.clone()))
        .read_message_begin()
        .unwrap_err();
    assert_eq!(err.kind, ProtocolErrorKind::BadVersion);
    let mut r = BinaryReader::new(Bytes::from(old)).with_strict_read(false);
    let h = r.read_message_begin().unwrap();
    assert_eq!(
        (&h.name[..], h.kind, h.seqid),
        (&b"ping"[..], MessageType::Call, 7)
    );

    let bad = Bytes::from_static(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]);
    let err = BinaryReader::new(bad).read_message_begin().unwrap_err();
    assert_eq!(err.kind, ProtocolErrorKind::BadVersion);
}

/// The strict message header, whole or cut short or odd in any one byte, reads as
/// the general path reads it: the reader's fast path for a whole header must not
/// change what is accepted, refused or consumed.
#[test]
fn message_headers_read_the_same_whatever_path_they_take() {
    let header = |bytes: &[u8]| {
        let mut r = BinaryReader::new(Bytes::copy_from_slice(bytes));
        r.read_message_begin()
            .map(|h| (h.name.to_vec(), h.kind, h.seqid, r.remaining()))
            .map_err(|e| e.kind)
    };
    let mut whole = vec![0x80, 0x01, 0x00, 0x01, 0, 0, 0, 4];
    whole.extend_from_slice(b"echo");
    whole.extend_from_slice(&(-9i32).to_be_bytes());
    whole.push(0);
    assert_eq!(
        header(&whole),
        Ok((b"echo".to_vec(), MessageType::Call, -9, 1))
    );
    for cut in 0..16 {
        assert_eq!(
            header(&whole[..cut]),
            Err(ProtocolErrorKind::Truncated),
            "cut at {cut}"
        );
    }
    assert_eq!(
        header(&whole[..16]),
        Ok((b"echo".to_vec(), MessageType::Call, -9, 0))
    );
    // The version word's third byte is not looked at; its fourth is the type.
    let mut odd = whole.clone();
    odd[2] = 0x55;
    assert_eq!(header(&odd), header(&whole));
    for (kind, want) in [
        (2, Ok(MessageType::Reply)),
        (4, Ok(MessageType::Oneway)),
        (5, Err(ProtocolErrorKind::InvalidData)),
        (0, Err(ProtocolErrorKind::InvalidData)),
    ] {
        let mut h = whole.clone();
        h[3] = kind;
        assert_eq!(header(&h).map(|h| h.1), want, "type {kind}");
    }
    let mut negative = whole.clone();
    negative[4] = 0x80;
    assert_eq!(header(&negative), Err(ProtocolErrorKind::NegativeSize));
    let mut long = whole.clone();
    long[7] = 9;
    assert_eq!(header(&long), Err(ProtocolErrorKind::Truncated));
    let mut version = whole;
    version[1] = 0x02;
    assert_eq!(header(&version), Err(ProtocolErrorKind::BadVersion));
}

#[test]
fn every_truncation_of_every_message_is_an_error() {
    for (name, bin, compact) in message_cases() {
        for cut in 0..bin.len() {
            let mut r = BinaryReader::new(Bytes::copy_from_slice(&bin[..cut]));
            let res = r
                .read_message_begin()
                .and_then(|_| skip(&mut r, TType::Struct));
            assert!(res.is_err(), "{name}: binary cut at {cut} decoded");
        }
        for cut in 0..compact.len() {
            let mut r = CompactReader::new(Bytes::copy_from_slice(&compact[..cut]));
            let res = r
                .read_message_begin()
                .and_then(|_| skip(&mut r, TType::Struct));
            assert!(res.is_err(), "{name}: compact cut at {cut} decoded");
        }
    }
}

#[test]
fn lengths_beyond_the_input_are_refused_before_allocating() {
    // A string claiming 2^31-1 bytes, a list claiming 2^31-1 i64s, a map likewise.
    let string = [0x7f, 0xff, 0xff, 0xff, b'x'];
    let err = BinaryReader::new(Bytes::copy_from_slice(&string))
        .read_string()
        .unwrap_err();
    assert_eq!(err.kind, ProtocolErrorKind::Truncated);
    let list = [TType::I64 as u8, 0x7f, 0xff, 0xff, 0xff, 0, 0];
    let err = BinaryReader::new(Bytes::copy_from_slice(&list))
        .read_list_begin()
        .unwrap_err();
    assert_eq!(err.kind, ProtocolErrorKind::SizeLimit);
    let map = [TType::I32 as u8, TType::I32 as u8, 0x7f, 0xff, 0xff, 0xff];
    let err = BinaryReader::new(Bytes::copy_from_slice(&map))
        .read_map_begin()
        .unwrap_err();
    assert_eq!(err.kind, ProtocolErrorKind::SizeLimit);
    let negative = [0xff, 0xff, 0xff, 0xfe];
    let err = BinaryReader::new(Bytes::copy_from_slice(&negative))
        .read_binary()
        .unwrap_err();
    assert_eq!(err.kind, ProtocolErrorKind::NegativeSize);
    // Compact: a list of 2^28 elements with three bytes left.
    let clist = [0xf5, 0x80, 0x80, 0x80, 0x01, 0, 0, 0];
    let err = CompactReader::new(Bytes::copy_from_slice(&clist))
        .read_list_begin()
        .unwrap_err();
    assert_eq!(err.kind, ProtocolErrorKind::SizeLimit);
    // Compact: a varint that never ends.
    let endless = [0xff; 12];
    let err = CompactReader::new(Bytes::copy_from_slice(&endless))
        .read_i64()
        .unwrap_err();
    assert_eq!(err.kind, ProtocolErrorKind::InvalidData);
}

#[test]
fn nesting_is_limited() {
    // 100 nested structs: field 1 of type struct, over and over.
    for proto in [Protocol::Binary, Protocol::Compact] {
        let mut buf = BytesMut::new();
        let mut marks = Vec::new();
        let depth = 100;
        match proto {
            Protocol::Binary => nest(&mut BinaryWriter::new(&mut buf), depth, &mut marks),
            Protocol::Compact => nest(&mut CompactWriter::new(&mut buf), depth, &mut marks),
        }
        let bytes = buf.freeze();
        let err = match proto {
            Protocol::Binary => skip(&mut BinaryReader::new(bytes), TType::Struct),
            Protocol::Compact => skip(&mut CompactReader::new(bytes), TType::Struct),
        }
        .unwrap_err();
        assert_eq!(err.kind, ProtocolErrorKind::DepthLimit, "{proto:?}");
    }
}

fn nest<W: ProtocolWriter>(w: &mut W, depth: usize, marks: &mut Vec<i16>) {
    for _ in 0..depth {
        marks.push(w.write_struct_begin());
        w.write_field_begin(TType::Struct, 1);
    }
    marks.push(w.write_struct_begin());
    while let Some(m) = marks.pop() {
        w.write_struct_end(m);
    }
}

#[test]
fn compact_field_ids_use_the_long_form_when_needed() {
    for ids in [[1i16, 20, 5], [-1, -2, 300], [32767, -32768, 0]] {
        let mut buf = BytesMut::new();
        let mut w = CompactWriter::new(&mut buf);
        let m = w.write_struct_begin();
        for id in ids {
            w.write_field_begin(TType::I32, id);
            w.write_i32(id as i32 * 3);
        }
        w.write_bool_field(7, true);
        w.write_struct_end(m);
        let mut r = CompactReader::new(buf.freeze());
        let m = r.read_struct_begin().unwrap();
        for id in ids {
            assert_eq!(r.read_field_begin().unwrap(), (TType::I32, id));
            assert_eq!(r.read_i32().unwrap(), id as i32 * 3);
        }
        assert_eq!(r.read_field_begin().unwrap(), (TType::Bool, 7));
        assert!(r.read_bool().unwrap());
        assert_eq!(r.read_field_begin().unwrap().0, TType::Stop);
        r.read_struct_end(m);
        assert_eq!(r.remaining(), 0);
    }
}

#[test]
fn frames_are_checked_before_the_body_is_buffered() {
    assert_eq!(framed::frame_len(&[0, 0, 1], 100).unwrap(), None);
    assert_eq!(framed::frame_len(&[0, 0, 0, 9, 1], 100).unwrap(), Some(9));
    assert_eq!(
        framed::frame_len(&[0, 0, 0, 0], 100).unwrap_err().kind,
        ProtocolErrorKind::InvalidData
    );
    let huge = framed::frame_len(&[0x7f, 0xff, 0xff, 0xff], DEFAULT_MAX_MESSAGE).unwrap_err();
    assert_eq!(huge.kind, ProtocolErrorKind::SizeLimit);
    let mut buf = BytesMut::from(&b"xy"[..]);
    let n = framed::write_frame(&mut buf, |b| b.extend_from_slice(b"hello"));
    assert_eq!(n, 5);
    assert_eq!(&buf[..], b"xy\0\0\0\x05hello");
}

/// Feeds `stream` to a fresh scanner one byte at a time; returns the length found.
fn scan_bytewise(s: &mut Scanner, stream: &[u8]) -> Option<usize> {
    for end in 0..=stream.len() {
        if let Some(n) = s.feed(&stream[..end]).unwrap() {
            return Some(n);
        }
    }
    None
}

#[test]
fn scanner_finds_every_message_end_byte_by_byte() {
    for (name, bin, compact) in message_cases() {
        for (proto, msg) in [(Protocol::Binary, bin), (Protocol::Compact, compact)] {
            let mut s = Scanner::new(proto, DEFAULT_MAX_MESSAGE);
            s.expect_message();
            // Followed by the start of another message: the length must be exact.
            let mut stream = msg.clone();
            stream.extend_from_slice(&msg[..3]);
            assert_eq!(
                scan_bytewise(&mut s, &stream),
                Some(msg.len()),
                "{name} {proto:?}"
            );
            // All at once, too.
            s.expect_message();
            assert_eq!(
                s.feed(&stream).unwrap(),
                Some(msg.len()),
                "{name} {proto:?}"
            );
        }
    }
}

/// A strict binary message rewritten with a non-strict header: name length, name,
/// type byte, sequence id (what `TBinaryProtocol(strict_write=False)` sends).
fn non_strict(strict: &[u8]) -> Vec<u8> {
    let name_len = u32::from_be_bytes(strict[4..8].try_into().unwrap()) as usize;
    let (name, rest) = strict[8..].split_at(name_len);
    let mut out = strict[4..8].to_vec();
    out.extend_from_slice(name);
    out.push(strict[3]);
    out.extend_from_slice(rest);
    out
}

#[test]
fn a_scanner_that_accepts_non_strict_binary_finds_its_ends_too() {
    for (name, bin, _) in message_cases() {
        let msg = non_strict(&bin);
        assert_eq!(msg.len(), bin.len() - 3);
        let mut stream = msg.clone();
        stream.extend_from_slice(&msg[..3]);
        let mut strict = Scanner::new(Protocol::Binary, DEFAULT_MAX_MESSAGE);
        strict.expect_message();
        let err = strict.feed(&stream).unwrap_err();
        assert_eq!(err.kind, ProtocolErrorKind::BadVersion, "{name}");
        for skipping in [false, true] {
            let mut s = if skipping {
                Scanner::skipping(Protocol::Binary, DEFAULT_MAX_MESSAGE)
            } else {
                Scanner::new(Protocol::Binary, DEFAULT_MAX_MESSAGE)
            };
            s.accept_non_strict();
            s.expect_message();
            assert_eq!(scan_bytewise(&mut s, &stream), Some(msg.len()), "{name}");
            // Strict messages still walk on the same scanner.
            s.expect_message();
            assert_eq!(s.feed(&bin).unwrap(), Some(bin.len()), "{name}");
        }
    }
    // A name length past the maximum is refused as soon as it is seen.
    let mut s = Scanner::new(Protocol::Binary, 64);
    s.accept_non_strict();
    s.expect_message();
    assert_eq!(
        s.feed(&[0, 0, 1, 0]).unwrap_err().kind,
        ProtocolErrorKind::SizeLimit
    );
}

/// Feeds `stream` to a skipping scanner `piece` bytes at a time, dropping what it
/// walked after each piece; returns the length found and the most bytes held.
fn skip_piecewise(s: &mut Scanner, stream: &[u8], piece: usize) -> (Option<usize>, usize) {
    let (mut held, mut dropped, mut most) = (Vec::new(), 0, 0);
    for chunk in stream.chunks(piece) {
        held.extend_from_slice(chunk);
        most = most.max(held.len());
        if let Some(n) = s.feed(&held).unwrap() {
            return (Some(dropped + n), most);
        }
        let walked = s.release(held.len());
        held.drain(..walked);
        dropped += walked;
    }
    (None, most)
}

#[test]
fn a_skipping_scanner_finds_every_end_without_holding_the_message() {
    for (name, bin, compact) in message_cases() {
        for (proto, msg) in [(Protocol::Binary, bin), (Protocol::Compact, compact)] {
            for piece in [1, 3, 7, 64] {
                let mut s = Scanner::skipping(proto, DEFAULT_MAX_MESSAGE);
                s.expect_message();
                let mut stream = msg.clone();
                stream.extend_from_slice(&msg[..3]);
                let (found, _) = skip_piecewise(&mut s, &stream, piece);
                assert_eq!(
                    found,
                    Some(msg.len()),
                    "{name} {proto:?} in pieces of {piece}"
                );
            }
        }
    }
    // A call with a 1 MiB string, in 4 KiB pieces: never more than a piece and a
    // header held, and a normal scanner with a smaller maximum refuses it.
    for proto in [Protocol::Binary, Protocol::Compact] {
        fn echo_call<W: ProtocolWriter>(mut w: W, msg: &str) {
            w.write_message_begin("echo", MessageType::Call, 1);
            let m = w.write_struct_begin();
            w.write_field_begin(TType::String, 1);
            w.write_string(msg);
            w.write_struct_end(m);
        }
        let mut buf = BytesMut::new();
        let big = "x".repeat(1 << 20);
        match proto {
            Protocol::Binary => echo_call(BinaryWriter::new(&mut buf), &big),
            Protocol::Compact => echo_call(CompactWriter::new(&mut buf), &big),
        }
        let mut s = Scanner::new(proto, 1 << 16);
        s.expect_message();
        assert_eq!(s.feed(&buf).unwrap_err().kind, ProtocolErrorKind::SizeLimit);
        let mut s = Scanner::skipping(proto, 4 << 20);
        s.expect_message();
        let (found, most) = skip_piecewise(&mut s, &buf, 4096);
        assert_eq!(found, Some(buf.len()), "{proto:?}");
        assert!(most < 4096 + 64, "{proto:?}: held {most} bytes");
    }
}

#[test]
fn scanner_walks_a_tracking_header_then_the_call() {
    let golden = cases();
    let call = golden.iter().find(|c| c.name == "call_roundtrip").unwrap();
    let header = golden.iter().find(|c| c.name == "item_full").unwrap();
    for (proto, h, m) in [
        (Protocol::Binary, &header.binary, &call.binary),
        (Protocol::Compact, &header.compact, &call.compact),
    ] {
        let mut stream = h.clone();
        stream.extend_from_slice(m);
        let mut s = Scanner::new(proto, DEFAULT_MAX_MESSAGE);
        s.expect_struct_then_message();
        assert_eq!(
            scan_bytewise(&mut s, &stream),
            Some(stream.len()),
            "{proto:?}"
        );
    }
}

#[test]
fn scanner_refuses_oversized_and_garbage_streams() {
    let golden = cases();
    let big = golden.iter().find(|c| c.name == "call_roundtrip").unwrap();
    let mut s = Scanner::new(Protocol::Binary, 64);
    s.expect_message();
    let err = s.feed(&big.binary).unwrap_err();
    assert_eq!(err.kind, ProtocolErrorKind::SizeLimit);
    // A string length of 2^31-1 is refused as soon as it is seen.
    let claim = vec![0x80, 0x01, 0x00, 0x01, 0x7f, 0xff, 0xff, 0xff];
    let mut s = Scanner::new(Protocol::Binary, DEFAULT_MAX_MESSAGE);
    s.expect_message();
    assert_eq!(
        s.feed(&claim).unwrap_err().kind,
        ProtocolErrorKind::SizeLimit
    );
    s.expect_message();
    assert_eq!(
        s.feed(b"GET / HTTP/1.1\r\n").unwrap_err().kind,
        ProtocolErrorKind::BadVersion
    );
    let mut s = Scanner::new(Protocol::Compact, DEFAULT_MAX_MESSAGE);
    s.expect_message();
    assert_eq!(
        s.feed(&[0x82, 0x05]).unwrap_err().kind,
        ProtocolErrorKind::BadVersion
    );
}

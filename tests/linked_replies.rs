//! Replies whose large strings go out from the request's buffer, linked into the
//! write rather than copied (`transport::gather`): `ringsoa-demo`'s echoes, many
//! at once on one connection, large and small mixed, to a client that reads
//! slowly, so that the server's gathering writes stop and resume part way.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ringsoa::protocol::{
    BinaryReader, BinaryWriter, CompactReader, CompactWriter, Decode, Encode, MessageType,
    Protocol, ProtocolReader, ProtocolWriter,
};
use ringsoa::transport::gather::LINK_MIN;
use ringsoa::transport::scan::Scanner;
use support::process::Demo;

mod idl {
    ringsoa::include_idl!();
}
use idl::demo::*;

/// `len` letters that differ with `seed`, so that a reply that took another
/// request's bytes, or its own at the wrong offset, shows.
fn payload(len: usize, seed: usize) -> String {
    (0..len)
        .map(|i| (b'a' + ((i * 7 + i / 4096 + seed) % 26) as u8) as char)
        .collect()
}

/// The sizes echoed, in order: below, at and above the size linked, and large
/// enough that the replies fill the socket's buffers.
const SIZES: [usize; 8] = [
    6 << 20,
    100,
    LINK_MIN + 3000,
    LINK_MIN,
    LINK_MIN - 1,
    5 << 20,
    0,
    70_000,
];

fn echo_call(protocol: Protocol, seqid: i32, msg: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    let args = DemoEchoArgs {
        msg: Some(msg.to_owned()),
    };
    match protocol {
        Protocol::Binary => {
            let mut w = BinaryWriter::new(&mut buf);
            w.write_message_begin("echo", MessageType::Call, seqid);
            args.encode(&mut w);
        }
        Protocol::Compact => {
            let mut w = CompactWriter::new(&mut buf);
            w.write_message_begin("echo", MessageType::Call, seqid);
            args.encode(&mut w);
        }
    }
    buf
}

/// The echoed string of a reply, and its seqid.
fn echoed(protocol: Protocol, reply: Bytes) -> (i32, String) {
    fn read<R: ProtocolReader>(mut r: R) -> (i32, String) {
        let head = r.read_message_begin().unwrap();
        assert_eq!(head.kind, MessageType::Reply);
        let result = DemoEchoResult::decode(&mut r).unwrap();
        (head.seqid, result.success.expect("an echo"))
    }
    match protocol {
        Protocol::Binary => read(BinaryReader::new(reply)),
        Protocol::Compact => read(CompactReader::new(reply)),
    }
}

/// Sends every echo of [`SIZES`] at once on one connection, reads the replies
/// only after a pause and then in small reads, and checks each one whole.
fn echoes_to_a_slow_reader(protocol: Protocol, framed: bool) {
    let demo = Demo::start(&["--cores", "1"]);
    let mut s = TcpStream::connect(demo.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let sent: Vec<String> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| payload(n, i))
        .collect();
    let mut wire = Vec::new();
    for (i, msg) in sent.iter().enumerate() {
        let call = echo_call(protocol, i as i32 + 1, msg);
        if framed {
            wire.extend_from_slice(&(call.len() as u32).to_be_bytes());
        }
        wire.extend_from_slice(&call);
    }
    // Written from another thread: the server answers while the rest arrives,
    // and nobody reads its replies yet.
    let mut writer = s.try_clone().unwrap();
    let writing = std::thread::spawn(move || writer.write_all(&wire));
    std::thread::sleep(Duration::from_millis(300));
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    for (i, msg) in sent.iter().enumerate() {
        let reply = loop {
            let whole = if framed {
                (got.len() >= 4)
                    .then(|| 4 + u32::from_be_bytes(got[..4].try_into().unwrap()) as usize)
                    .filter(|&n| got.len() >= n)
            } else {
                let mut scanner = Scanner::new(protocol, 64 << 20);
                scanner.expect_message();
                scanner.feed(&got).unwrap()
            };
            if let Some(n) = whole {
                let reply: Vec<u8> = got.drain(..n).collect();
                break Bytes::from(reply).slice(if framed { 4 } else { 0 }..);
            }
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed before reply {}", i + 1);
            got.extend_from_slice(&chunk[..n]);
        };
        let (seqid, back) = echoed(protocol, reply);
        assert_eq!(seqid, i as i32 + 1);
        assert!(
            back == *msg,
            "echo {} of {} bytes came back changed",
            i + 1,
            msg.len()
        );
    }
    writing.join().unwrap().unwrap();
    assert!(got.is_empty(), "{} bytes after the last reply", got.len());
}

#[test]
fn buffered_binary_echoes_come_back_whole_and_in_order() {
    echoes_to_a_slow_reader(Protocol::Binary, false);
}

#[test]
fn framed_compact_echoes_come_back_whole_and_in_order() {
    echoes_to_a_slow_reader(Protocol::Compact, true);
}

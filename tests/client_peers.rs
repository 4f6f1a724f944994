//! `client::Client` against real thriftpy2 0.7.1 servers: it falls back to
//! native Thrift on a plain server (every Demo method, every protocol and transport,
//! large blobs linked into its writes), speaks the tracking
//! protocol with `TTrackedProcessor` (root rpc ids "1", "2", …, a uuid request id),
//! and survives the Python server's missing response header before EXCEPTION replies.

mod idl {
    ringsoa::include_idl!();
}
#[path = "support/items.rs"]
mod items;
mod support;

use support::block_on;

use std::collections::BTreeMap;

use support::process::py_server;

use idl::codegen::DerivedClient;
use idl::demo::{Color, DemoClient, DemoFailException, Item};
use proptest::arbitrary::any;
use proptest::collection::btree_map;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use ringsoa::client::{Client, ClientConfig, ConnOptions};
use ringsoa::protocol::{to_bytes, ApplicationExceptionKind, Protocol};
use ringsoa::rpc::CallError;
use ringsoa::transport::gather::LINK_MIN;
use ringsoa::transport::Framing;

fn client(addr: std::net::SocketAddr, protocol: Protocol, framing: Framing) -> Client {
    let conn = ConnOptions {
        protocol,
        framing,
        ..ConnOptions::new("rust-client")
    };
    Client::new(
        [addr],
        ClientConfig {
            conn,
            ..ClientConfig::default()
        },
    )
}

/// The tracking version of the client's (only) node's last connection.
fn version(client: &Client) -> Option<i32> {
    client.stats()[0].version
}

/// Every method, in every protocol and transport, and then random `Item`s (every
/// field over its whole range, NaN and signed zeros, unknown enum values, absent
/// fields) come back unchanged through the thriftpy2 server's decoder and encoder:
/// compared by their bytes, re-encoded (NaN is not equal to itself). Against both of
/// thriftpy2's servers: the threaded one and the asyncio one (`make_aio_server`, its
/// own protocol and transport code).
#[test]
fn falls_back_to_native_on_a_plain_thriftpy2_server() {
    let mut runner = TestRunner::deterministic();
    let items: Vec<Item> = (0..400)
        .map(|_| items::item().new_tree(&mut runner).unwrap().current())
        .collect();
    let combos = ["native", "aio"].into_iter().flat_map(|m| {
        [("binary", Protocol::Binary), ("compact", Protocol::Compact)]
            .into_iter()
            .flat_map(move |p| {
                [("buffered", Framing::Buffered), ("framed", Framing::Framed)]
                    .map(move |f| (m, p, f))
            })
    });
    for (mode, (p, protocol), (f, framing)) in combos {
        // thriftpy2 0.7.1's asyncio compact reader drops every map with string keys
        // or values (its threaded one does not): such a server is sent none.
        let drops_maps = mode == "aio" && protocol == Protocol::Compact;
        let fit = |mut item: Item| {
            if drops_maps {
                item.attrs = None;
            }
            item
        };
        let (_server, addr) = py_server(mode, p, f);
        let p = format!("{mode} {p}");
        block_on(async {
            let client = client(addr, protocol, framing);
            let demo = DemoClient::new(&client);
            assert_eq!(
                demo.echo(None, "hi ✓".into()).await.unwrap(),
                "hi ✓",
                "{p}/{f}"
            );
            assert_eq!(version(&client), Some(0), "{p}/{f}: should be native");
            demo.ping(None).await.unwrap();
            assert_eq!(demo.add(None, 40, 2).await.unwrap(), 42);
            assert_eq!(demo.sleep_ms(None, 5).await.unwrap(), "slept 5");
            let item = Item {
                id: -7,
                name: Some("ü".into()),
                scores: Some(vec![0.5, -2.0]),
                attrs: Some([("k".to_string(), 1)].into()),
                tags: Some([3, -3].into()),
                blob: Some(bytes::Bytes::from_static(b"\0\xff")),
                flag: true,
                tiny: Some(-1),
                color: Color::GREEN,
                inner: None,
                children: Some(vec![]),
                nested: Some([(4, vec!["x".to_string()])].into()),
            };
            let item = fit(item);
            assert_eq!(
                demo.roundtrip(None, item.clone()).await.unwrap(),
                item,
                "{p}/{f}"
            );
            // Blobs from 16 KiB on go out from where they are, not copied
            // (`transport::gather`), framed or not, before and after other fields.
            for len in [LINK_MIN - 1, LINK_MIN, 300_000] {
                let blob: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let item = fit(Item {
                    id: len as i64,
                    name: Some("after the blob".into()),
                    blob: Some(blob.into()),
                    children: Some(vec![]),
                    ..Item::default()
                });
                let back = demo.roundtrip(None, item.clone()).await.unwrap();
                assert!(back == item, "{p}/{f}: a blob of {len} bytes");
            }
            match demo.fail(None, 3).await {
                Err(CallError::Declared(DemoFailException::Err(e))) => {
                    assert_eq!((e.code, e.message.as_deref()), (Some(3), Some("fail 3")))
                }
                other => panic!("{p}/{f}: {other:?}"),
            }
            demo.fire(None, "n".into()).await.unwrap();
            assert_eq!(demo.fired(None).await.unwrap(), 1);
            assert_eq!(demo.whoami(None).await.unwrap()["seq"], "");
            for item in items.iter().cloned().map(fit) {
                let back = demo.roundtrip(None, item.clone()).await.unwrap();
                assert!(
                    to_bytes(&back, protocol) == to_bytes(&item, protocol),
                    "{p}/{f}: {item:?}\n came back as\n{back:?}"
                );
            }
        });
    }
}

#[test]
fn tracks_against_ttrackedprocessor_and_survives_its_exception_replies() {
    let (_server, addr) = py_server("tracked", "binary", "buffered");
    block_on(async {
        let client = client(addr, Protocol::Binary, Framing::Buffered);
        let demo = DemoClient::new(&client);
        let first = demo.whoami(None).await.unwrap();
        assert_eq!(version(&client), Some(2));
        assert_eq!(first["client"], "rust-client");
        assert_eq!(first["seq"], "1");
        uuid::Uuid::parse_str(&first["request_id"]).unwrap();
        // The response header's meta reaches the caller through its context.
        let mut cx = ringsoa::rpc::CallContext::default();
        let second = demo.whoami(Some(&mut cx)).await.unwrap();
        assert_eq!(second["seq"], "2");
        assert_eq!(cx.reply_meta["served_by"], "thriftpy2");
        assert_eq!(cx.reply_meta["seq"], "2");
        assert!(
            second["meta.ringsoa.timeout_ms"].parse::<u64>().unwrap() <= 5000,
            "the remaining budget travels in meta: {second:?}"
        );
        assert_ne!(
            second["request_id"], first["request_id"],
            "root calls get new request ids"
        );
        // A method the Python server lacks: its EXCEPTION reply has no response header
        // (thriftpy2's bug); the client reads it anyway and the connection stays in sync.
        let other = DerivedClient::new(&client);
        match other.get(None, 1, None).await {
            Err(CallError::Application(e)) => {
                assert_eq!(e.kind, ApplicationExceptionKind::UnknownMethod)
            }
            r => panic!("expected UNKNOWN_METHOD, got {r:?}"),
        }
        assert_eq!(demo.echo(None, "in sync".into()).await.unwrap(), "in sync");
        // Root rpc ids count every call, the failed one too: 3 was `get`, 4 `echo`.
        assert_eq!(demo.whoami(None).await.unwrap()["seq"], "5");
        // Random meta (any Unicode keys and values) reaches the Python handler as sent.
        let metas = btree_map(".{1,20}", any::<String>(), 0..8);
        let mut runner = TestRunner::deterministic();
        for _ in 0..300 {
            let meta = metas.new_tree(&mut runner).unwrap().current();
            let mut cx = ringsoa::rpc::CallContext {
                meta: meta.clone(),
                ..Default::default()
            };
            let who = demo.whoami(Some(&mut cx)).await.unwrap();
            let seen: BTreeMap<String, String> = who
                .into_iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("meta.")?.to_string(), v)))
                .filter(|(k, _)| k != "ringsoa.timeout_ms" || meta.contains_key(k))
                .collect();
            assert_eq!(seen, meta);
        }
    });
}

/// The handshake is thriftpy2's own bytes (buffered strict binary, seqid 0, as
/// captured from its tracked client), and the calls after it count from seqid 1.
#[test]
fn the_handshake_is_thriftpy2s_bytes_and_calls_count_from_seqid_1() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let name = b"__thriftpy_tracing_method_name__v2";
    let mut handshake = b"\x80\x01\x00\x01\x00\x00\x00\x22".to_vec();
    handshake.extend_from_slice(name);
    handshake.extend_from_slice(b"\x00\x00\x00\x00");
    handshake.extend_from_slice(b"\x0b\x00\x01\x00\x00\x00\x0brust-client");
    handshake.extend_from_slice(b"\x08\x00\x02\x00\x00\x00\x02\x00");
    let expected = handshake;
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = vec![0; expected.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, expected, "the handshake's bytes");
        let mut reply = b"\x80\x01\x00\x02\x00\x00\x00\x22".to_vec();
        reply.extend_from_slice(name);
        reply.extend_from_slice(b"\x00\x00\x00\x00\x08\x00\x01\x00\x00\x00\x02\x00");
        s.write_all(&reply).unwrap();
        // The first call: its request header, then `ping`'s CALL: seqid, empty args.
        let mut call = Vec::new();
        let marker = b"\x80\x01\x00\x01\x00\x00\x00\x04ping";
        let at = loop {
            let mut byte = [0];
            s.read_exact(&mut byte).unwrap();
            call.push(byte[0]);
            if let Some(at) = call.windows(marker.len()).position(|w| w == marker) {
                if call.len() == at + marker.len() + 5 {
                    break at;
                }
            }
        };
        let seqid = call[at + marker.len()..at + marker.len() + 4].to_vec();
        let mut answer = b"\x0d\x00\x01\x0b\x0b\x00\x00\x00\x00\x00".to_vec();
        answer.extend_from_slice(b"\x80\x01\x00\x02\x00\x00\x00\x04ping");
        answer.extend_from_slice(&seqid);
        answer.push(0);
        s.write_all(&answer).unwrap();
        seqid
    });
    block_on(async {
        let client = client(addr, Protocol::Binary, Framing::Buffered);
        DemoClient::new(&client).ping(None).await.unwrap();
        assert_eq!(version(&client), Some(2));
    });
    let seqid = server.join().unwrap();
    assert_eq!(seqid, [0, 0, 0, 1], "the first call's seqid");
}

/// A reply over the client's maximum message size fails its call with an error that
/// says so and names the setting; `ConnOptions::max_message` raises the limit.
#[test]
fn a_reply_over_the_clients_size_limit_fails_its_call_and_the_limit_can_be_raised() {
    let (_server, addr) = py_server("native", "binary", "framed");
    let big = "x".repeat(2 << 20);
    block_on(async {
        let limited = |max_message| {
            let conn = ConnOptions {
                protocol: Protocol::Binary,
                framing: Framing::Framed,
                max_message,
                ..ConnOptions::new("rust-client")
            };
            let config = ClientConfig {
                conn,
                ..ClientConfig::default()
            };
            Client::new([addr], config)
        };
        let small = limited(1 << 20);
        match DemoClient::new(&small).echo(None, big.clone()).await {
            Err(CallError::Protocol(e)) => {
                let message = e.message;
                assert!(
                    message.starts_with("the reply is too large: frame of ")
                        && message.ends_with(
                            "exceeds the maximum of 1048576 (the client's limit: ConnOptions::max_message, `ringsoa call --max-message`)"
                        ),
                    "{message}"
                );
            }
            other => panic!("expected the client's size error, got {other:?}"),
        }
        let large = limited(4 << 20);
        assert_eq!(
            DemoClient::new(&large)
                .echo(None, big.clone())
                .await
                .unwrap(),
            big
        );
    });
}

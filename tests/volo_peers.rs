//! Volo (CloudWeGo's Rust framework, from crates.io) as a real peer, both ways, with
//! its default codec (TTHeader around a framed binary payload): Volo's generated
//! client against `ringsoa-demo`, and ringsoa's client against Volo's server. The
//! peers live in `tests/peers/volo`, built on first use.

mod idl {
    ringsoa::include_idl!();
}
mod support;

use std::process::Command;

use idl::demo::*;
use ringsoa::client::{Client, ClientConfig, ConnOptions};
use ringsoa::protocol::Protocol;
use ringsoa::rpc::CallError;
use ringsoa::transport::header::HeaderKind;
use ringsoa::transport::Framing;
use support::process::{volo_peer, volo_server, Demo};

#[test]
fn a_volo_client_calls_every_demo_method() {
    let demo = Demo::start(&[]);
    let out = Command::new(volo_peer("volo-client"))
        .arg(demo.addr.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("volo-client: 0 failed"),
        "the Volo client's checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every Demo method was called (the client prints one line per check).
    for method in [
        "ping",
        "echo",
        "roundtrip",
        "add",
        "fail",
        "sleep_ms",
        "fire",
        "fired",
        "whoami",
        "relay_whoami",
    ] {
        assert!(
            stdout.contains(&format!("ok   {method}")),
            "{method} not checked"
        );
    }
}

#[test]
fn ringsoa_calls_a_volo_server_over_ttheader() {
    let (_volo, addr) = volo_server();
    support::block_on(async {
        // Compact too, though Volo's default is binary (see the compact note below).
        for protocol in [Protocol::Binary, Protocol::Compact] {
            let config = ClientConfig {
                conn: ConnOptions {
                    protocol,
                    framing: Framing::Framed,
                    header: Some(HeaderKind::TTHeader),
                    ..ConnOptions::new("ringsoa-test")
                },
                ..ClientConfig::default()
            };
            let client = Client::new([addr], config);
            let d = DemoClient::new(&client);
            d.ping(None).await.unwrap();
            assert_eq!(d.add(None, 40, 2).await.unwrap(), 42);
            assert_eq!(d.echo(None, "wörld".into()).await.unwrap(), "wörld");
            // Volo's compact decoder (pilota 0.13.1) panics on `Item`, whose
            // `bool flag` field is always written ("pending bool field ... not
            // read"); the bytes are thriftpy2's (tests/golden.rs), so structs with
            // a bool go through binary only.
            if protocol == Protocol::Binary {
                let item = Item {
                    id: 9,
                    name: Some("x".into()),
                    tags: Some([1, 2].into()),
                    ..Item::default()
                };
                assert_eq!(d.roundtrip(None, item.clone()).await.unwrap(), item);
            }
            match d.fail(None, 5).await {
                Err(CallError::Declared(DemoFailException::Err(e))) => {
                    assert_eq!(
                        (e.code, e.message.as_deref()),
                        (Some(5), Some("volo says no"))
                    )
                }
                other => panic!("{protocol:?}: {other:?}"),
            }
            let who = d.whoami(None).await.unwrap();
            assert_eq!(who.get("server").map(String::as_str), Some("volo"));
            let before = d.fired(None).await.unwrap();
            d.fire(None, "n".into()).await.unwrap();
            let mut after = d.fired(None).await.unwrap();
            for _ in 0..100 {
                if after > before {
                    break;
                }
                monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                after = d.fired(None).await.unwrap();
            }
            assert!(
                after > before,
                "the oneway call never arrived ({before} → {after})"
            );
        }
    });
}

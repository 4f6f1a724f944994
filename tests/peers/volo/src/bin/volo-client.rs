//! A Volo client with its default codec (TTHeader around framed binary) calling
//! every Demo method of the server at ADDR; one line per check, exit 1 if any
//! failed. Usage: volo-client ADDR
use std::net::SocketAddr;
use std::process::ExitCode;

use pilota::{AHashMap, AHashSet, FastStr};
use ringsoa_volo_peers::volo_demo::demo::{
    Color, DemoClientBuilder, DemoError, DemoFailException, Inner, Item,
};
use volo_thrift::MaybeException;

fn item() -> Item {
    Item {
        id: 7,
        name: Some("volo".into()),
        scores: Some(vec![1.5, -2.0]),
        attrs: Some(AHashMap::from_iter([(FastStr::from("a"), 1)])),
        tags: Some(AHashSet::from_iter([3i16, 4])),
        blob: Some(pilota::Bytes::from_static(&[0, 1, 255])),
        flag: Some(true),
        tiny: Some(-8),
        color: Some(Color::BLUE),
        inner: Some(Inner {
            label: Some("in".into()),
            values: Some(vec![1, 2]),
        }),
        children: Some(vec![Inner::default()]),
        nested: Some(AHashMap::from_iter([(5, vec![FastStr::from("x")])])),
    }
}

#[volo::main]
async fn main() -> ExitCode {
    let addr: SocketAddr = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(a)) => a,
        _ => {
            eprintln!("usage: volo-client HOST:PORT");
            return ExitCode::from(2);
        }
    };
    let client = DemoClientBuilder::new("ringsoa-demo")
        .caller_name("volo-peer")
        .address(addr)
        .build();
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, detail: String| {
        if ok {
            println!("ok   {name}");
        } else {
            println!("FAIL {name}: {detail}");
            failed += 1;
        }
    };
    let r = client.ping().await;
    check("ping", r.is_ok(), format!("{r:?}"));
    let r = client.echo("héllo volo".into()).await;
    check(
        "echo",
        matches!(&r, Ok(s) if s == "héllo volo"),
        format!("{r:?}"),
    );
    let r = client.roundtrip(item()).await;
    check(
        "roundtrip",
        matches!(&r, Ok(i) if *i == item()),
        format!("{r:?}"),
    );
    let r = client.add(40, 2).await;
    check("add", matches!(r, Ok(42)), format!("{r:?}"));
    let r = client.fail(7).await;
    let declared = matches!(
        &r,
        Ok(MaybeException::Exception(DemoFailException::Err(
            DemoError { code: Some(7), .. }
        )))
    );
    check(
        "fail",
        declared,
        format!("{:?}", r.as_ref().map(|_| "a result")),
    );
    let r = client.sleep_ms(5).await;
    check(
        "sleep_ms",
        matches!(&r, Ok(s) if s == "slept 5"),
        format!("{r:?}"),
    );
    let before = client.fired().await;
    let r = client.fire("note".into()).await;
    check("fire", r.is_ok(), format!("{r:?}"));
    // The oneway call has no reply: wait until the server counted it.
    let mut after = client.fired().await;
    for _ in 0..100 {
        if matches!((&before, &after), (Ok(b), Ok(a)) if a > b) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        after = client.fired().await;
    }
    check(
        "fired",
        matches!((&before, &after), (Ok(b), Ok(a)) if a > b),
        format!("{before:?} then {after:?}"),
    );
    let r = client.whoami().await;
    let caller = r
        .as_ref()
        .ok()
        .and_then(|m| m.get("client"))
        .map(|c| c.to_string());
    check(
        "whoami sees Volo's FromService as the caller",
        caller.as_deref() == Some("volo-peer"),
        format!("{r:?}"),
    );
    let r = client.relay_whoami(addr.to_string().into()).await;
    let relayed = r
        .as_ref()
        .ok()
        .and_then(|m| m.get("client"))
        .map(|c| c.to_string());
    check("relay_whoami", relayed.is_some(), format!("{r:?}"));
    println!("volo-client: {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

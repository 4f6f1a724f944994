//! The client side: every ThriftTest method through ringsoa's client and the
//! generated stubs, each answer checked as Apache's `test/py/TestClient.py` does.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ringsoa::bytes::Bytes;
use ringsoa::client::{Client, ClientConfig, ConnOptions};
use ringsoa::protocol::Protocol;
use ringsoa::rpc::CallError;
use ringsoa::transport::header::HeaderKind;
use ringsoa::transport::Framing;

use crate::handler::{insanity, map_map};
use crate::idl::ThriftTest::*;

/// Why a check failed.
type Check = Result<(), String>;

fn same<T: PartialEq + std::fmt::Debug>(got: T, want: T) -> Check {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

/// How the client frames its calls.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    /// Buffered or framed.
    pub framing: Framing,
    /// The header transport inside the frames, if any.
    pub header: Option<HeaderKind>,
    /// Each header frame inside a frame of its own.
    pub in_frame: bool,
    /// THeader's zlib transform on every request.
    pub zlib: bool,
}

fn client(
    addr: SocketAddr,
    protocol: Protocol,
    transport: Transport,
    service: Option<&str>,
) -> Client {
    let conn = ConnOptions {
        protocol,
        framing: transport.framing,
        header: transport.header,
        header_in_frame: transport.in_frame,
        header_zlib: transport.zlib,
        tracking: false,
        connect_timeout: Duration::from_secs(5),
        call_timeout: Duration::from_secs(10),
        multiplex: service.map(str::to_owned),
        ..ConnOptions::new("ringsoa-crosstest")
    };
    let mut config = ClientConfig {
        conn,
        ..ClientConfig::default()
    };
    config.retry.max_retries = 0;
    Client::new([addr], config)
}

/// Runs every check; one line each; exit 1 if any failed.
pub fn run(
    addr: SocketAddr,
    protocol: Protocol,
    transport: Transport,
    multiplex: bool,
) -> ExitCode {
    let mut rt = match ringsoa::runtime::build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ringsoa-crosstest: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed = rt.block_on(async {
        let tests = client(addr, protocol, transport, multiplex.then_some("ThriftTest"));
        let second = client(addr, protocol, transport, Some("SecondService"));
        let t = ThriftTestClient::new(&tests);
        let mut failed = 0;
        for (name, result) in [
            ("testVoid", void(&t).await),
            ("testString", string(&t).await),
            ("testBool", boolean(&t).await),
            ("testByte", byte(&t).await),
            ("testI32", i32s(&t).await),
            ("testI64", i64s(&t).await),
            ("testDouble", double(&t).await),
            ("testBinary", binary(&t).await),
            ("testStruct", structs(&t).await),
            ("testNest", nest(&t).await),
            ("testMap", map(&t).await),
            ("testStringMap", string_map(&t).await),
            ("testSet", set(&t).await),
            ("testList", list(&t).await),
            ("testEnum", enumeration(&t).await),
            ("testTypedef", typedef(&t).await),
            ("testMapMap", mapmap(&t).await),
            ("testInsanity", insane(&t).await),
            ("testMulti", multi(&t).await),
            ("testException", exception(&t).await),
            ("testMultiException", multi_exception(&t).await),
            ("testOneway", oneway(&t).await),
            ("testOnewayThenNormal", oneway_then_normal(&t).await),
        ] {
            failed += report(name, result);
        }
        if multiplex {
            let s = SecondServiceClient::new(&second);
            let got = s.secondtestString(None, "foobar".into()).await;
            failed += report(
                "testMultiplexed",
                got.map_err(|e| e.to_string())
                    .and_then(|v| same(v.as_str(), "testString(\"foobar\")")),
            );
        }
        failed
    });
    println!("ringsoa-crosstest: {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn report(name: &str, result: Check) -> usize {
    match result {
        Ok(()) => {
            println!("ok   {name}");
            0
        }
        Err(e) => {
            println!("FAIL {name}: {e}");
            1
        }
    }
}

/// A call's error as a check failure.
fn call<T, E: std::fmt::Debug>(r: Result<T, CallError<E>>) -> Result<T, String> {
    r.map_err(|e| format!("{e:?}"))
}

type T<'a> = ThriftTestClient<&'a Client>;

async fn void(t: &T<'_>) -> Check {
    call(t.testVoid(None).await)
}

async fn string(t: &T<'_>) -> Check {
    for s in [
        "Python".repeat(20),
        String::new(),
        "\u{8}\t\n/\\\\\r{}:パイソン\"".into(),
    ] {
        same(call(t.testString(None, s.clone()).await)?, s)?;
    }
    Ok(())
}

async fn boolean(t: &T<'_>) -> Check {
    same(call(t.testBool(None, true).await)?, true)?;
    same(call(t.testBool(None, false).await)?, false)
}

async fn byte(t: &T<'_>) -> Check {
    same(call(t.testByte(None, 63).await)?, 63)?;
    same(call(t.testByte(None, -127).await)?, -127)
}

async fn i32s(t: &T<'_>) -> Check {
    same(call(t.testI32(None, -1).await)?, -1)?;
    same(call(t.testI32(None, 0).await)?, 0)
}

async fn i64s(t: &T<'_>) -> Check {
    same(call(t.testI64(None, 1).await)?, 1)?;
    same(call(t.testI64(None, -34359738368).await)?, -34359738368)
}

async fn double(t: &T<'_>) -> Check {
    for d in [-5.235098235, 0.0, -1.0, -0.000_341_012_439_638_598_3] {
        same(call(t.testDouble(None, d).await)?, d)?;
    }
    Ok(())
}

async fn binary(t: &T<'_>) -> Check {
    let all: Bytes = (0..=255u8).collect::<Vec<_>>().into();
    same(call(t.testBinary(None, all.clone()).await)?, all)
}

fn xtruct() -> Xtruct {
    Xtruct {
        string_thing: Some("Zero".into()),
        byte_thing: Some(1),
        i32_thing: Some(-3),
        i64_thing: Some(-5),
    }
}

async fn structs(t: &T<'_>) -> Check {
    same(call(t.testStruct(None, xtruct()).await)?, xtruct())
}

async fn nest(t: &T<'_>) -> Check {
    let x = Xtruct2 {
        byte_thing: Some(0),
        struct_thing: Some(xtruct()),
        i32_thing: Some(0),
    };
    same(call(t.testNest(None, x.clone()).await)?, x)
}

async fn map(t: &T<'_>) -> Check {
    let m = BTreeMap::from([(0, 1), (1, 2), (2, 3), (3, 4), (-1, -2)]);
    same(call(t.testMap(None, m.clone()).await)?, m)
}

async fn string_map(t: &T<'_>) -> Check {
    let m = BTreeMap::from([("a".to_string(), "2".to_string()), ("パ".into(), "".into())]);
    same(call(t.testStringMap(None, m.clone()).await)?, m)
}

async fn set(t: &T<'_>) -> Check {
    let s = BTreeSet::from([8, 1, 42]);
    same(call(t.testSet(None, s.clone()).await)?, s)
}

async fn list(t: &T<'_>) -> Check {
    let l = vec![1, 4, 9, -42];
    same(call(t.testList(None, l.clone()).await)?, l)
}

async fn enumeration(t: &T<'_>) -> Check {
    same(call(t.testEnum(None, Numberz::FIVE).await)?, Numberz::FIVE)
}

async fn typedef(t: &T<'_>) -> Check {
    same(
        call(t.testTypedef(None, 0xffffffffffffff).await)?,
        0xffffffffffffff,
    )
}

async fn mapmap(t: &T<'_>) -> Check {
    same(call(t.testMapMap(None, 42).await)?, map_map())
}

async fn insane(t: &T<'_>) -> Check {
    let arg = Insanity {
        userMap: Some(BTreeMap::from([(Numberz::FIVE, 5), (Numberz::EIGHT, 8)])),
        xtructs: Some(vec![xtruct()]),
    };
    let mut got = call(t.testInsanity(None, arg.clone()).await)?;
    // The empty Insanity's fields have default requiredness: a server writes them
    // empty (Go's generated code writes every such field) or not at all (Python's
    // and Node.js's); both are the same answer.
    for answer in got.values_mut().flat_map(|m| m.values_mut()) {
        if answer.userMap.as_ref().is_some_and(|m| m.is_empty()) {
            answer.userMap = None;
        }
        if answer.xtructs.as_ref().is_some_and(|x| x.is_empty()) {
            answer.xtructs = None;
        }
    }
    same(got, insanity(arg))
}

async fn multi(t: &T<'_>) -> Check {
    let got = t
        .testMulti(
            None,
            74,
            0xff00ff,
            0xffffffffd0d0,
            BTreeMap::from([(0, "abc".into())]),
            Numberz::FIVE,
            0xf0f0f0,
        )
        .await;
    let want = Xtruct {
        string_thing: Some("Hello2".into()),
        byte_thing: Some(74),
        i32_thing: Some(0xff00ff),
        i64_thing: Some(0xffffffffd0d0),
    };
    same(call(got)?, want)
}

async fn exception(t: &T<'_>) -> Check {
    call(t.testException(None, "Safe".into()).await)?;
    match t.testException(None, "Xception".into()).await {
        Err(CallError::Declared(ThriftTestTestExceptionException::Err1(x))) => same(
            (x.errorCode, x.message.as_deref()),
            (Some(1001), Some("Xception")),
        )?,
        other => return Err(format!("Xception: got {other:?}")),
    }
    match t.testException(None, "TException".into()).await {
        Err(CallError::Application(_)) => {}
        other => return Err(format!("TException: got {other:?}")),
    }
    call(t.testException(None, "success".into()).await)
}

async fn multi_exception(t: &T<'_>) -> Check {
    use ThriftTestTestMultiExceptionException::{Err1, Err2};
    match t
        .testMultiException(None, "Xception".into(), "ignore".into())
        .await
    {
        Err(CallError::Declared(Err1(x))) => same(
            (x.errorCode, x.message.as_deref()),
            (Some(1001), Some("This is an Xception")),
        )?,
        other => return Err(format!("Xception: got {other:?}")),
    }
    match t
        .testMultiException(None, "Xception2".into(), "ignore".into())
        .await
    {
        Err(CallError::Declared(Err2(x))) => same(
            (x.errorCode, x.struct_thing.and_then(|s| s.string_thing)),
            (Some(2002), Some("This is an Xception2".into())),
        )?,
        other => return Err(format!("Xception2: got {other:?}")),
    }
    let got = call(
        t.testMultiException(None, "success".into(), "foobar".into())
            .await,
    )?;
    same(got.string_thing.as_deref(), Some("foobar"))
}

async fn oneway(t: &T<'_>) -> Check {
    let start = Instant::now();
    call(t.testOneway(None, 1).await)?;
    let took = start.elapsed();
    if took < Duration::from_secs(3) {
        Ok(())
    } else {
        Err(format!("oneway call took {took:?}"))
    }
}

async fn oneway_then_normal(t: &T<'_>) -> Check {
    call(t.testOneway(None, 1).await)?;
    same(
        call(t.testString(None, "Python".into()).await)?,
        "Python".to_string(),
    )
}

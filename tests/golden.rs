//! Golden bytes: for every case in `tests/golden/demo.json` (written by thriftpy2
//! 0.7.1 through `tools/golden.py`), ringsoa's generated code writes exactly
//! thriftpy2's bytes in binary and compact, and reads thriftpy2's bytes back to the
//! same value.

mod idl {
    ringsoa::include_idl!();
}
mod support;

use support::golden::{cases, Case};

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use idl::demo::*;
use ringsoa::protocol::{
    ApplicationException, ApplicationExceptionKind, BinaryReader, BinaryWriter, CompactReader,
    CompactWriter, Decode, Encode, MessageType, ProtocolReader, ProtocolWriter,
};

fn inner(label: Option<&str>, values: &[i64]) -> Inner {
    Inner {
        label: label.map(str::to_owned),
        values: Some(values.to_vec()),
    }
}

fn full_item() -> Item {
    Item {
        id: i64::MIN,
        name: Some("héllo wörld ✓ 日本".into()),
        scores: Some(vec![1.5, -0.25, 1e300, 0.0]),
        attrs: Some(BTreeMap::from([
            ("a".into(), 1),
            ("b".into(), -2),
            ("zz".into(), i32::MAX),
        ])),
        tags: Some(BTreeSet::from([-3, 1, 7, 32767])),
        blob: Some(Bytes::from((0..=255u8).collect::<Vec<_>>())),
        flag: true,
        tiny: Some(-128),
        color: Color::BLUE,
        inner: Some(inner(Some("in"), &[1, -1, 1 << 62])),
        children: Some(vec![inner(None, &[]), inner(Some("x"), &[5])]),
        nested: Some(BTreeMap::from([
            (-1, vec!["a".into()]),
            (2, vec![]),
            (300, vec!["x".into(), "y".into()]),
        ])),
    }
}

fn who() -> BTreeMap<String, String> {
    [
        ("client", "py"),
        ("core", "0"),
        ("meta.k", "v"),
        ("request_id", "r"),
        ("seq", "1"),
        ("version", "2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Checks one value type against a case: encode equals, decode gives the value back.
fn check<T: Encode + Decode + PartialEq + std::fmt::Debug>(case: &Case, value: T) {
    for (proto, golden) in [("binary", &case.binary), ("compact", &case.compact)] {
        let mut buf = BytesMut::new();
        let decoded: T = if proto == "binary" {
            let mut w = BinaryWriter::new(&mut buf);
            write_case(case, &value, &mut w);
            read_case(case, &mut BinaryReader::new(Bytes::from(golden.clone())))
        } else {
            let mut w = CompactWriter::new(&mut buf);
            write_case(case, &value, &mut w);
            read_case(case, &mut CompactReader::new(Bytes::from(golden.clone())))
        };
        assert_eq!(
            hex_of(&buf),
            hex_of(golden),
            "{} in {proto}: ringsoa's bytes differ from thriftpy2's",
            case.name
        );
        assert_eq!(
            decoded, value,
            "{} in {proto}: decoded value differs",
            case.name
        );
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn write_case<T: Encode, W: ProtocolWriter>(case: &Case, value: &T, w: &mut W) {
    if let Some((name, kind, seqid)) = &case.message {
        w.write_message_begin(name, MessageType::from_u8(*kind).unwrap(), *seqid);
    }
    value.encode(w);
}

fn read_case<T: Decode, R: ProtocolReader>(case: &Case, r: &mut R) -> T {
    if let Some((name, kind, seqid)) = &case.message {
        let h = r.read_message_begin().unwrap();
        assert_eq!(
            (&h.name[..], h.kind as u8, h.seqid),
            (name.as_bytes(), *kind, *seqid)
        );
    }
    let v = T::decode(r).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    assert_eq!(r.remaining(), 0, "{}: bytes left over", case.name);
    v
}

#[test]
fn every_case_matches_thriftpy2() {
    let cases = cases();
    assert!(cases.len() >= 40, "fixture has {} cases", cases.len());
    for c in &cases {
        let n = c.name.as_str();
        match n {
            "item_min" => check(
                c,
                Item {
                    id: 1,
                    ..Default::default()
                },
            ),
            "item_full" => check(c, full_item()),
            "item_empty" => check(
                c,
                Item {
                    id: 0,
                    name: Some(String::new()),
                    scores: Some(vec![]),
                    attrs: Some(BTreeMap::new()),
                    tags: Some(BTreeSet::new()),
                    blob: Some(Bytes::new()),
                    tiny: Some(0),
                    children: Some(vec![]),
                    nested: Some(BTreeMap::new()),
                    color: Color::GREEN,
                    ..Default::default()
                },
            ),
            "item_large_binary" => check(
                c,
                Item {
                    id: i64::MAX,
                    blob: Some(
                        (0..100_000u32)
                            .map(|i| ((i * 7 + 3) % 256) as u8)
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                    flag: true,
                    ..Default::default()
                },
            ),
            "item_many_children" => check(
                c,
                Item {
                    id: 5,
                    children: Some(
                        (0..20)
                            .map(|i| {
                                inner(
                                    Some(&i.to_string()),
                                    &(0..(i % 3) as i64).collect::<Vec<_>>(),
                                )
                            })
                            .collect(),
                    ),
                    ..Default::default()
                },
            ),
            "inner" => check(c, inner(Some("only"), &[])),
            "demo_error" => check(
                c,
                DemoError {
                    code: Some(7),
                    message: Some("fail 7".into()),
                },
            ),
            "app_exception_no_message" => check(
                c,
                ApplicationException {
                    kind: ApplicationExceptionKind::UnknownMethod,
                    message: None,
                },
            ),
            "exception_unknown_method" => check(
                c,
                ApplicationException::new(
                    ApplicationExceptionKind::UnknownMethod,
                    "unknown method nope",
                ),
            ),
            _ if n.starts_with("app_exception_") => {
                let code: i32 = n["app_exception_".len()..].parse().unwrap();
                check(
                    c,
                    ApplicationException::new(
                        ApplicationExceptionKind::from_code(code),
                        format!("boom {code}"),
                    ),
                )
            }
            "call_ping" => check(c, DemoPingArgs {}),
            "reply_ping" => check(c, DemoPingResult {}),
            "call_echo" => check(
                c,
                DemoEchoArgs {
                    msg: Some("hi ✓".into()),
                },
            ),
            "reply_echo" => check(
                c,
                DemoEchoResult {
                    success: Some("hi ✓".into()),
                },
            ),
            "call_roundtrip" => check(
                c,
                DemoRoundtripArgs {
                    item: Some(full_item()),
                },
            ),
            "reply_roundtrip" => check(
                c,
                DemoRoundtripResult {
                    success: Some(full_item()),
                },
            ),
            "call_add" => check(
                c,
                DemoAddArgs {
                    a: Some(-5),
                    b: Some(1 << 40),
                },
            ),
            "reply_add" => check(
                c,
                DemoAddResult {
                    success: Some((1 << 40) - 5),
                },
            ),
            "call_fail" => check(c, DemoFailArgs { code: Some(0) }),
            "reply_fail" => check(c, DemoFailResult { err: None }),
            "reply_fail_error" => check(
                c,
                DemoFailResult {
                    err: Some(DemoError {
                        code: Some(3),
                        message: Some("fail 3".into()),
                    }),
                },
            ),
            "call_sleep_ms" => check(c, DemoSleepMsArgs { ms: Some(10) }),
            "reply_sleep_ms" => check(
                c,
                DemoSleepMsResult {
                    success: Some("slept 10".into()),
                },
            ),
            "call_fire" => check(
                c,
                DemoFireArgs {
                    note: Some("n".into()),
                },
            ),
            "call_fired" => check(c, DemoFiredArgs {}),
            "reply_fired" => check(c, DemoFiredResult { success: Some(42) }),
            "call_whoami" => check(c, DemoWhoamiArgs {}),
            "reply_whoami" => check(
                c,
                DemoWhoamiResult {
                    success: Some(who()),
                },
            ),
            "call_relay_whoami" => check(
                c,
                DemoRelayWhoamiArgs {
                    target: Some("127.0.0.1:9090".into()),
                },
            ),
            "reply_relay_whoami" => check(
                c,
                DemoRelayWhoamiResult {
                    success: Some(who()),
                },
            ),
            other => panic!("case {other} has no Rust value: add it here"),
        }
    }
}

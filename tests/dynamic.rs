//! Dynamic mode against the thriftpy2 golden fixture: JSON in the documented mapping
//! encodes to exactly thriftpy2's bytes, and thriftpy2's bytes decode to that JSON.

mod support;

use bytes::{Bytes, BytesMut};
use ringsoa::dynamic::{self, decode_fields, encode_fields, Reply};
use ringsoa::idl::model::{Field, Program, StructKind};
use ringsoa::protocol::{
    BinaryReader, BinaryWriter, CompactReader, CompactWriter, MessageType, Protocol,
    ProtocolReader, ProtocolWriter,
};
use serde_json::json;
use support::golden::cases;

const DEMO: &str = "src/bin/ringsoa-demo/demo.thrift";
const MAX: usize = ringsoa::protocol::DEFAULT_MAX_DECODED;

fn demo() -> Program {
    ringsoa::idl::load(&[DEMO], &[] as &[&str]).unwrap()
}

/// The field list behind a fixture type name.
fn fields_of(p: &Program, app: &Program, type_name: &str) -> (Vec<Field>, StructKind) {
    if type_name == "TApplicationException" {
        let s = &app.files[0].structs[0];
        return (s.fields.clone(), s.kind);
    }
    if let Some(rest) = type_name.strip_prefix("Demo.") {
        let (method, which) = rest.rsplit_once('_').unwrap();
        let m = dynamic::method(p, &format!("Demo.{method}")).unwrap();
        return match which {
            "args" => (m.function.args.clone(), StructKind::Struct),
            _ => (m.function.result_fields(), StructKind::Struct),
        };
    }
    let s = p.files[0]
        .structs
        .iter()
        .find(|s| s.name == type_name)
        .unwrap();
    (s.fields.clone(), s.kind)
}

fn roundtrip<W: ProtocolWriter, R: ProtocolReader>(
    p: &Program,
    fields: &[Field],
    kind: StructKind,
    case: &support::golden::Case,
    w: &mut W,
    mut r: R,
) -> serde_json::Value {
    if let Some((name, kind, seqid)) = &case.message {
        w.write_message_begin(name, MessageType::from_u8(*kind).unwrap(), *seqid);
        r.read_message_begin().unwrap();
    }
    encode_fields(p, fields, kind, &case.json, w).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let v = decode_fields(p, fields, &mut r).unwrap();
    assert_eq!(r.remaining(), 0);
    v
}

#[test]
fn json_mapping_matches_thriftpy2_bytes() {
    let p = demo();
    let app = ringsoa::idl::load_str(
        "app.thrift",
        "struct TApplicationException { 1: optional string message, 2: optional i32 type }",
        &[] as &[&str],
    )
    .unwrap();
    for case in cases() {
        let (fields, kind) = fields_of(&p, &app, &case.type_name);
        for proto in [Protocol::Binary, Protocol::Compact] {
            let mut buf = BytesMut::new();
            let (golden, decoded) = match proto {
                Protocol::Binary => (
                    &case.binary,
                    roundtrip(
                        &p,
                        &fields,
                        kind,
                        &case,
                        &mut BinaryWriter::new(&mut buf),
                        BinaryReader::new(Bytes::from(case.binary.clone())),
                    ),
                ),
                Protocol::Compact => (
                    &case.compact,
                    roundtrip(
                        &p,
                        &fields,
                        kind,
                        &case,
                        &mut CompactWriter::new(&mut buf),
                        CompactReader::new(Bytes::from(case.compact.clone())),
                    ),
                ),
            };
            assert!(
                buf[..] == golden[..],
                "{} {proto:?}: dynamic bytes differ from thriftpy2's",
                case.name
            );
            assert_eq!(
                decoded, case.json,
                "{} {proto:?}: decoded JSON differs",
                case.name
            );
        }
    }
}

#[test]
fn calls_and_replies_by_method_name() {
    let decode = |m: &dynamic::Method, bytes: &[u8], protocol, seqid| {
        dynamic::decode_reply(m, Bytes::copy_from_slice(bytes), protocol, seqid, MAX)
    };
    let p = demo();
    let m = dynamic::method(&p, "Demo.add").unwrap();
    let golden = cases();
    let call = golden.iter().find(|c| c.name == "call_add").unwrap();
    let bytes =
        dynamic::encode_call(&m, &json!({"a": -5, "b": 1u64 << 40}), Protocol::Binary, 4).unwrap();
    assert_eq!(&bytes[..], &call.binary[..]);
    let reply = golden.iter().find(|c| c.name == "reply_add").unwrap();
    let got = decode(&m, &reply.compact, Protocol::Compact, 4).unwrap();
    assert_eq!(got, Reply::Success(json!((1u64 << 40) - 5)));
    // A reply to another seqid is refused, not mistaken for this call's.
    assert!(decode(&m, &reply.compact, Protocol::Compact, 5).is_err());

    let fail = dynamic::method(&p, "Demo.fail").unwrap();
    let err = golden
        .iter()
        .find(|c| c.name == "reply_fail_error")
        .unwrap();
    let got = decode(&fail, &err.binary, Protocol::Binary, 5).unwrap();
    assert_eq!(
        got,
        Reply::Declared {
            name: "err".into(),
            value: json!({"code": 3, "message": "fail 3"})
        }
    );
    let void = golden.iter().find(|c| c.name == "reply_fail").unwrap();
    assert_eq!(
        decode(&fail, &void.binary, Protocol::Binary, 5).unwrap(),
        Reply::Success(json!(null))
    );

    let exc = golden
        .iter()
        .find(|c| c.name == "exception_unknown_method")
        .unwrap();
    let nope =
        ringsoa::idl::load_str("n.thrift", "service Demo { void nope() }", &[] as &[&str]).unwrap();
    let m = dynamic::method(&nope, "Demo.nope").unwrap();
    match decode(&m, &exc.binary, Protocol::Binary, i32::MAX) {
        Err(dynamic::DynamicError::Application(a)) => {
            assert_eq!(a.message.as_deref(), Some("unknown method nope"))
        }
        other => panic!("expected an application exception, got {other:?}"),
    }
}

/// A reply's containers are held to the decode budget given: 100,000 empty
/// `Inner`s are 100 KB on the wire and 7.2 MB as JSON values (72 bytes each).
#[test]
fn a_reply_over_the_decode_budget_is_refused() {
    let p = demo();
    let m = dynamic::method(&p, "Demo.roundtrip").unwrap();
    let reply = |children: usize| {
        let mut buf = BytesMut::new();
        let mut w = BinaryWriter::new(&mut buf);
        w.write_message_begin("roundtrip", MessageType::Reply, 1);
        w.write_field_begin(ringsoa::protocol::TType::Struct, 0);
        w.write_field_begin(ringsoa::protocol::TType::I64, 1);
        w.write_i64(1);
        w.write_field_begin(ringsoa::protocol::TType::List, 11);
        w.write_list_begin(ringsoa::protocol::TType::Struct, children);
        w.write_raw(&vec![0u8; children]);
        w.write_raw(&[0, 0]);
        buf.freeze()
    };
    let decode =
        |children, budget| dynamic::decode_reply(&m, reply(children), Protocol::Binary, 1, budget);
    match decode(100, 1 << 20).unwrap() {
        Reply::Success(v) => assert_eq!(v["children"].as_array().map(Vec::len), Some(100)),
        other => panic!("{other:?}"),
    }
    match decode(100_000, 1 << 20) {
        Err(dynamic::DynamicError::Protocol(e)) => {
            assert!(e.to_string().contains("ConnOptions::max_decoded"), "{e}")
        }
        other => panic!("expected the budget's refusal, got {other:?}"),
    }
}

#[test]
fn doubles_json_cannot_hold_are_named_strings_both_ways() {
    let p = demo();
    let app = ringsoa::idl::load_str("a.thrift", "", &[] as &[&str]).unwrap();
    let (fields, kind) = fields_of(&p, &app, "Item");
    let item = json!({"id": 1, "scores": ["NaN", "Infinity", "-Infinity", -0.0, 1.5]});
    let mut buf = BytesMut::new();
    encode_fields(&p, &fields, kind, &item, &mut BinaryWriter::new(&mut buf)).unwrap();
    let back = decode_fields(&p, &fields, &mut BinaryReader::new(buf.freeze())).unwrap();
    assert_eq!(back["scores"], item["scores"]);
    let err = encode_fields(
        &p,
        &fields,
        kind,
        &json!({"id": 1, "scores": ["nan"]}),
        &mut BinaryWriter::new(&mut BytesMut::new()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(r#"expected a number (or "NaN", "Infinity", "-Infinity"), found "nan""#),
        "{err}"
    );
}

#[test]
fn bad_json_says_where() {
    let p = demo();
    let m = dynamic::method(&p, "Demo.roundtrip").unwrap();
    let cases = [
        (
            json!({"item": {"id": 1, "children": [{"values": [1, "x"]}]}}),
            "item.children[0].values[1]",
        ),
        (json!({"item": {"name": "no id"}}), "item"),
        (json!({"item": {"id": 1, "tiny": 300}}), "item.tiny"),
        (json!({"item": {"id": 1, "color": "PURPLE"}}), "item.color"),
        (
            json!({"item": {"id": 1, "nested": {"x": []}}}),
            "item.nested[\"x\"]",
        ),
        (json!({"item": {"id": 1, "bogus": 1}}), "item"),
        (json!({"item": {"id": 1, "blob": "***"}}), "item.blob"),
    ];
    for (args, path) in cases {
        match dynamic::encode_call(&m, &args, Protocol::Binary, 1) {
            Err(dynamic::DynamicError::Json { path: got, message }) => {
                assert_eq!(got, path, "{args}: {message}")
            }
            other => panic!("{args}: expected a JSON error at {path}, got {other:?}"),
        }
    }
    // A key that is not JSON text says how such keys are written.
    match dynamic::encode_call(&m, &json!({"item": {"id": 1, "nested": {"x": []}}}), Protocol::Binary, 1) {
        Err(dynamic::DynamicError::Json { message, .. }) => assert_eq!(
            message,
            "map key `x` is not JSON text: a map whose keys are not strings takes each key as its JSON text, as \"4\" for 4"
        ),
        other => panic!("expected a JSON error, got {other:?}"),
    }
    // Enum names are accepted on input and printed as numbers.
    let ok = dynamic::encode_call(
        &m,
        &json!({"item": {"id": 1, "color": "BLUE"}}),
        Protocol::Compact,
        1,
    );
    assert!(ok.is_ok());
    assert!(matches!(
        dynamic::method(&p, "Demo.nothing"),
        Err(dynamic::DynamicError::NotFound(_))
    ));
}

//! The generated code for `tests/idl/codegen.thrift` (every construct the generator
//! handles) and the demo IDL: constants, round-trips of every kind of type through
//! both protocols, and generated services dispatching through the real codec.

mod idl {
    ringsoa::include_idl!();
}
/// `tests/idl/overrides.thrift` with `binary` as `Vec<u8>` and Hash collections.
mod overridden {
    ringsoa::include_idl!("ringsoa_overrides.rs");
}
/// The same IDL with the default types.
mod plain {
    ringsoa::include_idl!("ringsoa_overrides_default.rs");
}

use std::collections::BTreeMap;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use idl::codegen::*;
use idl::shared::{BaseHandler, Level, Point};
use ringsoa::protocol::{
    from_bytes, to_bytes, ApplicationException, ApplicationExceptionKind, Decode, Encode, Protocol,
    ProtocolErrorKind,
};
use ringsoa::rpc::channel::InProcess;
use ringsoa::rpc::{CallContext, CallError, MethodError};

/// Runs a future that never waits (the in-process channel completes at once).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("in-process call should not wait"),
    }
}

fn round_trip<T: Encode + Decode + PartialEq + std::fmt::Debug>(v: &T) {
    for proto in [Protocol::Binary, Protocol::Compact] {
        let back: T = from_bytes(to_bytes(v, proto), proto).unwrap();
        assert_eq!(&back, v, "{proto:?}");
    }
}

#[test]
fn constants_have_their_values() {
    assert_eq!(TINY, -16);
    assert_eq!(RATIO, 0.0025);
    assert_eq!(GREETING, "hello \"world\"");
    assert_eq!(MAGIC, b"a\tb\\");
    assert_eq!(*PRIMES, vec![2, 3, 5, 7]);
    assert!(WORDS.contains("a") && WORDS.len() == 2);
    assert_eq!(LEVELS.get("high"), Some(&Level::HIGH));
    assert_eq!(Level::HIGH.0, 6);
    assert_eq!(COPY, Level::MID);
    assert_eq!(*ORIGIN, Point { x: 0, y: 0 });
    const { assert!(YES) };
}

#[test]
fn defaults_follow_the_idl() {
    let e = Everything::default();
    assert_eq!(e.level, Level::HIGH);
    assert_eq!(e.bits, Some(vec![true, false]));
    assert_eq!(e.corner, Point { x: 1, y: 2 });
    assert_eq!(Tree::default().label, "root");
    // A missing default-valued field decodes to its default, like thriftpy2.
    let minimal = Everything {
        at: 5,
        ..Default::default()
    };
    round_trip(&minimal);
}

#[test]
fn every_kind_of_type_round_trips() {
    let kw = Keywords {
        r#type: Some(1),
        r#match: Some("m".into()),
        self_: Some(true),
        r#fn: Some(-9),
    };
    let all = Everything {
        at: i64::MIN,
        shape: Some(Shape::path(vec![
            Point { x: 1, y: 2 },
            Point { x: -3, y: 4 },
        ])),
        by_score: Some(vec![(0.5, "half".into()), (f64::INFINITY, "inf".into())]),
        points: Some(vec![Point { x: 9, y: 9 }]),
        deep: Some(vec![
            BTreeMap::from([("k".into(), vec![1, -1])]),
            BTreeMap::new(),
        ]),
        level: Level(42),
        kw: Some(kw),
        id: Some(*b"0123456789abcdef"),
        bits: None,
        corner: Point { x: 0, y: 0 },
    };
    round_trip(&all);
    round_trip(&Shape::radius(2.5));
    round_trip(&Shape::point(Point { x: 1, y: 1 }));
    // Unknown enum values survive and print as numbers.
    assert_eq!(format!("{:?}", Level(42)), "Level(42)");
    assert_eq!(format!("{:?}", Level::MID), "MID");
    assert_eq!(Level::from_name("HIGH"), Some(Level::HIGH));
}

#[test]
fn recursive_structs_are_boxed_and_round_trip() {
    let leaf = Tree {
        label: "leaf".into(),
        kids: None,
        parent: Some(Box::new(Tree::default())),
    };
    let tree = Tree {
        label: "top".into(),
        kids: Some(vec![leaf.clone(), leaf]),
        parent: None,
    };
    round_trip(&tree);
}

#[test]
fn unions_need_exactly_one_field() {
    for proto in [Protocol::Binary, Protocol::Compact] {
        // A struct with two of the union's fields set decodes as an error.
        let two = Everything {
            at: 1,
            ..Default::default()
        };
        let bytes = to_bytes(&two, proto);
        let err = from_bytes::<Shape>(bytes, proto).unwrap_err();
        assert_eq!(err.kind, ProtocolErrorKind::InvalidData, "{proto:?}");
        let empty = to_bytes(&Point { x: 0, y: 0 }, proto);
        assert!(from_bytes::<Shape>(empty, proto).is_err());
    }
}

#[test]
fn missing_required_fields_are_errors() {
    let p = Keywords::default();
    for proto in [Protocol::Binary, Protocol::Compact] {
        let err = from_bytes::<Point>(to_bytes(&p, proto), proto).unwrap_err();
        assert!(err.message.contains("Point.x"), "{err}");
    }
}

/// Serves `codegen.Derived`, which extends `shared.Base`.
struct Service;

impl BaseHandler for Service {
    async fn hello(&self, _cx: &mut CallContext, who: String) -> Result<String, MethodError> {
        Ok(format!("hello {who}"))
    }
}

impl DerivedHandler for Service {
    async fn get(
        &self,
        _cx: &mut CallContext,
        id: i64,
        hint: Option<String>,
    ) -> Result<Everything, MethodError<DerivedGetException>> {
        match id {
            1 => Err(Oops { why: hint }.into()),
            2 => Err(Other { code: Some(2) }.into()),
            3 => Err(MethodError::internal("three")),
            // `?` on ordinary errors and on a declared exception.
            4 => Ok(Everything {
                at: hint.as_deref().unwrap_or("").parse::<i64>()?,
                ..Default::default()
            }),
            5 => {
                std::fs::read("/no/such/file")?;
                unreachable!()
            }
            6 => Err(Oops { why: hint })?,
            _ => Ok(Everything {
                at: id,
                ..Default::default()
            }),
        }
    }

    async fn poke(&self, _cx: &mut CallContext) -> Result<(), MethodError> {
        Ok(())
    }

    async fn r#type(&self, _cx: &mut CallContext, r#in: Keywords) -> Result<(), MethodError> {
        assert_eq!(r#in.r#type, Some(7));
        Ok(())
    }
}

impl ShadowsHandler for Service {
    #[allow(clippy::too_many_arguments)]
    async fn shadow(
        &self,
        _cx: &mut CallContext,
        a: i32,
        b: i32,
        c: i32,
        d: i32,
        e: i32,
        f: i32,
        g: i32,
    ) -> Result<i64, MethodError> {
        Ok([a, b, c, d, e, f, g]
            .iter()
            .fold(0, |n, &digit| n * 10 + i64::from(digit)))
    }

    async fn new(&self, _cx: &mut CallContext, channel: i32) -> Result<i32, MethodError> {
        Ok(channel)
    }

    async fn channel(&self, _cx: &mut CallContext) -> Result<i32, MethodError> {
        Ok(7)
    }
}

#[test]
fn generated_services_dispatch_through_the_codec() {
    for proto in [Protocol::Binary, Protocol::Compact] {
        let client = DerivedClient::new(InProcess::new(DerivedServer::new(Service), proto));
        let ok = block_on(client.get(None, 7, None)).unwrap();
        assert_eq!(ok.at, 7);
        match block_on(client.get(None, 1, Some("why".into()))) {
            Err(CallError::Declared(DerivedGetException::Oops(o))) => {
                assert_eq!(o.why.as_deref(), Some("why"))
            }
            other => panic!("{other:?}"),
        }
        match block_on(client.get(None, 2, None)) {
            Err(CallError::Declared(DerivedGetException::Other(o))) => assert_eq!(o.code, Some(2)),
            other => panic!("{other:?}"),
        }
        match block_on(client.get(None, 3, None)) {
            Err(CallError::Application(e)) => {
                assert_eq!(e.kind, ApplicationExceptionKind::InternalError);
                assert_eq!(e.message.as_deref(), Some("three"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            block_on(client.get(None, 4, Some("42".into()))).unwrap().at,
            42
        );
        for (id, hint, words) in [(4, "x", "invalid digit"), (5, "", "No such file")] {
            match block_on(client.get(None, id, Some(hint.into()))) {
                Err(CallError::Application(e)) => {
                    assert_eq!(e.kind, ApplicationExceptionKind::InternalError);
                    assert!(e.message.as_deref().unwrap_or("").contains(words), "{e}");
                }
                other => panic!("{id}: {other:?}"),
            }
        }
        assert!(matches!(
            block_on(client.get(None, 6, Some("w".into()))),
            Err(CallError::Declared(DerivedGetException::Oops(_)))
        ));
        block_on(client.poke(None)).unwrap();
        block_on(client.r#type(
            None,
            Keywords {
                r#type: Some(7),
                ..Default::default()
            },
        ))
        .unwrap();
        // Arguments named `Some`, `cx`, … each reach their own parameter, in order.
        let shadows = ShadowsClient::new(InProcess::new(ShadowsServer::new(Service), proto));
        assert_eq!(
            block_on(shadows.shadow(None, 1, 2, 3, 4, 5, 6, 7)).unwrap(),
            1_234_567
        );
        // Methods named as the client's own: `new_` and `channel_` on the client.
        assert_eq!(block_on(shadows.new_(None, 5)).unwrap(), 5);
        assert_eq!(block_on(shadows.channel_(None)).unwrap(), 7);
        let _: &InProcess<_> = shadows.channel();
        // Inherited from shared.Base, dispatched by the base's server.
        assert_eq!(
            block_on(client.hello(None, "you".into())).unwrap(),
            "hello you"
        );
    }
}

/// Enum values named as the type's own items take a trailing `_` in Rust; their
/// names stay the IDL's.
#[test]
fn enum_values_named_as_the_types_own_items_are_apart() {
    assert_eq!(Clashing::VALUES.len(), 4);
    assert_eq!(Clashing::from_name("VALUES"), Some(Clashing::VALUES_));
    assert_eq!(Clashing::name_.name(), Some("name"));
    assert_eq!(format!("{:?}", Clashing::from_name_), "from_name");
    assert_eq!(Clashing::KEYS, Clashing(1));
}

#[test]
fn unknown_methods_get_unknown_method() {
    // The Demo client calls `ping` on a server that only knows Derived.
    let client = idl::demo::DemoClient::new(InProcess::new(
        DerivedServer::new(Service),
        Protocol::Binary,
    ));
    match block_on(client.ping(None)) {
        Err(CallError::Application(ApplicationException { kind, message })) => {
            assert_eq!(kind, ApplicationExceptionKind::UnknownMethod);
            assert!(message.unwrap().contains("ping"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn apache_corners_generate_their_defaults() {
    let c = Corners::default();
    assert!(c.next.is_none());
    assert!(c.tags.is_empty() && c.counts.is_empty());
    assert_eq!(c.shape, Some(Shape::radius(1.5)));
    assert_eq!(c.id, TRACE_ID);
    let nested = Corners {
        next: Some(Box::new(Corners::default())),
        ..Corners::default()
    };
    round_trip(&nested);
}

#[test]
fn uuid_is_sixteen_bytes_of_wire_type_16() {
    // Hand-checked against Apache Thrift 0.19's protocols: binary writes field type
    // 16, compact type 13 (in the field header's low nibble), then the 16 bytes as
    // they read in the text form.
    let id: [u8; 16] = TRACE_ID;
    assert_eq!(
        ringsoa::protocol::format_uuid(&id),
        "00112233-4455-6677-8899-aabbccddeeff"
    );
    let c = Corners::default();
    let wire = |proto| to_bytes(&c, proto).to_vec();
    let binary = wire(Protocol::Binary);
    let mut field = vec![0x10, 0x00, 0x05];
    field.extend_from_slice(&id);
    assert!(
        binary.windows(field.len()).any(|w| w == field),
        "binary: {binary:02x?}"
    );
    let compact = wire(Protocol::Compact);
    // Field 5 after field 4: delta 1, type 13.
    let mut field = vec![0x1d];
    field.extend_from_slice(&id);
    assert!(
        compact.windows(field.len()).any(|w| w == field),
        "compact: {compact:02x?}"
    );
    let back: Corners = from_bytes(binary.into(), Protocol::Binary).unwrap();
    assert_eq!(back.id, id);
}

/// A channel that sends multiplexed names (`Service:method`), as Apache's
/// `TMultiplexedProtocol` does.
struct Prefixed<C> {
    inner: C,
    service: &'static str,
}

impl<C: ringsoa::rpc::Channel> ringsoa::rpc::Channel for Prefixed<C> {
    async fn call<A: Encode, T: Decode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<T, CallError> {
        let name = format!("{}:{method}", self.service);
        self.inner
            .call(cx, Box::leak(name.into_boxed_str()), args)
            .await
    }

    async fn oneway<A: Encode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<(), CallError> {
        let name = format!("{}:{method}", self.service);
        self.inner
            .oneway(cx, Box::leak(name.into_boxed_str()), args)
            .await
    }
}

#[test]
fn multiplexed_services_share_one_dispatcher() {
    use idl::shared::{BaseClient, BaseServer};
    use ringsoa::rpc::Multiplexed;
    // Base by default; Derived and Base again behind a nested set.
    let server = || {
        Multiplexed::new(
            BaseServer::new(Service),
            Multiplexed::new(DerivedServer::new(Service), BaseServer::new(Service)),
        )
    };
    let on = |service| Prefixed {
        inner: InProcess::new(server(), Protocol::Compact),
        service,
    };
    // What the set knows is what it serves: the name a call is recorded under.
    use ringsoa::rpc::Dispatch;
    let names = server();
    for (name, known) in [
        (&b"hello"[..], true),
        (b"Base:hello", true),
        (b"Derived:get", true),
        (b"Derived:hello", true), // inherited from Base
        (b"get", false),          // not the default service's
        (b"Base:get", false),
        (b"Nope:hello", false),
        (b"Derived:", false),
        (b"hel\nlo", false),
    ] {
        assert_eq!(
            names.knows(name),
            known,
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    assert!(DerivedServer::<Service>::knows_method(b"hello"));
    assert!(!BaseServer::<Service>::knows_method(b"get"));
    // Un-prefixed calls go to the default service.
    let plain = BaseClient::new(InProcess::new(server(), Protocol::Binary));
    assert_eq!(block_on(plain.hello(None, "a".into())).unwrap(), "hello a");
    let base = BaseClient::new(on("Base"));
    assert_eq!(block_on(base.hello(None, "b".into())).unwrap(), "hello b");
    // Through the nested set, declared exceptions included.
    let derived = DerivedClient::new(on("Derived"));
    assert_eq!(block_on(derived.get(None, 7, None)).unwrap().at, 7);
    assert!(matches!(
        block_on(derived.get(None, 2, None)),
        Err(CallError::Declared(DerivedGetException::Other(_)))
    ));
    // A service nobody serves gets UNKNOWN_METHOD naming it.
    let nope = BaseClient::new(on("Nope"));
    match block_on(nope.hello(None, "c".into())) {
        Err(CallError::Application(e)) => {
            assert_eq!(e.kind, ApplicationExceptionKind::UnknownMethod);
            assert!(e.message.unwrap().contains("no service Nope"));
        }
        other => panic!("{other:?}"),
    }
    // The default service does not answer the other's methods un-prefixed.
    let wrong = DerivedClient::new(InProcess::new(server(), Protocol::Binary));
    let got = block_on(wrong.get(None, 7, None));
    assert!(
        matches!(
            &got,
            Err(CallError::Application(ApplicationException {
                kind: ApplicationExceptionKind::UnknownMethod,
                ..
            }))
        ),
        "{got:?}"
    );
}

/// Two items that would have one Rust name are refused at generation, by their
/// IDL names and the later one's place; before, the generated code failed to
/// compile with rustc's duplicate-definition errors.
#[test]
fn items_that_would_share_a_rust_name_are_refused_with_both_named() {
    for (src, want) in [
        (
            "struct UserClient { 1: i32 x }\nservice User { void get() }",
            "c.thrift:2:1: service `User`'s client and struct `UserClient` would both be `UserClient` in Rust: rename one",
        ),
        (
            "service S {\n  void get_user(),\n  void getUser(),\n}",
            "c.thrift:3:3: `S.getUser`'s args and `S.get_user`'s args would both be `SGetUserArgs` in Rust: rename one",
        ),
        (
            "exception SGetException { 1: string m }\nservice S { void get() throws (1: SGetException e) }",
            "c.thrift:2:13: `S.get`'s exception and exception `SGetException` would both be `SGetException` in Rust: rename one",
        ),
    ] {
        let p = ringsoa::idl::load_str("c.thrift", src, &[] as &[&str]).unwrap();
        let e = ringsoa::codegen::generate(&p, "::ringsoa").unwrap_err();
        assert_eq!(e.to_string(), want);
    }
}

#[test]
fn type_attributes_reach_the_types_they_name() {
    // From the package's build script: `.type_attribute("shared.Point", "#[derive(Eq, Hash)]")`.
    let set: std::collections::HashSet<Point> = [Point { x: 1, y: 2 }].into();
    assert!(set.contains(&Point { x: 1, y: 2 }));
    // `.` reaches every type, `Name` and `module.Name` only that one.
    let p = ringsoa::idl::load_str(
        "m.thrift",
        "struct A { 1: i32 x }\nunion U { 1: i32 y }\nenum E { X }\nexception X { 1: string m }",
        &[] as &[&str],
    )
    .unwrap();
    let options = ringsoa::codegen::Options {
        attributes: vec![
            (".".into(), "#[doc(alias = \"all\")]".into()),
            ("U".into(), "#[doc(alias = \"just_u\")]".into()),
            ("m.E".into(), "#[doc(alias = \"just_e\")]".into()),
            ("other.A".into(), "#[doc(alias = \"never\")]".into()),
        ],
        ..Default::default()
    };
    let code = ringsoa::codegen::generate_with(&p, &options).unwrap();
    assert_eq!(code.matches("#[doc(alias = \"all\")]").count(), 4, "{code}");
    assert!(
        code.contains("#[doc(alias = \"just_u\")]\n    pub enum U"),
        "{code}"
    );
    assert!(
        code.contains("#[doc(alias = \"just_e\")]\n    pub struct E("),
        "{code}"
    );
    assert!(!code.contains("never"));
}

#[test]
fn type_overrides_write_the_same_bytes() {
    use overridden::overrides as o;
    use plain::overrides as p;
    use ringsoa::protocol::Text;
    use std::collections::{BTreeSet, HashMap, HashSet};
    // The types are the overridden ones (this would not compile otherwise).
    let theirs = o::Bag {
        blob: b"blob".to_vec(),
        ids: HashSet::from([7]),
        groups: vec![HashSet::from([1])],
        named: HashMap::from([(Text::from("k"), vec![0u8, 255])]),
        by_group: vec![(HashSet::from([2]), 3)],
        by_score: vec![(0.5, 1)],
        blobs: vec![vec![1, 2]],
        lists: Some(HashMap::from([(9, vec![Text::from("s")])])),
        name: Text::from_static("bag"),
        motto: Text::from("keep going"),
    };
    let ours = p::Bag {
        blob: bytes::Bytes::from_static(b"blob"),
        ids: BTreeSet::from([7]),
        groups: BTreeSet::from([BTreeSet::from([1])]),
        named: BTreeMap::from([("k".to_string(), bytes::Bytes::from_static(&[0, 255]))]),
        by_group: BTreeMap::from([(BTreeSet::from([2]), 3)]),
        by_score: vec![(0.5, 1)],
        blobs: vec![bytes::Bytes::from_static(&[1, 2])],
        lists: Some(BTreeMap::from([(9, vec!["s".to_string()])])),
        name: "bag".into(),
        motto: "keep going".into(),
    };
    for proto in [Protocol::Binary, Protocol::Compact] {
        // One element per collection, so hash order cannot differ from sorted order.
        assert_eq!(
            to_bytes(&theirs, proto),
            to_bytes(&ours, proto),
            "{proto:?}"
        );
        let back: o::Bag = from_bytes(to_bytes(&ours, proto), proto).unwrap();
        assert_eq!(back, theirs, "{proto:?}");
    }
    // Many elements: equal as sets after a round trip, whatever the order.
    let many = o::Bag {
        ids: (0..100).collect(),
        named: (0..50)
            .map(|i| (i.to_string().into(), vec![i as u8]))
            .collect(),
        lists: Some((0..20).map(|i| (i, vec![i.to_string().into()])).collect()),
        ..theirs.clone()
    };
    round_trip(&many);
    assert_eq!(o::TAG, b"t\t");
    assert_eq!(*o::PRIMES, HashSet::from([2, 3, 5]));
    assert_eq!(o::NAMED.get("a").map(Vec::as_slice), Some(&b"x"[..]));
    assert_eq!(o::Bag::default().motto, "keep going");
    // A decoded Text is a view of the message's buffer, not a copy.
    let wire = to_bytes(&ours, Protocol::Binary);
    let back: o::Bag = from_bytes(wire.clone(), Protocol::Binary).unwrap();
    let inside = wire.as_ptr_range();
    assert!(inside.contains(&back.name.as_ptr()), "name was copied");
    // Invalid UTF-8 is refused as for String.
    let bad = o::Bag {
        name: "\u{e9}t\u{e9}".into(),
        ..Default::default()
    };
    let mut wire = to_bytes(&bad, Protocol::Binary).to_vec();
    let at = wire.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    wire[at] = 0xff;
    let err = from_bytes::<o::Bag>(wire.into(), Protocol::Binary).unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}

#[test]
fn generated_code_is_formatted() {
    let p = ringsoa::idl::load(&["src/bin/ringsoa-demo/demo.thrift"], &[] as &[&str]).unwrap();
    let code = ringsoa::codegen::generate(&p, "::ringsoa").unwrap();
    // prettyplease keeps lines near 100 columns; the unformatted output ran past 200.
    let longest = code.lines().map(str::len).max().unwrap_or(0);
    assert!(longest <= 140, "a {longest}-character line");
    assert!(
        code.contains("\n    pub struct Item {\n        pub id: i64,\n"),
        "{code}"
    );
}

//! The IDL parser and resolver on a corpus written for the purpose: every construct
//! thriftpy2 and Apache Thrift accept, and errors that say where and what.

use ringsoa::idl::ast::{ConstValue, Definition, Requiredness, StructKind, TypeKind};
use ringsoa::idl::model::{DefId, Program, Ty, Value};
use ringsoa::idl::{load, load_str, parser::parse, IdlError};

fn ok(src: &str) -> Program {
    load_str("t.thrift", src, &["tests/idl/inc"]).unwrap_or_else(|e| panic!("{e}"))
}

fn err(src: &str) -> IdlError {
    load_str("t.thrift", src, &["tests/idl/inc"]).expect_err("should not resolve")
}

#[test]
fn headers_and_comments() {
    let doc = parse(
        std::path::Path::new("h.thrift"),
        r#"
        // line comment
        # shell comment
        /* block
           comment */
        include "shared.thrift"
        cpp_include "<map>"
        namespace py foo.bar
        namespace * all
        namespace java "quoted.name" (a.b = "c")
        /** Doc for S. */
        struct S {}
        "#,
    )
    .unwrap();
    assert_eq!(doc.includes.len(), 1);
    assert_eq!(doc.includes[0].0, "shared.thrift");
    assert_eq!(doc.cpp_includes, vec!["<map>"]);
    let ns: Vec<_> = doc
        .namespaces
        .iter()
        .map(|n| (n.scope.as_str(), n.name.as_str()))
        .collect();
    assert_eq!(
        ns,
        vec![("py", "foo.bar"), ("*", "all"), ("java", "quoted.name")]
    );
    assert_eq!(
        doc.namespaces[2].annotations,
        vec![("a.b".to_string(), "c".to_string())]
    );
    let Definition::Struct(s) = &doc.definitions[0] else {
        panic!()
    };
    assert_eq!(s.doc.as_deref(), Some("Doc for S."));
}

#[test]
fn enums_explicit_implicit_and_hex() {
    let p = ok("enum E { A, B = 0x10, C, D = -3, E2 } enum Empty {}");
    let e = &p.files[0].enums[0];
    let vals: Vec<_> = e
        .values
        .iter()
        .map(|v| (v.name.as_str(), v.value))
        .collect();
    assert_eq!(
        vals,
        vec![("A", 0), ("B", 16), ("C", 17), ("D", -3), ("E2", -2)]
    );
    assert!(p.files[0].enums[1].values.is_empty());
}

#[test]
fn fields_ids_requiredness_defaults_and_separators() {
    let p = ok(r#"
        struct S {
          1: required i32 a = 5;
          optional string b = "x",
          2: i64 c
          list<bool> d = [true, 0, 1]
          -7: byte e (k = "v", flag)
        }"#);
    let s = &p.files[0].structs[0];
    let f: Vec<_> = s
        .fields
        .iter()
        .map(|f| (f.id, f.name.as_str(), f.req))
        .collect();
    assert_eq!(
        f,
        vec![
            (1, "a", Requiredness::Required),
            (-1, "b", Requiredness::Optional),
            (2, "c", Requiredness::Default),
            (-2, "d", Requiredness::Default),
            (-7, "e", Requiredness::Default),
        ]
    );
    assert_eq!(s.fields[0].default, Some(Value::Int(5)));
    assert_eq!(
        s.fields[3].default,
        Some(Value::List(vec![
            Value::Bool(true),
            Value::Bool(false),
            Value::Bool(true)
        ]))
    );
    assert_eq!(
        s.fields[4].annotations,
        vec![("k".into(), "v".into()), ("flag".into(), "1".into())]
    );
}

#[test]
fn consts_of_every_kind_and_references() {
    let p = ok(r#"
        include "shared.thrift"
        const i16 SMALL = -0x7fff
        const double D = 1e-3
        const double FROM_INT = 7
        const string S = 'single "quoted"'
        const list<list<i32>> LL = [[1], [], [2, 3]]
        const map<i32, string> M = {1: "one", 2: "two"}
        const shared.Level L = shared.Level.HIGH
        const i32 LN = shared.Level.MID
        const shared.Level COPY = L
        const shared.Point P = {"x": 1, "y": SMALL}
        const bool B = false
    "#);
    let c = |n: &str| {
        p.files
            .last()
            .unwrap()
            .consts
            .iter()
            .find(|c| c.name == n)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(c("SMALL"), Value::Int(-32767));
    assert_eq!(c("D"), Value::Double(0.001));
    assert_eq!(c("FROM_INT"), Value::Double(7.0));
    assert_eq!(c("S"), Value::String("single \"quoted\"".into()));
    assert_eq!(
        c("LL"),
        Value::List(vec![
            Value::List(vec![Value::Int(1)]),
            Value::List(vec![]),
            Value::List(vec![Value::Int(2), Value::Int(3)])
        ])
    );
    assert_eq!(c("L"), Value::Int(6));
    assert_eq!(c("LN"), Value::Int(5));
    assert_eq!(c("COPY"), Value::Int(6));
    assert_eq!(
        c("P"),
        Value::Struct(vec![(0, Value::Int(1)), (1, Value::Int(-32767))])
    );
    assert_eq!(c("B"), Value::Bool(false));
}

#[test]
fn forward_recursive_and_typedef_references() {
    let p = ok(r#"
        typedef Later Alias
        typedef Alias Alias2
        struct Tree { 1: list<Tree> kids, 2: optional Tree parent, 3: Alias2 later }
        struct Later { 1: map<string, set<Tree>> index }
        union U { 1: Tree t, 2: string s }
    "#);
    let f = &p.files[0];
    assert_eq!(
        f.structs[0].fields[0].ty,
        Ty::List(Box::new(Ty::Struct(DefId { file: 0, index: 0 })))
    );
    assert_eq!(
        f.structs[0].fields[2].ty,
        Ty::Struct(DefId { file: 0, index: 1 })
    );
    assert_eq!(f.typedefs[1].ty, Ty::Struct(DefId { file: 0, index: 1 }));
    assert_eq!(f.structs[2].kind, StructKind::Union);
}

#[test]
fn services_extend_across_includes() {
    let p = ok(r#"
        include "shared.thrift"
        exception Boom { 1: string why }
        service Mid extends shared.Base {
          oneway void fire(1: string s),
          i32 calc(1: i32 a, 2: i32 b) throws (1: Boom boom) (idempotent = "true"),
          void nothing();
        }
        service Top extends Mid {}
    "#);
    let top = p.find_service("Top").unwrap();
    let names: Vec<_> = p
        .all_functions(top)
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, vec!["fire", "calc", "nothing", "hello"]);
    let calc = p.all_functions(top)[1];
    assert_eq!(calc.annotations, vec![("idempotent".into(), "true".into())]);
    assert!(p.all_functions(top)[0].oneway);
    assert!(p.find_service("shared.Base").is_some());
}

#[test]
fn other_languages_reserved_words_are_names() {
    // thriftpy2 rejects these; Apache accepts them, and so do we (escaped in Rust).
    let p = ok("struct from { 1: i32 def, 2: string class, 3: bool end, 4: i32 next, 5: i64 type, 6: map<i32,i32> map }");
    let names: Vec<_> = p.files[0].structs[0]
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, vec!["def", "class", "end", "next", "type", "map"]);
}

#[test]
fn types_keep_their_annotations() {
    let doc = parse(
        std::path::Path::new("a.thrift"),
        "typedef i32 (js.type = \"Number\") MyInt (note = \"x\")\nstruct S { 1: list<string (a = \"b\")> l }",
    )
    .unwrap();
    let Definition::Typedef(t) = &doc.definitions[0] else {
        panic!()
    };
    assert_eq!(t.ty.annotations, vec![("js.type".into(), "Number".into())]);
    assert_eq!(t.annotations, vec![("note".into(), "x".into())]);
    let Definition::Struct(s) = &doc.definitions[1] else {
        panic!()
    };
    let TypeKind::List(inner) = &s.fields[0].ty.kind else {
        panic!()
    };
    assert_eq!(inner.annotations, vec![("a".into(), "b".into())]);
    let _ = ConstValue::Int(0);
}

#[test]
fn the_demo_contract_and_codegen_corpus_load() {
    let p = load(
        &[
            "src/bin/ringsoa-demo/demo.thrift",
            "tests/idl/codegen.thrift",
        ],
        &["tests/idl/inc"],
    )
    .unwrap();
    assert_eq!(
        p.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        vec!["demo", "shared", "codegen"]
    );
    let demo = p.find_service("Demo").unwrap();
    assert_eq!(p.all_functions(demo).len(), 10);
    // The in-repo copy of the contract is the shared one, unchanged.
    if let Ok(shared) = std::fs::read_to_string("../shared/contract/demo.thrift") {
        assert_eq!(
            shared,
            std::fs::read_to_string("src/bin/ringsoa-demo/demo.thrift").unwrap()
        );
    }
}

/// Each bad IDL, the line:column of its error, and words the message must contain.
#[test]
fn errors_say_where_and_what() {
    let cases: &[(&str, (u32, u32), &str)] = &[
        (
            "struct S {\n  1: i32\n}",
            (3, 1),
            "expected a field name, found `}`",
        ),
        (
            "struct S { 1 i32 a }",
            (1, 14),
            "expected `:` after the field id",
        ),
        (
            "struct S {\n 1: Missing m\n}",
            (2, 5),
            "unknown type `Missing`",
        ),
        (
            "struct S { 1: i32 a, 1: i32 b }",
            (1, 22),
            "field id 1 appears twice",
        ),
        (
            "struct S { 1: i32 a, 2: i32 a }",
            (1, 22),
            "field `a` appears twice",
        ),
        ("struct S {}\nenum S { A }", (2, 1), "`S` is defined twice"),
        ("const i8 X = 300", (1, 1), "300 is not a valid i8"),
        ("const string X = 5", (1, 1), "is not a valid string"),
        (
            "enum E { A }\nconst E X = E.B",
            (2, 13),
            "enum `E` has no value `B`",
        ),
        (
            "enum E { A = 1 }\nconst E X = 7",
            (2, 1),
            "7 is not a value of enum `E`",
        ),
        ("typedef A B\ntypedef B A", (1, 1), "refers to itself"),
        (
            "const i32 A = B\nconst i32 B = A",
            (1, 15),
            "refers to itself",
        ),
        (
            "service S extends Nope {}",
            (1, 1),
            "extends unknown service `Nope`",
        ),
        (
            "service S { oneway i32 f() }",
            (1, 13),
            "oneway function `f` must return void",
        ),
        (
            "service S { void f() throws (1: i32 e) }",
            (1, 30),
            "not an exception",
        ),
        (
            "struct P { 1: required i32 x }\nconst P p = {}",
            (2, 1),
            "required field `x` of `P` is not given",
        ),
        (
            "struct S { 1: i32 a = \"x\" }",
            (1, 12),
            "is not a valid i32",
        ),
        (
            "include \"nowhere.thrift\"",
            (1, 1),
            "include \"nowhere.thrift\" not found",
        ),
        (
            "struct S { 1: string s = \"unterminated }",
            (1, 26),
            "unterminated string literal",
        ),
        (
            "struct S { 1: i32 a } @",
            (1, 23),
            "unexpected character `@`",
        ),
        ("senum S { \"a\" }", (1, 1), "`senum` is deprecated"),
        ("struct S { 1: slist l }", (1, 15), "`slist` is deprecated"),
        ("struct S { 99999: i32 a }", (1, 12), "outside i16"),
        ("enum E { A = 0x1ffffffff }", (1, 10), "outside i32"),
        ("struct", (1, 1), "expected a name, found end of file"),
        (
            "typedef map<i32 string> M",
            (1, 17),
            "expected `,` between the map's key and value types",
        ),
        ("/* never closed", (1, 1), "unterminated comment"),
        ("const string S = \"\\x41\"", (1, 18), "unsupported escape"),
        // Values as written, not Rust `Debug` dumps.
        (
            "const set<i32> S = {1: 2}",
            (1, 1),
            "{1: 2} is not a valid set<i32>",
        ),
        (
            "const list<string> L = [\"a\", 1.5]",
            (1, 1),
            "1.5 is not a valid string",
        ),
        (
            "const uuid U = \"not-a-uuid\"",
            (1, 1),
            "\"not-a-uuid\" is not a valid uuid",
        ),
        (
            "union U { 1: i32 a, 2: i32 b }\nconst U u = {\"a\": 1, \"b\": 2}",
            (2, 1),
            "sets more than one field",
        ),
        (
            "const i32 X = 99999999999999999999",
            (1, 15),
            "out-of-range number",
        ),
    ];
    for (src, (line, col), words) in cases {
        let e = err(src);
        assert!(
            e.message.contains(words),
            "{src:?}: message {:?} lacks {words:?}",
            e.message
        );
        assert_eq!((e.pos.line, e.pos.col), (*line, *col), "{src:?}: {e}");
        assert!(e.to_string().starts_with("t.thrift:"), "{e}");
    }
}

#[test]
fn apache_corners_are_accepted() {
    // Empty `{}` and `[]` for any collection (ThriftTest.thrift's `set<binary> = {}`),
    // C++'s `&` reference marker (Recursive.thrift), an enum value written with
    // another enum's prefix, bound by name in the expected enum (EnumTest.thrift).
    let p = ok("enum A { X = 1 }\nenum B { Y = 7 }\n\
                struct S {\n  1: optional set<binary> s = {}\n  2: map<i32, i32> m = []\n\
                  3: S & next\n  4: B b = A.Y\n}");
    let s = &p.files[0].structs[0];
    assert_eq!(s.fields[0].default, Some(Value::List(vec![])));
    assert_eq!(s.fields[1].default, Some(Value::Map(vec![])));
    assert_eq!(s.fields[2].ty, Ty::Struct(DefId { file: 0, index: 0 }));
    assert_eq!(s.fields[3].default, Some(Value::Int(7)));
}

#[test]
fn included_file_names_may_hold_dots() {
    // Apache's netstd tests include `name_conflicts.enum.thrift` and name its types
    // `name_conflicts.enum.some_args`.
    let dir = std::env::temp_dir().join(format!("ringsoa-idl-dots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.b.thrift"), "struct T { 1: i32 x }").unwrap();
    std::fs::write(
        dir.join("main.thrift"),
        "include \"a.b.thrift\"\nstruct U { 1: a.b.T t }",
    )
    .unwrap();
    let p = load(&[dir.join("main.thrift")], &[] as &[&str]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.files[0].name, "a.b");
    let code = ringsoa::codegen::generate(&p, "::ringsoa").unwrap();
    assert!(code.contains("pub mod a_b {"), "{code}");
    assert!(code.contains("super::a_b::T"), "{code}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_file_is_named_without_a_position() {
    let e = load(&["no/such/file.thrift"], &[] as &[&str]).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("no/such/file.thrift: cannot read"),
        "{text}"
    );
}

#[test]
fn include_cycles_are_reported() {
    let dir = std::env::temp_dir().join(format!("ringsoa-idl-cycle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.thrift"), "include \"b.thrift\"\nstruct A {}").unwrap();
    std::fs::write(dir.join("b.thrift"), "include \"a.thrift\"\nstruct B {}").unwrap();
    let e = load(&[dir.join("a.thrift")], &[] as &[&str]).unwrap_err();
    assert!(e.message.contains("include cycle"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

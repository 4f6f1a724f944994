//! Type expressions, and the code that writes, reads and constructs values of a type.
//!
//! Mapping: `bool`→`bool`, `byte`/`i8`→`i8`, `i16`/`i32`/`i64`, `double`→`f64`,
//! `string`→`String` (`Text` with [`StringType::Text`]), `binary`→`Bytes` (a
//! zero-copy slice of the input; `Vec<u8>` with [`BinaryType::Vec`]),
//! `uuid`→`[u8; 16]`, `list<T>`→`Vec<T>`, `set<T>`→`BTreeSet<T>` and
//! `map<K,V>`→`BTreeMap<K,V>` when the element or key type is ordered (sorted output,
//! deterministic bytes; `HashSet`/`HashMap` with [`Collections::Hash`] when it is
//! hashable), else `Vec<T>` and `Vec<(K, V)>` (doubles and structs as keys); enums
//! are newtypes over `i32`, so unknown values are preserved.

use std::fmt::Write;

use crate::idl::model::{DefId, Program, StructKind, Ty, Value};

use super::names::{ident, module};
use super::{BinaryType, Collections, Options, StringType};

/// Generation context: the program and the file whose module is being written.
pub struct Gen<'a> {
    /// The whole program.
    pub program: &'a Program,
    /// The file being generated.
    pub file: usize,
    /// How code is generated.
    pub options: &'a Options,
}

/// How a set or map is held in Rust, chosen by its element or key type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repr {
    BTree,
    Hash,
    Vec,
}

/// The `TType` constant for a type.
pub fn ttype(ty: &Ty) -> String {
    format!("__rs::protocol::TType::{:?}", ty.ttype())
}

impl Gen<'_> {
    /// The extra attributes that apply to type `name` of the current file, as lines.
    pub fn attributes_for(&self, name: &str) -> String {
        let module = &self.program.files[self.file].name;
        let mut out = String::new();
        for (path, attr) in &self.options.attributes {
            let hit = path == "."
                || path == name
                || path
                    .strip_prefix(module.as_str())
                    .and_then(|rest| rest.strip_prefix('.'))
                    == Some(name);
            if hit {
                out.push_str(attr);
                out.push('\n');
            }
        }
        out
    }

    /// The path of a struct or enum from the current module.
    pub fn path(&self, id: DefId, name: &str) -> String {
        if id.file == self.file {
            ident(name)
        } else {
            format!(
                "super::{}::{}",
                module(&self.program.files[id.file].name),
                ident(name)
            )
        }
    }

    /// The path of the struct `id`.
    pub fn struct_path(&self, id: DefId) -> String {
        self.path(id, &self.program.strukt(id).name)
    }

    /// The path of the enum `id`.
    pub fn enum_path(&self, id: DefId) -> String {
        self.path(id, &self.program.enumeration(id).name)
    }

    /// Whether values of `ty` are totally ordered in Rust (can key a BTreeMap).
    pub fn is_ord(&self, ty: &Ty) -> bool {
        match ty {
            Ty::Double | Ty::Struct(_) => false,
            Ty::List(e) => self.is_ord(e),
            Ty::Set(e) => self.repr(e) == Repr::BTree,
            Ty::Map(k, v) => self.repr(k) == Repr::BTree && self.is_ord(v),
            _ => true,
        }
    }

    /// Whether values of `ty` are `Hash + Eq` in Rust (can key a HashMap).
    fn is_hash(&self, ty: &Ty) -> bool {
        match ty {
            Ty::Double | Ty::Struct(_) => false,
            Ty::List(e) => self.is_hash(e),
            Ty::Set(e) => self.repr(e) == Repr::BTree && self.is_hash(e),
            Ty::Map(k, v) => self.repr(k) == Repr::BTree && self.is_hash(k) && self.is_hash(v),
            _ => true,
        }
    }

    /// How a set of `elem` or a map keyed by `elem` is held.
    fn repr(&self, elem: &Ty) -> Repr {
        if self.options.collections == Collections::Hash && self.is_hash(elem) {
            Repr::Hash
        } else if self.is_ord(elem) {
            Repr::BTree
        } else {
            Repr::Vec
        }
    }

    /// The std collection for a set (`Set`) or map (`Map`) held as `repr`.
    fn collection(repr: Repr, kind: &str) -> String {
        match repr {
            Repr::Hash => format!("__std::collections::Hash{kind}"),
            _ => format!("__std::collections::BTree{kind}"),
        }
    }

    /// The Rust type for `ty`.
    pub fn rust_type(&self, ty: &Ty) -> String {
        match ty {
            Ty::Bool => "bool".into(),
            Ty::I8 => "i8".into(),
            Ty::I16 => "i16".into(),
            Ty::I32 => "i32".into(),
            Ty::I64 => "i64".into(),
            Ty::Double => "f64".into(),
            Ty::String => match self.options.string {
                StringType::String => "__std::string::String".into(),
                StringType::Text => "__rs::protocol::Text".into(),
            },
            Ty::Binary => match self.options.binary {
                BinaryType::Bytes => "__rs::bytes::Bytes".into(),
                BinaryType::Vec => "__std::vec::Vec<u8>".into(),
            },
            Ty::Uuid => "[u8; 16]".into(),
            Ty::List(e) => format!("__std::vec::Vec<{}>", self.rust_type(e)),
            Ty::Set(e) => match self.repr(e) {
                Repr::Vec => format!("__std::vec::Vec<{}>", self.rust_type(e)),
                r => format!("{}<{}>", Self::collection(r, "Set"), self.rust_type(e)),
            },
            Ty::Map(k, v) => match self.repr(k) {
                Repr::Vec => format!(
                    "__std::vec::Vec<({}, {})>",
                    self.rust_type(k),
                    self.rust_type(v)
                ),
                r => format!(
                    "{}<{}, {}>",
                    Self::collection(r, "Map"),
                    self.rust_type(k),
                    self.rust_type(v)
                ),
            },
            Ty::Enum(id) => self.enum_path(*id),
            Ty::Struct(id) => self.struct_path(*id),
        }
    }

    /// Statements that write the value behind the reference expression `e`.
    pub fn encode(&self, ty: &Ty, e: &str, depth: usize) -> String {
        match ty {
            Ty::Bool => format!("w.write_bool(*{e});"),
            Ty::I8 => format!("w.write_i8(*{e});"),
            Ty::I16 => format!("w.write_i16(*{e});"),
            Ty::I32 => format!("w.write_i32(*{e});"),
            Ty::I64 => format!("w.write_i64(*{e});"),
            Ty::Double => format!("w.write_double(*{e});"),
            // Shared bytes go to the writer as such: a connection's write buffer
            // sends a large one from where it is instead of copying it.
            Ty::String => match self.options.string {
                StringType::String => format!("w.write_string({e});"),
                StringType::Text => format!("w.write_text({e});"),
            },
            Ty::Binary => match self.options.binary {
                BinaryType::Bytes => format!("w.write_bytes({e});"),
                BinaryType::Vec => format!("w.write_binary({e});"),
            },
            Ty::Uuid => format!("w.write_uuid({e});"),
            Ty::Enum(_) => format!("w.write_i32({e}.0);"),
            Ty::Struct(_) => format!("__rs::protocol::Encode::encode({e}, w);"),
            Ty::List(t) | Ty::Set(t) => {
                let begin = if matches!(ty, Ty::List(_)) {
                    "list"
                } else {
                    "set"
                };
                let v = format!("v{depth}");
                format!(
                    "w.write_{begin}_begin({}, {e}.len()); for {v} in {e}.iter() {{ {} }}",
                    ttype(t),
                    self.encode(t, &v, depth + 1)
                )
            }
            Ty::Map(k, v) => {
                let (kv, vv) = (format!("k{depth}"), format!("v{depth}"));
                format!(
                    "w.write_map_begin({}, {}, {e}.len()); for ({kv}, {vv}) in {e}.iter() {{ {} {} }}",
                    ttype(k),
                    ttype(v),
                    self.encode(k, &kv, depth + 1),
                    self.encode(v, &vv, depth + 1)
                )
            }
        }
    }

    /// An expression that reads a value of `ty` (propagating errors with `?`).
    pub fn decode(&self, ty: &Ty, depth: usize) -> String {
        match ty {
            Ty::Bool => "r.read_bool()?".into(),
            Ty::I8 => "r.read_i8()?".into(),
            Ty::I16 => "r.read_i16()?".into(),
            Ty::I32 => "r.read_i32()?".into(),
            Ty::I64 => "r.read_i64()?".into(),
            Ty::Double => "r.read_double()?".into(),
            Ty::String => match self.options.string {
                StringType::String => "r.read_string()?".into(),
                StringType::Text => "r.read_text()?".into(),
            },
            Ty::Binary => match self.options.binary {
                BinaryType::Bytes => "r.read_binary()?".into(),
                BinaryType::Vec => "__std::vec::Vec::from(r.read_binary()?)".into(),
            },
            Ty::Uuid => "r.read_uuid()?".into(),
            Ty::Enum(id) => format!("{}(r.read_i32()?)", self.enum_path(*id)),
            Ty::Struct(id) => format!(
                "<{} as __rs::protocol::Decode>::decode(r)?",
                self.struct_path(*id)
            ),
            Ty::List(t) | Ty::Set(t) => {
                let (n, c) = (format!("n{depth}"), format!("c{depth}"));
                let repr = self.repr(t);
                let list = matches!(ty, Ty::List(_)) || repr == Repr::Vec;
                let (begin, make, add) = if list {
                    (
                        if matches!(ty, Ty::List(_)) {
                            "list"
                        } else {
                            "set"
                        },
                        format!(
                            "__std::vec::Vec::with_capacity(__rs::protocol::prealloc::<{}>({n}))",
                            self.rust_type(t)
                        ),
                        "push",
                    )
                } else {
                    (
                        "set",
                        format!("{}::new()", Self::collection(repr, "Set")),
                        "insert",
                    )
                };
                format!(
                    "{{ let (t, {n}) = r.read_{begin}_begin()?; \
                     __rs::protocol::check_elem({}, t, {n})?; \
                     r.charge(__rs::protocol::element_cost::<{}>({n}))?; \
                     let mut {c} = {make}; \
                     for _ in 0..{n} {{ {c}.{add}({}); }} {c} }}",
                    ttype(t),
                    self.rust_type(t),
                    self.decode(t, depth + 1)
                )
            }
            Ty::Map(k, v) => {
                let (n, c) = (format!("n{depth}"), format!("c{depth}"));
                let repr = self.repr(k);
                let (make, add) = if repr != Repr::Vec {
                    (
                        format!("{}::new()", Self::collection(repr, "Map")),
                        format!("{c}.insert(k, v);"),
                    )
                } else {
                    (
                        format!(
                            "__std::vec::Vec::with_capacity(__rs::protocol::prealloc::<({}, {})>({n}))",
                            self.rust_type(k),
                            self.rust_type(v)
                        ),
                        format!("{c}.push((k, v));"),
                    )
                };
                format!(
                    "{{ let (kt, vt, {n}) = r.read_map_begin()?; \
                     __rs::protocol::check_elem({}, kt, {n})?; \
                     __rs::protocol::check_elem({}, vt, {n})?; \
                     r.charge(__rs::protocol::element_cost::<({}, {})>({n}))?; \
                     let mut {c} = {make}; \
                     for _ in 0..{n} {{ let k = {}; let v = {}; {add} }} {c} }}",
                    ttype(k),
                    ttype(v),
                    self.rust_type(k),
                    self.rust_type(v),
                    self.decode(k, depth + 1),
                    self.decode(v, depth + 1)
                )
            }
        }
    }

    /// A Rust expression for the constant `v` of type `ty`.
    pub fn value(&self, ty: &Ty, v: &Value) -> String {
        match (ty, v) {
            (Ty::Bool, Value::Bool(b)) => b.to_string(),
            (Ty::I8, Value::Int(n)) => format!("{n}i8"),
            (Ty::I16, Value::Int(n)) => format!("{n}i16"),
            (Ty::I32, Value::Int(n)) => format!("{n}i32"),
            (Ty::I64, Value::Int(n)) => format!("{n}i64"),
            (Ty::Enum(id), Value::Int(n)) => format!("{}({n})", self.enum_path(*id)),
            (Ty::Double, Value::Double(d)) => format!("{d:?}f64"),
            (Ty::String, Value::String(s)) => match self.options.string {
                StringType::String => format!("__std::string::String::from({s:?})"),
                StringType::Text => format!("__rs::protocol::Text::from_static({s:?})"),
            },
            (Ty::Binary, Value::String(s)) => match self.options.binary {
                BinaryType::Bytes => format!("__rs::bytes::Bytes::from_static({s:?}.as_bytes())"),
                BinaryType::Vec => format!("__std::vec::Vec::from({s:?}.as_bytes())"),
            },
            (Ty::Uuid, Value::String(s)) => {
                // The resolver checked the text.
                let u = crate::parse_uuid(s).unwrap_or_default();
                format!("{u:?}")
            }
            (Ty::List(t) | Ty::Set(t), Value::List(items)) => {
                let mut out = String::from("__std::vec::Vec::from([");
                for i in items {
                    let _ = write!(out, "{}, ", self.value(t, i));
                }
                out.push_str("])");
                if matches!(ty, Ty::Set(_)) && self.repr(t) != Repr::Vec {
                    out.push_str(".into_iter().collect()");
                }
                out
            }
            (Ty::Map(k, val), Value::Map(entries)) => {
                let mut out = String::from("__std::vec::Vec::from([");
                for (a, b) in entries {
                    let _ = write!(out, "({}, {}), ", self.value(k, a), self.value(val, b));
                }
                out.push_str("])");
                if self.repr(k) != Repr::Vec {
                    out.push_str(".into_iter().collect()");
                }
                out
            }
            (Ty::Struct(id), Value::Struct(given))
                if self.program.strukt(*id).kind == StructKind::Union =>
            {
                let s = self.program.strukt(*id);
                match given.as_slice() {
                    [(idx, fv)] => {
                        let f = &s.fields[*idx];
                        let expr = self.value(&f.ty, fv);
                        format!(
                            "{}::{}({})",
                            self.struct_path(*id),
                            ident(&f.name),
                            super::fields::box_field(self.program, *id, f, expr)
                        )
                    }
                    _ => format!(
                        "<{} as __std::default::Default>::default()",
                        self.struct_path(*id)
                    ),
                }
            }
            (Ty::Struct(id), Value::Struct(given)) => {
                let s = self.program.strukt(*id);
                let mut out = format!(
                    "{{ let mut s = <{} as __std::default::Default>::default(); ",
                    self.struct_path(*id)
                );
                for (idx, fv) in given {
                    let f = &s.fields[*idx];
                    let expr = self.value(&f.ty, fv);
                    let _ = write!(
                        out,
                        "s.{} = {}; ",
                        ident(&f.name),
                        super::fields::wrap_field(self.program, *id, f, expr)
                    );
                }
                out.push_str("s }");
                out
            }
            // The resolver checked every value against its type.
            (ty, v) => unreachable!("value {v:?} was checked against {ty:?}"),
        }
    }
}

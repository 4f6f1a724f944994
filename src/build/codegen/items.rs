//! Structs, unions, exceptions, enums, constants and typedefs (how their fields are
//! stored is [`super::fields`]).

use std::fmt::Write;

use crate::idl::model::{DefId, Enum, Field, Requiredness, Struct, StructKind, Ty};

use super::fields::{box_field, is_boxed, is_option, wrap_field};
use super::names::{apart, ident};
use super::types::{ttype, Gen};

/// Doc comment lines for `doc`, indented by `indent`.
pub fn doc_lines(out: &mut String, doc: &Option<String>, indent: &str) {
    if let Some(d) = doc {
        for line in d.lines() {
            let _ = writeln!(
                out,
                "{indent}///{}{line}",
                if line.is_empty() { "" } else { " " }
            );
        }
    }
}

/// The stored type of a field (without the `Option` wrapper).
pub fn inner_type(g: &Gen, owner: DefId, f: &Field) -> String {
    let t = g.rust_type(&f.ty);
    if is_boxed(g.program, owner, f) {
        format!("__std::boxed::Box<{t}>")
    } else {
        t
    }
}

/// The statements that write one field whose value is behind reference `v`.
fn encode_field(g: &Gen, f: &Field, v: &str) -> String {
    if f.ty == Ty::Bool {
        return format!("w.write_bool_field({}, *{v});", f.id);
    }
    format!(
        "w.write_field_begin({}, {}); {}",
        ttype(&f.ty),
        f.id,
        g.encode(&f.ty, v, 0)
    )
}

/// The decoding expression for a field, boxed if needed.
fn decode_field(g: &Gen, owner: DefId, f: &Field) -> String {
    let e = g.decode(&f.ty, 0);
    if is_boxed(g.program, owner, f) {
        format!("__std::boxed::Box::new({e})")
    } else {
        e
    }
}

/// A struct or exception (unions go to [`union`]).
pub fn structure(g: &Gen, out: &mut String, id: DefId, s: &Struct) {
    let name = ident(&s.name);
    doc_lines(out, &s.doc, "");
    let _ = writeln!(
        out,
        "#[derive(Clone, Debug, PartialEq)]\n{}pub struct {name} {{",
        g.attributes_for(&s.name)
    );
    for f in &s.fields {
        doc_lines(out, &f.doc, "    ");
        let t = inner_type(g, id, f);
        let t = if is_option(f) {
            format!("__std::option::Option<{t}>")
        } else {
            t
        };
        let _ = writeln!(out, "    pub {}: {t},", ident(&f.name));
    }
    out.push_str("}\n\n");

    // Default: declared defaults, else the type's default (None for options).
    let _ = writeln!(out, "impl __std::default::Default for {name} {{\n    fn default() -> Self {{\n        {name} {{");
    for f in &s.fields {
        let v = match &f.default {
            Some(d) => wrap_field(g.program, id, f, g.value(&f.ty, d)),
            None => "__std::default::Default::default()".into(),
        };
        let _ = writeln!(out, "            {}: {v},", ident(&f.name));
    }
    out.push_str("        }\n    }\n}\n\n");

    // Encode.
    let _ = writeln!(out, "impl __rs::protocol::Encode for {name} {{\n    fn encode<W: __rs::protocol::ProtocolWriter>(&self, w: &mut W) {{\n        let mark = w.write_struct_begin();");
    for f in &s.fields {
        let field = format!("self.{}", ident(&f.name));
        if is_option(f) {
            let _ = writeln!(
                out,
                "        if let __std::option::Option::Some(v) = &{field} {{ {} }}",
                encode_field(g, f, "v")
            );
        } else {
            let _ = writeln!(
                out,
                "        {{ let v = &{field}; {} }}",
                encode_field(g, f, "v")
            );
        }
    }
    out.push_str("        w.write_struct_end(mark);\n    }\n}\n\n");

    // Decode.
    let _ = writeln!(out, "impl __rs::protocol::Decode for {name} {{\n    fn decode<R: __rs::protocol::ProtocolReader>(r: &mut R) -> __std::result::Result<Self, __rs::protocol::ProtocolError> {{\n        let mark = r.read_struct_begin()?;");
    for (i, f) in s.fields.iter().enumerate() {
        let _ = writeln!(
            out,
            "        let mut f{i}: __std::option::Option<{}> = __std::option::Option::None;",
            inner_type(g, id, f)
        );
    }
    out.push_str("        loop {\n            let (t, id) = r.read_field_begin()?;\n            match (id, t) {\n                (_, __rs::protocol::TType::Stop) => break,\n");
    for (i, f) in s.fields.iter().enumerate() {
        let _ = writeln!(
            out,
            "                ({}, {}) => f{i} = __std::option::Option::Some({}),",
            f.id,
            ttype(&f.ty),
            decode_field(g, id, f)
        );
    }
    out.push_str("                (_, t) => r.skip(t)?,\n            }\n        }\n        r.read_struct_end(mark);\n");
    let _ = writeln!(out, "        __std::result::Result::Ok({name} {{");
    for (i, f) in s.fields.iter().enumerate() {
        let default = f.default.as_ref().map(|d| {
            let e = g.value(&f.ty, d);
            if is_boxed(g.program, id, f) {
                format!("__std::boxed::Box::new({e})")
            } else {
                e
            }
        });
        let v = match (f.req, is_option(f), default) {
            (Requiredness::Required, _, _) => format!(
                "f{i}.ok_or_else(|| __rs::protocol::ProtocolError::missing_field({:?}, {:?}))?",
                s.name, f.name
            ),
            // Optional: absent stays `None` (the default only seeds `Default`).
            (_, true, _) => format!("f{i}"),
            (_, false, Some(d)) => format!("f{i}.unwrap_or_else(|| {d})"),
            (_, false, None) => format!("f{i}.unwrap_or_default()"),
        };
        let _ = writeln!(out, "            {}: {v},", ident(&f.name));
    }
    out.push_str("        })\n    }\n}\n\n");

    if s.kind == StructKind::Exception {
        let _ = writeln!(out, "impl __std::fmt::Display for {name} {{\n    fn fmt(&self, f: &mut __std::fmt::Formatter<'_>) -> __std::fmt::Result {{\n        write!(f, \"{{:?}}\", self)\n    }}\n}}\n");
    }
}

/// A union: a Rust enum with one variant per field; exactly one is written.
pub fn union(g: &Gen, out: &mut String, id: DefId, s: &Struct) {
    let name = ident(&s.name);
    doc_lines(out, &s.doc, "");
    let _ = writeln!(
        out,
        "#[derive(Clone, Debug, PartialEq)]\n{}pub enum {name} {{",
        g.attributes_for(&s.name)
    );
    for f in &s.fields {
        doc_lines(out, &f.doc, "    ");
        let _ = writeln!(out, "    {}({}),", ident(&f.name), inner_type(g, id, f));
    }
    out.push_str("}\n\n");
    if let Some(first) = s.fields.first() {
        let v = match &first.default {
            Some(d) => g.value(&first.ty, d),
            None => "__std::default::Default::default()".into(),
        };
        let v = box_field(g.program, id, first, v);
        let _ = writeln!(out, "impl __std::default::Default for {name} {{\n    fn default() -> Self {{\n        {name}::{}({v})\n    }}\n}}\n", ident(&first.name));
    }
    let _ = writeln!(out, "impl __rs::protocol::Encode for {name} {{\n    fn encode<W: __rs::protocol::ProtocolWriter>(&self, w: &mut W) {{\n        let mark = w.write_struct_begin();\n        match self {{");
    for f in &s.fields {
        let _ = writeln!(
            out,
            "            {name}::{}(v) => {{ {} }}",
            ident(&f.name),
            encode_field(g, f, "v")
        );
    }
    out.push_str("        }\n        w.write_struct_end(mark);\n    }\n}\n\n");
    let _ = writeln!(out, "impl __rs::protocol::Decode for {name} {{\n    fn decode<R: __rs::protocol::ProtocolReader>(r: &mut R) -> __std::result::Result<Self, __rs::protocol::ProtocolError> {{\n        let mark = r.read_struct_begin()?;\n        let mut out: __std::option::Option<{name}> = __std::option::Option::None;\n        loop {{\n            let (t, id) = r.read_field_begin()?;\n            let v = match (id, t) {{\n                (_, __rs::protocol::TType::Stop) => break,");
    for f in &s.fields {
        let _ = writeln!(
            out,
            "                ({}, {}) => {name}::{}({}),",
            f.id,
            ttype(&f.ty),
            ident(&f.name),
            decode_field(g, id, f)
        );
    }
    let _ = writeln!(out, "                (_, t) => {{ r.skip(t)?; continue; }}\n            }};\n            if out.replace(v).is_some() {{\n                return __std::result::Result::Err(__rs::protocol::ProtocolError::new(__rs::protocol::ProtocolErrorKind::InvalidData, \"union {} has more than one field set\"));\n            }}\n        }}\n        r.read_struct_end(mark);\n        out.ok_or_else(|| __rs::protocol::ProtocolError::new(__rs::protocol::ProtocolErrorKind::InvalidData, \"union {} has no field set\"))\n    }}\n}}\n", s.name, s.name);
}

/// The enum type's own items, which a value of the same name would clash with.
const ENUM_ITEMS: &[&str] = &["VALUES", "name", "from_name"];

/// The Rust names of `e`'s values: their own, with `_` added to one that is one of
/// the type's own items (`VALUES` → `VALUES_`) while another value has the result.
fn value_names(e: &Enum) -> Vec<String> {
    let own: Vec<String> = e.values.iter().map(|v| ident(&v.name)).collect();
    own.iter()
        .map(|id| {
            if !ENUM_ITEMS.contains(&id.as_str()) {
                return id.clone();
            }
            apart(format!("{id}_"), |n| own.iter().any(|o| o == n))
        })
        .collect()
}

/// An enum: a newtype over `i32` with a constant per value; unknown numbers are kept.
pub fn enumeration(g: &Gen, out: &mut String, e: &Enum) {
    let name = ident(&e.name);
    let values = value_names(e);
    doc_lines(out, &e.doc, "");
    let _ = writeln!(out, "#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n{}pub struct {name}(pub i32);\n\nimpl {name} {{", g.attributes_for(&e.name));
    for (v, id) in e.values.iter().zip(&values) {
        doc_lines(out, &v.doc, "    ");
        let _ = writeln!(out, "    pub const {id}: {name} = {name}({});", v.value);
    }
    let _ = writeln!(
        out,
        "    /// Every declared value, in order.\n    pub const VALUES: &'static [{name}] = &[{}];",
        values
            .iter()
            .map(|id| format!("{name}::{id}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str("    /// The declared name of this value, if it has one.\n    pub fn name(self) -> __std::option::Option<&'static str> {\n        match self.0 {\n");
    let mut seen = Vec::new();
    for v in &e.values {
        if !seen.contains(&v.value) {
            seen.push(v.value);
            let _ = writeln!(
                out,
                "            {} => __std::option::Option::Some({:?}),",
                v.value, v.name
            );
        }
    }
    out.push_str("            _ => __std::option::Option::None,\n        }\n    }\n    /// The value with this declared name.\n    pub fn from_name(name: &str) -> __std::option::Option<Self> {\n        match name {\n");
    for (v, id) in e.values.iter().zip(&values) {
        let _ = writeln!(
            out,
            "            {:?} => __std::option::Option::Some({name}::{id}),",
            v.name
        );
    }
    out.push_str("            _ => __std::option::Option::None,\n        }\n    }\n}\n\n");
    let first = e.values.first().map_or(0, |v| v.value);
    let _ = writeln!(out, "impl __std::default::Default for {name} {{\n    fn default() -> Self {{\n        {name}({first})\n    }}\n}}\n");
    let _ = writeln!(out, "impl __std::fmt::Debug for {name} {{\n    fn fmt(&self, f: &mut __std::fmt::Formatter<'_>) -> __std::fmt::Result {{\n        match self.name() {{\n            __std::option::Option::Some(n) => f.write_str(n),\n            __std::option::Option::None => write!(f, \"{}({{}})\", self.0),\n        }}\n    }}\n}}\n", e.name);
    let _ = writeln!(out, "impl __std::convert::From<i32> for {name} {{\n    fn from(v: i32) -> Self {{\n        {name}(v)\n    }}\n}}\n\nimpl __std::convert::From<{name}> for i32 {{\n    fn from(v: {name}) -> i32 {{\n        v.0\n    }}\n}}\n");
}

/// A constant: `const` for scalars and strings, a lazily built `static` otherwise.
pub fn constant(g: &Gen, out: &mut String, c: &crate::idl::model::Const) {
    doc_lines(out, &c.doc, "");
    let name = ident(&c.name);
    match (&c.ty, &c.value) {
        (Ty::String, crate::idl::model::Value::String(s)) => {
            let _ = writeln!(out, "pub const {name}: &str = {s:?};\n");
        }
        (Ty::Binary, crate::idl::model::Value::String(s)) => {
            let _ = writeln!(out, "pub const {name}: &[u8] = {s:?}.as_bytes();\n");
        }
        (
            Ty::Bool | Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 | Ty::Double | Ty::Uuid | Ty::Enum(_),
            v,
        ) => {
            let _ = writeln!(
                out,
                "pub const {name}: {} = {};\n",
                g.rust_type(&c.ty),
                g.value(&c.ty, v)
            );
        }
        (ty, v) => {
            let t = g.rust_type(ty);
            let _ = writeln!(out, "pub static {name}: __std::sync::LazyLock<{t}> = __std::sync::LazyLock::new(|| {});\n", g.value(ty, v));
        }
    }
}

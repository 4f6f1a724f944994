//! Rust code from a resolved IDL program.
//!
//! One `pub mod <file>` per IDL file (includes included), each holding that file's
//! items; references across files go through `super::<other>::Name`. Generated code
//! names ringsoa as `__rs` and the standard library as `__std` and spells every
//! other path in full, so IDL names such as `Result` or `Option` cannot clash.
//!
//! - [`names`]: escaping of Rust keywords, derived names.
//! - [`types`]: type mapping, and the encode/decode/constant expressions.
//! - [`fields`]: how a field is stored (`Option`, boxed).
//! - [`items`]: structs, unions, exceptions, enums, constants, typedefs.
//! - [`service`]: argument/result structs, handler trait, dispatcher, client stub.
//!
//! The result is formatted with `prettyplease`, so it reads like hand-written code
//! in a debugger, `cargo expand` or `ringsoa idl gen`.

pub mod fields;
pub mod items;
pub mod names;
pub mod service;
pub mod types;

use std::fmt::Write;

use crate::idl::model::{DefId, Program, StructKind};
use crate::idl::IdlError;

use names::{ident, module};
use types::Gen;

/// How code is generated.
#[derive(Debug, Clone)]
pub struct Options {
    /// How the generated code names ringsoa (normally `::ringsoa`).
    pub crate_path: String,
    /// Extra attributes put on generated types (structs, exceptions, unions, enums,
    /// and services' argument and result structs), as `(path, attribute)`: the path
    /// `.` for every type, `Name` for every type of that name, `module.Name` for
    /// one file's; e.g. `(".", "#[derive(serde::Serialize)]")`.
    pub attributes: Vec<(String, String)>,
    /// The Rust type of `binary`.
    pub binary: BinaryType,
    /// The Rust type of `string`.
    pub string: StringType,
    /// The Rust type of sets and maps.
    pub collections: Collections,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            crate_path: "::ringsoa".into(),
            attributes: Vec::new(),
            binary: BinaryType::Bytes,
            string: StringType::String,
            collections: Collections::BTree,
        }
    }
}

/// The Rust type of Thrift's `binary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryType {
    /// `bytes::Bytes`: decoding takes a zero-copy slice of the request buffer.
    #[default]
    Bytes,
    /// `Vec<u8>`: one copy per value when decoding, no `bytes` in your types.
    Vec,
}

/// The Rust type of Thrift's `string`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StringType {
    /// `String`: decoding copies the characters out of the request buffer.
    #[default]
    String,
    /// `ringsoa::protocol::Text`: a checked UTF-8 view of the request buffer (derefs
    /// to `str`), so an echoed string is copied once, into the reply.
    Text,
}

/// The Rust type of Thrift's `set` and `map` whose element or key type allows it
/// (others are `Vec`s: doubles and structs have no `Ord` or `Hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Collections {
    /// `BTreeSet` and `BTreeMap`: sorted, so the same value always encodes to the
    /// same bytes.
    #[default]
    BTree,
    /// `HashSet` and `HashMap`, iterated in no set order. `HashSet` and `HashMap`
    /// are neither `Hash` nor `Ord`, so a set of sets, or a map keyed by sets, is a
    /// `Vec`.
    Hash,
}

/// Generates the Rust source for every file of `program`. `crate_path` is how the
/// generated code names ringsoa (normally `::ringsoa`).
pub fn generate(program: &Program, crate_path: &str) -> Result<String, IdlError> {
    generate_with(
        program,
        &Options {
            crate_path: crate_path.into(),
            ..Options::default()
        },
    )
}

/// Generates the Rust source for every file of `program` with `options`.
pub fn generate_with(program: &Program, options: &Options) -> Result<String, IdlError> {
    let crate_path = &options.crate_path;
    let mut out = String::new();
    for (i, f) in program.files.iter().enumerate() {
        if let Some(other) = program.files[..i]
            .iter()
            .find(|o| module(&o.name) == module(&f.name))
        {
            return Err(IdlError::new(
                &f.path,
                Default::default(),
                format!(
                    "two IDL files would both be module `{}` (the other is {})",
                    module(&f.name),
                    other.path.display()
                ),
            ));
        }
        if let Some(u) = f
            .structs
            .iter()
            .find(|s| s.kind == StructKind::Union && s.fields.is_empty())
        {
            return Err(IdlError::new(
                &f.path,
                u.pos,
                format!("union `{}` has no fields", u.name),
            ));
        }
        clashing_names(f)?;
        let g = Gen {
            program,
            file: i,
            options,
        };
        let _ = writeln!(
            out,
            "/// Generated from `{}`.\npub mod {} {{\n#![allow(unused_imports, unused_variables, unused_mut, dead_code, non_camel_case_types, non_snake_case, non_upper_case_globals, missing_docs, clippy::all, rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]\nuse {crate_path} as __rs;\nuse ::std as __std;\nuse __rs::protocol::{{ProtocolReader as _, ProtocolWriter as _}};\n",
            f.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            module(&f.name)
        );
        for c in &f.consts {
            items::constant(&g, &mut out, c);
        }
        for t in &f.typedefs {
            items::doc_lines(&mut out, &t.doc, "");
            let _ = writeln!(
                out,
                "pub type {} = {};\n",
                ident(&t.name),
                g.rust_type(&t.ty)
            );
        }
        for e in &f.enums {
            items::enumeration(&g, &mut out, e);
        }
        for (index, s) in f.structs.iter().enumerate() {
            let id = DefId { file: i, index };
            match s.kind {
                StructKind::Union => items::union(&g, &mut out, id, s),
                _ => items::structure(&g, &mut out, id, s),
            }
        }
        for (index, s) in f.services.iter().enumerate() {
            service::service(&g, &mut out, DefId { file: i, index }, s);
        }
        out.push_str("}\n\n");
    }
    Ok(format!(
        "// Generated by ringsoa from Thrift IDL. Do not edit.\n\n{}",
        pretty(out)
    ))
}

/// The first name two items of `f` would both have in Rust: an IDL type's and one
/// generated for a service (`UserClient` of `service User`, `UserGetArgs` of its
/// `get`), or two generated ones (methods `get_user` and `getUser` both make
/// `UserGetUserArgs`): an error at the later item, naming the other.
fn clashing_names(f: &crate::idl::model::File) -> Result<(), IdlError> {
    use crate::idl::error::Pos;
    let mut seen: Vec<(String, String, Pos)> = Vec::new();
    let mut add = |name: String, what: String, pos: Pos| -> Result<(), IdlError> {
        if let Some((_, other, _)) = seen.iter().find(|(n, _, _)| *n == name) {
            return Err(IdlError::new(
                &f.path,
                pos,
                format!("{what} and {other} would both be `{name}` in Rust: rename one"),
            ));
        }
        seen.push((name, what, pos));
        Ok(())
    };
    for s in &f.structs {
        let kind = match s.kind {
            StructKind::Union => "union",
            StructKind::Exception => "exception",
            StructKind::Struct => "struct",
        };
        add(ident(&s.name), format!("{kind} `{}`", s.name), s.pos)?;
    }
    for e in &f.enums {
        add(ident(&e.name), format!("enum `{}`", e.name), e.pos)?;
    }
    for t in &f.typedefs {
        add(ident(&t.name), format!("typedef `{}`", t.name), t.pos)?;
    }
    for svc in &f.services {
        for part in ["Handler", "Server", "Client"] {
            let what = format!("service `{}`'s {}", svc.name, part.to_lowercase());
            add(format!("{}{part}", svc.name), what, svc.pos)?;
        }
        for m in &svc.functions {
            let base = format!("{}{}", svc.name, names::camel(&m.name));
            let throws = if m.throws.is_empty() { 2 } else { 3 };
            for part in &["Args", "Result", "Exception"][..throws] {
                let what = format!("`{}.{}`'s {}", svc.name, m.name, part.to_lowercase());
                add(format!("{base}{part}"), what, m.pos)?;
            }
        }
    }
    Ok(())
}

/// `code` formatted by prettyplease; as it is if it does not parse (a generator bug,
/// which rustc then reports at its place in the unformatted text).
fn pretty(code: String) -> String {
    match syn::parse_file(&code) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => code,
    }
}

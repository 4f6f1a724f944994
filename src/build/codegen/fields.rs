//! How a field is stored.
//!
//! `required` → `T`; `optional` → `Option<T>`; neither → `Option<T>` unless the
//! field has a default value, then `T` (always written, and the default when absent
//! on the wire). This matches thriftpy2, which writes every field that is not
//! `None`. An `optional` field's default seeds `Default` only: absent on the wire
//! decodes as `None`, so values round-trip. A struct field whose type can contain the
//! struct itself by value is boxed.

use crate::idl::model::{DefId, Field, Program, Requiredness, Ty};

/// Whether the field is stored as `Option<T>`.
pub fn is_option(f: &Field) -> bool {
    match f.req {
        Requiredness::Required => false,
        Requiredness::Optional => true,
        Requiredness::Default => f.default.is_none(),
    }
}

/// Whether a field of struct `owner` must be boxed: its type holds, by value through
/// struct fields, the owner itself.
pub fn is_boxed(p: &Program, owner: DefId, f: &Field) -> bool {
    fn reaches(p: &Program, from: DefId, target: DefId, seen: &mut Vec<DefId>) -> bool {
        if from == target {
            return true;
        }
        if seen.contains(&from) {
            return false;
        }
        seen.push(from);
        p.strukt(from).fields.iter().any(|f| match f.ty {
            Ty::Struct(id) => reaches(p, id, target, seen),
            _ => false,
        })
    }
    match f.ty {
        Ty::Struct(id) => reaches(p, id, owner, &mut Vec::new()),
        _ => false,
    }
}

/// Boxes an expression of the field's plain type where the field is boxed.
pub fn box_field(p: &Program, owner: DefId, f: &Field, expr: String) -> String {
    if is_boxed(p, owner, f) {
        format!("__std::boxed::Box::new({expr})")
    } else {
        expr
    }
}

/// Wraps an expression of the field's plain type into its stored form.
pub fn wrap_field(p: &Program, owner: DefId, f: &Field, expr: String) -> String {
    let expr = box_field(p, owner, f, expr);
    if is_option(f) {
        format!("__std::option::Option::Some({expr})")
    } else {
        expr
    }
}

//! The resolved program: what codegen and dynamic mode work from.
//!
//! Every type reference is bound to its definition ([`Ty`]), typedefs are seen
//! through, and constants and default values are evaluated into [`Value`]s that have
//! been checked against their types.

use std::path::PathBuf;

use super::ast;
use crate::TType;

/// A definition in a file of the program: `(file index, index within its kind)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DefId {
    /// Index into [`Program::files`].
    pub file: usize,
    /// Index into that file's list of structs, enums or services.
    pub index: usize,
}

/// A resolved type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ty {
    /// bool
    Bool,
    /// byte / i8
    I8,
    /// i16
    I16,
    /// i32
    I32,
    /// i64
    I64,
    /// double
    Double,
    /// string (UTF-8)
    String,
    /// binary
    Binary,
    /// uuid
    Uuid,
    /// `list<T>`
    List(Box<Ty>),
    /// `set<T>`
    Set(Box<Ty>),
    /// `map<K, V>`
    Map(Box<Ty>, Box<Ty>),
    /// An enum, by id into [`File::enums`].
    Enum(DefId),
    /// A struct, union or exception, by id into [`File::structs`].
    Struct(DefId),
}

impl Ty {
    /// The wire type.
    pub fn ttype(&self) -> TType {
        match self {
            Ty::Bool => TType::Bool,
            Ty::I8 => TType::I8,
            Ty::I16 => TType::I16,
            Ty::I32 | Ty::Enum(_) => TType::I32,
            Ty::I64 => TType::I64,
            Ty::Double => TType::Double,
            Ty::String | Ty::Binary => TType::String,
            Ty::Uuid => TType::Uuid,
            Ty::List(_) => TType::List,
            Ty::Set(_) => TType::Set,
            Ty::Map(..) => TType::Map,
            Ty::Struct(_) => TType::Struct,
        }
    }
}

/// An evaluated constant, checked against its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// bool
    Bool(bool),
    /// Any integer type, and enums (their number).
    Int(i64),
    /// double
    Double(f64),
    /// string or binary
    String(String),
    /// list or set elements
    List(Vec<Value>),
    /// map entries
    Map(Vec<(Value, Value)>),
    /// struct fields that were given, by index into the struct's field list
    Struct(Vec<(usize, Value)>),
}

/// A resolved field.
pub type Field = ast::Field<Ty, Value>;
/// A resolved struct, union or exception.
pub type Struct = ast::Struct<Ty, Value>;
/// A resolved constant.
pub type Const = ast::Const<Ty, Value>;
/// A resolved typedef.
pub type Typedef = ast::Typedef<Ty>;
/// A resolved service function.
pub type Function = ast::Function<Ty, Value>;
/// A resolved service; `extends` points into some file's `services`.
pub type Service = ast::Service<Ty, Value, DefId>;
pub use ast::{Enum, EnumValue, Requiredness, StructKind};

impl Function {
    /// The fields of the function's `_result` struct: `success` (id 0, absent for
    /// void) and the declared exceptions, all optional.
    pub fn result_fields(&self) -> Vec<Field> {
        let success = self.returns.iter().map(|t| Field {
            id: 0,
            name: "success".into(),
            ty: t.clone(),
            req: Requiredness::Optional,
            default: None,
            doc: None,
            annotations: Vec::new(),
            pos: self.pos,
        });
        success
            .chain(self.throws.iter().map(|t| Field {
                req: Requiredness::Optional,
                default: None,
                ..t.clone()
            }))
            .collect()
    }
}

/// One IDL file of the program.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// Module name: the file's base name without `.thrift`.
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// `namespace` headers as (scope, name).
    pub namespaces: Vec<(String, String)>,
    /// Included files by module name.
    pub includes: Vec<(String, usize)>,
    /// Constants.
    pub consts: Vec<Const>,
    /// Typedefs.
    pub typedefs: Vec<Typedef>,
    /// Enums.
    pub enums: Vec<Enum>,
    /// Structs, unions and exceptions.
    pub structs: Vec<Struct>,
    /// Services.
    pub services: Vec<Service>,
}

/// A set of IDL files with their includes, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// All files; includes come before the files that include them.
    pub files: Vec<File>,
    /// Indices of the files asked for (the others were reached through includes).
    pub roots: Vec<usize>,
}

impl Program {
    /// The struct behind an id.
    pub fn strukt(&self, id: DefId) -> &Struct {
        &self.files[id.file].structs[id.index]
    }

    /// The enum behind an id.
    pub fn enumeration(&self, id: DefId) -> &Enum {
        &self.files[id.file].enums[id.index]
    }

    /// The service behind an id.
    pub fn service(&self, id: DefId) -> &Service {
        &self.files[id.file].services[id.index]
    }

    /// Finds a service by name, `Name` or `module.Name`, in the root files first.
    pub fn find_service(&self, name: &str) -> Option<DefId> {
        let (module, short) = match name.rsplit_once('.') {
            Some((m, s)) => (Some(m), s),
            None => (None, name),
        };
        let order = self
            .roots
            .iter()
            .copied()
            .chain((0..self.files.len()).filter(|i| !self.roots.contains(i)));
        for file in order {
            let f = &self.files[file];
            if module.is_some_and(|m| m != f.name) {
                continue;
            }
            if let Some(index) = f.services.iter().position(|s| s.name == short) {
                return Some(DefId { file, index });
            }
        }
        None
    }

    /// A service's functions, its own first, then those it inherits (nearest first).
    pub fn all_functions(&self, id: DefId) -> Vec<&Function> {
        let mut out = Vec::new();
        let mut next = Some(id);
        while let Some(id) = next {
            let s = self.service(id);
            out.extend(s.functions.iter());
            next = s.extends;
        }
        out
    }
}

//! The syntax tree of one IDL file, as written.
//!
//! Definitions are generic over their type `T` and constant-value `V`
//! representations so that the resolved [`model`](super::model) reuses the same
//! shapes with bound types and evaluated values.

use super::error::Pos;

/// `(key = "value", …)` annotations, in order; a key without a value maps to "1".
pub type Annotations = Vec<(String, String)>;

/// One parsed file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    /// `include "path"` headers, in order.
    pub includes: Vec<(String, Pos)>,
    /// `cpp_include "path"` headers (kept, unused).
    pub cpp_includes: Vec<String>,
    /// `namespace scope name` headers.
    pub namespaces: Vec<Namespace>,
    /// The definitions, in order.
    pub definitions: Vec<Definition>,
}

/// `namespace scope name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Namespace {
    /// The language scope (`py`, `rs`, `*`, …).
    pub scope: String,
    /// The namespace.
    pub name: String,
    /// Annotations.
    pub annotations: Annotations,
}

/// A type as written.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    /// What the type is.
    pub kind: TypeKind,
    /// Annotations written after the type.
    pub annotations: Annotations,
    /// Where it was written.
    pub pos: Pos,
}

/// The kinds of written types.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    /// `bool`
    Bool,
    /// `byte` or `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `double`
    Double,
    /// `string`
    String,
    /// `binary`
    Binary,
    /// `uuid`
    Uuid,
    /// `list<T>`
    List(Box<TypeExpr>),
    /// `set<T>`
    Set(Box<TypeExpr>),
    /// `map<K, V>`
    Map(Box<TypeExpr>, Box<TypeExpr>),
    /// A name: `Foo` or `other_file.Foo`.
    Named(String),
}

/// A constant value as written.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstValue {
    /// An integer literal (decimal or hex).
    Int(i64),
    /// A floating-point literal.
    Double(f64),
    /// A string literal.
    String(String),
    /// `true` / `false`.
    Bool(bool),
    /// A reference: a constant, or an enum value `Enum.VALUE`, maybe through an include.
    Ident(String, Pos),
    /// `[a, b, …]`
    List(Vec<ConstValue>),
    /// `{k: v, …}` (also struct literals).
    Map(Vec<(ConstValue, ConstValue)>),
}

impl std::fmt::Display for ConstValue {
    /// The value as IDL text, for error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConstValue::Int(n) => write!(f, "{n}"),
            ConstValue::Double(d) => write!(f, "{d:?}"),
            ConstValue::String(s) => write!(f, "{s:?}"),
            ConstValue::Bool(b) => write!(f, "{b}"),
            ConstValue::Ident(name, _) => f.write_str(name),
            ConstValue::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    write!(f, "{}{v}", if i == 0 { "" } else { ", " })?;
                }
                f.write_str("]")
            }
            ConstValue::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    write!(f, "{}{k}: {v}", if i == 0 { "" } else { ", " })?;
                }
                f.write_str("}")
            }
        }
    }
}

/// A top-level definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    /// `const T name = value`
    Const(Const),
    /// `typedef T name`
    Typedef(Typedef),
    /// `enum name { … }`
    Enum(Enum),
    /// `struct`, `union` or `exception`
    Struct(Struct),
    /// `service name [extends base] { … }`
    Service(Service),
}

impl Definition {
    /// The defined name.
    pub fn name(&self) -> &str {
        match self {
            Definition::Const(d) => &d.name,
            Definition::Typedef(d) => &d.name,
            Definition::Enum(d) => &d.name,
            Definition::Struct(d) => &d.name,
            Definition::Service(d) => &d.name,
        }
    }

    /// Where the definition starts.
    pub fn pos(&self) -> Pos {
        match self {
            Definition::Const(d) => d.pos,
            Definition::Typedef(d) => d.pos,
            Definition::Enum(d) => d.pos,
            Definition::Struct(d) => d.pos,
            Definition::Service(d) => d.pos,
        }
    }
}

/// `const T name = value`
#[derive(Debug, Clone, PartialEq)]
pub struct Const<T = TypeExpr, V = ConstValue> {
    /// Name.
    pub name: String,
    /// Declared type.
    pub ty: T,
    /// Value.
    pub value: V,
    /// Doc comment.
    pub doc: Option<String>,
    /// Annotations.
    pub annotations: Annotations,
    /// Position.
    pub pos: Pos,
}

/// `typedef T name`
#[derive(Debug, Clone, PartialEq)]
pub struct Typedef<T = TypeExpr> {
    /// The new name.
    pub name: String,
    /// The type it stands for.
    pub ty: T,
    /// Doc comment.
    pub doc: Option<String>,
    /// Annotations.
    pub annotations: Annotations,
    /// Position.
    pub pos: Pos,
}

/// `enum name { … }`
#[derive(Debug, Clone, PartialEq)]
pub struct Enum {
    /// Name.
    pub name: String,
    /// Values in order, each with its number (explicit, or the previous plus one).
    pub values: Vec<EnumValue>,
    /// Doc comment.
    pub doc: Option<String>,
    /// Annotations.
    pub annotations: Annotations,
    /// Position.
    pub pos: Pos,
}

/// One enum value.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumValue {
    /// Name.
    pub name: String,
    /// Number.
    pub value: i32,
    /// Doc comment.
    pub doc: Option<String>,
    /// Annotations.
    pub annotations: Annotations,
    /// Position.
    pub pos: Pos,
}

/// What kind of struct-like definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructKind {
    /// `struct`
    Struct,
    /// `union`: exactly one field set.
    Union,
    /// `exception`
    Exception,
}

/// `struct`, `union` or `exception`.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct<T = TypeExpr, V = ConstValue> {
    /// Which kind.
    pub kind: StructKind,
    /// Name.
    pub name: String,
    /// Fields in order.
    pub fields: Vec<Field<T, V>>,
    /// Doc comment.
    pub doc: Option<String>,
    /// Annotations.
    pub annotations: Annotations,
    /// Position.
    pub pos: Pos,
}

/// `required`, `optional`, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requiredness {
    /// `required`
    Required,
    /// `optional`
    Optional,
    /// Neither: written when set (thriftpy2 omits `None`).
    Default,
}

/// A struct field, argument or declared exception.
#[derive(Debug, Clone, PartialEq)]
pub struct Field<T = TypeExpr, V = ConstValue> {
    /// Field id; implicit ids are −1, −2, … in order, as thriftpy2 assigns them.
    pub id: i16,
    /// Name.
    pub name: String,
    /// Type.
    pub ty: T,
    /// Requiredness.
    pub req: Requiredness,
    /// Default value.
    pub default: Option<V>,
    /// Doc comment.
    pub doc: Option<String>,
    /// Annotations.
    pub annotations: Annotations,
    /// Position.
    pub pos: Pos,
}

/// `service name [extends base] { functions }`
#[derive(Debug, Clone, PartialEq)]
pub struct Service<T = TypeExpr, V = ConstValue, S = String> {
    /// Name.
    pub name: String,
    /// The service it extends.
    pub extends: Option<S>,
    /// Functions in order.
    pub functions: Vec<Function<T, V>>,
    /// Doc comment.
    pub doc: Option<String>,
    /// Annotations.
    pub annotations: Annotations,
    /// Position.
    pub pos: Pos,
}

/// A service function.
#[derive(Debug, Clone, PartialEq)]
pub struct Function<T = TypeExpr, V = ConstValue> {
    /// Name.
    pub name: String,
    /// `oneway`
    pub oneway: bool,
    /// Return type; `None` for `void`.
    pub returns: Option<T>,
    /// Arguments.
    pub args: Vec<Field<T, V>>,
    /// Declared exceptions.
    pub throws: Vec<Field<T, V>>,
    /// Doc comment.
    pub doc: Option<String>,
    /// Annotations.
    pub annotations: Annotations,
    /// Position.
    pub pos: Pos,
}

//! Loading IDL files with their includes and resolving them into a [`Program`].
//!
//! Includes are found relative to the including file, then in the include
//! directories, in order (thriftpy2's rule). Names may be used before they are
//! defined (thriftpy2 resolves in a second pass too), so the resolver first indexes
//! every file's names, then binds each reference; typedef and constant chains are
//! followed with cycle detection.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::ast::{self, ConstValue, Definition, TypeExpr, TypeKind};
use super::error::{IdlError, Pos};
use super::model::{self, DefId, File, Program, Ty, Value};
use super::parser::parse;

/// Loads `roots` and everything they include, and resolves them.
pub fn load(
    roots: &[impl AsRef<Path>],
    include_dirs: &[impl AsRef<Path>],
) -> Result<Program, IdlError> {
    let mut loader = Loader::new(include_dirs);
    let mut root_ids = Vec::new();
    for r in roots {
        let path = r.as_ref();
        let src = std::fs::read_to_string(path).map_err(|e| {
            IdlError::new(path, Pos::default(), format!("cannot read IDL file: {e}"))
        })?;
        root_ids.push(loader.add(path, &src, Pos::default())?);
    }
    Resolver::new(loader.files).run(root_ids)
}

/// Parses and resolves one IDL text; `path` names it in errors and anchors its
/// relative includes.
pub fn load_str(
    path: impl AsRef<Path>,
    src: &str,
    include_dirs: &[impl AsRef<Path>],
) -> Result<Program, IdlError> {
    let mut loader = Loader::new(include_dirs);
    let root = loader.add(path.as_ref(), src, Pos::default())?;
    Resolver::new(loader.files).run(vec![root])
}

/// A parsed file with its includes bound.
struct Parsed {
    path: PathBuf,
    name: String,
    doc: ast::Document,
    includes: Vec<(String, usize)>,
}

#[derive(Default)]
struct Loader {
    include_dirs: Vec<PathBuf>,
    files: Vec<Parsed>,
    by_path: HashMap<PathBuf, usize>,
    /// Files being loaded, to report include cycles.
    loading: Vec<PathBuf>,
}

impl Loader {
    fn new(include_dirs: &[impl AsRef<Path>]) -> Self {
        Loader {
            include_dirs: include_dirs
                .iter()
                .map(|d| d.as_ref().to_path_buf())
                .collect(),
            ..Loader::default()
        }
    }

    fn add(&mut self, path: &Path, src: &str, _at: Pos) -> Result<usize, IdlError> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(&i) = self.by_path.get(&key) {
            return Ok(i);
        }
        let name = module_name(path)?;
        self.loading.push(key.clone());
        let doc = parse(path, src)?;
        let mut includes: Vec<(String, usize)> = Vec::new();
        for (inc, pos) in &doc.includes {
            let found = self.find_include(path, inc).ok_or_else(|| {
                let dirs: Vec<String> = self
                    .include_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                let where_ = if dirs.is_empty() {
                    "next to this file (no include dirs given)".to_owned()
                } else {
                    format!(
                        "next to this file or in the include dirs {}",
                        dirs.join(", ")
                    )
                };
                IdlError::new(path, *pos, format!("include \"{inc}\" not found {where_}"))
            })?;
            let fkey = found.canonicalize().unwrap_or_else(|_| found.clone());
            if self.loading.contains(&fkey) {
                return Err(IdlError::new(
                    path,
                    *pos,
                    format!("include cycle through \"{inc}\""),
                ));
            }
            let isrc = std::fs::read_to_string(&found).map_err(|e| {
                IdlError::new(path, *pos, format!("cannot read include \"{inc}\": {e}"))
            })?;
            let idx = self.add(&found, &isrc, *pos)?;
            let iname = self.files[idx].name.clone();
            if let Some((_, other)) = includes.iter().find(|(n, _)| *n == iname) {
                if *other != idx {
                    return Err(IdlError::new(
                        path,
                        *pos,
                        format!("two included files are both named `{iname}`"),
                    ));
                }
            }
            includes.push((iname, idx));
        }
        self.loading.pop();
        self.files.push(Parsed {
            path: path.to_path_buf(),
            name,
            doc,
            includes,
        });
        let i = self.files.len() - 1;
        self.by_path.insert(key, i);
        Ok(i)
    }

    fn find_include(&self, from: &Path, inc: &str) -> Option<PathBuf> {
        let dir = from.parent().unwrap_or(Path::new("."));
        std::iter::once(dir.to_path_buf())
            .chain(self.include_dirs.iter().cloned())
            .map(|d| d.join(inc))
            .find(|p| p.is_file())
    }
}

/// The name other files use for `path`'s items: its file name without `.thrift`
/// (Apache's rule; it may hold dots, as in `name_conflicts.enum`).
fn module_name(path: &Path) -> Result<String, IdlError> {
    match path.file_stem().and_then(|s| s.to_str()) {
        Some(stem) if !stem.is_empty() => Ok(stem.to_owned()),
        _ => Err(IdlError::new(
            path,
            Pos::default(),
            "the file name is empty or not UTF-8",
        )),
    }
}

/// What a name in a file refers to: its kind and index within that kind.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Entry {
    Const(usize),
    Typedef(usize),
    Enum(usize),
    Struct(usize),
    Service(usize),
}

struct Resolver {
    parsed: Vec<Parsed>,
    names: Vec<HashMap<String, Entry>>,
    /// Per file, the AST definitions of each kind in order.
    consts: Vec<Vec<ast::Const>>,
    typedefs: Vec<Vec<ast::Typedef>>,
    structs: Vec<Vec<ast::Struct>>,
    enums: Vec<Vec<ast::Enum>>,
    services: Vec<Vec<ast::Service>>,
    typedef_done: HashMap<(usize, usize), Ty>,
    visiting: HashSet<(usize, usize, u8)>,
}

type RResult<T> = Result<T, IdlError>;

impl Resolver {
    fn new(parsed: Vec<Parsed>) -> Self {
        let n = parsed.len();
        Resolver {
            parsed,
            names: vec![HashMap::new(); n],
            consts: vec![Vec::new(); n],
            typedefs: vec![Vec::new(); n],
            structs: vec![Vec::new(); n],
            enums: vec![Vec::new(); n],
            services: vec![Vec::new(); n],
            typedef_done: HashMap::new(),
            visiting: HashSet::new(),
        }
    }

    fn err(&self, file: usize, pos: Pos, msg: impl Into<String>) -> IdlError {
        IdlError::new(&self.parsed[file].path, pos, msg)
    }

    fn run(mut self, roots: Vec<usize>) -> RResult<Program> {
        for f in 0..self.parsed.len() {
            self.index(f)?;
        }
        let mut files = Vec::new();
        for f in 0..self.parsed.len() {
            files.push(self.file(f)?);
        }
        Ok(Program { files, roots })
    }

    fn index(&mut self, f: usize) -> RResult<()> {
        let defs = std::mem::take(&mut self.parsed[f].doc.definitions);
        for def in &defs {
            let entry = match def {
                Definition::Const(d) => {
                    self.consts[f].push(d.clone());
                    Entry::Const(self.consts[f].len() - 1)
                }
                Definition::Typedef(d) => {
                    self.typedefs[f].push(d.clone());
                    Entry::Typedef(self.typedefs[f].len() - 1)
                }
                Definition::Enum(d) => {
                    self.check_unique(f, d.values.iter().map(|v| (&v.name, v.pos)), "enum value")?;
                    self.enums[f].push(d.clone());
                    Entry::Enum(self.enums[f].len() - 1)
                }
                Definition::Struct(d) => {
                    self.check_fields(f, &d.fields, &d.name)?;
                    self.structs[f].push(d.clone());
                    Entry::Struct(self.structs[f].len() - 1)
                }
                Definition::Service(d) => {
                    self.check_unique(f, d.functions.iter().map(|x| (&x.name, x.pos)), "function")?;
                    for func in &d.functions {
                        self.check_fields(f, &func.args, &func.name)?;
                        self.check_fields(f, &func.throws, &func.name)?;
                    }
                    self.services[f].push(d.clone());
                    Entry::Service(self.services[f].len() - 1)
                }
            };
            if self.names[f].insert(def.name().to_owned(), entry).is_some() {
                return Err(self.err(f, def.pos(), format!("`{}` is defined twice", def.name())));
            }
        }
        self.parsed[f].doc.definitions = defs;
        Ok(())
    }

    fn check_unique<'a>(
        &self,
        f: usize,
        items: impl Iterator<Item = (&'a String, Pos)>,
        what: &str,
    ) -> RResult<()> {
        let mut seen = HashSet::new();
        for (name, pos) in items {
            if !seen.insert(name) {
                return Err(self.err(f, pos, format!("{what} `{name}` appears twice")));
            }
        }
        Ok(())
    }

    fn check_fields(&self, f: usize, fields: &[ast::Field], owner: &str) -> RResult<()> {
        self.check_unique(f, fields.iter().map(|x| (&x.name, x.pos)), "field")?;
        let mut ids = HashSet::new();
        for x in fields {
            if !ids.insert(x.id) {
                return Err(self.err(
                    f,
                    x.pos,
                    format!("field id {} appears twice in `{owner}`", x.id),
                ));
            }
        }
        Ok(())
    }

    /// Looks a possibly dotted name up from file `f`: `Name` or `module.Name`, where
    /// `module` is an included file's name (the longest that fits, since file names
    /// may hold dots).
    fn lookup(&self, f: usize, name: &str) -> Option<(usize, Entry)> {
        if let Some(e) = self.names[f].get(name) {
            return Some((f, *e));
        }
        self.parsed[f]
            .includes
            .iter()
            .filter_map(|(module, target)| {
                let rest = name.strip_prefix(module.as_str())?.strip_prefix('.')?;
                Some((module.len(), *target, self.names[*target].get(rest)?))
            })
            .max_by_key(|(len, ..)| *len)
            .map(|(_, target, e)| (target, *e))
    }

    fn ty(&mut self, f: usize, t: &TypeExpr) -> RResult<Ty> {
        Ok(match &t.kind {
            TypeKind::Bool => Ty::Bool,
            TypeKind::I8 => Ty::I8,
            TypeKind::I16 => Ty::I16,
            TypeKind::I32 => Ty::I32,
            TypeKind::I64 => Ty::I64,
            TypeKind::Double => Ty::Double,
            TypeKind::String => Ty::String,
            TypeKind::Binary => Ty::Binary,
            TypeKind::Uuid => Ty::Uuid,
            TypeKind::List(e) => Ty::List(Box::new(self.ty(f, e)?)),
            TypeKind::Set(e) => Ty::Set(Box::new(self.ty(f, e)?)),
            TypeKind::Map(k, v) => Ty::Map(Box::new(self.ty(f, k)?), Box::new(self.ty(f, v)?)),
            TypeKind::Named(name) => match self.lookup(f, name) {
                Some((g, Entry::Struct(i))) => Ty::Struct(DefId { file: g, index: i }),
                Some((g, Entry::Enum(i))) => Ty::Enum(DefId { file: g, index: i }),
                Some((g, Entry::Typedef(i))) => self.typedef(g, i)?,
                Some(_) => return Err(self.err(f, t.pos, format!("`{name}` is not a type"))),
                None => return Err(self.err(f, t.pos, format!("unknown type `{name}`"))),
            },
        })
    }

    fn typedef(&mut self, f: usize, i: usize) -> RResult<Ty> {
        if let Some(t) = self.typedef_done.get(&(f, i)) {
            return Ok(t.clone());
        }
        let td = self.typedefs[f][i].clone();
        if !self.visiting.insert((f, i, 0)) {
            return Err(self.err(f, td.pos, format!("typedef `{}` refers to itself", td.name)));
        }
        let t = self.ty(f, &td.ty)?;
        self.visiting.remove(&(f, i, 0));
        self.typedef_done.insert((f, i), t.clone());
        Ok(t)
    }

    fn field(&mut self, f: usize, x: &ast::Field) -> RResult<model::Field> {
        let ty = self.ty(f, &x.ty)?;
        let default = match &x.default {
            Some(v) => Some(self.value(f, v, &ty, x.pos)?),
            None => None,
        };
        Ok(model::Field {
            id: x.id,
            name: x.name.clone(),
            ty,
            req: x.req,
            default,
            doc: x.doc.clone(),
            annotations: x.annotations.clone(),
            pos: x.pos,
        })
    }

    fn fields(&mut self, f: usize, xs: &[ast::Field]) -> RResult<Vec<model::Field>> {
        xs.iter().map(|x| self.field(f, x)).collect()
    }

    fn file(&mut self, f: usize) -> RResult<File> {
        let mut consts = Vec::new();
        for c in self.consts[f].clone() {
            let ty = self.ty(f, &c.ty)?;
            let value = self.value(f, &c.value, &ty, c.pos)?;
            consts.push(model::Const {
                name: c.name,
                ty,
                value,
                doc: c.doc,
                annotations: c.annotations,
                pos: c.pos,
            });
        }
        let mut typedefs = Vec::new();
        for (i, t) in self.typedefs[f].clone().into_iter().enumerate() {
            typedefs.push(model::Typedef {
                ty: self.typedef(f, i)?,
                name: t.name,
                doc: t.doc,
                annotations: t.annotations,
                pos: t.pos,
            });
        }
        let mut structs = Vec::new();
        for s in self.structs[f].clone() {
            structs.push(model::Struct {
                fields: self.fields(f, &s.fields)?,
                kind: s.kind,
                name: s.name,
                doc: s.doc,
                annotations: s.annotations,
                pos: s.pos,
            });
        }
        let mut services = Vec::new();
        for s in self.services[f].clone() {
            services.push(self.service(f, s)?);
        }
        let p = &self.parsed[f];
        Ok(File {
            name: p.name.clone(),
            path: p.path.clone(),
            namespaces: p
                .doc
                .namespaces
                .iter()
                .map(|n| (n.scope.clone(), n.name.clone()))
                .collect(),
            includes: p.includes.clone(),
            consts,
            typedefs,
            enums: self.enums[f].clone(),
            structs,
            services,
        })
    }

    fn service(&mut self, f: usize, s: ast::Service) -> RResult<model::Service> {
        let extends = match &s.extends {
            None => None,
            Some(base) => match self.lookup(f, base) {
                Some((g, Entry::Service(i))) => Some(DefId { file: g, index: i }),
                _ => {
                    return Err(self.err(
                        f,
                        s.pos,
                        format!("`{}` extends unknown service `{base}`", s.name),
                    ))
                }
            },
        };
        let mut functions = Vec::new();
        for func in &s.functions {
            if func.oneway && (func.returns.is_some() || !func.throws.is_empty()) {
                return Err(self.err(
                    f,
                    func.pos,
                    format!(
                        "oneway function `{}` must return void and throw nothing",
                        func.name
                    ),
                ));
            }
            let throws = self.fields(f, &func.throws)?;
            if let Some(t) = throws.iter().find(|t| !matches!(t.ty, Ty::Struct(_))) {
                return Err(self.err(
                    f,
                    t.pos,
                    format!(
                        "`{}` throws `{}`, which is not an exception",
                        func.name, t.name
                    ),
                ));
            }
            functions.push(model::Function {
                name: func.name.clone(),
                oneway: func.oneway,
                returns: match &func.returns {
                    Some(t) => Some(self.ty(f, t)?),
                    None => None,
                },
                args: self.fields(f, &func.args)?,
                throws,
                doc: func.doc.clone(),
                annotations: func.annotations.clone(),
                pos: func.pos,
            });
        }
        Ok(model::Service {
            name: s.name,
            extends,
            functions,
            doc: s.doc,
            annotations: s.annotations,
            pos: s.pos,
        })
    }

    /// Evaluates `v` as a value of type `ty`, written in file `f`.
    fn value(&mut self, f: usize, v: &ConstValue, ty: &Ty, pos: Pos) -> RResult<Value> {
        let mismatch = |this: &Self, what: &str| {
            this.err(f, pos, format!("{what} is not a valid {}", describe(ty)))
        };
        if let ConstValue::Ident(name, ipos) = v {
            return self.ident_value(f, name, ty, *ipos);
        }
        Ok(match (ty, v) {
            (Ty::Bool, ConstValue::Bool(b)) => Value::Bool(*b),
            (Ty::Bool, ConstValue::Int(n @ (0 | 1))) => Value::Bool(*n == 1),
            (Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64, ConstValue::Int(n)) => {
                let (lo, hi) = int_range(ty);
                if *n < lo || *n > hi {
                    return Err(mismatch(self, &format!("{n}")));
                }
                Value::Int(*n)
            }
            (Ty::Enum(id), ConstValue::Int(n)) => {
                let e = &self.enums[id.file][id.index];
                if !e.values.iter().any(|x| x.value as i64 == *n) {
                    return Err(self.err(
                        f,
                        pos,
                        format!("{n} is not a value of enum `{}`", e.name),
                    ));
                }
                Value::Int(*n)
            }
            (Ty::Double, ConstValue::Double(d)) => Value::Double(*d),
            (Ty::Double, ConstValue::Int(n)) => Value::Double(*n as f64),
            (Ty::String | Ty::Binary, ConstValue::String(s)) => Value::String(s.clone()),
            (Ty::Uuid, ConstValue::String(s)) if crate::parse_uuid(s).is_some() => {
                Value::String(s.clone())
            }
            (Ty::List(e) | Ty::Set(e), ConstValue::List(items)) => Value::List(
                items
                    .iter()
                    .map(|i| self.value(f, i, e, pos))
                    .collect::<RResult<_>>()?,
            ),
            (Ty::Map(k, val), ConstValue::Map(entries)) => {
                let mut out = Vec::new();
                for (a, b) in entries {
                    out.push((self.value(f, a, k, pos)?, self.value(f, b, val, pos)?));
                }
                Value::Map(out)
            }
            (Ty::Struct(id), ConstValue::Map(entries)) => {
                self.struct_value(f, *id, entries, pos)?
            }
            // An empty `{}` or `[]` is an empty collection of any kind (Apache's
            // ThriftTest writes `set<binary> … = {}`).
            (Ty::List(_) | Ty::Set(_), ConstValue::Map(m)) if m.is_empty() => {
                Value::List(Vec::new())
            }
            (Ty::Map(..), ConstValue::List(l)) if l.is_empty() => Value::Map(Vec::new()),
            (_, other) => return Err(mismatch(self, &other.to_string())),
        })
    }

    fn struct_value(
        &mut self,
        f: usize,
        id: DefId,
        entries: &[(ConstValue, ConstValue)],
        pos: Pos,
    ) -> RResult<Value> {
        let s = self.structs[id.file][id.index].clone();
        if s.kind == ast::StructKind::Union && entries.len() > 1 {
            return Err(self.err(
                f,
                pos,
                format!("a literal of union `{}` sets more than one field", s.name),
            ));
        }
        let mut out = Vec::new();
        for (k, v) in entries {
            let ConstValue::String(name) = k else {
                return Err(self.err(
                    f,
                    pos,
                    format!(
                        "keys of a `{}` literal must be field names in quotes",
                        s.name
                    ),
                ));
            };
            let Some(idx) = s.fields.iter().position(|x| &x.name == name) else {
                return Err(self.err(f, pos, format!("`{}` has no field `{name}`", s.name)));
            };
            let fty = self.ty(id.file, &s.fields[idx].ty)?;
            out.push((idx, self.value(f, v, &fty, pos)?));
        }
        for (i, x) in s.fields.iter().enumerate() {
            if x.req == ast::Requiredness::Required && !out.iter().any(|(j, _)| *j == i) {
                return Err(self.err(
                    f,
                    pos,
                    format!("required field `{}` of `{}` is not given", x.name, s.name),
                ));
            }
        }
        Ok(Value::Struct(out))
    }

    /// A name used as a value: a constant, or an enum value `Enum.NAME`, maybe
    /// through an include (`module.Enum.NAME`, `module.CONST`).
    fn ident_value(&mut self, f: usize, name: &str, ty: &Ty, pos: Pos) -> RResult<Value> {
        if let Some((g, Entry::Const(i))) = self.lookup(f, name) {
            let c = self.consts[g][i].clone();
            if !self.visiting.insert((g, i, 1)) {
                return Err(self.err(f, pos, format!("constant `{name}` refers to itself")));
            }
            let v = self.value(g, &c.value, ty, c.pos);
            self.visiting.remove(&(g, i, 1));
            return v.map_err(|e| self.err(f, pos, format!("constant `{name}`: {}", e.message)));
        }
        if let (Ty::Enum(id), Some((_, value_name))) = (ty, name.rsplit_once('.')) {
            // Apache binds `Prefix.NAME` to the value NAME of the expected enum,
            // whatever the prefix says (EnumTest.thrift: `MyEnum2 x = MyEnum1.ME2_2`).
            let e = &self.enums[id.file][id.index];
            if let Some(v) = e.values.iter().find(|v| v.name == value_name) {
                return Ok(Value::Int(v.value as i64));
            }
        }
        if let Some((enum_name, value_name)) = name.rsplit_once('.') {
            if let Some((g, Entry::Enum(i))) = self.lookup(f, enum_name) {
                let e = &self.enums[g][i];
                let Some(v) = e.values.iter().find(|v| v.name == value_name) else {
                    return Err(self.err(
                        f,
                        pos,
                        format!("enum `{}` has no value `{value_name}`", e.name),
                    ));
                };
                let n = v.value as i64;
                return match ty {
                    Ty::Enum(id) if *id == (DefId { file: g, index: i }) => Ok(Value::Int(n)),
                    Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 => Ok(Value::Int(n)),
                    _ => Err(self.err(f, pos, format!("`{name}` is not a valid {}", describe(ty)))),
                };
            }
        }
        if matches!(ty, Ty::Bool) && (name == "true" || name == "false") {
            return Ok(Value::Bool(name == "true"));
        }
        Err(self.err(f, pos, format!("unknown constant or enum value `{name}`")))
    }
}

fn int_range(ty: &Ty) -> (i64, i64) {
    match ty {
        Ty::I8 => (i8::MIN as i64, i8::MAX as i64),
        Ty::I16 => (i16::MIN as i64, i16::MAX as i64),
        Ty::I32 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

/// A type as an error message names it: IDL spelling, `enum value` and `struct
/// literal` for named types.
fn describe(ty: &Ty) -> String {
    match ty {
        Ty::Enum(_) => "enum value".into(),
        Ty::Struct(_) => "struct literal".into(),
        Ty::List(e) => format!("list<{}>", describe(e)),
        Ty::Set(e) => format!("set<{}>", describe(e)),
        Ty::Map(k, v) => format!("map<{}, {}>", describe(k), describe(v)),
        other => format!("{other:?}").to_lowercase(),
    }
}

//! Recursive descent from tokens to the [`ast`](super::ast).
//!
//! The grammar is Apache Thrift's (`doc/specs/idl.md`) as thriftpy2 accepts it:
//! optional field ids (implicit ids −1, −2, …), optional `,`/`;` separators,
//! annotations after types, fields, values and definitions, doc comments attached to
//! the definition, field or enum value that follows them.

use std::path::Path;

use super::ast::*;
use super::error::{IdlError, Pos};
use super::lexer::{tokenize, Spanned, Tok};

/// Parses one file's text.
pub fn parse(file: &Path, src: &str) -> Result<Document, IdlError> {
    let tokens = tokenize(file, src)?;
    let end = tokens.last().map_or(Pos { line: 1, col: 1 }, |t| t.1);
    let mut p = Parser {
        file,
        tokens,
        at: 0,
        end,
    };
    p.document()
}

struct Parser<'a> {
    file: &'a Path,
    tokens: Vec<Spanned>,
    at: usize,
    end: Pos,
}

type PResult<T> = Result<T, IdlError>;

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at).map(|t| &t.0)
    }

    fn pos(&self) -> Pos {
        self.tokens.get(self.at).map_or(self.end, |t| t.1)
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.at).map(|t| t.0.clone());
        self.at += 1;
        t
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn error(&self, expected: &str) -> IdlError {
        let found = self
            .peek()
            .map_or_else(|| "end of file".to_string(), Tok::describe);
        IdlError::new(
            self.file,
            self.pos(),
            format!("expected {expected}, found {found}"),
        )
    }

    fn expect(&mut self, t: Tok, expected: &str) -> PResult<()> {
        if self.eat(&t) {
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn ident(&mut self, what: &str) -> PResult<String> {
        match self.peek() {
            Some(Tok::Ident(s)) => {
                let s = s.clone();
                self.at += 1;
                Ok(s)
            }
            Some(t) if t.as_name().is_some() => {
                let s = t.as_name().unwrap_or_default().to_owned();
                self.at += 1;
                Ok(s)
            }
            _ => Err(self.error(what)),
        }
    }

    /// A name that must not be dotted (a definition, field or value name).
    fn plain_name(&mut self, what: &str) -> PResult<String> {
        let pos = self.pos();
        let s = self.ident(what)?;
        if s.contains('.') {
            return Err(IdlError::new(
                self.file,
                pos,
                format!("expected {what}, found dotted name `{s}`"),
            ));
        }
        Ok(s)
    }

    fn literal(&mut self, what: &str) -> PResult<String> {
        match self.bump() {
            Some(Tok::Literal(s)) => Ok(s),
            _ => {
                self.at -= 1;
                Err(self.error(what))
            }
        }
    }

    fn separator(&mut self) {
        if !self.eat(&Tok::Comma) {
            self.eat(&Tok::Semi);
        }
    }

    fn doc(&mut self) -> Option<String> {
        let mut doc = None;
        while let Some(Tok::Doc(d)) = self.peek() {
            doc = Some(d.clone());
            self.at += 1;
        }
        doc
    }

    fn document(&mut self) -> PResult<Document> {
        let mut doc = Document::default();
        loop {
            let comment = self.doc();
            let pos = self.pos();
            match self.peek() {
                None => return Ok(doc),
                Some(Tok::Include) => {
                    self.at += 1;
                    let path = self.literal("an include path in quotes")?;
                    doc.includes.push((path, pos));
                    self.separator();
                }
                Some(Tok::CppInclude) => {
                    self.at += 1;
                    doc.cpp_includes
                        .push(self.literal("a cpp_include path in quotes")?);
                    self.separator();
                }
                Some(Tok::Namespace) => {
                    self.at += 1;
                    let scope = if self.eat(&Tok::Star) {
                        "*".to_owned()
                    } else {
                        self.ident("a namespace scope")?
                    };
                    let name = match self.peek() {
                        Some(Tok::Literal(_)) => self.literal("a namespace")?,
                        _ => self.ident("a namespace")?,
                    };
                    let annotations = self.annotations()?;
                    doc.namespaces.push(Namespace {
                        scope,
                        name,
                        annotations,
                    });
                    self.separator();
                }
                Some(_) => {
                    let def = self.definition(comment, pos)?;
                    doc.definitions.push(def);
                }
            }
        }
    }

    fn definition(&mut self, doc: Option<String>, pos: Pos) -> PResult<Definition> {
        let def = match self.bump() {
            Some(Tok::Const) => {
                let ty = self.field_type()?;
                let name = self.plain_name("a constant name")?;
                self.expect(Tok::Eq, "`=` and the constant's value")?;
                let value = self.const_value()?;
                let annotations = self.annotations()?;
                Definition::Const(Const {
                    name,
                    ty,
                    value,
                    doc,
                    annotations,
                    pos,
                })
            }
            Some(Tok::Typedef) => {
                let ty = self.field_type()?;
                let name = self.plain_name("the typedef's name")?;
                let annotations = self.annotations()?;
                Definition::Typedef(Typedef {
                    name,
                    ty,
                    doc,
                    annotations,
                    pos,
                })
            }
            Some(Tok::Enum) => self.enumeration(doc, pos)?,
            Some(Tok::Senum) => {
                return Err(IdlError::new(
                    self.file,
                    pos,
                    "`senum` is deprecated and not supported (thriftpy2 rejects it too)",
                ))
            }
            Some(Tok::Struct) => self.structure(StructKind::Struct, doc, pos)?,
            Some(Tok::Union) => self.structure(StructKind::Union, doc, pos)?,
            Some(Tok::Exception) => self.structure(StructKind::Exception, doc, pos)?,
            Some(Tok::Service) => self.service(doc, pos)?,
            _ => {
                self.at -= 1;
                return Err(self.error(
                    "a definition (const, typedef, enum, struct, union, exception, service) or a header",
                ));
            }
        };
        self.separator();
        Ok(def)
    }

    fn enumeration(&mut self, doc: Option<String>, pos: Pos) -> PResult<Definition> {
        let name = self.plain_name("the enum's name")?;
        self.expect(Tok::LBrace, "`{`")?;
        let mut values = Vec::new();
        let mut next: i64 = 0;
        loop {
            let vdoc = self.doc();
            if self.eat(&Tok::RBrace) {
                break;
            }
            let vpos = self.pos();
            let vname = self.plain_name("an enum value name or `}`")?;
            let value = if self.eat(&Tok::Eq) {
                match self.bump() {
                    Some(Tok::Int(n)) => n,
                    _ => {
                        self.at -= 1;
                        return Err(self.error("an integer enum value"));
                    }
                }
            } else {
                next
            };
            let value = i32::try_from(value).map_err(|_| {
                IdlError::new(
                    self.file,
                    vpos,
                    format!("enum value {vname} = {value} is outside i32"),
                )
            })?;
            next = value as i64 + 1;
            let annotations = self.annotations()?;
            self.separator();
            values.push(EnumValue {
                name: vname,
                value,
                doc: vdoc,
                annotations,
                pos: vpos,
            });
        }
        let annotations = self.annotations()?;
        Ok(Definition::Enum(Enum {
            name,
            values,
            doc,
            annotations,
            pos,
        }))
    }

    fn structure(
        &mut self,
        kind: StructKind,
        doc: Option<String>,
        pos: Pos,
    ) -> PResult<Definition> {
        let name = self.plain_name("a name")?;
        // `xsd_all` is an obsolete marker some files still carry.
        if matches!(self.peek(), Some(Tok::Ident(s)) if s == "xsd_all") {
            self.at += 1;
        }
        self.expect(Tok::LBrace, "`{`")?;
        let fields = self.fields(Tok::RBrace)?;
        let annotations = self.annotations()?;
        Ok(Definition::Struct(Struct {
            kind,
            name,
            fields,
            doc,
            annotations,
            pos,
        }))
    }

    fn service(&mut self, doc: Option<String>, pos: Pos) -> PResult<Definition> {
        let name = self.plain_name("the service's name")?;
        let extends = if self.eat(&Tok::Extends) {
            Some(self.ident("the name of the service extended")?)
        } else {
            None
        };
        self.expect(Tok::LBrace, "`{`")?;
        let mut functions = Vec::new();
        loop {
            let fdoc = self.doc();
            if self.eat(&Tok::RBrace) {
                break;
            }
            let fpos = self.pos();
            let oneway = self.eat(&Tok::Oneway);
            let returns = if self.eat(&Tok::Void) {
                None
            } else {
                Some(
                    self.field_type()
                        .map_err(|_| self.error("a function's return type, `void` or `}`"))?,
                )
            };
            let fname = self.plain_name("a function name")?;
            self.expect(Tok::LParen, "`(` and the arguments")?;
            let args = self.fields(Tok::RParen)?;
            let throws = if self.eat(&Tok::Throws) {
                self.expect(Tok::LParen, "`(` after throws")?;
                self.fields(Tok::RParen)?
            } else {
                Vec::new()
            };
            let annotations = self.annotations()?;
            self.separator();
            functions.push(Function {
                name: fname,
                oneway,
                returns,
                args,
                throws,
                doc: fdoc,
                annotations,
                pos: fpos,
            });
        }
        let annotations = self.annotations()?;
        Ok(Definition::Service(Service {
            name,
            extends,
            functions,
            doc,
            annotations,
            pos,
        }))
    }

    /// Fields up to and including `close`; missing ids become −1, −2, …
    fn fields(&mut self, close: Tok) -> PResult<Vec<Field>> {
        let mut fields = Vec::new();
        let mut implicit: i16 = 0;
        loop {
            let doc = self.doc();
            if self.eat(&close) {
                return Ok(fields);
            }
            let pos = self.pos();
            let id = if let Some(Tok::Int(n)) = self.peek() {
                let n = *n;
                self.at += 1;
                self.expect(Tok::Colon, "`:` after the field id")?;
                i16::try_from(n).map_err(|_| {
                    IdlError::new(self.file, pos, format!("field id {n} is outside i16"))
                })?
            } else {
                implicit -= 1;
                implicit
            };
            let req = if self.eat(&Tok::Required) {
                Requiredness::Required
            } else if self.eat(&Tok::Optional) {
                Requiredness::Optional
            } else {
                Requiredness::Default
            };
            let ty = self.field_type()?;
            self.eat(&Tok::Amp);
            let name = self.plain_name("a field name")?;
            let default = if self.eat(&Tok::Eq) {
                Some(self.const_value()?)
            } else {
                None
            };
            // Obsolete XSD markers.
            while matches!(self.peek(), Some(Tok::Ident(s)) if s.starts_with("xsd_")) {
                self.at += 1;
            }
            let annotations = self.annotations()?;
            self.separator();
            fields.push(Field {
                id,
                name,
                ty,
                req,
                default,
                doc,
                annotations,
                pos,
            });
        }
    }

    fn field_type(&mut self) -> PResult<TypeExpr> {
        let pos = self.pos();
        let kind = match self.bump() {
            Some(Tok::Ident(s)) => match s.as_str() {
                "bool" => TypeKind::Bool,
                "byte" | "i8" => TypeKind::I8,
                "i16" => TypeKind::I16,
                "i32" => TypeKind::I32,
                "i64" => TypeKind::I64,
                "double" => TypeKind::Double,
                "string" => TypeKind::String,
                "binary" => TypeKind::Binary,
                "uuid" => TypeKind::Uuid,
                "slist" => {
                    return Err(IdlError::new(
                        self.file,
                        pos,
                        "`slist` is deprecated and not supported",
                    ))
                }
                _ => TypeKind::Named(s),
            },
            Some(Tok::List) => {
                self.skip_cpp_type();
                self.expect(Tok::Lt, "`<` after list")?;
                let e = self.field_type()?;
                self.expect(Tok::Gt, "`>` closing list<…>")?;
                self.skip_cpp_type();
                TypeKind::List(Box::new(e))
            }
            Some(Tok::Set) => {
                self.skip_cpp_type();
                self.expect(Tok::Lt, "`<` after set")?;
                let e = self.field_type()?;
                self.expect(Tok::Gt, "`>` closing set<…>")?;
                TypeKind::Set(Box::new(e))
            }
            Some(Tok::Map) => {
                self.skip_cpp_type();
                self.expect(Tok::Lt, "`<` after map")?;
                let k = self.field_type()?;
                self.expect(Tok::Comma, "`,` between the map's key and value types")?;
                let v = self.field_type()?;
                self.expect(Tok::Gt, "`>` closing map<…>")?;
                TypeKind::Map(Box::new(k), Box::new(v))
            }
            _ => {
                self.at -= 1;
                return Err(self.error("a type"));
            }
        };
        let annotations = self.annotations()?;
        Ok(TypeExpr {
            kind,
            annotations,
            pos,
        })
    }

    /// `cpp_type "…"` after a container keyword (Apache grammar), ignored.
    fn skip_cpp_type(&mut self) {
        if matches!(self.peek(), Some(Tok::Ident(s)) if s == "cpp_type") {
            self.at += 1;
            if let Some(Tok::Literal(_)) = self.peek() {
                self.at += 1;
            }
        }
    }

    fn const_value(&mut self) -> PResult<ConstValue> {
        let pos = self.pos();
        Ok(match self.bump() {
            Some(Tok::Int(n)) => ConstValue::Int(n),
            Some(Tok::Double(d)) => ConstValue::Double(d),
            Some(Tok::Literal(s)) => ConstValue::String(s),
            Some(Tok::True) => ConstValue::Bool(true),
            Some(Tok::False) => ConstValue::Bool(false),
            Some(Tok::Ident(s)) => ConstValue::Ident(s, pos),
            Some(Tok::LBracket) => {
                let mut items = Vec::new();
                while !self.eat(&Tok::RBracket) {
                    items.push(self.const_value()?);
                    self.separator();
                }
                ConstValue::List(items)
            }
            Some(Tok::LBrace) => {
                let mut entries = Vec::new();
                while !self.eat(&Tok::RBrace) {
                    let k = self.const_value()?;
                    self.expect(Tok::Colon, "`:` between a map key and its value")?;
                    let v = self.const_value()?;
                    self.separator();
                    entries.push((k, v));
                }
                ConstValue::Map(entries)
            }
            _ => {
                self.at -= 1;
                return Err(self.error("a constant value"));
            }
        })
    }

    fn annotations(&mut self) -> PResult<Annotations> {
        let mut out = Vec::new();
        if !self.eat(&Tok::LParen) {
            return Ok(out);
        }
        while !self.eat(&Tok::RParen) {
            let key = self.ident("an annotation name or `)`")?;
            let value = if self.eat(&Tok::Eq) {
                self.literal("an annotation value in quotes")?
            } else {
                "1".to_owned()
            };
            self.separator();
            out.push((key, value));
        }
        Ok(out)
    }
}

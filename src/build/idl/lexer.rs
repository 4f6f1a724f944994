//! Tokens of the Thrift IDL, with positions. Comments `//`, `#` and `/* */` are
//! skipped; `/** */` doc comments are kept so the parser can attach them.

use logos::Logos;

use super::error::{IdlError, Pos};

/// A token. Keyword and punctuation variants are named for the text they match.
#[allow(missing_docs)]
#[derive(Logos, Debug, Clone, PartialEq)]
#[logos(skip r"[ \t\r\n\f\u{feff}]+")]
#[logos(skip(r"(//|#)[^\n]*", allow_greedy = true))]
pub enum Tok {
    /// `/** … */`
    #[regex(r"/\*\*([^*]|\*+[^*/])*\*+/", |lex| doc_text(lex.slice()))]
    Doc(String),
    /// A plain `/* … */` comment (dropped by [`tokenize`]).
    #[regex(r"/\*([^*]|\*+[^*/])*\*+/", priority = 1)]
    #[token("/**/")]
    Comment,
    #[token("include")]
    Include,
    #[token("cpp_include")]
    CppInclude,
    #[token("namespace")]
    Namespace,
    #[token("const")]
    Const,
    #[token("typedef")]
    Typedef,
    #[token("enum")]
    Enum,
    #[token("senum")]
    Senum,
    #[token("struct")]
    Struct,
    #[token("union")]
    Union,
    #[token("exception")]
    Exception,
    #[token("service")]
    Service,
    #[token("extends")]
    Extends,
    #[token("oneway")]
    Oneway,
    #[token("throws")]
    Throws,
    #[token("void")]
    Void,
    #[token("required")]
    Required,
    #[token("optional")]
    Optional,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("map")]
    Map,
    #[token("list")]
    List,
    #[token("set")]
    Set,
    /// A name, possibly dotted (`other.Type`, `Enum.VALUE`).
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", |lex| lex.slice().to_owned())]
    Ident(String),
    /// An integer literal.
    #[regex(r"[+-]?[0-9]+", |lex| lex.slice().parse::<i64>().ok())]
    #[regex(r"[+-]?0[xX][0-9A-Fa-f]+", |lex| parse_hex(lex.slice()))]
    Int(i64),
    /// A floating-point literal.
    #[regex(r"[+-]?[0-9]*\.[0-9]+([eE][+-]?[0-9]+)?", |lex| lex.slice().parse::<f64>().ok())]
    #[regex(r"[+-]?[0-9]+[eE][+-]?[0-9]+", |lex| lex.slice().parse::<f64>().ok())]
    Double(f64),
    /// A string literal, quotes removed and escapes applied.
    #[regex(r#""([^"\\]|\\.)*""#, |lex| unescape(lex.slice()))]
    #[regex(r#"'([^'\\]|\\.)*'"#, |lex| unescape(lex.slice()))]
    Literal(String),
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token("=")]
    Eq,
    #[token("*")]
    Star,
    /// C++'s reference marker after a field type (`RecList & next`), which Apache
    /// accepts and ringsoa ignores (recursive fields are boxed anyway).
    #[token("&")]
    Amp,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier `{s}`"),
            Tok::Int(n) => format!("integer {n}"),
            Tok::Double(d) => format!("number {d}"),
            Tok::Literal(s) => format!("string \"{s}\""),
            Tok::Doc(_) => "doc comment".into(),
            other => format!("`{}`", keyword_text(other)),
        }
    }

    /// The identifier a keyword would be, where the grammar accepts it as a name.
    pub fn as_name(&self) -> Option<&'static str> {
        Some(match self {
            // Type keywords that thriftpy2 and Apache accept as field names too.
            Tok::Map => "map",
            Tok::List => "list",
            Tok::Set => "set",
            _ => return None,
        })
    }
}

fn keyword_text(t: &Tok) -> &'static str {
    match t {
        Tok::Include => "include",
        Tok::CppInclude => "cpp_include",
        Tok::Namespace => "namespace",
        Tok::Const => "const",
        Tok::Typedef => "typedef",
        Tok::Enum => "enum",
        Tok::Senum => "senum",
        Tok::Struct => "struct",
        Tok::Union => "union",
        Tok::Exception => "exception",
        Tok::Service => "service",
        Tok::Extends => "extends",
        Tok::Oneway => "oneway",
        Tok::Throws => "throws",
        Tok::Void => "void",
        Tok::Required => "required",
        Tok::Optional => "optional",
        Tok::True => "true",
        Tok::False => "false",
        Tok::Map => "map",
        Tok::List => "list",
        Tok::Set => "set",
        Tok::LBrace => "{",
        Tok::RBrace => "}",
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::LBracket => "[",
        Tok::RBracket => "]",
        Tok::Lt => "<",
        Tok::Gt => ">",
        Tok::Comma => ",",
        Tok::Semi => ";",
        Tok::Colon => ":",
        Tok::Eq => "=",
        Tok::Star => "*",
        Tok::Amp => "&",
        _ => "?",
    }
}

fn parse_hex(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes()[0] {
        b'-' => (true, &s[3..]),
        b'+' => (false, &s[3..]),
        _ => (false, &s[2..]),
    };
    let v = i64::from_str_radix(digits, 16).ok()?;
    Some(if neg { -v } else { v })
}

fn unescape(s: &str) -> Option<String> {
    let inner = &s[1..s.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        // Exactly thriftpy2's escapes; any other is an error there too.
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            c @ ('\\' | '\'' | '"') => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// The text of a doc comment: delimiters and leading `*` of each line removed.
fn doc_text(s: &str) -> String {
    let inner = &s[3..s.len() - 2];
    let lines: Vec<&str> = inner
        .lines()
        .map(|l| {
            let t = l.trim();
            t.strip_prefix('*').map(str::trim_start).unwrap_or(t)
        })
        .collect();
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |e| e + 1);
    lines[start..end].join("\n")
}

/// A token and where it starts.
pub type Spanned = (Tok, Pos);

/// Splits `src` into tokens, dropping plain comments.
pub fn tokenize(file: &std::path::Path, src: &str) -> Result<Vec<Spanned>, IdlError> {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(src.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let pos_of = |offset: usize| {
        let line = line_starts.partition_point(|&s| s <= offset);
        let col = src[line_starts[line - 1]..offset].chars().count() + 1;
        Pos {
            line: line as u32,
            col: col as u32,
        }
    };
    let mut out = Vec::new();
    let mut lex = Tok::lexer(src);
    while let Some(tok) = lex.next() {
        let pos = pos_of(lex.span().start);
        match tok {
            Ok(Tok::Comment) => {}
            Ok(t) => out.push((t, pos)),
            Err(()) => {
                let bad = lex.slice();
                let quoted = bad.len() >= 2 && (bad.starts_with('"') || bad.starts_with('\''));
                let what = if quoted && bad.ends_with(&bad[..1]) {
                    "unsupported escape in string literal (allowed: \\t \\r \\n \\\\ \\' \\\")"
                        .to_string()
                } else if bad.starts_with('"') || bad.starts_with('\'') {
                    "unterminated string literal".to_string()
                } else if bad.starts_with("/*") {
                    "unterminated comment".to_string()
                } else if bad.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
                    format!("malformed or out-of-range number `{bad}`")
                } else {
                    format!("unexpected character `{bad}`")
                };
                return Err(IdlError::new(file, pos, what));
            }
        }
    }
    Ok(out)
}

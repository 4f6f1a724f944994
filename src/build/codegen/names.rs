//! Rust names for IDL names: keywords escaped, derived item names built.

/// Words that are keywords in Rust 2021 (strict and reserved).
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Keywords that cannot be raw identifiers: they get a trailing `_`.
const NOT_RAW: &[&str] = &["crate", "self", "Self", "super"];

/// `name` as a Rust identifier: keywords become raw identifiers (`r#type`), or take a
/// trailing underscore where Rust allows no raw form (`self_`).
pub fn ident(name: &str) -> String {
    if NOT_RAW.contains(&name) {
        format!("{name}_")
    } else if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_owned()
    }
}

/// `id` with `_` added while `taken` says another item has the name (a generated
/// item's, a pattern's, another argument's).
pub fn apart(mut id: String, taken: impl Fn(&str) -> bool) -> String {
    while taken(&id) {
        id.push('_');
    }
    id
}

/// The Rust module for an IDL file named `name` (which may hold dots or dashes, as
/// in `name_conflicts.enum`): other characters become `_`, a leading digit gets a `_`
/// before it, keywords are escaped.
pub fn module(name: &str) -> String {
    let mut m: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !m.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        m.insert(0, '_');
    }
    ident(&m)
}

/// `some_name` or `someName` as `SomeName`, for derived type names.
pub fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_escaped() {
        assert_eq!(ident("type"), "r#type");
        assert_eq!(ident("self"), "self_");
        assert_eq!(ident("from"), "from");
        assert_eq!(camel("sleep_ms"), "SleepMs");
        assert_eq!(camel("getItem"), "GetItem");
        assert_eq!(module("name_conflicts.enum"), "name_conflicts_enum");
        assert_eq!(module("2-step"), "_2_step");
        assert_eq!(module("type"), "r#type");
    }
}

//! Every ```rust block of the README is code that CI compiles: each must appear, as
//! written (whitespace and trailing commas aside), in a file that is built — an
//! example (`cargo test` builds and `tests/examples.rs` runs most of them) or the
//! Apache cross-test crate. A block that cannot be (a user crate's build.rs) is
//! marked ```rust,ignore.

use std::path::Path;

/// `text` without whitespace and without a comma before a closing bracket, so
/// rustfmt's line breaks and the README's one-liners compare equal.
fn normalize(text: &str) -> String {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact
        .replace(",)", ")")
        .replace(",}", "}")
        .replace(",]", "]")
}

/// The ```rust blocks of `markdown` (not `rust,ignore`), with their line numbers.
fn rust_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut open, line.trim_end()) {
            (None, "```rust") => open = Some((i + 1, String::new())),
            (Some(_), "```") => blocks.extend(open.take()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "README.md: a ```rust block is not closed");
    blocks
}

#[test]
fn every_readme_snippet_is_in_code_that_ci_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push(path);
        }
    }
    sources.push(root.join("tests/apache/crosstest/src/main.rs"));
    let built: Vec<(String, String)> = sources
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            (p.display().to_string(), normalize(&text))
        })
        .collect();
    let blocks = rust_blocks(&readme);
    assert!(
        blocks.len() >= 10,
        "only {} ```rust blocks found",
        blocks.len()
    );
    let missing: Vec<String> = blocks
        .iter()
        .filter(|(_, block)| {
            let block = normalize(block);
            !built.iter().any(|(_, text)| text.contains(&block))
        })
        .map(|(line, block)| format!("README.md:{line}:\n{block}"))
        .collect();
    assert!(
        missing.is_empty(),
        "README blocks found in no example (edit the README or the example so they \
         agree):\n{}",
        missing.join("\n")
    );
}

//! [`Builder`]: what a build script sets, and where the generated code goes.

use std::path::{Path, PathBuf};

use crate::codegen::{generate_with, Options};
pub use crate::codegen::{BinaryType, Collections, StringType};
use crate::idl::{load, IdlError};

/// Name of the generated file in `OUT_DIR`, included by `ringsoa::include_idl!()`.
pub const OUTPUT_FILE: &str = "ringsoa_idl.rs";

/// Options for code generation.
#[derive(Debug, Clone)]
pub struct Builder {
    include_dirs: Vec<PathBuf>,
    options: Options,
    out_dir: Option<PathBuf>,
    output_file: String,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            include_dirs: Vec::new(),
            options: Options::default(),
            out_dir: None,
            output_file: OUTPUT_FILE.into(),
        }
    }
}

impl Builder {
    /// Default options: no include dirs, output to `OUT_DIR`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory searched for includes after the including file's own.
    pub fn include_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.include_dirs.push(dir.as_ref().to_path_buf());
        self
    }

    /// How generated code names this crate (default `::ringsoa`).
    pub fn crate_path(mut self, path: impl Into<String>) -> Self {
        self.options.crate_path = path.into();
        self
    }

    /// Puts `attribute` on the generated types that `path` names: `.` for every
    /// type, `Name` for every type of that name, `module.Name` for one file's (the
    /// module is the IDL file's name). For example
    /// `.type_attribute(".", "#[derive(serde::Serialize)]")`, or
    /// `.type_attribute("demo.Item", "#[derive(Hash)]")` (the type's fields must
    /// allow it; `binary` is `bytes::Bytes`, which has serde support behind the
    /// `bytes` crate's `serde` feature).
    pub fn type_attribute(mut self, path: impl Into<String>, attribute: impl Into<String>) -> Self {
        self.options
            .attributes
            .push((path.into(), attribute.into()));
        self
    }

    /// The Rust type of `binary` (default [`BinaryType::Bytes`]).
    pub fn binary_type(mut self, binary: BinaryType) -> Self {
        self.options.binary = binary;
        self
    }

    /// The Rust type of `string` (default [`StringType::String`]).
    pub fn string_type(mut self, string: StringType) -> Self {
        self.options.string = string;
        self
    }

    /// The Rust type of sets and maps (default [`Collections::BTree`]).
    pub fn collections(mut self, collections: Collections) -> Self {
        self.options.collections = collections;
        self
    }

    /// Writes into `dir` instead of `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Names the generated file (default [`OUTPUT_FILE`]), for a crate that compiles
    /// several IDL sets; include it with `include_idl!("name.rs")`.
    pub fn output_file(mut self, name: impl Into<String>) -> Self {
        self.output_file = name.into();
        self
    }

    /// Parses `files` and their includes, generates the code and writes it; prints
    /// `cargo:rerun-if-changed` for every file read. Returns the output path.
    pub fn compile(
        &self,
        files: &[impl AsRef<Path>],
    ) -> Result<PathBuf, Box<dyn std::error::Error>> {
        let program = load(files, &self.include_dirs)?;
        for f in &program.files {
            println!("cargo:rerun-if-changed={}", f.path.display());
        }
        let code = generate_with(&program, &self.options)?;
        let dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| {
                IdlError::new(
                    "OUT_DIR",
                    Default::default(),
                    "OUT_DIR is not set: call compile from a build script or set out_dir",
                )
            })?),
        };
        let path = dir.join(&self.output_file);
        std::fs::write(&path, code)?;
        Ok(path)
    }
}

/// Compiles `files` with default options (see [`Builder::compile`]).
pub fn compile(files: &[impl AsRef<Path>]) -> Result<PathBuf, Box<dyn std::error::Error>> {
    Builder::new().compile(files)
}

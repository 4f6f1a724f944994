//! `ringsoa idl check|gen`: ringsoa's IDL compiler from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use ringsoa::codegen::generate;
use ringsoa::idl::load;

/// `ringsoa idl …`.
#[derive(Subcommand, Debug)]
pub enum IdlCmd {
    /// Parse and resolve IDL files (with their includes), and generate their Rust
    /// without writing it; print each refusal as `file:line:col: message`. Exit 0
    /// when every file is accepted, 2 otherwise.
    Check {
        /// Directories searched for includes (after the including file's own).
        #[arg(long = "include-dir")]
        include_dirs: Vec<PathBuf>,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the Rust code generated for IDL files (what `ringsoa_build::compile` writes).
    Gen {
        /// Directories searched for includes (after the including file's own).
        #[arg(long = "include-dir")]
        include_dirs: Vec<PathBuf>,
        /// How the generated code names ringsoa.
        #[arg(long, default_value = "::ringsoa")]
        crate_path: String,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs one `idl` command.
pub fn idl(cmd: IdlCmd) -> ExitCode {
    match cmd {
        IdlCmd::Check {
            include_dirs,
            files,
        } => {
            let mut ok = true;
            // Loaded and generated (not written): what the generator refuses (an
            // empty union, two items of one Rust name) is refused here too.
            for f in &files {
                let checked = load(&[f], &include_dirs).and_then(|p| generate(&p, "::ringsoa"));
                if let Err(e) = checked {
                    eprintln!("{e}");
                    ok = false;
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        IdlCmd::Gen {
            include_dirs,
            crate_path,
            files,
        } => match load(&files, &include_dirs).and_then(|p| generate(&p, &crate_path)) {
            Ok(code) => crate::out(format_args!("{code}"), ExitCode::SUCCESS),
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
    }
}

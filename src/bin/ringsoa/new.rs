//! `ringsoa new NAME --idl FILE`: a crate that builds and serves at once — the IDL
//! (and its includes) copied in, a build script, a handler with one stub per method
//! (each answering its type's default until written), a server `main`, and a client
//! example that calls the first method.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ringsoa::codegen::names::module;
use ringsoa::codegen::service::{client_method_name, handler_method};
use ringsoa::codegen::types::Gen;
use ringsoa::idl::load;
use ringsoa::idl::model::{DefId, Program};

/// `ringsoa new` arguments.
#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// The crate's name (a Cargo package name: letters, digits, `-`, `_`).
    name: String,
    /// The IDL file whose service the crate serves (its includes are copied too).
    #[arg(long)]
    idl: PathBuf,
    /// The service to serve, when the IDL declares several (default: the first that
    /// no other service in the file extends, which serves its bases' methods too).
    #[arg(long)]
    service: Option<String>,
    /// Directories searched for the IDL's includes.
    #[arg(long = "include-dir")]
    include_dirs: Vec<PathBuf>,
    /// Where to create the crate (default: ./NAME); it must not exist.
    #[arg(long)]
    path: Option<PathBuf>,
    /// The ringsoa the crate depends on, as a path (default: the source this tool
    /// was built from).
    #[arg(long, default_value = env!("CARGO_MANIFEST_DIR"))]
    ringsoa: PathBuf,
}

/// Writes the crate.
pub fn new(a: NewArgs) -> ExitCode {
    match create(&a) {
        Ok((dir, serving)) => {
            println!(
                "created {0}{serving}: cd {0} && cargo run (serves on 127.0.0.1:9090), then \
                 cargo run --example client",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ringsoa new: {e}");
            ExitCode::from(2)
        }
    }
}

/// Writes the crate; returns its folder and, when the IDL declares several
/// services, which one it serves (for the closing line).
fn create(a: &NewArgs) -> Result<(PathBuf, String), String> {
    let ok_name = !a.name.is_empty()
        && a.name.starts_with(|c: char| c.is_ascii_alphabetic())
        && a.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok_name {
        return Err(format!(
            "{:?} is not a crate name (a letter, then letters, digits, - or _)",
            a.name
        ));
    }
    let program = load(&[&a.idl], &a.include_dirs).map_err(|e| e.to_string())?;
    let root = program
        .files
        .iter()
        .position(|f| same_file(&f.path, &a.idl))
        .unwrap_or(0);
    let service = served(&program, root, a.service.as_deref())
        .map_err(|e| format!("{}: {e}", a.idl.display()))?;
    let dir = a.path.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let ringsoa = a
        .ringsoa
        .canonicalize()
        .map_err(|e| format!("ringsoa source {}: {e}", a.ringsoa.display()))?;
    let (idl_file, include_dirs) = copy_idl(&program, root, &a.include_dirs, &dir)?;
    let krate = a.name.replace('-', "_");
    let files = [
        ("Cargo.toml", cargo_toml(&a.name, &ringsoa)),
        ("build.rs", build_rs(&idl_file, &include_dirs)),
        ("src/lib.rs", lib_rs(&a.name, &program, root)),
        ("src/handler.rs", handler_rs(&program, root)),
        (
            "src/main.rs",
            main_rs(&a.name, &krate, &program, root, service),
        ),
        (
            "examples/client.rs",
            client_rs(&a.name, &krate, &program, root, service),
        ),
    ];
    let mut sources = Vec::new();
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the crate"))
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push(path);
        }
    }
    // Formatted when rustfmt is there (it comes with rustup's default profile).
    let _ = std::process::Command::new("rustfmt")
        .args(["--edition", "2021"])
        .args(&sources)
        .status();
    let services = &program.files[root].services;
    let serving = if services.len() > 1 {
        let others: Vec<_> = services
            .iter()
            .filter(|s| s.name != services[service].name)
            .map(|s| s.name.as_str())
            .collect();
        format!(
            " serving {} (the IDL also declares {}; --service picks another)",
            services[service].name,
            others.join(", ")
        )
    } else {
        String::new()
    };
    Ok((dir, serving))
}

/// The index of the service to serve in file `root`: `asked` by name, else the first
/// that no other service of the file extends.
fn served(program: &Program, root: usize, asked: Option<&str>) -> Result<usize, String> {
    let services = &program.files[root].services;
    let names = || {
        services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match asked {
        _ if services.is_empty() => Err("declares no service".into()),
        Some(name) => services
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| format!("declares no service {name} (it declares {})", names())),
        None => {
            let extended = |index: usize| {
                services
                    .iter()
                    .any(|s| s.extends == Some(DefId { file: root, index }))
            };
            Ok((0..services.len()).find(|&i| !extended(i)).unwrap_or(0))
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Copies every IDL file of the program into the crate's `idl` folder: those under
/// the root file's folder keep their places relative to it; those found through an
/// include dir outside it go to `idl/includes/K` (K: the dir's place in
/// `include_dirs`), keeping their places relative to that dir. Returns the root's
/// path in the crate and the include dirs its build script gives, in their order.
fn copy_idl(
    program: &Program,
    root: usize,
    include_dirs: &[PathBuf],
    krate: &Path,
) -> Result<(String, Vec<String>), String> {
    let canonical = |p: &Path| {
        p.canonicalize()
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let base = canonical(&program.files[root].path)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let dirs = include_dirs
        .iter()
        .map(|d| canonical(d))
        .collect::<Result<Vec<_>, _>>()?;
    // Each include dir's place in the crate: under `idl` as under the root's folder,
    // else its own folder once a file is copied from it.
    let mut places: Vec<Option<PathBuf>> = dirs
        .iter()
        .map(|d| {
            d.strip_prefix(&base)
                .ok()
                .map(|rel| Path::new("idl").join(rel))
        })
        .collect();
    let mut root_rel = String::new();
    for (i, f) in program.files.iter().enumerate() {
        let abs = canonical(&f.path)?;
        let rel = match abs.strip_prefix(&base) {
            Ok(rel) => Path::new("idl").join(rel),
            Err(_) => {
                let k = dirs
                    .iter()
                    .position(|d| abs.starts_with(d))
                    .ok_or_else(|| {
                        format!(
                            "{} is included from outside {}'s folder and every include dir: \
                         copy it into the crate by hand",
                            f.path.display(),
                            program.files[root].path.display()
                        )
                    })?;
                let place = places[k].get_or_insert_with(|| format!("idl/includes/{k}").into());
                place.join(abs.strip_prefix(&dirs[k]).expect("a file in the dir"))
            }
        };
        let dest = krate.join(&rel);
        std::fs::create_dir_all(dest.parent().expect("a file"))
            .and_then(|()| std::fs::copy(&abs, &dest).map(drop))
            .map_err(|e| format!("cannot copy {}: {e}", f.path.display()))?;
        if i == root {
            root_rel = rel.display().to_string();
        }
    }
    // Only those that hold a copied file (the rest are not in the crate).
    let dirs = places
        .into_iter()
        .flatten()
        .filter(|p| krate.join(p).is_dir())
        .map(|p| p.display().to_string())
        .collect();
    Ok((root_rel, dirs))
}

fn cargo_toml(name: &str, ringsoa: &Path) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nringsoa = {{ path = {r:?}, default-features = false }}\n\
         tracing-subscriber = {{ version = \"0.3\", features = [\"env-filter\"] }}\n\n\
         [build-dependencies]\nringsoa-build = {{ path = {b:?} }}\n",
        r = ringsoa.display().to_string(),
        b = ringsoa.join("src/build").display().to_string()
    )
}

fn build_rs(idl: &str, include_dirs: &[String]) -> String {
    let builder: String = include_dirs
        .iter()
        .map(|d| format!(".include_dir({d:?})"))
        .collect();
    format!(
        "//! Generates the Rust code for the IDL (included by src/lib.rs).\n\n\
         fn main() {{\n    if let Err(e) = ringsoa_build::Builder::new(){builder}.compile(&[{idl:?}]) {{\n        \
         eprintln!(\"{{e}}\");\n        std::process::exit(1);\n    }}\n}}\n"
    )
}

fn lib_rs(name: &str, program: &Program, root: usize) -> String {
    format!(
        "//! {name}: serves {}.\n\n/// The code generated from the IDL, a module per IDL file.\n\
         pub mod idl {{\n    ringsoa::include_idl!();\n}}\n\npub mod handler;\n",
        program.files[root]
            .services
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Generated-code paths as a crate's own code spells them.
fn plain(code: &str) -> String {
    code.replace("__std::", "std::")
        .replace("__rs::", "ringsoa::")
        .replace("super::", "crate::idl::")
}

fn handler_rs(program: &Program, root: usize) -> String {
    let m = module(&program.files[root].name);
    let mut out = format!(
        "//! The handlers: one stub per method, each answering its type's default until\n\
         //! written. `?` works on any error (it becomes an INTERNAL_ERROR\n\
         //! TApplicationException) and on the method's declared exceptions.\n\n\
         #[allow(unused_imports)]\nuse crate::idl::{m}::*;\n\n"
    );
    let options = ringsoa::codegen::Options::default();
    let g = Gen {
        program,
        file: root,
        options: &options,
    };
    for (index, s) in program.files[root].services.iter().enumerate() {
        let _ = writeln!(
            out,
            "/// Serves `{0}`.\n#[derive(Clone, Copy, Debug, Default)]\npub struct {0}Impl;\n",
            s.name
        );
        // The service's own methods, then those of every service it extends.
        let mut chain = Some(DefId { file: root, index });
        while let Some(id) = chain {
            let svc = program.service(id);
            let path = plain(&g.path(id, &format!("{}Handler", svc.name)));
            let _ = writeln!(
                out,
                "#[allow(unused_variables, non_snake_case)]\nimpl {path} for {}Impl {{",
                s.name
            );
            for f in &svc.functions {
                let _ = writeln!(
                    out,
                    "    {} {{\n        // TODO: {}.{}\n        Ok(Default::default())\n    }}\n",
                    plain(&handler_method(&g, svc, f)),
                    svc.name,
                    f.name
                );
            }
            out.push_str("}\n\n");
            chain = svc.extends;
        }
    }
    out
}

fn main_rs(name: &str, krate: &str, program: &Program, root: usize, service: usize) -> String {
    let m = module(&program.files[root].name);
    let s = &program.files[root].services[service].name;
    format!(
        "//! Serves `{s}` on HOST:PORT (default 127.0.0.1:9090), one thread per core;\n\
         //! SIGTERM drains. Logs go to stderr (RUST_LOG=debug for more).\n\n\
         use {krate}::handler::{s}Impl;\nuse {krate}::idl::{m}::{s}Server;\n\n\
         fn main() -> std::process::ExitCode {{\n    \
         // Logs on stderr, written by a thread of their own (a stderr nobody reads\n    \
         // never stops a core): RUST_LOG picks levels (default info), colour only\n    \
         // on a terminal.\n    \
         let (stderr, _flushed_at_exit) = ringsoa::logs::non_blocking(std::io::stderr(), \"stderr\");\n    \
         tracing_subscriber::fmt()\n        \
         .with_env_filter(\n            \
         tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| \"info\".into()),\n        \
         )\n        \
         .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))\n        \
         .with_writer(stderr)\n        \
         .init();\n    \
         let listen = std::env::args().nth(1).unwrap_or_else(|| \"127.0.0.1:9090\".into());\n    \
         let addr: std::net::SocketAddr = match listen.parse() {{\n        Ok(a) => a,\n        \
         Err(e) => {{\n            eprintln!(\"{name}: {{listen:?}} is not HOST:PORT: {{e}}\");\n            \
         return std::process::ExitCode::from(2);\n        }}\n    }};\n    \
         let started = ringsoa::server::ServerBuilder::new(\"{name}\")\n        .catch_signals()\n        .listen(addr)\n        \
         .start(|_| {s}Server::new({s}Impl));\n    \
         match started.and_then(|server| server.run_until_signal()) {{\n        \
         Ok(()) => std::process::ExitCode::SUCCESS,\n        Err(e) => {{\n            \
         eprintln!(\"{name}: cannot serve on {{addr}}: {{e}}\");\n            \
         std::process::ExitCode::FAILURE\n        }}\n    }}\n}}\n"
    )
}

fn client_rs(name: &str, krate: &str, program: &Program, root: usize, service: usize) -> String {
    let m = module(&program.files[root].name);
    let s = &program.files[root].services[service];
    let call = match s.functions.first() {
        Some(f) => {
            let args = ", Default::default()".repeat(f.args.len());
            format!(
                "        let reply = service.{}(None{args}).await?;\n        \
                 println!(\"{}.{}: {{reply:?}}\");\n",
                client_method_name(f),
                s.name,
                f.name
            )
        }
        None => String::new(),
    };
    format!(
        "//! Calls `{sn}` at HOST:PORT (default 127.0.0.1:9090) from a plain `main`: the\n\
         //! first method, with default arguments.\n\n\
         use {krate}::idl::{m}::{sn}Client;\n\n\
         fn main() -> std::process::ExitCode {{\n    \
         let addr = std::env::args().nth(1).unwrap_or_else(|| \"127.0.0.1:9090\".into());\n    \
         if let Err(e) = call(&addr) {{\n        \
         eprintln!(\"{name}-client: {{e}}\");\n        \
         return std::process::ExitCode::FAILURE;\n    }}\n    \
         std::process::ExitCode::SUCCESS\n}}\n\n\
         /// Calls `{sn}` at `addr`.\n\
         fn call(addr: &str) -> Result<(), Box<dyn std::error::Error>> {{\n    \
         let mut rt = ringsoa::runtime::build()?;\n    rt.block_on(async {{\n        \
         let nodes = [ringsoa::addr::resolve(addr)?];\n        \
         let config = ringsoa::client::ClientConfig::new(\"{name}-client\");\n        \
         let client = std::rc::Rc::new(ringsoa::client::Client::new(nodes, config));\n        \
         #[allow(unused_variables)]\n        let service = {sn}Client::new(client);\n{call}        \
         Ok(())\n    }})\n}}\n",
        sn = s.name
    )
}

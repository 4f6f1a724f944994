//! The package's build script: generates Rust code for the demo service's IDL and the
//! codegen test IDLs with ringsoa's own compiler, compiled here from the library's
//! sources (a build script cannot depend on the crate it builds).
#![allow(dead_code, unused_imports)]

#[path = "build.rs"]
mod build;
#[path = "codegen/mod.rs"]
mod codegen;
#[path = "idl/mod.rs"]
mod idl;
#[path = "protocol/mod.rs"]
mod protocol;

fn main() {
    let builds = [
        // The demo contract and the codegen test corpus, for the demo binary and tests.
        build::Builder::new()
            .include_dir("tests/idl/inc")
            // Checked by tests/codegen.rs: a Point can key a HashSet.
            .type_attribute("shared.Point", "#[derive(Eq, Hash)]")
            .compile(&[
                "src/bin/ringsoa-demo/demo.thrift",
                "tests/idl/codegen.thrift",
            ]),
        // The library's own tracking structs, included by src/tracking/mod.rs.
        build::Builder::new()
            .output_file("ringsoa_tracking.rs")
            .compile(&["src/tracking/tracking.thrift"]),
    ];
    for b in builds {
        if let Err(e) = b {
            eprintln!("ringsoa codegen failed: {e}");
            std::process::exit(1);
        }
    }
}

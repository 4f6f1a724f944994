//! The package's build script: generates Rust code for the demo service's IDL and the
//! codegen test IDLs with ringsoa's own compiler, the `ringsoa-build` crate.

use ringsoa_build as build;

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
        // The demo binary's own build of its contract: `string` as a view of the
        // request buffer (src/bin/ringsoa-demo/main.rs).
        build::Builder::new()
            .output_file("ringsoa_demo_text.rs")
            .string_type(build::StringType::Text)
            .compile(&["src/bin/ringsoa-demo/demo.thrift"]),
        // The examples' own IDL (examples/handler_calls_service.rs).
        build::Builder::new()
            .output_file("ringsoa_examples.rs")
            .compile(&["examples/idl/front.thrift"]),
        // Type overrides (tests/codegen.rs): the same IDL with default and other types.
        build::Builder::new()
            .output_file("ringsoa_overrides_default.rs")
            .compile(&["tests/idl/overrides.thrift"]),
        build::Builder::new()
            .output_file("ringsoa_overrides.rs")
            .binary_type(build::BinaryType::Vec)
            .string_type(build::StringType::Text)
            .collections(build::Collections::Hash)
            .compile(&["tests/idl/overrides.thrift"]),
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

//! Generates Volo's code for the demo contract.
fn main() {
    println!("cargo:rerun-if-changed=../../../src/bin/ringsoa-demo/demo.thrift");
    volo_build::Builder::thrift()
        .add_service("../../../src/bin/ringsoa-demo/demo.thrift")
        .filename(std::path::PathBuf::from("volo_demo.rs"))
        .write()
        .unwrap();
}

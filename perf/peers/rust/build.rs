//! Generates the volo-thrift server code for the volo peer.
fn main() {
    volo_build::Builder::thrift()
        .add_service("idl/demo_echo.thrift")
        .filename(std::path::PathBuf::from("volo_demo.rs"))
        .write()
        .unwrap();
}

//! Generates the demo service's code for the fuzz targets.
fn main() {
    ringsoa_build::compile(&["../../src/bin/ringsoa-demo/demo.thrift"]).unwrap();
}

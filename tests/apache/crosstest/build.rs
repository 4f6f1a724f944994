//! Generates the ThriftTest code from Apache's own IDL, named by
//! `APACHE_THRIFT_TEST_IDL` (tools/apache/conformance.sh sets it to the downloaded
//! `test/ThriftTest.thrift`).

fn main() {
    println!("cargo:rerun-if-env-changed=APACHE_THRIFT_TEST_IDL");
    let Some(idl) = std::env::var_os("APACHE_THRIFT_TEST_IDL") else {
        eprintln!(
            "APACHE_THRIFT_TEST_IDL is not set: build this crate through tools/apache/conformance.sh, \
             which downloads Apache Thrift's test/ThriftTest.thrift"
        );
        std::process::exit(1);
    };
    if let Err(e) = ringsoa_build::compile(&[idl]) {
        eprintln!("ringsoa codegen failed: {e}");
        std::process::exit(1);
    }
}

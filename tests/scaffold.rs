//! `ringsoa new`: a fresh crate outside the repository, made from the demo IDL,
//! builds, serves, and answers its own client example and `ringsoa call`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use support::process::{free_port, refused_in_one_line, ringsoa_call, stdout_ok, Peer};

#[test]
fn ringsoa_new_makes_a_crate_that_builds_serves_and_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("ringsoa-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let krate = dir.join("hello-svc");
    let new = || {
        Command::new(env!("CARGO_BIN_EXE_ringsoa"))
            .args([
                "new",
                "hello-svc",
                "--idl",
                "src/bin/ringsoa-demo/demo.thrift",
            ])
            .arg("--path")
            .arg(&krate)
            .arg("--ringsoa")
            .arg(root)
            .output()
            .unwrap()
    };
    let out = new();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "Cargo.toml",
        "build.rs",
        "src/lib.rs",
        "src/handler.rs",
        "src/main.rs",
        "examples/client.rs",
        "idl/demo.thrift",
    ] {
        assert!(krate.join(f).is_file(), "{f} missing");
    }
    // Made again on the same path: refused, nothing touched.
    let again = new();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // The repository's lock pins the same versions; a target directory of its own
    // (cargo test holds `target`).
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let target = root.join("target/scaffold");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--all-targets", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", "-D warnings")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the new crate does not build without warnings"
    );

    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _server = Peer::spawn(
        Command::new(target.join("debug/hello-svc")).arg(addr.to_string()),
        addr,
        "the new crate's server",
    );
    let out = Command::new(target.join("debug/examples/client"))
        .arg(addr.to_string())
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), "Demo.ping: ()");
    // With nothing listening, the client says so in one line.
    refused_in_one_line(&target.join("debug/examples/client"), "hello-svc-client");
    // The stubs answer their types' defaults.
    let add = ["Demo.add", r#"{"a": 40, "b": 2}"#];
    let out = ringsoa_call("src/bin/ringsoa-demo/demo.thrift", &addr.to_string(), &add);
    assert_eq!(stdout_ok(&out), "0");
    std::fs::remove_dir_all(&dir).unwrap();
}

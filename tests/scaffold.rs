//! `ringsoa new`: a fresh crate outside the repository, made from the demo IDL,
//! builds, serves, and answers its own client example and `ringsoa call`; one made
//! from an IDL whose include is found through `--include-dir` builds and serves too.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::process::{free_port, refused_in_one_line, ringsoa_call, stdout_ok, Peer};

/// Runs `ringsoa new NAME --idl IDL EXTRA… --path DIR/NAME` against this source.
fn ringsoa_new(dir: &Path, name: &str, idl: &str, extra: &[&str]) -> (PathBuf, Output) {
    let krate = dir.join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args(["new", name, "--idl", idl])
        .args(extra)
        .arg("--path")
        .arg(&krate)
        .arg("--ringsoa")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (krate, out)
}

/// Builds the crate at `krate` (all targets, warnings denied) into `target`, with
/// the repository's lock, which pins the same versions.
fn build(krate: &Path, target: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--all-targets", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .env("RUSTFLAGS", "-D warnings")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{} does not build without warnings",
        krate.display()
    );
}

/// Starts the crate `name`'s server (built into `target`) on a free port and runs
/// its client example against it; the server, its address and what the client
/// printed.
fn serve_and_call(target: &Path, name: &str) -> (Peer, SocketAddr, String) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = Peer::spawn(
        Command::new(target.join("debug").join(name)).arg(addr.to_string()),
        addr,
        name,
    );
    let out = Command::new(target.join("debug/examples/client"))
        .arg(addr.to_string())
        .output()
        .unwrap();
    (server, addr, stdout_ok(&out))
}

#[test]
fn ringsoa_new_makes_a_crate_that_builds_serves_and_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("ringsoa-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let demo_idl = "src/bin/ringsoa-demo/demo.thrift";
    let (krate, out) = ringsoa_new(&dir, "hello-svc", demo_idl, &[]);
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
    let (_, again) = ringsoa_new(&dir, "hello-svc", demo_idl, &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Several services in one file: the one no other extends is served (it has
    // its base's methods too; before, the first, here the base, was), and
    // --service picks another.
    let two = dir.join("two.thrift");
    std::fs::write(
        &two,
        "service Base { void ping() }\nservice Derived extends Base { i32 get() }\nservice Other { void x() }\n",
    )
    .unwrap();
    let two = two.to_str().unwrap();
    let (made, out) = ringsoa_new(&dir, "two-svc", two, &[]);
    assert!(
        stdout_ok(&out).contains(
            "serving Derived (the IDL also declares Base, Other; --service picks another)"
        ),
        "{out:?}"
    );
    let main = std::fs::read_to_string(made.join("src/main.rs")).unwrap();
    assert!(main.contains("DerivedServer::new(DerivedImpl)"), "{main}");
    let (made, _) = ringsoa_new(&dir, "other-svc", two, &["--service", "Other"]);
    let main = std::fs::read_to_string(made.join("src/main.rs")).unwrap();
    assert!(main.contains("OtherServer::new(OtherImpl)"), "{main}");
    let (_, out) = ringsoa_new(&dir, "none-svc", two, &["--service", "Nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("declares no service Nope (it declares Base, Derived, Other)"),
        "{out:?}"
    );

    // A target directory of its own (cargo test holds `target`).
    let target = root.join("target/scaffold");
    build(&krate, &target);
    let (_server, addr, said) = serve_and_call(&target, "hello-svc");
    assert_eq!(said, "Demo.ping: ()");
    // With nothing listening, the client says so in one line.
    refused_in_one_line(&target.join("debug/examples/client"), "hello-svc-client");
    // The stubs answer their types' defaults.
    let add = ["Demo.add", r#"{"a": 40, "b": 2}"#];
    let out = ringsoa_call(demo_idl, &addr.to_string(), &add);
    assert_eq!(stdout_ok(&out), "0");

    // An IDL whose include is found only through an include dir: copied in, and
    // the build script searches its place in the crate (before, the copy was made
    // but the build script did not look there, and the crate did not build).
    let idl = "tests/idl/codegen.thrift";
    let (_, out) = ringsoa_new(&dir, "no-dir", idl, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("include \"shared.thrift\" not found"), "{err}");
    let (krate, out) = ringsoa_new(&dir, "inc-svc", idl, &["--include-dir", "tests/idl/inc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(krate.join("idl/inc/shared.thrift").is_file());
    build(&krate, &target);
    let (_server, addr, said) = serve_and_call(&target, "inc-svc");
    assert!(said.starts_with("Derived.get: "), "{said}");
    // The method Derived inherits from the included file's service answers too.
    let out = Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args(["call", "--idl", idl, "--include-dir", "tests/idl/inc"])
        .args([
            "--addr",
            &addr.to_string(),
            "Derived.hello",
            r#"{"who": "x"}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), "\"\"");
    std::fs::remove_dir_all(&dir).unwrap();
}

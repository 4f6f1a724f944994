//! The examples in `examples/` (the README's handler and its plain-`main` client),
//! built by `cargo test` like every example, run against each other and against
//! thriftpy2-free checks: the declared exception, `?` on an ordinary error, and the
//! client's answer.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use support::process::{
    free_port, http_get, refused_in_one_line, ringsoa_call, stdout_ok, Demo, Peer,
};

/// The path of a built example (beside this test's deps directory).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built (cargo test builds examples)",
        path.display()
    );
    path
}

/// Starts the `serve_handler` example with `LIMIT` set; returns once it accepts.
fn serve(limit: &str) -> (Peer, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(example("serve_handler"));
    cmd.arg(addr.to_string()).env("LIMIT", limit);
    (Peer::spawn(&mut cmd, addr, "serve_handler"), addr)
}

const DEMO_IDL: &str = "src/bin/ringsoa-demo/demo.thrift";

/// `ringsoa call … Demo.fail ARGS` against `addr`.
fn call_fail(addr: SocketAddr, args: &str) -> std::process::Output {
    ringsoa_call(DEMO_IDL, &addr.to_string(), &["Demo.fail", args])
}

#[test]
fn the_readme_handler_serves_and_the_plain_client_calls_it() {
    let (_server, addr) = serve("not a number");
    let out = Command::new(example("plain_client"))
        .arg(addr.to_string())
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), "42");
    // With nothing listening: one line saying so, not a Debug dump.
    refused_in_one_line(&example("plain_client"), "plain_client");
    // `?` on a ParseIntError (LIMIT is not a number) answers INTERNAL_ERROR with
    // the error's message.
    let out = call_fail(addr, r#"{"code": 3}"#);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("InternalError") && err.contains("invalid digit"),
        "{err}"
    );
}

#[test]
fn the_readme_handler_raises_its_declared_exception() {
    let (_server, addr) = serve("5");
    let out = call_fail(addr, r#"{"code": 9}"#);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#""code":9"#) && stdout.contains("too big"),
        "{stdout}"
    );
    // Within the limit: no exception.
    assert_eq!(call_fail(addr, r#"{"code": 2}"#).status.code(), Some(0));
}

#[test]
fn the_readme_control_refuses_its_blocked_caller_and_the_connection_goes_on() {
    let (_server, addr) = serve("10");
    let call = |app: &str| {
        let args = ["--app-id", app, "Demo.add", r#"{"a": 1, "b": 2}"#];
        ringsoa_call(DEMO_IDL, &addr.to_string(), &args)
    };
    let out = call("blocked");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("add: refused for blocked"), "{err}");
    assert_eq!(stdout_ok(&call("welcome")), "3");
}

#[test]
fn an_axum_application_calls_through_a_shared_client() {
    let demo = Demo::start(&[]);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(example("axum_gateway"));
    cmd.arg(addr.to_string()).arg(demo.addr.to_string());
    let _gateway = Peer::spawn(&mut cmd, addr, "axum_gateway");
    assert_eq!(http_get(addr, "/add/40/2"), (200, "42".to_string()));
    assert_eq!(http_get(addr, "/echo/h%C3%A9"), (200, "hé".to_string()));
    // Many requests at once, over the gateway's tokio tasks and both client threads.
    let answers: Vec<_> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..16)
            .map(|i| s.spawn(move || http_get(addr, &format!("/add/{i}/1000"))))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for (i, a) in answers.into_iter().enumerate() {
        assert_eq!(a, (200, (i + 1000).to_string()));
    }
    // The back end gone: the gateway answers 502 with the call's error.
    demo.kill();
    let (status, body) = http_get(addr, "/add/1/2");
    assert_eq!(status, 502, "{body}");
    assert!(body.starts_with("Demo.add: "), "{body}");
}

#[test]
fn a_handler_calls_another_service_with_its_context() {
    let demo = Demo::start(&[]);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(example("handler_calls_service"));
    cmd.arg(addr.to_string()).arg(demo.addr.to_string());
    let _front = Peer::spawn(&mut cmd, addr, "handler_calls_service");
    let out = ringsoa_call(
        "examples/idl/front.thrift",
        &addr.to_string(),
        &["--meta", "tenant=blue", "Front.trace"],
    );
    let stdout = stdout_ok(&out);
    let seen: std::collections::BTreeMap<String, String> = serde_json::from_str(&stdout).unwrap();
    let get = |k: &str| seen.get(k).map(String::as_str).unwrap_or("");
    // The back end saw the front's request id, the next rpc id in its chain, the
    // front as its client and the caller's meta.
    assert!(!get("request_id").is_empty(), "{seen:?}");
    assert_eq!(get("request_id"), get("front.request_id"), "{seen:?}");
    assert_eq!(get("seq"), format!("{}.1", get("front.seq")), "{seen:?}");
    assert_eq!(get("client"), "front", "{seen:?}");
    assert_eq!(get("front.caller"), "ringsoa-cli", "{seen:?}");
    assert_eq!(get("meta.tenant"), "blue", "{seen:?}");
}

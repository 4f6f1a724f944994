//! `ringsoa call` against `ringsoa-demo` and against a thriftpy2 server: JSON in and
//! out for every Demo type, declared exceptions with exit 1, errors with exit 2.

mod support;

use std::net::SocketAddr;
use std::process::Command;

use serde_json::{json, Value};
use support::process::{free_port, py_server, ringsoa_call, stdout_ok, Demo, Peer, SilentDns};

const IDL: &str = "src/bin/ringsoa-demo/demo.thrift";

/// Runs `ringsoa call`; returns the exit code, stdout parsed as JSON (Null if empty)
/// and stderr.
fn call(addr: SocketAddr, flags: &[&str], method: &str, args: Value) -> (i32, Value, String) {
    let args = args.to_string();
    let out = ringsoa_call(IDL, &addr.to_string(), &[flags, &[method, &args]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap()
    };
    (
        out.status.code().unwrap_or(-1),
        value,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every Demo type: an item with every field, written with an enum name and a
/// map<i32, ...> keyed by JSON text; printed back with the enum as its number.
fn item() -> (Value, Value) {
    let input = json!({
        "id": -9223372036854775808i64, "name": "héllo ✓", "scores": [1.5, -0.25],
        "attrs": {"a": 1, "b": -2}, "tags": [-3, 1, 7], "blob": "AAECAw==", "flag": true,
        "tiny": -128, "color": "BLUE", "inner": {"label": "in", "values": [1, 4611686018427387904i64]},
        "children": [{"values": []}, {"label": "x", "values": [5]}],
        "nested": {"-1": ["a"], "2": [], "300": ["x", "y"]}
    });
    let mut output = input.clone();
    output["color"] = json!(3);
    (input, output)
}

fn every_method(addr: SocketAddr, flags: &[&str], tag: &str) {
    assert_eq!(
        call(addr, flags, "Demo.ping", json!({})),
        (0, Value::Null, String::new()),
        "{tag}"
    );
    assert_eq!(
        call(addr, flags, "Demo.echo", json!({"msg": "hi ✓"})).1,
        json!("hi ✓"),
        "{tag}"
    );
    let (input, output) = item();
    let (code, back, err) = call(addr, flags, "Demo.roundtrip", json!({"item": input}));
    assert_eq!((code, back), (0, output), "{tag}: {err}");
    assert_eq!(
        call(
            addr,
            flags,
            "Demo.add",
            json!({"a": -5, "b": 1099511627776i64})
        )
        .1,
        json!(1099511627771i64)
    );
    let (code, out, _) = call(addr, flags, "Demo.fail", json!({"code": 3}));
    assert_eq!(
        (code, out),
        (1, json!({"err": {"code": 3, "message": "fail 3"}})),
        "{tag}"
    );
    assert_eq!(call(addr, flags, "Demo.fail", json!({"code": 0})).0, 0);
    assert_eq!(
        call(addr, flags, "Demo.sleep_ms", json!({"ms": 1})).1,
        json!("slept 1")
    );
    assert_eq!(call(addr, flags, "Demo.fire", json!({"note": "x"})).0, 0);
    assert!(
        call(addr, flags, "Demo.fired", json!({}))
            .1
            .as_i64()
            .unwrap()
            >= 1,
        "{tag}"
    );
}

#[test]
fn calls_ringsoa_demo_in_every_protocol_and_transport() {
    let demo = Demo::start(&[]);
    for flags in [
        &["--protocol", "binary", "--transport", "buffered"][..],
        &["--protocol", "compact", "--transport", "framed"],
        &[
            "--protocol",
            "binary",
            "--transport",
            "framed",
            "--no-tracking",
        ],
    ] {
        every_method(demo.addr, flags, &flags.join(" "));
    }
    let (_, who, _) = call(
        demo.addr,
        &["--app-id", "cli", "--meta", "k=v"],
        "Demo.whoami",
        json!({}),
    );
    assert_eq!(
        (
            who["client"].as_str(),
            who["version"].as_str(),
            who["seq"].as_str()
        ),
        (Some("cli"), Some("2"), Some("1"))
    );
    assert_eq!(who["meta.k"], "v");
}

#[test]
fn calls_a_thriftpy2_server() {
    let (_server, addr) = py_server("native", "binary", "buffered");
    every_method(addr, &[], "thriftpy2");
    assert_eq!(call(addr, &[], "Demo.whoami", json!({})).1["version"], "0");
}

#[test]
fn errors_are_one_line_with_exit_2() {
    let demo = Demo::start(&[]);
    let (code, _, err) = call(demo.addr, &[], "Demo.add", json!({"a": "x"}));
    assert_eq!(code, 2);
    assert!(err.contains("a: expected an integer"), "{err}");
    let (code, _, err) = call(demo.addr, &[], "Demo.nothing", json!({}));
    assert_eq!(code, 2);
    assert!(err.contains("has no method `nothing`"), "{err}");
    // Meta with nothing to carry it: refused, not dropped in silence.
    let (code, _, err) = call(
        demo.addr,
        &["--no-tracking", "--meta", "k=v"],
        "Demo.ping",
        json!({}),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--meta travels in the tracking header"),
        "{err}"
    );
    let (code, who, err) = call(
        demo.addr,
        &["--no-tracking", "--meta", "k=v", "--transport", "ttheader"],
        "Demo.whoami",
        json!({}),
    );
    assert_eq!((code, &who["meta.k"]), (0, &json!("v")), "{err}");
    // THeader's persistent pairs: counted for the call; refused without THeader.
    let (code, who, err) = call(
        demo.addr,
        &["--persistent-meta", "p=kept", "--transport", "theader"],
        "Demo.whoami",
        json!({}),
    );
    assert_eq!((code, &who["meta.p"]), (0, &json!("kept")), "{err}");
    let (code, _, err) = call(
        demo.addr,
        &["--persistent-meta", "p=kept", "--transport", "ttheader"],
        "Demo.ping",
        json!({}),
    );
    assert_eq!(code, 2);
    assert!(err.contains("--persistent-meta is THeader's"), "{err}");
    let closed: SocketAddr = format!("127.0.0.1:{}", support::process::free_port())
        .parse()
        .unwrap();
    let (code, _, err) = call(closed, &["--timeout-ms", "500"], "Demo.ping", json!({}));
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    // A method the server lacks (an IDL newer than the server): the application exception.
    let newer = std::env::temp_dir().join(format!("ringsoa_cli_{}.thrift", std::process::id()));
    std::fs::write(
        &newer,
        std::fs::read_to_string(IDL)
            .unwrap()
            .replace("service Demo {", "service Demo {\n  void nope(),"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args([
            "call",
            "--idl",
            newer.to_str().unwrap(),
            "--addr",
            &demo.addr.to_string(),
            "Demo.nope",
        ])
        .output()
        .unwrap();
    std::fs::remove_file(&newer).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UnknownMethod"));
    // A port that answers HTTP: said so, in one line.
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http_addr = http.local_addr().unwrap();
    let answer = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut c, _) = http.accept().unwrap();
        let _ = c.read(&mut [0u8; 256]);
        c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let (code, _, err) = call(http_addr, &["--no-tracking"], "Demo.ping", json!({}));
    answer.join().unwrap();
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("the peer is speaking HTTP"), "{err}");
    // A server whose exception's message holds a line break and a terminal escape
    // sequence: printed escaped, in one line. Before, both went to the terminal.
    let evil = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let answer = std::thread::spawn(move || {
        use ringsoa::protocol::{
            ApplicationException, BinaryReader, BinaryWriter, Encode, MessageType, ProtocolReader,
            ProtocolWriter,
        };
        use std::io::{Read, Write};
        let (mut c, _) = evil.accept().unwrap();
        let mut request = vec![0u8; 256];
        let n = c.read(&mut request).unwrap();
        request.truncate(n);
        let msg = BinaryReader::new(request.into())
            .read_message_begin()
            .unwrap();
        let mut reply = bytes::BytesMut::new();
        let mut w = BinaryWriter::new(&mut reply);
        w.write_message_begin("ping", MessageType::Exception, msg.seqid);
        ApplicationException::internal("evil\nforged line \u{1b}[31mred").encode(&mut w);
        c.write_all(&reply).unwrap();
    });
    let (code, _, err) = call(evil_addr, &["--no-tracking"], "Demo.ping", json!({}));
    answer.join().unwrap();
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("evil\\nforged line \\u{1b}[31mred") && !err.contains('\u{1b}'),
        "{err}"
    );
}

#[test]
fn a_server_that_closes_on_another_wire_is_asked_what_it_speaks() {
    let (_framed, framed) = py_server("native", "binary", "framed");
    let (_compact, compact) = py_server("native", "compact", "buffered");
    for (addr, flags, answers) in [
        (framed, &[][..], "--protocol binary --transport framed"),
        (
            framed,
            &["--protocol", "compact", "--transport", "ttheader"][..],
            "--protocol binary --transport framed",
        ),
        (
            compact,
            &["--transport", "framed"][..],
            "--protocol compact --transport buffered",
        ),
    ] {
        let (code, _, err) = call(addr, flags, "Demo.echo", json!({"msg": "hi"}));
        assert_eq!(code, 2, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("it answers {answers}: call it with those")),
            "{err}"
        );
        let named: Vec<&str> = answers.split(' ').collect();
        let (code, echoed, err) = call(addr, &named, "Demo.echo", json!({"msg": "hi"}));
        assert_eq!((code, echoed), (0, json!("hi")), "{err}");
    }
    // A port that closes every connection at once answers nothing.
    let closer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closer_addr = closer.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in closer.incoming() {
            drop(c);
        }
    });
    let (code, _, err) = call(closer_addr, &[], "Demo.ping", json!({}));
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is this a Thrift port?"), "{err}");
}

/// A new folder for this test process's files, named for `what`.
fn scratch(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ringsoa-cli-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `ringsoa ARGS` with `stdin` on its standard input: its exit code, stdout
/// and stderr.
fn ringsoa(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    ringsoa_with(args, stdin, |_| {})
}

/// [`ringsoa`], its command adjusted by `configure` first.
fn ringsoa_with(
    args: &[&str],
    stdin: &[u8],
    configure: impl FnOnce(&mut Command),
) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringsoa"));
    configure(&mut cmd);
    let mut child = cmd
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn values_come_from_a_file_or_stdin_and_a_reader_that_leaves_is_no_error() {
    let dir = scratch("values");
    let state = dir.join("state.toml");
    std::fs::write(&state, "").unwrap();
    let state = state.to_str().unwrap();
    // A value larger than a command line holds (one argument: 128 KiB on Linux).
    let big = "y".repeat(300_000);
    let file = dir.join("big.txt");
    std::fs::write(&file, &big).unwrap();
    let set = [
        "config",
        "set",
        "app",
        "big",
        "--file",
        file.to_str().unwrap(),
    ];
    let (code, out, err) = ringsoa(&[&set[..], &["--state", state]].concat(), b"");
    assert_eq!((code, out.trim()), (0, "set big: 300000 bytes"), "{err}");
    let (code, out, err) = ringsoa(&["config", "get", "app", "big", "--state", state], b"");
    assert_eq!((code, out.trim_end()), (0, big.as_str()), "{err}");
    let set = [
        "switch", "set", "app", "sw", "--file", "-", "--state", state,
    ];
    let (code, _, err) = ringsoa(&set, b"ON");
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = ringsoa(&["switch", "get", "app", "sw", "--state", state], b"");
    assert_eq!((code, out.trim()), (0, "ON"));
    let (code, _, err) = ringsoa(&set, b"maybe");
    assert_eq!(code, 2);
    assert!(err.contains("a switch is on, off or JSON"), "{err}");
    let (code, _, err) = ringsoa(&set, b"\xff\xfe");
    assert_eq!(code, 2);
    assert!(
        err.contains("the value from standard input must be UTF-8 text"),
        "{err}"
    );
    let both = [
        "config", "set", "app", "k", "v", "--file", "-", "--state", state,
    ];
    assert_eq!(ringsoa(&both, b"").0, 2);
    // A value of interface control that every process would leave out is refused,
    // nothing written; its own key's value is taken, and other keys are not judged.
    for (kind, key, value, why) in [
        (
            "config",
            "acl.allow",
            "[\"web\"",
            "not a JSON list of app ids",
        ),
        (
            "config",
            "limit.echo.qps",
            "0",
            "not a number of calls a second above 0",
        ),
        ("config", "breaker.lock", "5", "no such breaker setting"),
        ("config", "log.routes", "[1]", "not a JSON list of {"),
        (
            "switch",
            "breaker.echo",
            "\"closed\"",
            "a breaker switch is off, on",
        ),
    ] {
        let (code, _, err) = ringsoa(&[kind, "set", "app", key, value, "--state", state], b"");
        assert_eq!(code, 2, "{key}: {err}");
        assert!(err.contains(&format!("{key}: {why}")), "{err}");
        assert!(err.contains("nothing written"), "{err}");
        let (code, _, _) = ringsoa(&[kind, "get", "app", key, "--state", state], b"");
        assert_eq!(code, 2, "{key} was written");
    }
    // A bare `open` for a breaker says how to write it.
    let (code, _, err) = ringsoa(
        &[
            "switch",
            "set",
            "app",
            "breaker.echo",
            "open",
            "--state",
            state,
        ],
        b"",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("a breaker is held open by the JSON string \"open\""),
        "{err}"
    );
    for (kind, key, value) in [
        ("config", "acl.allow", "[\"web\"]"),
        ("config", "greeting", "[not json"),
        ("switch", "breaker.echo", "false"),
    ] {
        let (code, _, err) = ringsoa(&[kind, "set", "app", key, value, "--state", state], b"");
        assert_eq!(code, 0, "{key}: {err}");
    }
    // Given the service's IDL, a key naming a method it does not have (a typo) is
    // refused too; without it, any name is taken.
    let with_idl = |kind: &str, key: &str, value: &str, more: &[&str]| {
        let mut args = vec![
            kind, "set", "app", key, value, "--state", state, "--idl", IDL,
        ];
        args.extend(more);
        ringsoa(&args, b"")
    };
    for (kind, key, value) in [
        ("config", "limit.ech.qps", "100"),
        ("config", "acl.ech.allow", "[\"web\"]"),
        ("switch", "breaker.ech", "on"),
    ] {
        let (code, _, err) = with_idl(kind, key, value, &[]);
        assert_eq!(code, 2, "{key}: {err}");
        assert!(err.contains("ech is no method of this service"), "{err}");
        assert!(err.contains("nothing written"), "{err}");
    }
    let (code, _, err) = with_idl(
        "config",
        "limit.echo.qps",
        "100",
        &["--idl-service", "Demo"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = with_idl(
        "config",
        "limit.echo.qps",
        "100",
        &["--idl-service", "Nope"],
    );
    assert_eq!(
        (code, err.trim()),
        (
            2,
            format!("ringsoa config: no service `Nope` in {IDL}").as_str()
        )
    );
    let (code, _, err) = ringsoa(
        &[
            "config",
            "set",
            "app",
            "limit.ech.qps",
            "100",
            "--state",
            state,
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    // A negative number is a value, not a flag.
    let (code, _, err) = ringsoa(
        &["config", "set", "app", "offset", "-5", "--state", state],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = ringsoa(&["config", "get", "app", "offset", "--state", state], b"");
    assert_eq!((code, out.trim()), (0, "-5"));
    // A reader that leaves before the output is written (`| head`): no panic, exit
    // 0. The generated code is larger than a pipe holds, so a write meets the close.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args(["idl", "gen", IDL])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn large_arguments_come_from_a_file_or_stdin_and_bad_flags_are_refused() {
    use std::io::Write;
    use std::process::Stdio;
    let demo = Demo::start(&[]);
    let addr = demo.addr.to_string();
    // 3 MiB of arguments: more than Linux lets one command-line argument hold.
    let big = "x".repeat(3 << 20);
    let args = json!({ "msg": big }).to_string();
    let file = std::env::temp_dir().join(format!("ringsoa_cli_args_{}.json", std::process::id()));
    std::fs::write(&file, &args).unwrap();
    let from_file = Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args(["call", "--idl", IDL, "--addr", &addr, "Demo.echo"])
        .arg(format!("@{}", file.display()))
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(from_file.status.success(), "{from_file:?}");
    let echoed: Value = serde_json::from_slice(&from_file.stdout).unwrap();
    assert_eq!(echoed.as_str().map(str::len), Some(3 << 20));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args(["call", "--idl", IDL, "--addr", &addr, "Demo.add", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"a": 2, "b": 40}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let missing = Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args([
            "call",
            "--idl",
            IDL,
            "--addr",
            &addr,
            "Demo.ping",
            "@/nonexistent/args.json",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("cannot read the arguments from /nonexistent/args.json"));
    let (code, _, err) = call(demo.addr, &["--timeout-ms", "0"], "Demo.ping", json!({}));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--timeout-ms"), "{err}");
    // A reply over --max-message fails in one line that names the limit.
    let msg = json!({ "msg": "y".repeat(300) });
    let (code, _, err) = call(demo.addr, &["--max-message", "100"], "Demo.echo", msg);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the reply is too large")
            && err.contains("exceeds the maximum of 100")
            && err.contains("--max-message")
            && err.trim().lines().count() == 1,
        "{err}"
    );
    // A top-level error names the arguments object, not an empty path.
    let (code, _, err) = call(demo.addr, &[], "Demo.add", json!([1, 2]));
    assert_eq!(code, 2);
    assert!(err.contains("the arguments: expected an object"), "{err}");
}

#[test]
fn a_missing_argument_is_an_error_null_sends_it_absent_and_hosts_resolve() {
    let demo = Demo::start(&[]);
    let (code, _, err) = call(demo.addr, &[], "Demo.add", json!({"a": 40}));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("Demo.add: missing argument b") && err.contains("null"),
        "{err}"
    );
    let (code, out, err) = call(demo.addr, &[], "Demo.add", json!({"a": 40, "b": null}));
    assert_eq!((code, out), (0, json!(40)), "{err}");
    // --addr takes a host name.
    let localhost = format!("localhost:{}", demo.addr.port());
    stdout_ok(&ringsoa_call(IDL, &localhost, &["Demo.ping"]));
    // ringsoa-demo's --listen takes a host name too: whatever `localhost` resolves to
    // first, the CLI resolves the same way.
    let host = format!("localhost:{}", free_port());
    let _named = Peer::spawn_quiet(
        Command::new(env!("CARGO_BIN_EXE_ringsoa-demo")).args(["--listen", &host, "--cores", "1"]),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut out = ringsoa_call(IDL, &host, &["Demo.ping"]);
    while !out.status.success() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        out = ringsoa_call(IDL, &host, &["Demo.ping"]);
    }
    stdout_ok(&out);
    // A binary's failure is one line, not a Debug dump.
    let out = Command::new(env!("CARGO_BIN_EXE_ringsoa-demo"))
        .args(["--listen", &demo.addr.to_string(), "--cores", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        last.starts_with("ringsoa-demo: ")
            && last.contains("in use by another process")
            && !last.contains("Custom {"),
        "{err}"
    );
}

/// `--service` with providers whose hosts do not resolve: with none left, the
/// line says so and names the host (before: "no live provider", as if the
/// registry listed none); with one left, the call goes to it and a line says
/// which were left out.
#[test]
fn a_service_whose_provider_hosts_do_not_resolve_is_named_as_such() {
    let demo = Demo::start(&[]);
    let dir = scratch("unresolved");
    let state = dir.join("state.toml");
    // `.invalid` names cannot exist (RFC 6761).
    let nowhere = "[[apps.x.clusters.main.providers]]\nhost = \"nowhere.invalid\"\nport = 9\n";
    std::fs::write(&state, nowhere).unwrap();
    let state = state.to_str().unwrap();
    let call = [
        "call",
        "--idl",
        IDL,
        "--state",
        state,
        "--service",
        "x/main",
    ];
    let (code, _, err) = ringsoa(&[&call[..], &["Demo.ping"]].concat(), b"");
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no provider of x/main can be called: 1 listed, and no host of theirs resolves (nowhere.invalid: "),
        "{err}"
    );
    let here = format!(
        "{nowhere}[[apps.x.clusters.main.providers]]\nhost = \"{}\"\nport = {}\n",
        demo.addr.ip(),
        demo.addr.port()
    );
    std::fs::write(dir.join("state.toml"), here).unwrap();
    let (code, out, err) = ringsoa(
        &[&call[..], &["Demo.echo", r#"{"msg": "x"}"#]].concat(),
        b"",
    );
    assert_eq!((code, out.trim()), (0, "\"x\""), "{err}");
    assert!(
        err.contains(
            "1 of the 2 providers of x/main left out, their hosts not resolving (nowhere.invalid: "
        ),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `call --service` looks its providers' hosts up at once, each for at most 5 s:
/// under a DNS that never answers (3 tries of 3 s per name), eight named
/// providers cost one bound, not eight lookups of 9 s one after another, and the
/// one given by address is called. Needs root (a resolv.conf of its own).
#[test]
fn provider_hosts_are_looked_up_at_once_and_a_silent_dns_is_given_up() {
    let demo = Demo::start(&[]);
    let dir = scratch("silent-dns");
    let dns = SilentDns::start("127.53.0.2", &dir);
    let mut state = String::new();
    for i in 0..8 {
        state +=
            &format!("[[apps.x.clusters.main.providers]]\nhost = \"slow{i}.example\"\nport = 9\n");
    }
    state += &format!(
        "[[apps.x.clusters.main.providers]]\nhost = \"{}\"\nport = {}\n",
        demo.addr.ip(),
        demo.addr.port()
    );
    let path = dir.join("state.toml");
    std::fs::write(&path, state).unwrap();
    let call = [
        "call",
        "--idl",
        IDL,
        "--state",
        path.to_str().unwrap(),
        "--service",
        "x/main",
        "Demo.echo",
        r#"{"msg": "x"}"#,
    ];
    let (code, out, err) = ringsoa_with(&call, b"", |cmd| dns.apply(cmd));
    assert_eq!((code, out.trim()), (0, "\"x\""), "{err}");
    assert!(
        err.contains("8 of the 9 providers of x/main left out, their hosts not resolving (slow0.example: no answer in 5s)"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Counts that cannot be zero, an advertised address nobody can reach, a
/// malformed ZooKeeper connect string and root are refused with one line naming
/// the flag, and more cores than CPUs start with a warning that they share CPUs.
#[test]
fn the_demo_refuses_values_it_cannot_use_and_warns_of_more_cores_than_cpus() {
    for flag in ["--cores", "--max-connections", "--read-timeout-ms"] {
        let (code, err) = demo_refused(&[flag, "0"]);
        let name = flag[2..].to_uppercase().replace('-', "_");
        assert_eq!(code, 2, "{flag}: {err}");
        assert_eq!(
            err.lines().next().unwrap_or_default(),
            format!("error: invalid value '0' for '{flag} <{name}>': must be at least 1"),
            "{flag}: {err}"
        );
    }
    for host in ["0.0.0.0", "[::]"] {
        let (code, err) = demo_refused(&["--advertise", host]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("is not an address others can reach"), "{err}");
    }
    let (code, err) = demo_refused(&["--advertise", "host:9090"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("without a port"), "{err}");
    // A malformed ZooKeeper connect string is a setting to fix, not a ZooKeeper to
    // retry for ever (as it was).
    let (code, err) = demo_refused(&["--zk", "127.0.0.1:2181/team//a"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a ZooKeeper path"), "{err}");
    // So is a root ZooKeeper refuses every path under (before, the process served
    // and logged that it could not watch, read or register, for ever).
    let (code, err) = demo_refused(&["--zk", "127.0.0.1:2181", "--zk-root", "/team//a"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the ZooKeeper root \"/team//a\" is not a ZooKeeper path"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args(["registry", "ls", "--zk", "zk1:21x81"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the port is not a number"), "{err}");
    let cpus = std::thread::available_parallelism().unwrap().get();
    let addr = format!("127.0.0.1:{}", free_port());
    let cores = (cpus + 1).to_string();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_ringsoa-demo"))
        .args(["--listen", &addr, "--cores", &cores, "--no-governance"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::io::BufReader::new(demo.stderr.take().unwrap());
    let mut seen = String::new();
    for line in std::io::BufRead::lines(log) {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("ringsoa-demo serving") {
            break;
        }
    }
    let _ = demo.kill();
    let _ = demo.wait();
    let warning = format!("{cores} cores on {cpus} CPUs: cores share CPUs");
    assert!(seen.contains(&warning), "{seen}");
}

/// A state file that is missing or does not parse at start stops the demo with one
/// line naming the file (a typo in its path used to leave it serving with nothing).
#[test]
fn the_demo_refuses_a_state_file_it_cannot_use() {
    let dir = scratch("state");
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "[apps.ringsoa-demo.config\n").unwrap();
    let missing = dir.join("missing.toml");
    for (file, says) in [
        (&broken, "TOML parse error at line 1"),
        (&missing, "cannot read the state file"),
    ] {
        let (code, err) = demo_refused(&["--state", file.to_str().unwrap()]);
        let last = err.lines().last().unwrap_or_default();
        assert_eq!(code, 1, "{err}");
        assert!(
            last.starts_with("ringsoa-demo: ")
                && last.contains(file.to_str().unwrap())
                && last.contains(says),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A taken admin port stops the demo before it serves (with --zk, before it
/// registers): the admin listener is bound before the cores start.
#[test]
fn the_demo_stops_before_serving_when_its_admin_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = taken.local_addr().unwrap().to_string();
    let (code, err) = demo_refused(&["--admin", &admin]);
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(code, 1, "{err}");
    assert!(
        last.starts_with(&format!(
            "ringsoa-demo: admin endpoint: cannot listen on {admin}: "
        )),
        "{err}"
    );
    assert!(!err.contains("ringsoa-demo serving"), "{err}");
}

/// Runs ringsoa-demo with `args` on a free port, expecting it to refuse to start:
/// its exit code and stderr. Bounded: a demo that started would serve until killed.
fn demo_refused(args: &[&str]) -> (i32, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut demo = Command::new(env!("CARGO_BIN_EXE_ringsoa-demo"))
        .args(["--listen", &listen])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while demo.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = demo.kill();
            panic!("ringsoa-demo started with {args:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = demo.wait_with_output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `ringsoa idl check` refuses what the generator refuses, not only what does not
/// parse or resolve: two items that would share a Rust name, named with the later
/// one's place. Before, check accepted the file and only the build failed.
#[test]
fn idl_check_refuses_what_the_generator_refuses() {
    let dir = scratch("idl-check");
    let clash = dir.join("clash.thrift");
    std::fs::write(
        &clash,
        "struct UserClient { 1: i32 x }\nservice User { void get() }\n",
    )
    .unwrap();
    let (code, _, err) = ringsoa(&["idl", "check", clash.to_str().unwrap()], b"");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.trim_end().ends_with(
            "clash.thrift:2:1: service `User`'s client and struct `UserClient` would both be `UserClient` in Rust: rename one"
        ),
        "{err}"
    );
    let (code, _, err) = ringsoa(&["idl", "check", IDL], b"");
    assert_eq!((code, err.as_str()), (0, ""));
}

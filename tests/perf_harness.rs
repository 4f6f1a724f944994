//! The load generator's own correctness, as processes: replies are really checked, the
//! open loop measures from intended send times (a stall that the closed loop hides
//! shows in its percentiles), `--spawn-demo` measures a server it starts itself, and
//! the plots are written.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::process::{free_port, wait_listening, Demo};

const PERF: &str = env!("CARGO_BIN_EXE_ringsoa-perf");

/// `load` flags: start `ringsoa-demo` on CPU 0, two connections.
const SPAWN: [&str; 4] = ["--spawn-demo", "0", "--conns", "2"];

/// `ringsoa-perf echo-server` with `flags`, killed on drop.
struct EchoServer {
    child: Child,
    addr: SocketAddr,
}

impl EchoServer {
    fn start(flags: &[&str]) -> EchoServer {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(PERF)
            .args(["echo-server", "--listen", &addr.to_string()])
            .args(flags)
            .spawn()
            .unwrap();
        wait_listening(addr, "ringsoa-perf echo-server");
        EchoServer { child, addr }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(flags: &[&str]) -> (Output, Value) {
    let out = Command::new(PERF)
        .arg("load")
        .args(["--warmup-s", "0.3", "--json"])
        .args(flags)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {stdout} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn us(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Half a second of load on two connections against `server`.
fn short_run(server: &EchoServer) -> (Output, Value) {
    let addr = server.addr.to_string();
    load(&["--addr", &addr, "--conns", "2", "--duration-s", "0.5"])
}

#[test]
fn thousands_of_connections_open_before_the_clock_starts() {
    // Opened one by one beside the ones already loaded, 2,000 connections took
    // about 4 s (release build), and the run's end (counted from before them) came
    // first: every connection failed with "no reply by the end of the run".
    let server = EchoServer::start(&[]);
    let addr = server.addr.to_string();
    let (out, v) = load(&["--addr", &addr, "--conns", "3000", "--duration-s", "0.5"]);
    assert!(
        out.status.success(),
        "{v} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["errors"], 0, "{v}");
    assert!(v["calls"].as_u64().unwrap() >= 3000, "{v}");
}

#[test]
fn the_limit_exits_cleanly_on_sigterm_and_sigint() {
    // Through `exit`, so that a profiling build writes its profile (perf/pgo.sh);
    // killed by the signal, it wrote none.
    for signal in ["TERM", "INT"] {
        let mut server = EchoServer::start(&[]);
        let (out, v) = short_run(&server);
        assert!(out.status.success(), "{v}");
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = server.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "no exit on SIG{signal}");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status}");
    }
}

#[test]
fn wrong_replies_are_counted_and_fail_the_run() {
    let (out, v) = short_run(&EchoServer::start(&[]));
    assert!(out.status.success(), "{v}");
    assert_eq!(v["errors"], 0);
    assert!(v["calls"].as_u64().unwrap() > 100, "{v}");

    let (out, v) = short_run(&EchoServer::start(&["--corrupt-every", "500"]));
    assert!(
        !out.status.success(),
        "a corrupted reply must fail the run: {v}"
    );
    assert!(v["errors"].as_u64().unwrap() > 0, "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong or missing"));
}

#[test]
fn the_open_loop_counts_a_stall_the_closed_loop_hides() {
    // The server blocks for 100 ms every 500 ms.
    let server = EchoServer::start(&["--stall-every-ms", "500", "--stall-ms", "100"]);
    let addr = server.addr.to_string();
    let common = ["--addr", &addr, "--conns", "1", "--duration-s", "2"];
    let (_, closed) = load(&common);
    let (_, open) = load(&[&common[..], &["--rate", "2000"]].concat());
    eprintln!(
        "closed p50/p90/p99 {}/{}/{} µs; open {}/{}/{} µs",
        us(&closed, "p50_us"),
        us(&closed, "p90_us"),
        us(&closed, "p99_us"),
        us(&open, "p50_us"),
        us(&open, "p90_us"),
        us(&open, "p99_us")
    );
    // Closed loop: one slow call per stall among thousands.
    assert!(us(&closed, "p99_us") < 20_000.0, "{closed}");
    assert!(us(&closed, "max_us") >= 90_000.0, "{closed}");
    // Open loop: every call due during a stall waits for it (a fifth of the calls,
    // their latencies spread over 0–100 ms).
    assert!(us(&open, "p99_us") >= 60_000.0, "{open}");
    assert!(us(&open, "p90_us") >= 10_000.0, "{open}");
    let rate = us(&open, "qps");
    assert!(
        (1800.0..2200.0).contains(&rate),
        "the schedule holds: {rate}/s"
    );
}

#[test]
fn spawns_the_demo_measures_it_and_plots() {
    let dir = std::env::temp_dir().join(format!("ringsoa-perf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("run.svg");
    let plot = [
        "--duration-s",
        "0.5",
        "--full-stack",
        "--plot",
        svg.to_str().unwrap(),
    ];
    let (out, v) = load(&[&SPAWN[..], &plot].concat());
    assert!(out.status.success(), "{v}");
    assert!(us(&v, "server_cpu_us_per_call") > 0.0, "{v}");
    // The server's CPU comes split into user and system time, which add up.
    let (user, system) = (
        us(&v, "server_user_us_per_call"),
        us(&v, "server_system_us_per_call"),
    );
    assert!(user >= 0.0 && system >= 0.0, "{v}");
    assert!(
        (user + system - us(&v, "server_cpu_us_per_call")).abs() < 1e-6,
        "{v}"
    );
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));

    let json = dir.join("run.json");
    std::fs::write(&json, format!("{v}\n{v}\n")).unwrap();
    let cmp = dir.join("cmp.svg");
    let status = Command::new(PERF)
        .args(["plot", json.to_str().unwrap(), "-o", cmp.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read_to_string(&cmp).unwrap().contains("<polyline"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `load` flags for a 0.3 s run of `Demo.add` through `--idl` in `protocol` over
/// `transport`.
fn add_through_idl<'a>(protocol: &'a str, transport: &'a str) -> Vec<&'a str> {
    vec![
        "--duration-s",
        "0.3",
        "--idl",
        "src/bin/ringsoa-demo/demo.thrift",
        "--call",
        "Demo.add",
        "--args",
        r#"{"a": 40, "b": 2}"#,
        "--protocol",
        protocol,
        "--transport",
        transport,
    ]
}

#[test]
fn any_method_of_any_idl_in_every_protocol_and_transport() {
    for (protocol, transport) in [
        ("binary", "framed"),
        ("compact", "buffered"),
        ("binary", "ttheader"),
    ] {
        let call = add_through_idl(protocol, transport);
        let (out, v) = load(&[&SPAWN[..], &call].concat());
        assert!(out.status.success(), "{protocol}/{transport}: {v}");
        assert_eq!(v["method"], "Demo.add");
        assert!(v["calls"].as_u64().unwrap() > 10, "{v}");
    }
    // A method that raises cannot be a benchmark: a clear error, no JSON.
    let out = Command::new(PERF)
        .args(["load", "--spawn-demo", "0", "--duration-s", "0.2"])
        .args([
            "--idl",
            "src/bin/ringsoa-demo/demo.thrift",
            "--call",
            "Demo.fail",
        ])
        .args(["--args", r#"{"code": 7}"#])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("raised err"), "{stderr}");
}

#[test]
fn any_method_of_any_idl_through_the_full_client() {
    for (protocol, transport, tracking) in [
        ("binary", "framed", None),
        ("compact", "buffered", Some("--no-tracking")),
    ] {
        let mut call = add_through_idl(protocol, transport);
        call.push("--full-stack");
        call.extend(tracking);
        let (out, v) = load(&[&SPAWN[..], &call].concat());
        assert!(out.status.success(), "{protocol}/{transport}: {v}");
        assert_eq!(v["mode"], "full-stack", "{v}");
        assert_eq!(v["method"], "Demo.add");
        assert_eq!(v["errors"], 0, "{v}");
        assert!(v["calls"].as_u64().unwrap() > 10, "{v}");
    }
    // The check is real: whoami answers each tracked call with its own request id,
    // so the replies differ from the first (untracked) one and the run fails.
    let (out, v) = load(
        &[
            &SPAWN[..],
            &["--duration-s", "0.3", "--full-stack"],
            &[
                "--idl",
                "src/bin/ringsoa-demo/demo.thrift",
                "--call",
                "Demo.whoami",
            ],
        ]
        .concat(),
    );
    assert!(!out.status.success(), "{v}");
    assert!(
        v["first_error"]
            .as_str()
            .unwrap_or("")
            .contains("answered other bytes"),
        "{v}"
    );
}

#[test]
fn a_person_gets_a_readable_summary_and_scripts_get_json_in_a_file() {
    let server = EchoServer::start(&[]);
    let dir = std::env::temp_dir().join(format!("ringsoa-perf-summary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("run.json");
    let out = Command::new(PERF)
        .args(["load", "--addr", &server.addr.to_string(), "--conns", "2"])
        .args(["--warmup-s", "0.2", "--duration-s", "0.3"])
        .args(["--json-file", json.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for part in ["calls", "errors 0", "p50", "p99.9", "max", "CPU"] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    assert!(serde_json::from_str::<Value>(&text).is_err(), "not JSON");
    // No server PID given: the summary says how to get the server's figure.
    assert!(text.contains("server not measured (--server-pid"), "{text}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v["calls"].as_u64().unwrap() > 10, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--nodes` gives the full client many nodes, all one server on loopback addresses:
/// the calls spread over every one (the soft load sends each to a node with fewer
/// connections than the average), or with `--aperture` over that many of them,
/// and an address with no room for them after it is refused in one line.
#[test]
fn many_nodes_of_one_server_spread_the_full_clients_calls() {
    let port = free_port();
    let _demo = Demo::start_on(
        format!("0.0.0.0:{port}").parse().unwrap(),
        &["--cores", "1"],
    );
    let addr = format!("127.0.0.1:{port}");
    let flags = [
        "--addr",
        &addr,
        "--full-stack",
        "--nodes",
        "40",
        "--conns",
        "4",
    ];
    let (out, v) = load(&[&flags[..], &["--duration-s", "0.5"]].concat());
    assert!(out.status.success(), "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(
        (&v["nodes"], &v["nodes_connected"]),
        (&40.into(), &40.into()),
        "{v}"
    );
    let (out, v) = load(&[&flags[..], &["--duration-s", "0.5", "--aperture", "5"]].concat());
    assert!(out.status.success(), "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["nodes_connected"], 5, "{v}");
    let out = Command::new(PERF)
        .args([
            "load",
            "--full-stack",
            "--nodes",
            "3",
            "--addr",
            "10.1.2.3:9",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.lines().count() == 1, "{err}");
    assert!(
        err.contains("--nodes 3 needs --addr on an IPv4 loopback address"),
        "{err}"
    );
}

/// A server that reads whatever comes and then answers with a short exception,
/// says nothing, or closes, as `mode` says.
fn misbehaving_server(mode: &'static str) -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut held = Vec::new();
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    match mode {
                        "short" => {
                            let mut msg = bytes::BytesMut::new();
                            ringsoa::transport::framed::write_frame(&mut msg, |b| {
                                use ringsoa::protocol::{Encode, ProtocolWriter};
                                let mut w = ringsoa::protocol::BinaryWriter::new(b);
                                w.write_message_begin(
                                    "echo",
                                    ringsoa::protocol::MessageType::Exception,
                                    1,
                                );
                                ringsoa::protocol::ApplicationException::new(
                                    ringsoa::protocol::ApplicationExceptionKind::UnknownMethod,
                                    "no echo here",
                                )
                                .encode(&mut w);
                            });
                            if s.write_all(&msg).is_err() {
                                return;
                            }
                        }
                        "silent" => held.push(n),
                        _ => return,
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_run_ends_on_time_whatever_the_server_does() {
    for (mode, why) in [
        ("short", "UnknownMethod"),
        ("silent", "no reply by the end of the run"),
        ("close", "closed"),
        ("absent", "cannot connect to 127.0.0.1:"),
    ] {
        let addr = match mode {
            // Nobody listens: the error names the address.
            "absent" => format!("127.0.0.1:{}", free_port()),
            _ => misbehaving_server(mode).to_string(),
        };
        let started = Instant::now();
        let out = Command::new(PERF)
            .args(["load", "--addr", &addr, "--conns", "2"])
            .args(["--warmup-s", "0.2", "--duration-s", "0.3"])
            .output()
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{mode}: the run must fail");
        assert!(stderr.contains(why), "{mode}: {stderr}");
        // No latency or CPU of zero, which would read as a fast server.
        let stdout = String::from_utf8_lossy(&out.stdout);
        if mode != "absent" {
            assert!(
                stdout.contains("latency  - (no call completed)"),
                "{mode}: {stdout}"
            );
            assert!(!stdout.contains("0.00 µs"), "{mode}: {stdout}");
        }
        // The run is 0.5 s; calls in flight get a 2 s grace after it.
        assert!(took < Duration::from_secs(20), "{mode}: took {took:?}");
    }
}

/// A rate so low that no call falls inside the run still ends with the run (it
/// used to wait for its first send time), raw and full stack; values that make no
/// run are refused with one line.
#[test]
fn a_rate_too_low_to_send_ends_with_the_run_and_empty_runs_are_refused() {
    let demo = support::process::Demo::start(&[]);
    let addr = demo.addr.to_string();
    for stack in [&[][..], &["--full-stack"][..]] {
        let mut run = Command::new(PERF)
            .args(["load", "--json", "--addr", &addr, "--rate", "0.001"])
            .args(["--warmup-s", "0.2", "--duration-s", "0.3"])
            .args(stack)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The run is 0.5 s; calls in flight get a 2 s grace after it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while run.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = run.kill();
                panic!("{stack:?}: the run did not end");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{stack:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["errors"], 0, "{stack:?}: {v}");
    }
    for (flag, value) in [
        ("--conns", "0"),
        ("--pipeline", "0"),
        ("--rate", "0"),
        ("--duration-s", "0"),
        ("--warmup-s", "-1"),
    ] {
        let out = Command::new(PERF)
            .args(["load", "--addr", &addr, &format!("{flag}={value}")])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: invalid value '{value}' for '{flag} ")),
            "{flag}: {stderr}"
        );
    }
}

#[test]
fn cpu_latency_times_a_round_trip_and_refuses_one_cpu_twice() {
    let out = Command::new(PERF)
        .args(["cpu-latency", "--a", "0", "--b", "1", "--trips", "20000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ns: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(ns > 0.0 && ns.is_finite(), "{ns}");
    let same = Command::new(PERF)
        .args(["cpu-latency", "--a", "0", "--b", "0"])
        .output()
        .unwrap();
    assert!(!same.status.success());
    let err = String::from_utf8_lossy(&same.stderr);
    assert!(err.contains("two different CPUs"), "{err}");
}

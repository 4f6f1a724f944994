//! Zero-downtime restarts under load: ten handovers (a new `ringsoa-demo --handover`
//! on the same port, then SIGTERM to the old one) while ringsoa's own client, the
//! seed stack's thrift_connector pool, and callers that open a new connection for
//! every call call `Demo.echo` without pause. Not one call may fail: during a drain the health check is answered "shutting down" (pools that
//! ping on checkout reconnect), every other call is served, and a draining server
//! tells ringsoa clients not to reuse the connection it closes. The new process is
//! handed the old one's listening sockets, so none closes: the drill runs with
//! `net.ipv4.tcp_migrate_req=0` (the kernel's default, which resets what is queued
//! on a closing listener), in the test's own network namespace.

mod idl {
    ringsoa::include_idl!();
}
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use idl::demo::{DemoClient, DemoEchoArgs, DemoEchoResult};
use ringsoa::client::{Client, ClientConfig};
use ringsoa::protocol::{BinaryReader, Decode, MessageType, ProtocolReader};
use support::process::{free_port, python};
use support::wire::call_raw;

const HANDOVERS: usize = 10;

/// Moves this test's thread (and the processes and threads it starts) into a new
/// network namespace with loopback up and `net.ipv4.tcp_migrate_req=0`: a listener
/// that closed during a handover would reset what is queued on it. Needs root, as
/// CI and the dev machines have; false without it.
fn isolated_network_without_migration() -> bool {
    // SAFETY: plain syscalls on this thread and a socket it owns.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return false;
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let up = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) == 0
        };
        libc::close(fd);
        up && std::fs::write("/proc/sys/net/ipv4/tcp_migrate_req", "0").is_ok()
    }
}

/// A `ringsoa-demo --handover` on `addr`, returned once every core listens, with
/// whether it took the listening sockets of a running server.
fn start(addr: SocketAddr) -> (Child, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringsoa-demo"))
        .args(["--listen", &addr.to_string(), "--cores", "2", "--handover"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut took = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        took |= line.contains("took the running server's listening sockets");
        if line.contains("ringsoa-demo serving") {
            break;
        }
    }
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, took)
}

fn sigterm_and_wait(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "the old process exits 0"
    );
}

/// ringsoa's client: `callers` concurrent echo loops until `stop`; (calls, failures).
fn ringsoa_load(addr: SocketAddr, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let mut rt = ringsoa::runtime::build().unwrap();
    rt.block_on(async move {
        let client = Rc::new(Client::new([addr], ClientConfig::new("handover-test")));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (client, stop) = (client.clone(), stop.clone());
                monoio::spawn(async move {
                    let demo = DemoClient::new(client);
                    let (mut calls, mut failures) = (0u64, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        calls += 1;
                        let msg = format!("{i}-{calls}");
                        match demo.echo(None, msg.clone()).await {
                            Ok(got) if got == msg => {}
                            Ok(_) => failures.push("wrong answer".to_string()),
                            Err(e) => failures.push(e.to_string()),
                        }
                    }
                    (calls, failures)
                })
            })
            .collect();
        let mut total = (0, Vec::new());
        for t in tasks {
            let (c, f) = t.await;
            total.0 += c;
            total.1.extend(f);
        }
        total
    })
}

/// Callers that connect anew for every call (as short-lived clients do), the most
/// exposed to a listener closing: 4 threads until `stop`; (calls, failures).
fn new_connection_load(addr: SocketAddr, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut calls, mut failures) = (0u64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    calls += 1;
                    let msg = format!("{i}-{calls}");
                    if let Err(e) = echo_on_new_connection(addr, &msg) {
                        failures.push(e);
                    }
                }
                (calls, failures)
            })
        })
        .collect();
    let mut total = (0, Vec::new());
    for t in threads {
        let (c, f) = t.join().unwrap();
        total.0 += c;
        total.1.extend(f);
    }
    total
}

fn echo_on_new_connection(addr: SocketAddr, msg: &str) -> Result<(), String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let args = DemoEchoArgs {
        msg: Some(msg.into()),
    };
    let reply = call_raw(&mut s, "echo", 1, &args).map_err(|e| format!("call: {e}"))?;
    let mut r = BinaryReader::new(reply);
    let kind = r.read_message_begin().map_err(|e| e.to_string())?.kind;
    let got = DemoEchoResult::decode(&mut r).map_err(|e| e.to_string())?;
    match (kind, got.success.as_deref()) {
        (MessageType::Reply, Some(m)) if m == msg => Ok(()),
        other => Err(format!("wrong answer: {other:?}")),
    }
}

#[test]
fn ten_handovers_under_load_fail_no_call() {
    assert!(
        isolated_network_without_migration(),
        "the handover drill needs root for its own network namespace"
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (mut current, _) = start(addr);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_file = std::env::temp_dir().join(format!("ringsoa-handover-{}", std::process::id()));
    let _ = std::fs::remove_file(&stop_file);
    let python_load = Command::new(python())
        .arg("tests/peers/handover_load.py")
        .args(["src/bin/ringsoa-demo/demo.thrift", &addr.to_string(), "8"])
        .arg(&stop_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rust_load = {
        let stop = stop.clone();
        std::thread::spawn(move || ringsoa_load(addr, stop))
    };
    let fresh_load = {
        let stop = stop.clone();
        std::thread::spawn(move || new_connection_load(addr, stop))
    };
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..HANDOVERS {
        let (next, took) = start(addr);
        assert!(
            took,
            "handover {i}: the new process did not take the listening sockets"
        );
        sigterm_and_wait(current);
        current = next;
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    std::fs::write(&stop_file, "").unwrap();
    let (calls, failures) = rust_load.join().unwrap();
    let (fresh_calls, fresh_failures) = fresh_load.join().unwrap();
    let out = python_load.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&stop_file);
    sigterm_and_wait(current);
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "{HANDOVERS} handovers: ringsoa client {calls} calls, {} failed; thrift_connector {} calls, {} failed; a new connection per call {fresh_calls} calls, {} failed",
        failures.len(),
        py["calls"],
        py["failures"],
        fresh_failures.len()
    );
    assert!(calls > 1000, "the ringsoa load ran: {calls}");
    assert!(
        py["calls"].as_u64().unwrap() > 100,
        "the thrift_connector load ran: {py}"
    );
    assert!(
        fresh_calls > 1000,
        "the new-connection load ran: {fresh_calls}"
    );
    assert!(
        failures.is_empty() && py["failures"] == 0 && fresh_failures.is_empty(),
        "ringsoa client failures: {failures:?}; thrift_connector: {py}; new connections: {:?}",
        &fresh_failures[..fresh_failures.len().min(10)]
    );
}

//! `ringsoa-demo` as a real process on real sockets: thriftpy2 clients (every method,
//! every protocol and transport, tracked and native), hostile input, drain, and the
//! spread of connections over cores.

mod idl {
    ringsoa::include_idl!();
}
mod support;

use support::process::{python, Demo, Logged};
use support::wire::{call_raw, closed, read_reply};

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use idl::demo::*;
use ringsoa::protocol::Protocol;
use ringsoa::protocol::{
    ApplicationException, ApplicationExceptionKind, BinaryReader, BinaryWriter, Decode, Encode,
    MessageType, ProtocolReader, ProtocolWriter,
};
use ringsoa::transport::header::{self, Header, HeaderKind, HeaderLimits};

#[test]
fn thriftpy2_clients_against_two_demo_servers() {
    let (a, b) = (Demo::start(&[]), Demo::start(&[]));
    thriftpy2_checks(&a, &b);
}

/// The same on the epoll driver, as where io_uring is missing or blocked (Docker's
/// default seccomp profile): every check, then a drain that exits 0.
#[test]
fn thriftpy2_clients_against_two_demo_servers_on_the_epoll_driver() {
    let on_epoll = |cmd: &mut Command| {
        cmd.env("RINGSOA_RING", "epoll");
    };
    let (mut a, b) = (
        Logged::start("epoll-a", on_epoll),
        Logged::start("epoll-b", on_epoll),
    );
    thriftpy2_checks(&a.demo, &b.demo);
    a.demo.sigterm();
    assert_eq!(a.demo.wait(Duration::from_secs(5)).0, Some(0));
    for text in [a.text(), b.text()] {
        let says = "starting on the epoll driver, not io_uring (RINGSOA_RING=epoll)";
        assert!(text.contains(says), "{text}");
    }
}

/// Runs `tests/peers/demo_clients.py` against `a` and `b`.
fn thriftpy2_checks(a: &Demo, b: &Demo) {
    let out = Command::new(python())
        .arg("tests/peers/demo_clients.py")
        .arg("src/bin/ringsoa-demo/demo.thrift")
        .arg(a.addr.to_string())
        .arg(b.addr.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "thriftpy2 checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all thriftpy2 checks passed"));
}

/// Arguments written as `{1: {}}`: an `Item` with no fields at all.
struct EmptyItemArgs;

impl Encode for EmptyItemArgs {
    fn encode<W: ProtocolWriter>(&self, w: &mut W) {
        let m = w.write_struct_begin();
        w.write_field_begin(ringsoa::protocol::TType::Struct, 1);
        let inner = w.write_struct_begin();
        w.write_struct_end(inner);
        w.write_struct_end(m);
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A fresh connection still gets served.
fn echo_ok(addr: SocketAddr) {
    let mut s = connect(addr);
    let reply = call_raw(
        &mut s,
        "echo",
        1,
        &DemoEchoArgs {
            msg: Some("alive".into()),
        },
    )
    .unwrap();
    let mut r = BinaryReader::new(reply);
    let h = r.read_message_begin().unwrap();
    assert_eq!((h.kind, h.seqid), (MessageType::Reply, 1));
    assert_eq!(
        DemoEchoResult::decode(&mut r).unwrap().success.as_deref(),
        Some("alive")
    );
}

/// Reads a reply that must be a `TApplicationException`.
fn app_exception(reply: Bytes) -> ApplicationException {
    let mut r = BinaryReader::new(reply);
    assert_eq!(r.read_message_begin().unwrap().kind, MessageType::Exception);
    ApplicationException::decode(&mut r).unwrap()
}

/// Whether the server closed `s` (EOF or reset) within the read timeout.
#[test]
fn hostile_input_costs_only_its_connection() {
    let demo = Demo::start(&["--read-timeout-ms", "300"]);
    let addr = demo.addr;
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", demo.child.id())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap()
            .to_owned();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let rss_before = rss();

    // Garbage.
    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed(&mut s), "garbage");
    echo_ok(addr);

    // A frame claiming 2^31-1 bytes: refused before any allocation.
    let mut s = connect(addr);
    s.write_all(&[0x7f, 0xff, 0xff, 0xff, 0x80, 0x01, 0x00, 0x01])
        .unwrap();
    assert!(closed(&mut s), "huge frame");
    echo_ok(addr);
    // A frame of length zero.
    let mut s = connect(addr);
    s.write_all(&[0, 0, 0, 0, 0x80]).unwrap();
    assert!(closed(&mut s), "zero frame");

    // Header transports: a zlib THeader whose payload is not zlib, a TTHeader
    // claiming more header than its frame holds, a THeader with a protobuf payload:
    // each closes its connection.
    for (what, body) in [
        (
            "zlib THeader without zlib data",
            &[0x0f, 0xff, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 0][..],
        ),
        (
            "TTHeader longer than its frame",
            &[0x10, 0x00, 0, 0, 0, 0, 0, 1, 0x40, 0][..],
        ),
        (
            "THeader protocol 4",
            &[0x0f, 0xff, 0, 0, 0, 0, 0, 1, 0, 1, 4, 0, 0, 0][..],
        ),
    ] {
        let mut s = connect(addr);
        s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
        s.write_all(body).unwrap();
        assert!(closed(&mut s), "{what}");
        echo_ok(addr);
    }

    // A truncated message, then close.
    let mut s = connect(addr);
    s.write_all(&[0x80, 0x01, 0x00, 0x01, 0, 0, 0, 4, b'e'])
        .unwrap();
    drop(s);
    echo_ok(addr);

    // The first bytes one at a time.
    let mut s = connect(addr);
    let mut req = BytesMut::new();
    let mut w = BinaryWriter::new(&mut req);
    w.write_message_begin("add", MessageType::Call, 9);
    DemoAddArgs {
        a: Some(1),
        b: Some(2),
    }
    .encode(&mut w);
    for b in req.iter() {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut r = BinaryReader::new(read_reply(&mut s).unwrap());
    assert_eq!(r.read_message_begin().unwrap().seqid, 9);
    assert_eq!(DemoAddResult::decode(&mut r).unwrap().success, Some(3));

    // Unknown method: UNKNOWN_METHOD, connection kept.
    let exc = app_exception(call_raw(&mut s, "nope", 11, &DemoPingArgs {}).unwrap());
    assert_eq!(
        exc.kind,
        ringsoa::protocol::ApplicationExceptionKind::UnknownMethod
    );
    let reply = call_raw(
        &mut s,
        "echo",
        12,
        &DemoEchoArgs {
            msg: Some("same conn".into()),
        },
    )
    .unwrap();
    let mut r = BinaryReader::new(reply);
    r.read_message_begin().unwrap();
    assert_eq!(
        DemoEchoResult::decode(&mut r).unwrap().success.as_deref(),
        Some("same conn")
    );

    // Slowloris: half a request, then silence: closed after the read timeout.
    let mut s = connect(addr);
    s.write_all(&req[..5]).unwrap();
    let t = Instant::now();
    assert!(closed(&mut s), "slowloris");
    assert!(t.elapsed() < Duration::from_secs(4));
    echo_ok(addr);

    // 500 idle connections, then a call still gets through.
    let idle: Vec<TcpStream> = (0..500).map(|_| connect(addr)).collect();
    echo_ok(addr);
    drop(idle);

    // Reset mid-call.
    let mut s = connect(addr);
    let mut buf = BytesMut::new();
    let mut w = BinaryWriter::new(&mut buf);
    w.write_message_begin("sleep_ms", MessageType::Call, 1);
    DemoSleepMsArgs { ms: Some(200) }.encode(&mut w);
    s.write_all(&buf).unwrap();
    let sock = socket2::SockRef::from(&s);
    sock.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    echo_ok(addr);

    let grown = rss().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

/// `add` called with a string where field 1 should be an i32: the mistyped field is
/// skipped (as thriftpy2 does) and the default used; undecodable arguments get
/// PROTOCOL_ERROR; either way the connection is still served.
#[test]
fn wrong_argument_types_get_an_answer() {
    let demo = Demo::start(&[]);
    let mut s = connect(demo.addr);
    let reply = call_raw(
        &mut s,
        "add",
        1,
        &DemoEchoArgs {
            msg: Some("x".into()),
        },
    )
    .unwrap();
    let mut r = BinaryReader::new(reply);
    assert_eq!(r.read_message_begin().unwrap().kind, MessageType::Reply);
    assert_eq!(DemoAddResult::decode(&mut r).unwrap().success, Some(0));
    // `roundtrip` whose item lacks the required `id` (an empty struct as field 1):
    // PROTOCOL_ERROR, and the connection stays usable.
    let exc = app_exception(call_raw(&mut s, "roundtrip", 2, &EmptyItemArgs).unwrap());
    assert_eq!(
        exc.kind,
        ringsoa::protocol::ApplicationExceptionKind::ProtocolError
    );
    echo_ok(demo.addr);
    let reply = call_raw(
        &mut s,
        "echo",
        3,
        &DemoEchoArgs {
            msg: Some("same".into()),
        },
    )
    .unwrap();
    let mut r = BinaryReader::new(reply);
    r.read_message_begin().unwrap();
    assert_eq!(
        DemoEchoResult::decode(&mut r).unwrap().success.as_deref(),
        Some("same")
    );
}

/// Sends `sleep_ms(ms)` with `seqid` on `s`, without reading the reply.
fn send_sleep(s: &mut TcpStream, seqid: i32, ms: i32) {
    let mut buf = BytesMut::new();
    let mut w = BinaryWriter::new(&mut buf);
    w.write_message_begin("sleep_ms", MessageType::Call, seqid);
    DemoSleepMsArgs { ms: Some(ms) }.encode(&mut w);
    s.write_all(&buf).unwrap();
}

#[test]
fn drain_finishes_calls_refuses_new_ones_and_exits() {
    let admin = format!("127.0.0.1:{}", support::process::free_port());
    let mut demo = Demo::start(&["--drain-timeout-ms", "5000", "--admin", &admin]);
    let admin: SocketAddr = admin.parse().unwrap();
    let addr = demo.addr;
    let mut idle = connect(addr);
    let mut busy = connect(addr);
    send_sleep(&mut busy, 7, 600);
    std::thread::sleep(Duration::from_millis(100));
    demo.sigterm();
    // Once the drain has begun (an idle connection closes 100 ms after its core
    // sees it; a fixed wait here left a few milliseconds to spare).
    let began = Instant::now();
    while support::process::http_get(admin, "/health").0 != 503 {
        assert!(began.elapsed() < Duration::from_secs(5), "no drain");
        std::thread::sleep(Duration::from_millis(2));
    }

    // A request on an idle connection: not executed, told so, then closed.
    let exc = app_exception(call_raw(&mut idle, "ping", 1, &DemoPingArgs {}).unwrap());
    assert!(exc
        .message
        .unwrap()
        .starts_with("ringsoa: server is shutting down"));
    assert!(closed(&mut idle));
    // New connections are refused (once the cores have seen the drain: they look
    // every few milliseconds).
    let seen = Instant::now();
    while TcpStream::connect(addr).is_ok() {
        assert!(
            seen.elapsed() < Duration::from_secs(2),
            "new connections still accepted while draining"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The in-flight call completes, then its connection closes.
    let mut r = BinaryReader::new(read_reply(&mut busy).unwrap());
    assert_eq!(r.read_message_begin().unwrap().seqid, 7);
    assert_eq!(
        DemoSleepMsResult::decode(&mut r)
            .unwrap()
            .success
            .as_deref(),
        Some("slept 600")
    );
    assert!(closed(&mut busy));
    let (code, _) = demo.wait(Duration::from_secs(5));
    assert_eq!(code, Some(0));
}

/// Ctrl-C after SIGTERM shortens the drain to 1 s from its start: the call in
/// flight is cut off then, and the process exits. Before, the second signal was
/// logged ("timeout=1s") but the drain went on to its first deadline.
#[test]
fn a_sigint_during_a_drain_cuts_it_short() {
    let mut demo = Demo::start(&["--drain-timeout-ms", "60000"]);
    let mut busy = connect(demo.addr);
    busy.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    send_sleep(&mut busy, 7, 30_000);
    std::thread::sleep(Duration::from_millis(100));
    demo.sigterm();
    std::thread::sleep(Duration::from_millis(300));
    demo.signal("INT");
    let exc = app_exception(read_reply(&mut busy).unwrap());
    assert!(
        exc.message
            .as_deref()
            .unwrap()
            .contains("cut off by the server's drain timeout"),
        "{exc:?}"
    );
    // Well before the call's 30 s or the first drain's 60 s.
    let (code, _) = demo.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0));
}

#[test]
fn sighup_is_logged_and_the_server_serves_on() {
    let mut logged = Logged::start("hup", |_| {});
    let addr = logged.demo.addr;
    let demo = &mut logged.demo;
    let mut s = connect(addr);
    call_raw(&mut s, "ping", 1, &DemoPingArgs {}).unwrap();
    demo.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        demo.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the process"
    );
    // The open connection and a new one are both served.
    call_raw(&mut s, "ping", 2, &DemoPingArgs {}).unwrap();
    echo_ok(addr);
    demo.sigterm();
    assert_eq!(demo.wait(Duration::from_secs(5)).0, Some(0));
    let text = logged.text();
    assert!(text.contains("SIGHUP ignored"), "{text}");
}

/// A process stopped and continued (SIGSTOP; a paused VM or container) reports no
/// blocked core: its watchdog was stopped with it. It serves on.
#[test]
fn a_stopped_and_continued_process_reports_no_blocked_core() {
    let admin = format!("127.0.0.1:{}", support::process::free_port());
    let logged = Logged::start("stopped", |cmd| {
        cmd.args(["--admin", &admin]);
    });
    let admin: SocketAddr = admin.parse().unwrap();
    support::process::http_get(admin, "/health");
    let addr = logged.demo.addr;
    logged.demo.signal("STOP");
    // Health checks that wait for it: the first is answered as it wakes, before
    // its cores have ticked.
    let mut probes: Vec<TcpStream> = (0..5).map(|_| connect(admin)).collect();
    for p in &mut probes {
        p.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    // Requests that wait for it: the cores have work when they wake.
    let mut request = BytesMut::new();
    let mut w = BinaryWriter::new(&mut request);
    w.write_message_begin("ping", MessageType::Call, 1);
    DemoPingArgs {}.encode(&mut w);
    let mut waiting: Vec<TcpStream> = (0..200).map(|_| connect(addr)).collect();
    for s in &mut waiting {
        s.write_all(&request).unwrap();
    }
    std::thread::sleep(Duration::from_millis(2500));
    logged.demo.signal("CONT");
    for p in &mut probes {
        let mut answer = String::new();
        p.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    for s in &mut waiting {
        let mut byte = [0u8];
        s.read_exact(&mut byte).unwrap();
    }
    echo_ok(addr);
    // A few of the watchdog's rounds (a quarter of its 1 s threshold each).
    std::thread::sleep(Duration::from_millis(1500));
    let text = logged.text();
    assert!(!text.contains("appears blocked"), "{text}");
}

#[test]
fn idle_connections_do_not_delay_exit_and_the_timeout_cancels() {
    let mut demo = Demo::start(&["--drain-timeout-ms", "300"]);
    let _idle: Vec<TcpStream> = (0..20).map(|_| connect(demo.addr)).collect();
    let mut long = connect(demo.addr);
    let mut buf = BytesMut::new();
    let mut w = BinaryWriter::new(&mut buf);
    w.write_message_begin("sleep_ms", MessageType::Call, 1);
    DemoSleepMsArgs { ms: Some(10_000) }.encode(&mut w);
    long.write_all(&buf).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    demo.sigterm();
    let (code, took) = demo.wait(Duration::from_secs(5));
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    // The call cut off by the drain timeout gets an error reply, then the close.
    let exc = app_exception(read_reply(&mut long).unwrap());
    assert!(
        exc.message
            .as_deref()
            .unwrap_or("")
            .contains("drain timeout"),
        "{exc:?}"
    );
    assert!(
        closed(&mut long),
        "the cancelled call's connection is closed"
    );
}

#[test]
fn a_second_process_without_handover_is_refused_the_port() {
    let first = Demo::start(&[]);
    let port = first.addr.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_ringsoa-demo"))
        .args(["--listen", &port, "--cores", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");
    // It says what to do about it.
    assert!(err.contains("--handover"), "{err}");
}

#[test]
fn an_address_that_cannot_be_listened_on_is_not_called_in_use() {
    // 192.0.2.1 (TEST-NET-1) is no machine's own address.
    let out = Command::new(env!("CARGO_BIN_EXE_ringsoa-demo"))
        .args([
            "--listen",
            "192.0.2.1:9090",
            "--cores",
            "1",
            "--no-governance",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on 192.0.2.1:9090"), "{err}");
    assert!(!err.contains("in use"), "{err}");
}

/// A handover passes the listening sockets themselves: the new process accepts on the
/// very sockets the old one did, and when the old one drains no listener closes (so
/// nothing queued on one is reset). The new one hands them on in turn.
#[test]
fn a_handover_passes_the_listening_sockets_and_none_closes() {
    let mut old = Demo::start(&[]);
    let before = listening_sockets(old.addr.port());
    assert_eq!(before.len(), 2, "one listener per core: {before:?}");
    let (mut new, new_log) = start_handover(old.addr, "1");
    assert!(
        new_log.contains("took the running server's listening sockets")
            && new_log.contains("sockets=2"),
        "{new_log}"
    );
    assert_eq!(
        listening_sockets(old.addr.port()),
        before,
        "no listener of its own"
    );
    old.sigterm();
    assert_eq!(old.wait(Duration::from_secs(5)).0, Some(0));
    assert_eq!(
        listening_sockets(old.addr.port()),
        before,
        "the old process's drain closed no listener"
    );
    // Fresh connections (spread over both sockets) are served by the new process.
    for i in 0..20 {
        let mut s = connect(new.addr);
        let reply = call_raw(&mut s, "whoami", i, &DemoWhoamiArgs {}).unwrap();
        let mut r = BinaryReader::new(reply);
        r.read_message_begin().unwrap();
        assert!(DemoWhoamiResult::decode(&mut r).unwrap().success.is_some());
    }
    // The new process offers them on: a third takes both from its one core.
    let (_third, third_log) = start_handover(new.addr, "2");
    assert!(third_log.contains("sockets=2"), "{third_log}");
    new.sigterm();
    assert_eq!(new.wait(Duration::from_secs(5)).0, Some(0));
    assert_eq!(listening_sockets(old.addr.port()), before);
}

/// Should the new process die before the old one drains, the old one (still serving)
/// offers its sockets again, to the next new process.
#[test]
fn the_old_process_offers_its_sockets_again_when_the_new_one_dies() {
    let old = Demo::start(&[]);
    let before = listening_sockets(old.addr.port());
    let (mut dead, log) = start_handover(old.addr, "1");
    assert!(log.contains("sockets=2"), "{log}");
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_next, log) = start_handover(old.addr, "1");
        if log.contains("took the running server's listening sockets") {
            assert!(log.contains("sockets=2"), "{log}");
            break;
        }
        // The old process may not have seen the death yet.
        assert!(Instant::now() < deadline, "never offered again: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(listening_sockets(old.addr.port()), before);
}

/// With no ringsoa server on the port to hand its sockets over (another program
/// shares it with SO_REUSEPORT, as in a move from gunicorn_thrift), `--handover`
/// joins the port's group and serves beside it.
#[test]
fn a_handover_from_another_program_joins_its_reuseport_group() {
    let addr: SocketAddr = format!("127.0.0.1:{}", support::process::free_port())
        .parse()
        .unwrap();
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other.set_reuse_address(true).unwrap();
    other.set_reuse_port(true).unwrap();
    other.bind(&addr.into()).unwrap();
    other.listen(16).unwrap();
    let (_demo, log) = start_handover(addr, "1");
    assert!(log.contains("joining its SO_REUSEPORT group"), "{log}");
    assert_eq!(
        listening_sockets(addr.port()).len(),
        2,
        "the other's and its own"
    );
    drop(other);
    // A process another test is spawning in parallel may hold a copy of the
    // socket until its exec; a connection queued there would be reset.
    let deadline = Instant::now() + Duration::from_secs(10);
    while listening_sockets(addr.port()).len() > 1 {
        assert!(Instant::now() < deadline, "the other's socket never closed");
        std::thread::sleep(Duration::from_millis(10));
    }
    echo_ok(addr);
}

/// Starts `ringsoa-demo --handover --cores CORES` on `addr`; returns it once it
/// serves, with its log so far.
fn start_handover(addr: SocketAddr, cores: &str) -> (Demo, String) {
    let log = std::env::temp_dir().join(format!("ringsoa-handover-{}-{cores}.log", addr.port()));
    let file = std::fs::File::create(&log).unwrap();
    let demo = Demo::start_with(addr, &["--handover", "--cores", cores], |cmd| {
        cmd.env("RUST_LOG", "info").stderr(file);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("ringsoa-demo serving") {
            let _ = std::fs::remove_file(&log);
            return (demo, text);
        }
        assert!(
            Instant::now() < deadline,
            "the handover did not serve: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The inodes of the TCP sockets listening on `port` (from `/proc/net/tcp`): the
/// same in two reads in a row, as the kernel writes the table a page at a time and
/// a read while other tests open and close sockets may skip a line.
fn listening_sockets(port: u16) -> std::collections::BTreeSet<u64> {
    let read = || -> std::collections::BTreeSet<u64> {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let local_port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
                (local_port == port && f[3] == "0A").then(|| f[9].parse().ok())?
            })
            .collect()
    };
    let mut last = read();
    for _ in 0..20 {
        let now = read();
        if now == last {
            break;
        }
        last = now;
    }
    last
}

#[test]
fn connections_spread_over_both_cores() {
    let demo = Demo::start(&[]);
    let mut per_core: BTreeMap<String, usize> = BTreeMap::new();
    let mut conns = Vec::new();
    for _ in 0..64 {
        let mut s = connect(demo.addr);
        let reply = call_raw(&mut s, "whoami", 1, &DemoWhoamiArgs {}).unwrap();
        let mut r = BinaryReader::new(reply);
        r.read_message_begin().unwrap();
        let who = DemoWhoamiResult::decode(&mut r).unwrap().success.unwrap();
        *per_core.entry(who["core"].clone()).or_default() += 1;
        conns.push(s);
    }
    assert_eq!(per_core.len(), 2, "{per_core:?}");
    assert!(
        per_core.values().all(|n| *n >= 16),
        "each core serves at least a quarter: {per_core:?}"
    );
}

#[test]
fn every_transport_at_once_on_one_port() {
    // thriftpy2 tracked (v1, v2) and native, framed and buffered, binary and
    // compact, in one process; TTHeader and THeader from ringsoa's client in this
    // one; all on one port at the same time.
    let demo = Demo::start(&[]);
    let mut py = Command::new(python())
        .arg("tests/peers/demo_clients.py")
        .arg("src/bin/ringsoa-demo/demo.thrift")
        .arg(demo.addr.to_string())
        .arg(demo.addr.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Rounds of header calls until the thriftpy2 checks end (at least one).
    let mut rounds = 0;
    while rounds == 0 || py.try_wait().unwrap().is_none() {
        rounds += 1;
        header_round(demo.addr);
    }
    let out = py.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all thriftpy2 checks passed"),
        "thriftpy2 checks failed beside the header clients:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{rounds} rounds of header calls ran beside the thriftpy2 checks");
}

/// fbthrift's persistent THeader pairs (PKEYVALUE), as its `setPersistentHeader`
/// sends them: once sent, a pair counts for every later call on the connection; a
/// key sent again takes its new value; a call's own pair of the same key wins for
/// that call; another connection (on the same core) has none; and a connection that
/// sends more than the limit is closed.
#[test]
fn theader_persistent_pairs_count_for_every_later_call_on_their_connection() {
    let demo = Demo::start(&["--cores", "1"]);
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let header = |seqid, strings: &[(&str, &str)], persistent| Header {
        strings: pairs(strings),
        persistent,
        ..Header::new(HeaderKind::THeader, seqid, Protocol::Binary)
    };
    let send = |s: &mut TcpStream, seqid, strings: &[(&str, &str)], persistent| {
        send_theader_whoami(s, &header(seqid, strings, persistent))
    };
    let who = |s: &mut TcpStream, seqid, strings: &[(&str, &str)], persistent: &[(&str, &str)]| {
        send(s, seqid, strings, pairs(persistent)).unwrap();
        let (h, who) = read_theader_whoami(s);
        assert_eq!(h.seqid, seqid);
        who
    };
    let mut s = connect(demo.addr);
    let first = who(
        &mut s,
        1,
        &[("once", "1")],
        &[("tenant", "t1"), ("client_id", "pclient")],
    );
    assert_eq!(first["meta.tenant"], "t1");
    assert_eq!(first["meta.once"], "1");
    assert_eq!(
        first["client"], "pclient",
        "the caller, from a persistent pair"
    );
    let later = who(&mut s, 2, &[], &[]);
    assert_eq!(later["meta.tenant"], "t1", "{later:?}");
    assert_eq!(later["client"], "pclient", "{later:?}");
    assert!(!later.contains_key("meta.once"), "{later:?}");
    let own = who(&mut s, 3, &[("tenant", "mine")], &[]);
    assert_eq!(own["meta.tenant"], "mine", "the call's own pair wins");
    let changed = who(&mut s, 4, &[], &[("tenant", "t2")]);
    assert_eq!(changed["meta.tenant"], "t2");
    assert_eq!(who(&mut s, 5, &[], &[])["meta.tenant"], "t2");
    let mut other = connect(demo.addr);
    let fresh = who(&mut other, 1, &[], &[]);
    assert_eq!(fresh["core"], later["core"], "one core");
    assert!(!fresh.contains_key("meta.tenant"), "{fresh:?}");

    // 60 kept, then 40 more: past the limit (the tracking meta's 64 + 32).
    let many = |from: usize, n: usize| -> Vec<(String, String)> {
        (from..from + n)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect()
    };
    let mut greedy = connect(demo.addr);
    send(&mut greedy, 1, &[], many(0, 60)).unwrap();
    assert_eq!(read_theader_whoami(&mut greedy).1["meta.k59"], "v");
    let _ = send(&mut greedy, 2, &[], many(60, 40));
    assert!(closed(&mut greedy), "a connection past the limit is closed");
    assert_eq!(who(&mut s, 6, &[], &[])["meta.tenant"], "t2", "and only it");
}

/// Writes a THeader frame with `h` around `message`, compressed with zlib when
/// `h.zlib` says so.
fn write_theader(s: &mut TcpStream, h: &Header, message: &[u8]) -> std::io::Result<()> {
    let mut frame = BytesMut::from(&[0u8; 4][..]);
    header::encode(&mut frame, h);
    if h.zlib {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(message)?;
        frame.extend_from_slice(&z.finish()?);
    } else {
        frame.extend_from_slice(message);
    }
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&frame)
}

/// A THeader frame with `h` around a binary `Demo.whoami` call.
fn send_theader_whoami(s: &mut TcpStream, h: &Header) -> std::io::Result<()> {
    let mut message = BytesMut::new();
    let mut w = BinaryWriter::new(&mut message);
    w.write_message_begin("whoami", MessageType::Call, h.seqid as i32);
    DemoWhoamiArgs {}.encode(&mut w);
    write_theader(s, h, &message)
}

/// One framed THeader message: its header and payload (inflated first when the
/// header names zlib).
fn read_theader(s: &mut TcpStream) -> (Header, Bytes) {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let limits = HeaderLimits {
        entries: 64,
        item: 4096,
    };
    let (h, payload) = header::decode(&Bytes::from(body), &limits).unwrap();
    if !h.zlib {
        return (h, payload);
    }
    let mut plain = Vec::new();
    flate2::read::ZlibDecoder::new(&payload[..])
        .read_to_end(&mut plain)
        .unwrap();
    (h, plain.into())
}

/// One THeader reply to `whoami`: its header and the answer.
fn read_theader_whoami(s: &mut TcpStream) -> (Header, BTreeMap<String, String>) {
    let (h, payload) = read_theader(s);
    let mut r = BinaryReader::new(payload);
    r.read_message_begin().unwrap();
    let who = DemoWhoamiResult::decode(&mut r).unwrap().success.unwrap();
    (h, who)
}

/// The client's side of the zlib transform and of persistent pairs: told to, it
/// sends every THeader request compressed (as a server that reads the transform
/// sees it) and its persistent pairs in the connection's first request only; it
/// inflates a compressed reply.
#[test]
fn the_client_compresses_and_sends_persistent_pairs_when_told() {
    use ringsoa::client::{Client, ClientConfig, ConnOptions};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for (i, persistent) in [vec![("p".to_string(), "kept".to_string())], vec![]]
            .into_iter()
            .enumerate()
        {
            let (h, request) = read_theader(&mut s);
            let mut r = BinaryReader::new(request);
            let call = r.read_message_begin().unwrap();
            assert!(h.zlib, "the request came compressed");
            assert_eq!(h.persistent, persistent, "request {i}");
            assert_eq!(&call.name[..], b"whoami");
            let mut reply = BytesMut::new();
            let mut w = BinaryWriter::new(&mut reply);
            w.write_message_begin("whoami", MessageType::Reply, call.seqid);
            let who = BTreeMap::from([("from".to_string(), "a zlib server".to_string())]);
            DemoWhoamiResult { success: Some(who) }.encode(&mut w);
            let zlib = Header {
                zlib: true,
                ..Header::new(HeaderKind::THeader, h.seqid, Protocol::Binary)
            };
            write_theader(&mut s, &zlib, &reply).unwrap();
        }
    });
    let config = ClientConfig {
        conn: ConnOptions {
            header: Some(HeaderKind::THeader),
            header_zlib: true,
            header_persistent: vec![("p".into(), "kept".into())],
            ..ConnOptions::new("zlib-client")
        },
        ..ClientConfig::default()
    };
    support::block_on(async {
        let client = Client::new([addr], config);
        for _ in 0..2 {
            let who = DemoClient::new(&client).whoami(None).await.unwrap();
            assert_eq!(who["from"], "a zlib server");
        }
    });
    server.join().unwrap();
}

/// THeader's zlib transform, as Apache's and fbthrift's clients send it: the request
/// is inflated and the reply compressed too. A bomb (a payload that would inflate
/// to more than 128 times its size) is answered with PROTOCOL_ERROR when it is a
/// call, and closes its connection (only it) when it is not; a line says so.
#[test]
fn theader_zlib_requests_are_inflated_and_answered_compressed() {
    let logged = Logged::start("zlib", |_| {});
    let addr = logged.demo.addr;
    let mut s = connect(addr);
    let h = Header {
        zlib: true,
        strings: vec![("k".into(), "zipped".into())],
        ..Header::new(HeaderKind::THeader, 9, Protocol::Binary)
    };
    send_theader_whoami(&mut s, &h).unwrap();
    let (back, who) = read_theader_whoami(&mut s);
    assert!(back.zlib, "the reply is compressed too");
    assert_eq!(who["meta.k"], "zipped");
    // A bomb: 64 MiB of zeros in some 64 KiB.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![0u8; 64 << 20]).unwrap();
    let bomb = z.finish().unwrap();
    let mut frame = BytesMut::from(&[0u8; 4][..]);
    header::encode(&mut frame, &h);
    frame.extend_from_slice(&bomb);
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    let mut b = connect(addr);
    b.write_all(&frame).unwrap();
    assert!(
        closed(&mut b),
        "a zlib bomb that is no call closes its connection"
    );
    send_theader_whoami(&mut s, &h).unwrap();
    assert_eq!(
        read_theader_whoami(&mut s).1["meta.k"],
        "zipped",
        "and only it"
    );
    // A bomb that is a call (an echo of 8 MiB of one letter) is answered.
    let mut message = BytesMut::new();
    let mut w = BinaryWriter::new(&mut message);
    w.write_message_begin("echo", MessageType::Call, 10);
    DemoEchoArgs {
        msg: Some("z".repeat(8 << 20)),
    }
    .encode(&mut w);
    write_theader(&mut s, &h, &message).unwrap();
    let (back, reply) = read_theader(&mut s);
    assert!(back.zlib);
    let exc = app_exception(reply);
    assert_eq!(exc.kind, ApplicationExceptionKind::ProtocolError);
    let why = exc.message.unwrap();
    assert!(
        why.starts_with("ringsoa: the request is too large: the THeader zlib payload inflates to more than 128 times its ")
            && why.ends_with(" bytes (send it without the transform)"),
        "{why}"
    );
    send_theader_whoami(&mut s, &h).unwrap();
    assert_eq!(
        read_theader_whoami(&mut s).1["meta.k"],
        "zipped",
        "it goes on"
    );
    // One line for both bombs when they meet on one core (a core's warnings about
    // bad requests are throttled together).
    let log = logged.text();
    assert!(
        log.contains("the THeader zlib payload inflates to more than 128 times its"),
        "{log}"
    );
}

/// Every Demo call kind over TTHeader and THeader, binary and compact, THeader with
/// each header frame inside a frame of its own (Apache's over TFramedTransport), and
/// THeader with the zlib transform; THeader's persistent pairs, sent once per
/// connection, reach every later call.
fn header_round(addr: SocketAddr) {
    use ringsoa::client::{Client, ClientConfig, ConnOptions};
    use ringsoa::protocol::Protocol;
    use ringsoa::rpc::{CallContext, CallError};
    use ringsoa::transport::header::HeaderKind;
    support::block_on(async {
        for (kind, protocol, in_frame, zlib) in [
            (HeaderKind::TTHeader, Protocol::Binary, false, false),
            (HeaderKind::THeader, Protocol::Compact, false, false),
            (HeaderKind::TTHeader, Protocol::Compact, false, false),
            (HeaderKind::THeader, Protocol::Binary, true, false),
            (HeaderKind::THeader, Protocol::Compact, false, true),
        ] {
            let config = ClientConfig {
                conn: ConnOptions {
                    protocol,
                    header: Some(kind),
                    header_in_frame: in_frame,
                    header_zlib: zlib,
                    header_persistent: vec![("p".into(), "kept".into())],
                    ..ConnOptions::new("header-peer")
                },
                ..ClientConfig::default()
            };
            let client = Client::new([addr], config);
            let d = DemoClient::new(&client);
            for i in 0..300 {
                assert_eq!(d.add(None, i, 1).await.unwrap(), i64::from(i) + 1);
            }
            assert_eq!(
                d.echo(None, "é".repeat(5000)).await.unwrap(),
                "é".repeat(5000)
            );
            match d.fail(None, 7).await {
                Err(CallError::Declared(DemoFailException::Err(e))) => {
                    assert_eq!(e.code, Some(7))
                }
                other => panic!("{kind:?}: {other:?}"),
            }
            // The header's caller, timeout and string pairs reach the handler; its
            // response meta comes back in the reply header.
            let mut cx = CallContext {
                meta: BTreeMap::from([("RPC_TRANSIT_k".to_string(), "v".to_string())]),
                ..CallContext::default()
            };
            let who = d.whoami(Some(&mut cx)).await.unwrap();
            assert_eq!(who["client"], "header-peer", "{kind:?}");
            assert_eq!(who["meta.RPC_TRANSIT_k"], "v", "{kind:?}");
            // Sent once, in the connection's first call (THeader only).
            let kept = who.get("meta.p").map(String::as_str);
            let want = (kind == HeaderKind::THeader).then_some("kept");
            assert_eq!(kept, want, "{kind:?}");
            let budget: u64 = who["meta.ringsoa.timeout_ms"].parse().unwrap();
            assert!(budget > 0 && budget <= 5000, "{budget}");
            assert_eq!(cx.reply_meta.get("core"), Some(&who["core"]), "{kind:?}");
        }
    });
}

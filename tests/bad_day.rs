//! A bad day for `ringsoa-demo`, on real processes and sockets: slow and idle
//! clients, large messages, oversized tracking fields, floods of garbage, a low
//! open-file limit, decode blow-ups. Each test failed before its fix, but the last:
//! a drill of them all at once.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ringsoa::protocol::{
    ApplicationException, BinaryReader, BinaryWriter, Decode, Encode, MessageType, ProtocolReader,
    ProtocolWriter, TType,
};
use ringsoa::rpc::context::TIMEOUT_META;
use ringsoa::tracking::{RequestHeader, UpgradeArgs, HANDSHAKE_METHOD};
use support::process::{free_port, Demo, Logged};
use support::wire::{call_raw, call_tracked, closed, read_reply};

mod idl {
    ringsoa::include_idl!();
}
use idl::demo::*;

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Whether the server has closed `s` (EOF or reset) within 3 s.
fn is_closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    closed(s)
}

fn ping(s: &mut TcpStream) -> std::io::Result<Bytes> {
    call_raw(s, "ping", 1, &DemoPingArgs {})
}

fn reply_kind(reply: &Bytes) -> MessageType {
    BinaryReader::new(reply.clone())
        .read_message_begin()
        .unwrap()
        .kind
}

fn exception(reply: Bytes) -> ApplicationException {
    let mut r = BinaryReader::new(reply);
    assert_eq!(r.read_message_begin().unwrap().kind, MessageType::Exception);
    ApplicationException::decode(&mut r).unwrap()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

/// `pid`'s RSS once it is under `bound` kB, or its last reading after `limit`
/// (memory let go by a core's next upkeep, or by the allocator, takes a while).
fn rss_falling_below(pid: u32, bound: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    let mut rss = rss_kb(pid);
    while rss >= bound && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        rss = rss_kb(pid);
    }
    rss
}

#[test]
fn a_started_request_must_finish_within_the_read_timeout_however_it_trickles() {
    let demo = Demo::start(&["--read-timeout-ms", "1000"]);
    let mut conns: Vec<TcpStream> = (0..10).map(|_| connect(demo.addr)).collect();
    let mut request = BytesMut::new();
    let mut w = BinaryWriter::new(&mut request);
    w.write_message_begin("ping", MessageType::Call, 1);
    DemoPingArgs {}.encode(&mut w);
    // 17 bytes at one every 150 ms: every read is quick, the request takes 2.5 s.
    for byte in request.iter() {
        for c in &mut conns {
            let _ = c.write_all(&[*byte]);
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    for c in &mut conns {
        assert!(
            is_closed(c),
            "a trickling request outlived the read timeout"
        );
    }
    // The server is fine.
    assert_eq!(
        reply_kind(&ping(&mut connect(demo.addr)).unwrap()),
        MessageType::Reply
    );
}

#[test]
fn at_the_connection_limit_the_longest_idle_connection_makes_room() {
    let demo = Demo::start(&["--cores", "1", "--max-connections", "10"]);
    let mut silent: Vec<TcpStream> = Vec::new();
    for _ in 0..10 {
        silent.push(connect(demo.addr));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    // Each newcomer is served (and kept open): it evicts the longest-idle
    // connection, which closes (in a turn of the core's loop: an evicted connection
    // first answers a request that came in as it was chosen).
    let mut newcomers = Vec::new();
    for oldest in silent.iter_mut().take(3) {
        let mut s = connect(demo.addr);
        assert_eq!(reply_kind(&ping(&mut s).unwrap()), MessageType::Reply);
        newcomers.push(s);
        assert!(is_closed(oldest), "the oldest silent connection left open");
    }
    // The newest silent ones are kept.
    let closed: Vec<bool> = silent.iter_mut().map(is_closed_now).collect();
    assert!(closed[3..].iter().all(|c| !c), "{closed:?}");
    let last = silent.last_mut().unwrap();
    assert_eq!(reply_kind(&ping(last).unwrap()), MessageType::Reply);
}

/// A request that reaches the longest-idle connection just as a newcomer at the
/// connection limit makes the core evict it is still answered (the connection
/// closes after the reply): the eviction does not lose a call that came in. Before
/// the fix, the evicted socket was shut both ways and such a reply was lost; and
/// before the connection's last look, a request that reached the socket just after
/// the core's choice (its packet handled late by a loaded kernel, seen once in 50 in
/// a CI run) was met by a reset.
#[test]
fn a_request_on_the_connection_evicted_as_it_came_in_is_answered() {
    let demo = Demo::start(&["--cores", "1", "--max-connections", "1"]);
    let mut request = BytesMut::new();
    let mut w = BinaryWriter::new(&mut request);
    w.write_message_begin("ping", MessageType::Call, 1);
    DemoPingArgs {}.encode(&mut w);
    let mut lost = Vec::new();
    for round in 0..50 {
        // The core's only connection, idle after a call, once the last round's
        // survivor has made room: that one may still be between sending its reply
        // and waiting for the next request, busy for that moment, and then the
        // core refuses a newcomer (seen once in a loaded run of the suite).
        let mut oldest = (0..100)
            .find_map(|_| {
                let mut s = connect(demo.addr);
                let answered = ping(&mut s).is_ok_and(|r| reply_kind(&r) == MessageType::Reply);
                answered.then_some(s).or_else(|| {
                    std::thread::sleep(Duration::from_millis(10));
                    None
                })
            })
            .expect("a connection to the core");
        // Its request and a newcomer come in together: the core evicts it, or
        // sees its request first and refuses the newcomer. Every other round the
        // request goes a millisecond after the newcomer, so that it mostly
        // reaches a connection the core has already closed to the reads: the
        // connection's last look still takes it.
        let request_first = round % 2 == 0;
        if request_first {
            oldest.write_all(&request).unwrap();
        }
        let mut newcomer = connect(demo.addr);
        if !request_first {
            std::thread::sleep(Duration::from_millis(1));
            oldest.write_all(&request).unwrap();
        }
        match read_reply(&mut oldest) {
            Ok(reply) => assert_eq!(reply_kind(&reply), MessageType::Reply),
            Err(e) => lost.push(e.kind()),
        }
        // Then one of the two closes: the evicted one after its reply, or the
        // newcomer refused; the other stays.
        let started = Instant::now();
        let closed = loop {
            let closed = [is_closed_now(&mut oldest), is_closed_now(&mut newcomer)];
            if closed.contains(&true) || started.elapsed() > Duration::from_secs(3) {
                break closed;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(
            closed == [true, false] || closed == [false, true],
            "{closed:?}"
        );
    }
    assert!(
        lost.is_empty(),
        "requests lost to the eviction, of 50: {lost:?}"
    );
}

/// Connections the idle timeout has closed do not count toward the connection
/// limit while their last look runs: a newcomer then takes the place of one of
/// them rather than evict a live connection. Before, a newcomer in those 50 ms
/// found the core at its limit and evicted the longest-idle connection still in
/// use. 49 connections go quiet at once (the limit is 50), one keeps calling, and
/// newcomers arrive every 10 ms around the idle timeout; every live connection
/// calls at least every 100 ms to the end.
#[test]
fn newcomers_take_the_place_of_connections_closed_for_idleness() {
    let demo = Demo::start(&[
        "--cores",
        "1",
        "--max-connections",
        "50",
        "--idle-timeout-ms",
        "1000",
    ]);
    let mut quiet: Vec<TcpStream> = (0..49).map(|_| connect(demo.addr)).collect();
    for s in &mut quiet {
        assert_eq!(reply_kind(&ping(s).unwrap()), MessageType::Reply);
    }
    // The quiet ones close 1,000 to about 1,125 ms from now (the core sweeps every
    // sixteenth of the timeout), each then in its last look for 50 ms.
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut live = vec![("keeper".to_string(), connect(demo.addr))];
    let (mut next_newcomer, mut next_round) = (ms(900), t0);
    let mut dropped = Vec::new();
    while Instant::now() < ms(1600) {
        let now = Instant::now();
        if now >= next_newcomer && next_newcomer < ms(1300) {
            let name = format!("newcomer at {:?}", now - t0);
            live.push((name, connect(demo.addr)));
            next_newcomer += Duration::from_millis(10);
            next_round = now;
        }
        if now >= next_round {
            // Every live connection calls as each newcomer comes (the newcomer
            // at once), and at least every 100 ms: far within the idle timeout.
            live.retain_mut(|(name, s)| match ping(s) {
                Ok(reply) if reply_kind(&reply) == MessageType::Reply => true,
                other => {
                    dropped.push(format!("{name}: {other:?} at {:?}", t0.elapsed()));
                    false
                }
            });
            next_round = now + Duration::from_millis(100);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        dropped.is_empty(),
        "live connections closed to make room ({} of {}): {dropped:?}",
        dropped.len(),
        live.len() + dropped.len()
    );
    assert!(live.len() > 30, "{} live connections", live.len());
    let open = quiet.iter_mut().map(is_closed_now).filter(|c| !c).count();
    assert_eq!(open, 0, "quiet connections left open");
}

#[test]
fn a_connection_accepted_but_not_yet_started_makes_room_for_the_next() {
    // Two connections that arrive together: the core may accept the second before
    // the first one's task has run. The first, waiting for its first request, makes
    // room; the second is served.
    let demo = Demo::start(&["--cores", "1", "--max-connections", "1"]);
    for round in 0..30 {
        let mut first = connect(demo.addr);
        let mut second = connect(demo.addr);
        let reply = ping(&mut second).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(reply_kind(&reply), MessageType::Reply);
        assert!(is_closed(&mut first), "round {round}: the first made room");
    }
}

/// Whether `s` has been closed by the server already (no wait for one still open).
fn is_closed_now(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 16];
    let closed = match s.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

#[test]
fn an_idle_timeout_closes_silent_connections() {
    let demo = Demo::start(&["--idle-timeout-ms", "300"]);
    let mut s = connect(demo.addr);
    assert_eq!(reply_kind(&ping(&mut s).unwrap()), MessageType::Reply);
    let started = Instant::now();
    assert!(is_closed(&mut s));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
}

/// A request that reaches a connection just after the idle timeout closed it is
/// still answered (then the connection closes): its client sent it before it
/// could see the close. The core closes an idle connection by shutting its
/// socket's read side and looks at it once more 50 ms later. Before, the idle
/// timeout was a timer on the read that closed the socket at once, and such a
/// request met a reset; a request the kernel had just read when the timer fired
/// went with the dropped read.
#[test]
fn a_request_just_after_the_idle_timeout_is_answered() {
    let demo = Demo::start(&["--idle-timeout-ms", "300"]);
    let (mut lost, mut late) = (Vec::new(), 0);
    for _ in 0..6 {
        let mut s = connect(demo.addr);
        assert_eq!(reply_kind(&ping(&mut s).unwrap()), MessageType::Reply);
        // The core closes the connection 300 to about 340 ms after this reply,
        // and looks once more 50 ms after that: 25 ms past the timeout mostly
        // falls after the close and always before the last look.
        let replied = Instant::now();
        std::thread::sleep(Duration::from_millis(325));
        let sent_after = replied.elapsed();
        match ping(&mut s) {
            Ok(reply) => {
                assert_eq!(reply_kind(&reply), MessageType::Reply);
                assert!(is_closed(&mut s), "closed after the reply");
            }
            // This side ran late (a loaded machine): past the last look, a close
            // is fair.
            Err(_) if sent_after > Duration::from_millis(345) => late += 1,
            Err(e) => lost.push(format!("{:?} sent at {sent_after:?}", e.kind())),
        }
    }
    assert!(
        lost.is_empty(),
        "requests lost to the idle timeout ({late} more sent late): {lost:?}"
    );
}

/// thriftpy2 clients (buffered and framed) against ringsoa-demo with a 300 ms
/// idle timeout at argv[1]: each pings, waits 325 ms, echoes, and prints
/// `answered`, `late` (the echo went past the last look: this side ran late) or
/// `lost` with the exception.
const IDLE_CLIENTS: &str = r#"
import sys, time, thriftpy2
from thriftpy2.rpc import make_client
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory
demo = thriftpy2.load("src/bin/ringsoa-demo/demo.thrift", module_name="demo_thrift")
host, port = sys.argv[1].rsplit(":", 1)
for tf in (TBufferedTransportFactory(), TFramedTransportFactory()):
    for _ in range(3):
        c = make_client(demo.Demo, host, int(port), proto_factory=TBinaryProtocolFactory(),
                        trans_factory=tf, timeout=3000)
        c.ping()
        replied = time.monotonic()
        time.sleep(0.325)
        sent_after = time.monotonic() - replied
        try:
            assert c.echo("late") == "late"
            print("answered")
        except Exception as e:
            print("late" if sent_after > 0.345 else "lost %s %r %.3f" % (type(e).__name__, e, sent_after))
        c.close()
"#;

/// What a peer's pooled client meets: thriftpy2 clients whose call reaches the
/// connection just after the idle timeout closed it get their answer.
#[test]
fn thriftpy2_clients_just_after_the_idle_timeout_are_answered() {
    let demo = Demo::start(&["--idle-timeout-ms", "300"]);
    let out = support::process::python_script(IDLE_CLIENTS, &[&demo.addr.to_string()]);
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("lost")),
        "thriftpy2 calls lost to the idle timeout: {out}"
    );
}

#[test]
fn connections_give_back_large_buffers() {
    let demo = Demo::start(&[]);
    let pid = demo.child.id();
    let big = "x".repeat(15 << 20);
    let mut conns: Vec<TcpStream> = (0..20).map(|_| connect(demo.addr)).collect();
    let before = rss_kb(pid);
    for c in &mut conns {
        let reply = call_raw(
            c,
            "echo",
            1,
            &DemoEchoArgs {
                msg: Some(big.clone()),
            },
        )
        .unwrap();
        assert!(reply.len() > 15 << 20);
    }
    // A core keeps large buffers for the next large message for a second
    // (`ServerBuilder::spare_buffers`), and lets them go at its next upkeep.
    let after = rss_falling_below(pid, before + 160 * 1024, Duration::from_secs(5));
    println!("RSS {before} kB -> {after} kB");
    eprintln!("RSS {before} kB -> {after} kB");
    // Before the fix each idle connection kept 30–32 MB (653 MB for these 20).
    assert!(
        after < before + 160 * 1024,
        "RSS {before} kB -> {after} kB with 20 idle connections after 15 MiB echoes"
    );
    for c in &mut conns {
        assert_eq!(reply_kind(&ping(c).unwrap()), MessageType::Reply);
    }
}

/// The process's minor page faults so far.
fn minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command's closing parenthesis; minflt is the 10th field.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(7).unwrap().parse().unwrap()
}

/// A core answering large messages one after another reuses their pages (the
/// malloc top pad, `ServerBuilder::malloc_top_pad`). Before, glibc gave each
/// freed buffer's pages back at once and the next was faulted in afresh: a 1 MiB
/// buffer is 256 pages, and a 1 MiB echo took 484 page faults here (88–440 with
/// four connections under `ringsoa-perf load`).
#[test]
fn large_messages_one_after_another_reuse_their_pages() {
    let demo = Demo::start(&["--cores", "1"]);
    let pid = demo.child.id();
    let mut s = connect(demo.addr);
    let args = DemoEchoArgs {
        msg: Some("x".repeat(1 << 20)),
    };
    let mut echo = || {
        let reply = call_raw(&mut s, "echo", 1, &args).unwrap();
        assert!(reply.len() > 1 << 20);
    };
    for _ in 0..5 {
        echo();
    }
    let before = minor_faults(pid);
    for _ in 0..50 {
        echo();
    }
    let per_call = (minor_faults(pid) - before) / 50;
    eprintln!("{per_call} page faults a 1 MiB echo");
    assert!(per_call < 64, "{per_call} page faults a 1 MiB echo");
}

/// Large messages on several connections at once reuse their buffers (the core's
/// spare buffers, `ServerBuilder::spare_buffers`): four connections of 4 MiB
/// echoes need more than the malloc top pad keeps, and took 1,114–1,255 page
/// faults a call here before (a 4 MiB buffer is 1,024 pages).
#[test]
fn large_messages_on_several_connections_at_once_reuse_their_buffers() {
    let demo = Demo::start(&["--cores", "1"]);
    let pid = demo.child.id();
    let (warm, measured) = (3, 10);
    let start = Arc::new(std::sync::Barrier::new(5));
    let done = Arc::new(std::sync::Barrier::new(5));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let mut s = connect(demo.addr);
            let (start, done) = (start.clone(), done.clone());
            std::thread::spawn(move || {
                let args = DemoEchoArgs {
                    msg: Some("x".repeat(4 << 20)),
                };
                let mut echo = || {
                    let reply = call_raw(&mut s, "echo", 1, &args).unwrap();
                    assert!(reply.len() > 4 << 20);
                };
                (0..warm).for_each(|_| echo());
                start.wait();
                (0..measured).for_each(|_| echo());
                done.wait();
            })
        })
        .collect();
    start.wait();
    let before = minor_faults(pid);
    done.wait();
    let per_call = (minor_faults(pid) - before) / (4 * measured);
    clients.into_iter().for_each(|c| c.join().unwrap());
    eprintln!("{per_call} page faults a 4 MiB echo, four connections at once");
    assert!(per_call < 256, "{per_call} page faults a 4 MiB echo");
}

/// A framed `echo` call of `len` bytes.
fn framed_echo(len: usize) -> Vec<u8> {
    let mut body = BytesMut::new();
    let mut w = BinaryWriter::new(&mut body);
    w.write_message_begin("echo", MessageType::Call, 1);
    DemoEchoArgs {
        msg: Some("x".repeat(len)),
    }
    .encode(&mut w);
    [&(body.len() as u32).to_be_bytes()[..], &body].concat()
}

/// `n` connections, each sending all but the last byte of a framed 15 MiB echo
/// (on threads of their own, which end when the connections are shut down).
fn unfinished_requests(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut part = framed_echo(15 << 20);
    part.pop();
    let part = Arc::new(part);
    (0..n)
        .map(|_| {
            let s = connect(addr);
            s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
            let held = s.try_clone().unwrap();
            let part = part.clone();
            std::thread::spawn(move || {
                let _ = (&s).write_all(&part);
            });
            held
        })
        .collect()
}

/// Connections each sending all but the last byte of a 15 MiB request, held
/// until the process is seen alive and answering after `hold`.
fn survives_a_flood_of_unfinished_requests(demo: &mut Demo, hold: Duration) {
    let held = unfinished_requests(demo.addr, 40);
    std::thread::sleep(hold);
    let exited = demo.child.try_wait().unwrap();
    assert!(exited.is_none(), "the demo ended: {exited:?}");
    let mut s = connect(demo.addr);
    assert_eq!(reply_kind(&ping(&mut s).unwrap()), MessageType::Reply);
    for s in held {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

/// Connections each sending all but the last byte of a 15 MiB request hold at most
/// the core's budget for requests still arriving (256 MiB) and one message past it
/// (the overdraft) beyond 64 KiB each: 40 of them raised RSS to 625 MB before it. Small calls are answered meanwhile, and once those
/// connections go, a large call is too.
#[test]
fn requests_still_arriving_take_at_most_the_cores_buffer_budget() {
    let demo = Demo::start(&["--cores", "1"]);
    let pid = demo.child.id();
    let before = rss_kb(pid);
    let held = unfinished_requests(demo.addr, 40);
    std::thread::sleep(Duration::from_secs(3));
    let during = rss_kb(pid);
    eprintln!("RSS {before} kB -> {during} kB with 40 requests of 15 MiB arriving");
    assert!(
        during < before + 320 * 1024,
        "RSS {before} kB -> {during} kB with 40 requests of 15 MiB arriving"
    );
    let mut s = connect(demo.addr);
    assert_eq!(reply_kind(&ping(&mut s).unwrap()), MessageType::Reply);
    for s in held {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    let big = "y".repeat(15 << 20);
    let mut s = connect(demo.addr);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let reply = call_raw(
        &mut s,
        "echo",
        2,
        &DemoEchoArgs {
            msg: Some(big.clone()),
        },
    )
    .unwrap();
    assert_eq!(reply_kind(&reply), MessageType::Reply);
    assert!(reply.len() > 15 << 20);
}

/// 30 callers each echoing 15 MiB in frames at once on one core, more than its
/// budget for requests still arriving (256 MiB): the budget makes some wait, and
/// every call is answered.
#[test]
fn concurrent_large_requests_past_the_buffer_budget_all_get_through() {
    let demo = Demo::start(&["--cores", "1"]);
    echoes_at_once(demo.addr, framed_echo(15 << 20), 30, 0);
}

/// 40 callers each echoing 15 MiB unframed at once on one core, each first sending
/// 6 MiB and waiting for the others to have done so (240 MiB in all, within the
/// core's 256 MiB budget): an unframed message's length is known only at its end,
/// so each took part of the budget and then waited for more, and all stalled until
/// the read timeout closed them (30 s). Now one at a time goes past the budget, and
/// every call is answered.
#[test]
fn concurrent_large_unframed_requests_past_the_buffer_budget_all_get_through() {
    let demo = Demo::start(&["--cores", "1", "--read-timeout-ms", "120000"]);
    echoes_at_once(demo.addr, framed_echo(15 << 20)[4..].to_vec(), 40, 6 << 20);
}

/// Echoes `wire` (a `Demo.echo` request, framed or not) on `callers` connections at
/// once, each sending its `first` bytes, waiting for all the others to have done
/// so, then the rest; asserts that each gets its echo within 20 s (the reply is as
/// long as the request: the result struct's field header is the arguments' size).
fn echoes_at_once(addr: SocketAddr, wire: Vec<u8>, callers: usize, first: usize) {
    let wire = std::sync::Arc::new(wire);
    let all_started = std::sync::Arc::new(std::sync::Barrier::new(callers));
    let callers: Vec<_> = (0..callers)
        .map(|_| {
            let (wire, all_started) = (wire.clone(), all_started.clone());
            std::thread::spawn(move || {
                let mut s = connect(addr);
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                s.write_all(&wire[..first])?;
                all_started.wait();
                s.write_all(&wire[first..])?;
                let mut reply = vec![0u8; wire.len()];
                s.read_exact(&mut reply)?;
                Ok::<_, std::io::Error>(reply)
            })
        })
        .collect();
    for c in callers {
        let reply = c.join().unwrap().expect("an echo");
        // Strict binary's version word ends in the message type (after the length
        // of a frame).
        let at = if wire[0] == 0x80 { 3 } else { 7 };
        assert_eq!(MessageType::from_u8(reply[at]).unwrap(), MessageType::Reply);
        let payload = wire.len() - 1 - (15 << 20)..wire.len() - 1;
        assert!(
            reply[payload.clone()] == wire[payload],
            "the payload echoed"
        );
    }
}

/// 40 clients each asking for a 15 MiB echo and reading none of it held some 630
/// MB of replies for as long as they stayed connected; with a write timeout of 2 s
/// each is closed once its reply has made no progress for that long, and the memory
/// goes back. A client that reads its reply slowly but steadily (at most 4 MiB/s,
/// so for longer than the timeout) still gets all of it.
#[test]
fn clients_that_take_no_replies_are_closed_after_the_write_timeout() {
    // glibc's malloc raises its mmap threshold to the size of each mapped block it
    // frees (up to 32 MiB), and keeps what it frees below that for reuse: how much of
    // the dropped replies shows as RSS then depends on the order of frees (here,
    // 46 MB on a quiet machine; 150–250 MB with the CPUs loaded, seen in CI). With
    // the threshold fixed, RSS shows what the server holds.
    let demo = Demo::start_with(
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        &["--cores", "1", "--write-timeout-ms", "2000"],
        |cmd| {
            cmd.env("MALLOC_MMAP_THRESHOLD_", "1048576");
        },
    );
    let pid = demo.child.id();
    let wire = framed_echo(15 << 20);
    let mut stalled: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = connect(demo.addr);
            s.write_all(&wire).unwrap();
            s
        })
        .collect();
    // The most the replies held, sampled until past the timeout (reading earlier
    // would take the replies; on a loaded machine the last replies are built
    // seconds after the first).
    let started = Instant::now();
    let mut held = 0;
    while started.elapsed() < Duration::from_millis(4000) {
        held = held.max(rss_kb(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each is closed: what its socket had received comes, then the end.
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sink = vec![0u8; 1 << 20];
        loop {
            match s.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("the server kept a client that took no reply: {e}"),
            }
        }
    }
    // The core drops a closed connection's replies when it next runs: on a loaded
    // machine, a while after the client saw the end.
    let after = rss_falling_below(pid, held / 2, Duration::from_secs(10));
    eprintln!("RSS {held} kB at most with 40 replies of 15 MiB not taken, {after} kB once closed");
    assert!(
        after < held / 2,
        "RSS {held} kB with the replies held, {after} kB once closed"
    );
    let mut slow = connect(demo.addr);
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(&wire).unwrap();
    let mut reply = vec![0u8; wire.len()];
    let started = Instant::now();
    for part in reply.chunks_mut(64 << 10) {
        slow.read_exact(part).unwrap();
        std::thread::sleep(Duration::from_millis(15));
    }
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "read for longer than the timeout"
    );
    assert_eq!(MessageType::from_u8(reply[7]).unwrap(), MessageType::Reply);
    let mut s = connect(demo.addr);
    assert_eq!(reply_kind(&ping(&mut s).unwrap()), MessageType::Reply);
}

/// The admin endpoint held every connection for as long as its client liked: one
/// that sent nothing, one that trickled its headers and an idle keep-alive one were
/// all open 45 s later, and 3,000 connections took 3,000 of the process's open
/// files, which its cores' connections share. Now each is closed 10 s after it
/// last had a request to read, and at most 64 are open: past that a newcomer takes
/// the place of the connection idle the longest. Before, a newcomer past 64 was
/// closed at once, so that 64 connections that only waited kept every health check
/// out.
#[test]
fn the_admin_endpoint_closes_idle_connections_and_holds_at_most_64() {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _demo = Demo::start(&["--cores", "1", "--admin", &admin.to_string()]);
    let idle = connect(admin);
    let mut slow = connect(admin);
    slow.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let mut kept = connect(admin);
    assert!(health(&mut kept));
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    assert!(health(&mut kept), "keep-alive within the timeout");
    for mut s in [idle, slow, kept] {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        let after = started.elapsed();
        assert!(
            after < Duration::from_secs(15),
            "an idle admin connection still open after {after:?}"
        );
    }
    // 70 connections that only wait: each past the 64th closes the one idle the
    // longest, and a health check past them all is answered at once.
    let mut waiting: Vec<TcpStream> = (0..70).map(|_| connect(admin)).collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        closed_by_peer(&mut waiting),
        (0..6).collect::<Vec<_>>(),
        "the six that waited the longest closed to make room"
    );
    assert!(health(&mut connect(admin)), "answered past 64 waiting");
    assert_eq!(
        closed_by_peer(&mut waiting),
        (0..7).collect::<Vec<_>>(),
        "and the seventh for the health check"
    );
}

/// A stderr nobody reads (a stalled log shipper, a supervisor that stopped reading
/// its pipe): the core goes on serving while the lines wait in the log's queue,
/// and none is lost once the pipe is read again. Before, the first 64 KiB filled
/// the pipe and the core stopped at its next log line, for good.
#[test]
fn a_stderr_nobody_reads_stops_no_core() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut demo = Demo::start_with(addr, &["--access-log", "--cores", "1"], |cmd| {
        cmd.stderr(std::process::Stdio::piped())
            .env("RUST_LOG", "info");
    });
    let mut s = connect(addr);
    // About 150 bytes of access log each: many times what the pipe holds.
    let calls = 3000;
    for i in 0..calls {
        let args = DemoEchoArgs {
            msg: Some(format!("m{i}")),
        };
        let reply = call_raw(&mut s, "echo", i, &args)
            .unwrap_or_else(|e| panic!("call {i} of {calls} got no reply: {e}"));
        assert_eq!(reply_kind(&reply), MessageType::Reply);
    }
    let mut pipe = demo.child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).unwrap();
        text
    });
    demo.sigterm();
    assert_eq!(demo.wait(Duration::from_secs(15)).0, Some(0));
    let log = reader.join().unwrap();
    let logged = log
        .lines()
        .filter(|l| l.contains("ringsoa::access") && l.contains("method=\"echo\""))
        .count();
    assert_eq!(logged, calls as usize, "access lines of {calls} calls");
    assert!(
        !log.contains("log lines dropped"),
        "the queue held them all"
    );
}

/// The admin endpoint's limits are settings (`AdminListener::limits`, the demo's
/// `--admin-max-connections` and `--admin-header-timeout-ms`); they were constants.
#[test]
fn the_admin_endpoint_limits_are_settings() {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin_flag = admin.to_string();
    let flags = [
        "--cores",
        "1",
        "--admin",
        &admin_flag,
        "--admin-max-connections",
        "4",
        "--admin-header-timeout-ms",
        "500",
    ];
    let _demo = Demo::start(&flags);
    let started = Instant::now();
    let mut idle = connect(admin);
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = idle.read_to_end(&mut Vec::new());
    let after = started.elapsed();
    assert!(
        after < Duration::from_secs(3),
        "an idle admin connection still open after {after:?}"
    );
    let mut waiting: Vec<TcpStream> = (0..6).map(|_| connect(admin)).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        closed_by_peer(&mut waiting),
        [0, 1],
        "past 4, the two that waited the longest closed"
    );
}

/// Which of `conns` the peer has closed (read at once, without waiting), by index.
fn closed_by_peer(conns: &mut [TcpStream]) -> Vec<usize> {
    conns
        .iter_mut()
        .enumerate()
        .filter(|(_, s)| {
            s.set_nonblocking(true).unwrap();
            matches!((&**s).read(&mut [0u8; 1]), Ok(0))
        })
        .map(|(i, _)| i)
        .collect()
}

/// `GET /health` on `s`: whether it came back 200 `serving`.
fn health(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut b = [0u8; 512];
    while !got.ends_with(b"serving\n") {
        match s.read(&mut b) {
            Ok(n) if n > 0 => got.extend_from_slice(&b[..n]),
            _ => return false,
        }
    }
    got.starts_with(b"HTTP/1.1 200 OK")
}

/// The tracking handshake with `app_id`, raw.
fn handshake(s: &mut TcpStream, app_id: &str) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::new();
    let mut w = BinaryWriter::new(&mut buf);
    w.write_message_begin(HANDSHAKE_METHOD, MessageType::Call, 0);
    UpgradeArgs {
        app_id: Some(app_id.into()),
        version: Some(1),
    }
    .encode(&mut w);
    s.write_all(&buf)?;
    read_reply(s)
}

/// Text a client chose (its caller id, its request id) cannot forge log lines: a
/// line break in it is written as `\n`. Before, an access-logged call from the
/// caller "x\n<date> ERROR …" wrote a whole forged ERROR line.
#[test]
fn client_text_cannot_forge_log_lines() {
    let logged = Logged::start("forge", |cmd| {
        cmd.arg("--access-log")
            .env("RUST_LOG", "warn,ringsoa::access=info");
    });
    let mut s = connect(logged.demo.addr);
    let forged = "x\n2026-12-03T00:00:00.000000Z ERROR ringsoa::admin: forged";
    handshake(&mut s, forged).unwrap();
    let header = RequestHeader {
        request_id: Some("r\r\nforged request id".into()),
        seq: Some("1".into()),
        meta: Some(Default::default()),
    };
    let reply = call_tracked(&mut s, &header, "ping", 1, &DemoPingArgs {}).unwrap();
    assert_eq!(reply_kind(&reply), MessageType::Reply);
    std::thread::sleep(Duration::from_millis(500));
    let text = logged.text();
    // The one call (the readiness ping logs a native line beside it).
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ringsoa::access") && l.contains("rpc_id=\"1\""))
        .collect();
    assert_eq!(access.len(), 1, "{text}");
    assert!(
        access[0]
            .contains(r#"caller="x\n2026-12-03T00:00:00.000000Z ERROR ringsoa::admin: forged""#)
            && access[0].contains(r#"request_id="r\r\nforged request id""#),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("2026-12-03T00:00:00") || l.starts_with("forged")),
        "{text}"
    );
}

#[test]
fn tracking_fields_have_limits_with_a_clear_error() {
    let demo = Demo::start(&[]);
    // A 1 MiB caller id: the connection closes; the server serves on.
    let mut s = connect(demo.addr);
    let _ = handshake(&mut s, &"c".repeat(1 << 20));
    assert!(is_closed(&mut s));
    // 100 meta entries: that call is refused, the connection serves on.
    let mut s = connect(demo.addr);
    handshake(&mut s, "caller").unwrap();
    let header = RequestHeader {
        request_id: Some("r".into()),
        seq: Some("1".into()),
        meta: Some((0..100).map(|i| (format!("k{i}"), "v".into())).collect()),
    };
    let exc = exception(call_tracked(&mut s, &header, "ping", 1, &DemoPingArgs {}).unwrap());
    let message = exc.message.unwrap_or_default();
    assert!(
        message.contains("meta has 100 entries; the limit is 64"),
        "{message}"
    );
    // Then a good call on the same connection.
    let header = RequestHeader {
        request_id: Some("r".into()),
        seq: Some("2".into()),
        meta: Some(Default::default()),
    };
    let reply = call_tracked(&mut s, &header, "ping", 2, &DemoPingArgs {}).unwrap();
    assert_eq!(reply_kind(&reply), MessageType::Reply);
}

/// Waits of any length crash nothing: a caller's budget of `u64::MAX` ms (tracking
/// meta `ringsoa.timeout_ms`) on calls that wait, with the demo's idle and call
/// timeouts set as long. Before, monoio's timer panicked ("Duration too far into
/// the future"): one such request from any client took the whole process down, and
/// the idle timeout its core at the first connection.
#[test]
fn waits_of_any_length_crash_nothing() {
    let max = u64::MAX.to_string();
    let mut demo = Demo::start(&["--cores", "1"]);
    let mut s = connect(demo.addr);
    handshake(&mut s, "caller").unwrap();
    for seq in 1..=3 {
        let header = RequestHeader {
            request_id: Some("r".into()),
            seq: Some(seq.to_string()),
            meta: Some([(TIMEOUT_META.to_string(), max.clone())].into()),
        };
        let args = DemoSleepMsArgs { ms: Some(20) };
        let reply = call_tracked(&mut s, &header, "sleep_ms", seq, &args).unwrap();
        assert_eq!(reply_kind(&reply), MessageType::Reply);
    }
    assert!(ping(&mut connect(demo.addr)).is_ok());
    assert!(demo.child.try_wait().unwrap().is_none(), "the demo exited");
    // The settings as long: cut to a year, with a WARN each.
    let long = Logged::start("long-waits", |cmd| {
        cmd.args(["--idle-timeout-ms", &max, "--call-timeout-ms", &max]);
    });
    let mut s = connect(long.demo.addr);
    let reply = call_raw(&mut s, "sleep_ms", 1, &DemoSleepMsArgs { ms: Some(20) }).unwrap();
    assert_eq!(reply_kind(&reply), MessageType::Reply);
    assert!(ping(&mut s).is_ok());
    let text = long.text();
    assert!(
        text.contains("idle_timeout of 18446744073709551.615s cut to a year"),
        "{text}"
    );
    assert!(
        text.contains("call_timeout of 18446744073709551.615s cut to a year"),
        "{text}"
    );
}

#[test]
fn a_flood_of_garbage_logs_a_line_not_a_line_each() {
    let logged = Logged::start("flood", |_| {});
    let demo = &logged.demo;
    for _ in 0..300 {
        let mut s = connect(demo.addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(is_closed(&mut s));
    }
    logged.logged_once_per_core("closing connection");
}

#[test]
fn calls_timing_out_by_the_hundred_log_a_line_not_a_line_each() {
    // A downstream outage: every call runs past its timeout.
    let logged = Logged::start("timeouts", |cmd| {
        // No breaker to open and refuse the rest.
        cmd.args(["--call-timeout-ms", "5", "--no-metrics"]);
    });
    let addr = logged.demo.addr;
    let callers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                for i in 0..30 {
                    let reply = call_raw(&mut s, "sleep_ms", i, &DemoSleepMsArgs { ms: Some(100) });
                    let exc = exception(reply.unwrap()).message.unwrap();
                    assert!(exc.contains("timed out after 5 ms"), "{exc}");
                }
            })
        })
        .collect();
    for c in callers {
        c.join().unwrap();
    }
    // 120 timeouts.
    let text = logged.logged_once_per_core("timed out after");
    assert!(
        text.contains(": sleep_ms: call timed out after 5 ms"),
        "{text}"
    );
}

/// thriftpy2 clients that write non-strict binary (no protocol version), buffered
/// and framed, native and tracked (v2), against the server at argv[1]: each prints
/// what it got, or `refused` and the exception.
const NON_STRICT_CLIENTS: &str = r#"
import sys, thriftpy2
from thriftpy2.thrift import TClient
from thriftpy2.transport import TSocket, TBufferedTransportFactory, TFramedTransportFactory
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.contrib.tracking import TTrackedClient
from thriftpy2.contrib.tracking.tracker import TrackerBase
demo = thriftpy2.load("src/bin/ringsoa-demo/demo.thrift", module_name="demo_thrift")
host, port = sys.argv[1].rsplit(":", 1)
class Tracker(TrackerBase):
    def init_handshake_info(self, args):
        args.app_id = "py-old"
        args.version = 2
pf = TBinaryProtocolFactory(strict_read=False, strict_write=False)
for tf in (TBufferedTransportFactory(), TFramedTransportFactory()):
    for tracked in (False, True):
        trans = tf.get_transport(TSocket(host, int(port), socket_timeout=3000))
        trans.open()
        proto = pf.get_protocol(trans)
        try:
            if tracked:  # negotiates at once
                c = TTrackedClient(Tracker(client="py-old", server="demo"), demo.Demo, proto)
            else:
                c = TClient(demo.Demo, proto)
            try:
                c.fail(3)
                declared = None
            except demo.DemoError as e:
                declared = e.code
            print(c.echo("hi"), c.add(40, 2), declared, c.whoami()["version"])
        except Exception as e:
            print("refused", type(e).__name__)
        trans.close()
"#;

fn non_strict_clients(addr: SocketAddr) -> Vec<String> {
    support::process::python_script(NON_STRICT_CLIENTS, &[&addr.to_string()])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn non_strict_binary_clients_are_refused_by_default_and_served_when_accepted() {
    // By default (DESIGN: strict binary, as thriftpy2), closed with a log line that
    // says why; before, the line said only "not a strict binary or compact Thrift
    // message".
    let logged = Logged::start("non-strict", |_| {});
    assert_eq!(
        non_strict_clients(logged.demo.addr),
        vec!["refused TTransportException"; 4]
    );
    let text = logged.text();
    assert!(
        text.contains("closing connection: non-strict binary (a message with no protocol version"),
        "{text}"
    );
    // Accepted (as Apache's servers do by default): every call answered, buffered
    // and framed, native and tracked; the replies are strict, which such clients read.
    let demo = Demo::start(&["--accept-non-strict-binary"]);
    assert_eq!(
        non_strict_clients(demo.addr),
        ["hi 42 3 0", "hi 42 3 2", "hi 42 3 0", "hi 42 3 2"]
    );
}

#[test]
fn a_low_open_file_limit_is_fitted_and_sheds_load_cleanly() {
    let logged = Logged::start("fds", |cmd| {
        // SAFETY: setrlimit between fork and exec touches only this child.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 200,
                    rlim_max: 200,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    // 200 descriptors less 50 reserved and 6 for each core's own: 69 per core.
    // Hold 250 connections open.
    let demo = &logged.demo;
    let held: Vec<TcpStream> = (0..250).map(|_| connect(demo.addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    // A new client is still served: idle connections make room.
    let mut s = connect(demo.addr);
    assert_eq!(reply_kind(&ping(&mut s).unwrap()), MessageType::Reply);
    drop(held);
    let text = logged.text();
    assert!(text.contains("exceed the open-file limit of 200"), "{text}");
    assert!(
        text.lines().filter(|l| l.contains("accept failed")).count() <= 2,
        "{text}"
    );
}

/// A memory cgroup of its own under this process's, with a limit (needs root and
/// a writable memory hierarchy: cgroup v1's, or v2 with the memory controller
/// given to children). Removed when dropped, once its processes have ended.
struct MemoryCgroup {
    dir: std::path::PathBuf,
    /// Its limit's file.
    limit: std::path::PathBuf,
    procs: std::ffi::CString,
}

impl MemoryCgroup {
    fn new(name: &str, limit: u64) -> MemoryCgroup {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let (parent, file) = cgroups
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':').skip(1);
                let (controllers, path) = (f.next()?, f.next()?.trim_start_matches('/'));
                if controllers.split(',').any(|c| c == "memory") {
                    Some((
                        format!("/sys/fs/cgroup/memory/{path}"),
                        "memory.limit_in_bytes",
                    ))
                } else if controllers.is_empty() && !cgroups.contains(":memory:") {
                    Some((format!("/sys/fs/cgroup/{path}"), "memory.max"))
                } else {
                    None
                }
            })
            .expect("no memory cgroup in /proc/self/cgroup");
        let dir =
            std::path::Path::new(&parent).join(format!("ringsoa-{name}-{}", std::process::id()));
        let made = std::fs::create_dir(&dir)
            .and_then(|()| std::fs::write(dir.join(file), limit.to_string()));
        let limit = dir.join(file);
        if let Err(e) = made {
            let _ = std::fs::remove_dir(&dir);
            panic!(
                "this drill needs root and a writable memory cgroup ({}: {e})",
                dir.display()
            );
        }
        let procs = dir.join("cgroup.procs");
        let procs = std::ffi::CString::new(procs.to_str().unwrap()).unwrap();
        MemoryCgroup { dir, limit, procs }
    }

    /// Changes its limit, as a container resized in place has it changed.
    fn set_limit(&self, bytes: u64) {
        std::fs::write(&self.limit, bytes.to_string()).unwrap();
    }

    /// Makes `cmd` start in this cgroup.
    fn apply(&self, cmd: &mut std::process::Command) {
        let procs = self.procs.clone();
        // SAFETY: between fork and exec only system calls run, no allocation.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                // "0": the process that writes it.
                let wrote = fd >= 0 && libc::write(fd, c"0".as_ptr().cast(), 1) == 1;
                if fd >= 0 {
                    libc::close(fd);
                }
                if !wrote {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// In a container whose memory limit (256 MiB) is below what the cores' buffer
/// budgets may hold (2 × 576 MiB by default), the budgets are lowered to fit
/// half of it, with a WARN, and 40 connections each sending all but the last
/// byte of a 15 MiB request are held to them: the process stays up and answers.
/// Before, the same flood got it killed by the kernel's OOM killer.
#[test]
fn budgets_are_fitted_to_a_containers_memory_limit() {
    let cgroup = MemoryCgroup::new("memory", 256 << 20);
    let mut logged = Logged::start("memory", |cmd| cgroup.apply(cmd));
    survives_a_flood_of_unfinished_requests(&mut logged.demo, Duration::from_secs(4));
    let text = logged.text();
    assert!(
        text.contains("the memory limit of 256 MiB (cgroup) is below twice what 2 cores' buffer budgets may hold (1152 MiB): each core's lowered from 576 to 63 MiB"),
        "{text}"
    );
    drop(cgroup);
}

/// A container's memory limit changed while the process runs (Kubernetes resizing
/// a pod in place, `systemctl set-property MemoryMax=`) is followed: lowered from
/// 4 GiB, which the budgets fit, to 256 MiB, the budgets are lowered within a
/// second or two and the flood above is held to them; raised again, they are back
/// as set. Before, the budgets were fitted once at start and the flood got the
/// process killed by the kernel's OOM killer.
#[test]
fn budgets_follow_a_memory_limit_changed_while_running() {
    let cgroup = MemoryCgroup::new("resized", 4 << 30);
    let mut logged = Logged::start("resized", |cmd| {
        cgroup.apply(cmd);
        cmd.env("RUST_LOG", "warn,ringsoa::server::memory=info");
    });
    cgroup.set_limit(256 << 20);
    let lowered = "the memory limit (cgroup) is now 256 MiB: each core's buffer budgets go from 576 to 63 MiB";
    assert!(
        logged.logs_within(lowered, Duration::from_secs(5)),
        "no line: {lowered}"
    );
    // Each core takes the new budgets in at its next upkeep, within a second.
    std::thread::sleep(Duration::from_secs(2));
    survives_a_flood_of_unfinished_requests(&mut logged.demo, Duration::from_secs(4));
    cgroup.set_limit(4 << 30);
    let back = "the memory limit (cgroup) is now 4096 MiB: each core's buffer budgets are back to 576 MiB as set";
    let restored = logged.logs_within(back, Duration::from_secs(5));
    let text = logged.text();
    assert!(restored, "no line: {back}\n{text}");
    assert!(!text.contains("is below twice"), "fitted at start:\n{text}");
    drop(cgroup);
}

/// A call whose method name is not UTF-8 gets UNKNOWN_METHOD under the name it
/// sent, byte for byte, as Apache's servers answer (a client that checks the
/// reply's name, as Apache's Go does, would otherwise see a wrong name). Before,
/// each bad byte came back as U+FFFD.
#[test]
fn a_method_name_that_is_not_utf8_comes_back_unchanged() {
    let demo = Demo::start(&["--cores", "1"]);
    let mut s = connect(demo.addr);
    let name: &[u8] = b"ech\xffo\xc3";
    let mut call = vec![0x80, 0x01, 0x00, 0x01];
    call.extend((name.len() as u32).to_be_bytes());
    call.extend(name);
    call.extend(7i32.to_be_bytes());
    call.push(0); // the arguments: an empty struct
    s.write_all(&call).unwrap();
    let reply = read_reply(&mut s).unwrap();
    let msg = BinaryReader::new(reply.clone())
        .read_message_begin()
        .unwrap();
    assert_eq!(&msg.name[..], name);
    assert_eq!(msg.seqid, 7);
    let exc = exception(reply);
    assert_eq!(
        exc.kind,
        ringsoa::protocol::ApplicationExceptionKind::UnknownMethod
    );
    assert_eq!(reply_kind(&ping(&mut s).unwrap()), MessageType::Reply);
}

#[test]
fn a_request_that_would_decode_to_far_more_than_its_size_is_refused() {
    let demo = Demo::start(&[]);
    let pid = demo.child.id();
    let mut s = connect(demo.addr);
    // roundtrip(Item) whose `children` are 8 million empty structs: 8 MiB on the
    // wire, several hundred MiB decoded.
    let n: u32 = 8 << 20;
    let mut buf = BytesMut::new();
    let mut w = BinaryWriter::new(&mut buf);
    w.write_message_begin("roundtrip", MessageType::Call, 1);
    let args = w.write_struct_begin();
    w.write_field_begin(TType::Struct, 1);
    let item = w.write_struct_begin();
    w.write_field_begin(TType::I64, 1);
    w.write_i64(1);
    w.write_field_begin(TType::List, 11);
    w.write_list_begin(TType::Struct, n as usize);
    buf.extend(std::iter::repeat_n(0u8, n as usize));
    let mut w = BinaryWriter::new(&mut buf);
    w.write_struct_end(item);
    w.write_struct_end(args);
    let started = Instant::now();
    s.write_all(&buf).unwrap();
    let exc = exception(read_reply(&mut s).unwrap());
    let took = started.elapsed();
    let message = exc.message.unwrap_or_default();
    assert!(message.contains("decode budget"), "{message}");
    assert!(rss_kb(pid) < 200 * 1024, "RSS {} kB", rss_kb(pid));
    eprintln!("refused in {took:?}");
    assert_eq!(reply_kind(&ping(&mut s).unwrap()), MessageType::Reply);
}

#[test]
fn relay_targets_are_checked_and_their_clients_bounded() {
    let demo = Demo::start(&[]);
    let pid = demo.child.id();
    let mut s = connect(demo.addr);
    let mut relay = |target: String| {
        let args = DemoRelayWhoamiArgs {
            target: Some(target),
        };
        exception(call_raw(&mut s, "relay_whoami", 1, &args).unwrap())
            .message
            .unwrap_or_default()
    };
    assert!(relay("nonsense".into()).contains("bad target"));
    assert!(relay("demo/main".into()).contains("no live provider of demo/main"));
    // Targets where nothing listens: each call fails, and each core keeps at most
    // 64 clients (before, one per target forever: +10.9 MB for 5,000).
    // The first 200 also fill the aggregator's bounded table of keys (each relay
    // target is a downstream method and a node); it merges them a moment later.
    for port in 1..=200 {
        relay(format!("127.0.0.3:{port}"));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = rss_kb(pid);
    for port in 201..=5000 {
        relay(format!("127.0.0.3:{port}"));
    }
    let after = rss_kb(pid);
    println!("RSS {before} kB -> {after} kB");
    assert!(
        after < before + 4 * 1024,
        "RSS {before} kB -> {after} kB after 4,800 relay targets"
    );
}

/// A server (here a thread speaking the tracking protocol, framed binary) that
/// answers the handshake, then every call with `answer`'s reply (response header
/// and message), given the call's method and seqid.
fn fake_server(
    answer: impl Fn(&str, i32, &mut BinaryWriter<BytesMut>) + Send + Sync + 'static,
) -> SocketAddr {
    use ringsoa::tracking::UpgradeReply;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            let answer = answer.clone();
            std::thread::spawn(move || loop {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).is_err() {
                    return;
                }
                let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
                s.read_exact(&mut frame).unwrap();
                // A tracked call's request header first (a message starts 0x80).
                let tracked = frame[0] != 0x80;
                let mut r = BinaryReader::new(Bytes::from(frame));
                if tracked {
                    RequestHeader::decode(&mut r).unwrap();
                }
                let msg = r.read_message_begin().unwrap();
                let mut body = BytesMut::new();
                let mut w = BinaryWriter::new(&mut body);
                if msg.name[..] == *HANDSHAKE_METHOD.as_bytes() {
                    w.write_message_begin(HANDSHAKE_METHOD, MessageType::Reply, msg.seqid);
                    UpgradeReply { version: Some(2) }.encode(&mut w);
                } else {
                    answer(std::str::from_utf8(&msg.name).unwrap(), msg.seqid, &mut w);
                }
                let mut out = (body.len() as u32).to_be_bytes().to_vec();
                out.extend_from_slice(&body);
                s.write_all(&out).unwrap();
            });
        }
    });
    addr
}

/// A [`fake_server`] whose reply's tracking header carries `entries` meta entries;
/// answers `add` with 42.
fn meta_server(entries: usize) -> SocketAddr {
    fake_server(move |_, seqid, w| {
        let meta = (0..entries).map(|i| (format!("k{i}"), String::new()));
        ringsoa::tracking::ResponseHeader {
            meta: Some(meta.collect()),
        }
        .encode(w);
        w.write_message_begin("add", MessageType::Reply, seqid);
        DemoAddResult { success: Some(42) }.encode(w);
    })
}

/// A framed client of `addr` for the fake servers.
fn framed_client(addr: SocketAddr) -> ringsoa::client::Client {
    use ringsoa::client::{Client, ClientConfig, ConnOptions};
    let conn = ConnOptions {
        framing: ringsoa::transport::Framing::Framed,
        ..ConnOptions::new("bad-day")
    };
    Client::new(
        [addr],
        ClientConfig {
            conn,
            ..ClientConfig::default()
        },
    )
}

/// A reply's tracking header is held to the limits a server holds request headers
/// to (64 meta entries of at most 4 KiB): over them, that call fails with a clear
/// error. Before, the client took it whole: one 15 MB reply of a million empty
/// entries took `ringsoa call` from 7 MB to 137 MB.
#[test]
fn a_reply_header_over_the_limits_fails_its_call() {
    use ringsoa::rpc::CallError;
    support::block_on(async {
        // A call with a context keeps the reply's meta; one without reads it past,
        // held to the same limits.
        let within = framed_client(meta_server(64));
        assert_eq!(DemoClient::new(&within).add(None, 40, 2).await.unwrap(), 42);
        let mut cx = ringsoa::rpc::CallContext::default();
        let added = DemoClient::new(&within).add(Some(&mut cx), 40, 2).await;
        assert_eq!((added.unwrap(), cx.reply_meta.len()), (42, 64));
        let over = framed_client(meta_server(100_000));
        for cx in [None, Some(&mut cx)] {
            match DemoClient::new(&over).add(cx, 40, 2).await {
                Err(CallError::Protocol(e)) => assert!(
                    e.to_string().contains(
                        "the reply's tracking header is over the limits: the tracking header's meta has 100000 entries; the limit is 64"
                    ),
                    "{e}"
                ),
                other => panic!("{other:?}"),
            }
        }
    });
}

/// Writes `DemoRoundtripResult { success: Item { id: 1, children: [Inner; n] } }`
/// by hand: a test need not build the list it sends.
fn children_result(w: &mut BinaryWriter<BytesMut>, n: usize) {
    w.write_field_begin(TType::Struct, 0);
    w.write_field_begin(TType::I64, 1);
    w.write_i64(1);
    w.write_field_begin(TType::List, 11);
    w.write_list_begin(TType::Struct, n);
    w.write_raw(&vec![0u8; n]);
    w.write_raw(&[0, 0]);
}

/// A reply is held to a decode budget as a request is: a list of empty structs is
/// one byte an element on the wire and 48 bytes in memory, so a 2 MB reply of two
/// million children would take 96 MB; over the client's budget (64 MiB by default),
/// the call fails with a clear error, and the connection serves the next call.
/// Before, the client decoded it all.
#[test]
fn a_reply_over_the_decode_budget_fails_its_call() {
    use ringsoa::rpc::CallError;
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let addr = fake_server(move |method, seqid, w| {
        ringsoa::tracking::ResponseHeader { meta: None }.encode(w);
        w.write_message_begin(method, MessageType::Reply, seqid);
        let first = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
        let children: usize = if first { 2_000_000 } else { 1_000 };
        children_result(w, children);
    });
    let item = Item {
        id: 1,
        ..Item::default()
    };
    let (over, next, created) = support::block_on(async {
        let client = framed_client(addr);
        let demo = DemoClient::new(&client);
        let over = demo.roundtrip(None, item.clone()).await;
        let next = demo.roundtrip(None, item).await;
        let created = client.stats()[0].pool.created;
        (over.map(|i| i.children.map(|c| c.len())), next, created)
    });
    match over {
        Err(CallError::Protocol(e)) => {
            let e = e.to_string();
            assert!(e.contains("decoding would take 96000000 more bytes"), "{e}");
            assert!(e.contains("ConnOptions::max_decoded"), "{e}");
        }
        other => panic!("expected the budget's refusal, got {other:?}"),
    }
    // The reply was read whole: the connection is in step for the next call.
    let next = next.unwrap().children.map(|c| c.len());
    assert_eq!(next, Some(1_000));
    assert_eq!(created, 1, "the same connection");
}

/// A [`ringsoa::client::SharedClient`] holds replies to its clients' budget: 2,000
/// empty children (96,000 bytes decoded) over a budget of 50,000.
#[test]
fn a_shared_client_holds_replies_to_its_clients_budget() {
    use ringsoa::client::{Client, ClientConfig, ConnOptions, SharedClient};
    let addr = fake_server(|method, seqid, w| {
        ringsoa::tracking::ResponseHeader { meta: None }.encode(w);
        w.write_message_begin(method, MessageType::Reply, seqid);
        children_result(w, 2_000);
    });
    let shared = SharedClient::spawn(1, ringsoa::protocol::Protocol::Binary, move || {
        let conn = ConnOptions {
            framing: ringsoa::transport::Framing::Framed,
            max_decoded: 50_000,
            ..ConnOptions::new("bad-day")
        };
        let config = ClientConfig {
            conn,
            ..ClientConfig::default()
        };
        Client::new([addr], config)
    })
    .unwrap();
    let demo = DemoClient::new(shared);
    match ringsoa::client::shared::wait(demo.roundtrip(None, Item::default())) {
        Err(ringsoa::rpc::CallError::Protocol(e)) => {
            assert!(e.to_string().contains("ConnOptions::max_decoded"), "{e}")
        }
        other => panic!("expected the budget's refusal, got {other:?}"),
    }
}

/// Everything above at once: thriftpy2 clients (native and tracked, binary and
/// compact, buffered and framed) doing real work on two cores beside raw sockets
/// that send garbage, claim 2 GiB frames, trickle, never read their replies, cut
/// requests off, hold idle connections and reset (`tests/peers/crowd.py`). Every
/// good call is answered right; the garbage, the huge claims, the trickles (at the
/// read timeout) and the unread replies (at the write timeout) are closed, as the
/// script checks from the clients' side and the log shows; nothing panics; and the
/// demo serves on with its memory back under a bound. A drill rather than a fix's
/// test: `RINGSOA_CROWD_SECS` sets its length (default 20 s).
#[test]
fn a_misbehaving_crowd_costs_the_good_clients_nothing() {
    let secs = std::env::var("RINGSOA_CROWD_SECS").unwrap_or_else(|_| "20".into());
    let logged = Logged::start("crowd", |cmd| {
        // The default connection limit: at a low one, a burst of new connections
        // a busy core accepts at once evicts the longest-idle connection, which
        // can be a good client's between two calls (tested on its own above).
        cmd.args(["--read-timeout-ms", "3000", "--write-timeout-ms", "3000"]);
    });
    let addr = logged.demo.addr.to_string();
    let out = std::process::Command::new(support::process::python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/crowd.py"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/bin/ringsoa-demo/demo.thrift"
        ))
        .args([addr.as_str(), secs.as_str(), "3", "3"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut s = connect(logged.demo.addr);
    assert_eq!(reply_kind(&ping(&mut s).unwrap()), MessageType::Reply);
    let pid = logged.demo.child.id();
    let rss = rss_falling_below(pid, 256 * 1024, Duration::from_secs(10));
    assert!(rss < 256 * 1024, "RSS {rss} kB after the crowd left");
    let text = logged.text();
    for closed in [
        "request not complete within the read timeout",
        "replies not taken within the write timeout",
    ] {
        assert!(text.contains(closed), "no `{closed}` line:\n{text}");
    }
    assert!(
        !text.contains("panicked") && !text.contains(" ERROR "),
        "{text}"
    );
}

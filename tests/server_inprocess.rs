//! The server library in this process, with handlers that misbehave on purpose: a
//! panic or a timeout becomes a `TApplicationException` for that call only, and the
//! connection and the core live on; a blocked core is reported by the watchdog and
//! by `/health`.

mod idl {
    ringsoa::include_idl!();
}
mod support;

use support::wire::{call_raw, closed, read_reply};

use std::io::{Read, Write};

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use idl::codegen::*;
use idl::shared::BaseHandler;
use ringsoa::control::{CoreControl, Outcome, Ticket};
use ringsoa::protocol::Protocol;
use ringsoa::protocol::{
    ApplicationException, ApplicationExceptionKind, BinaryReader, Decode, MessageType,
    ProtocolReader,
};
use ringsoa::rpc::{CallContext, MethodError};
use ringsoa::server::{ServerBuilder, ServerHandle};
use ringsoa::transport::scan::Scanner;

/// `get(id)`: 13 panics, 17 panics after waiting, 14 sleeps past the call timeout,
/// 15 blocks its core's thread (18 for 3 s, 20 until [`RELEASE`]), 16 raises the declared `Oops`, 19 answers with about 20 KB, anything
/// else answers.
struct Misbehaving;

/// Ends the block of `get(20)`.
static RELEASE: AtomicBool = AtomicBool::new(false);

impl BaseHandler for Misbehaving {
    async fn hello(&self, _cx: &mut CallContext, who: String) -> Result<String, MethodError> {
        Ok(who)
    }
}

impl DerivedHandler for Misbehaving {
    async fn get(
        &self,
        _cx: &mut CallContext,
        id: i64,
        _hint: Option<String>,
    ) -> Result<Everything, MethodError<DerivedGetException>> {
        match id {
            13 => panic!("handler bug {id}"),
            17 => {
                monoio::time::sleep(Duration::from_millis(10)).await;
                panic!("handler bug {id}")
            }
            14 => monoio::time::sleep(Duration::from_secs(5)).await,
            15 => std::thread::sleep(Duration::from_millis(700)),
            18 => std::thread::sleep(Duration::from_secs(3)),
            20 => {
                let start = std::time::Instant::now();
                while !RELEASE.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            19 => {
                return Ok(Everything {
                    at: id,
                    by_score: Some((0..1000).map(|i| (i as f64, "x".repeat(10))).collect()),
                    ..Default::default()
                })
            }
            16 => {
                return Err(Oops {
                    why: Some("sixteen".into()),
                }
                .into())
            }
            _ => {}
        }
        Ok(Everything {
            at: id,
            ..Default::default()
        })
    }

    async fn poke(&self, _cx: &mut CallContext) -> Result<(), MethodError> {
        Ok(())
    }

    async fn r#type(&self, _cx: &mut CallContext, _in: Keywords) -> Result<(), MethodError> {
        Ok(())
    }
}

/// A one-core server for `app` on a free loopback port.
fn builder(app: &str) -> ServerBuilder {
    let port = support::process::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    ServerBuilder::new(app).listen(addr).cores(1)
}

/// Calls seen by the before/after hooks: (method, ok).
type Seen = Arc<Mutex<Vec<(String, Option<bool>)>>>;

fn start(stalls: Arc<Mutex<Vec<(usize, String)>>>, seen: Seen) -> ServerHandle {
    let (before, after) = (seen.clone(), seen);
    builder("inprocess")
        .call_timeout(Some(Duration::from_millis(200)))
        .watchdog(Duration::from_millis(200))
        .on_stall(move |core, method, _blocked| {
            stalls.lock().unwrap().push((core, method.to_owned()))
        })
        .before_call(move |_cx, method| before.lock().unwrap().push((method.to_owned(), None)))
        .after_call(move |_cx, method, _took, ok| {
            after.lock().unwrap().push((method.to_owned(), Some(ok)))
        })
        .start(|_| DerivedServer::new(Misbehaving))
        .unwrap()
}

fn get(s: &mut TcpStream, id: i64) -> Bytes {
    let args = DerivedGetArgs {
        id: Some(id),
        hint: None,
    };
    call_raw(s, "get", id as i32, &args).unwrap()
}

fn exception(reply: Bytes) -> ApplicationException {
    let mut r = BinaryReader::new(reply);
    assert_eq!(r.read_message_begin().unwrap().kind, MessageType::Exception);
    ApplicationException::decode(&mut r).unwrap()
}

fn ok(reply: Bytes, id: i64) {
    let mut r = BinaryReader::new(reply);
    assert_eq!(r.read_message_begin().unwrap().kind, MessageType::Reply);
    assert_eq!(
        DerivedGetResult::decode(&mut r)
            .unwrap()
            .success
            .unwrap()
            .at,
        id
    );
}

#[test]
fn panics_and_timeouts_fail_only_their_call_and_stalls_are_reported() {
    let stalls = Arc::new(Mutex::new(Vec::new()));
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let server = start(stalls.clone(), seen.clone());
    let mut s = connect(&server);

    let exc = exception(get(&mut s, 13));
    assert_eq!(exc.kind, ApplicationExceptionKind::InternalError);
    assert!(exc.message.unwrap().contains("handler bug 13"));
    ok(get(&mut s, 1), 1);
    // A panic after the handler has waited (not on its first poll) is caught alike.
    let exc = exception(get(&mut s, 17));
    assert!(exc.message.unwrap().contains("handler bug 17"));

    let exc = exception(get(&mut s, 14));
    assert_eq!(exc.kind, ApplicationExceptionKind::InternalError);
    assert!(exc.message.unwrap().contains("timed out after 200 ms"));
    ok(get(&mut s, 2), 2);

    // A handler that blocks its core's thread: the call still answers (the block
    // ends), and the watchdog has named the core and the method.
    ok(get(&mut s, 15), 15);
    let stalled = stalls.lock().unwrap().clone();
    assert!(
        stalled.contains(&(0, "get".to_string())),
        "watchdog saw {stalled:?}"
    );

    // Hooks saw every call, before and after; the panic and the timeout as failures.
    let seen = seen.lock().unwrap().clone();
    let after: Vec<bool> = seen.iter().filter_map(|(_, ok)| *ok).collect();
    assert_eq!(seen.iter().filter(|(_, ok)| ok.is_none()).count(), 6);
    assert_eq!(after, vec![false, true, false, false, true, true]);
    assert!(seen.iter().all(|(m, _)| m == "get"));

    server.shutdown();
    server.join();
}

/// While a handler blocks its core's thread, `/health` answers 503 and names the
/// core and the method (the connections the kernel gives that core wait), and 200
/// again once the core's loop ticks; 503 `draining` once the drain starts. Before,
/// it said `serving` throughout.
#[test]
fn health_is_unavailable_while_a_core_is_blocked() {
    use ringsoa::admin::{AdminListener, AdminState};
    use support::process::http_get;
    let stalls = Arc::new(Mutex::new(Vec::new()));
    let server = start(stalls.clone(), Seen::default());
    let admin = AdminListener::bind("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .serve(AdminState {
            governance: None,
            metrics: None,
            health: server.health(),
        })
        .unwrap();
    assert_eq!(http_get(admin, "/health"), (200, "serving\n".into()));

    let addr = server.local_addr();
    let blocking = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        get(&mut s, 18)
    });
    // Once the watchdog has seen the stall, the core stays blocked for seconds more.
    let waited = std::time::Instant::now();
    while stalls.lock().unwrap().is_empty() {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "no stall reported"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (code, body) = http_get(admin, "/health");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("not serving: core 0 blocked for ") && body.contains(" ms in get:"),
        "{body}"
    );
    ok(blocking.join().unwrap(), 18);
    let waited = std::time::Instant::now();
    while http_get(admin, "/health").0 != 200 {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "the core never ticked again"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    server.shutdown();
    assert_eq!(
        http_get(admin, "/health"),
        (503, "not serving: draining\n".into())
    );
    server.join();
}

/// A handler that blocks its core's thread for good does not keep the process
/// from ending: `join` waits 2 s past the drain's deadline, then names the core
/// and returns. Before, it waited for the handler, for ever.
#[test]
fn a_core_blocked_for_good_does_not_hold_the_exit() {
    let server = builder("blocked-for-good")
        .drain_timeout(Duration::from_millis(200))
        .start(|_| DerivedServer::new(Misbehaving))
        .unwrap();
    let addr = server.local_addr();
    let blocking = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        get(&mut s, 20)
    });
    std::thread::sleep(Duration::from_millis(300));
    let stopping = std::time::Instant::now();
    server.shutdown();
    let left = server.join();
    let took = stopping.elapsed();
    assert_eq!(left, vec![0], "the blocked core is named");
    assert!(took < Duration::from_secs(30), "join waited {took:?}");
    // The handler ends; its thread finishes by itself.
    RELEASE.store(true, Ordering::Relaxed);
    let _ = blocking.join().unwrap();
}

/// Port 0 is one free port that every core serves, and the handle names it.
#[test]
fn port_zero_picks_one_free_port_for_every_core() {
    let cores = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let seen = cores.clone();
    let server = ServerBuilder::new("port-zero")
        .listen("127.0.0.1:0".parse().unwrap())
        .cores(2)
        .before_call(move |cx, _| {
            seen.lock().unwrap().insert(cx.core);
        })
        .start(|_| DerivedServer::new(Misbehaving))
        .unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0, "the handle names the port picked");
    // SO_REUSEPORT spreads connections over the cores' listeners by a hash of the
    // client's address: a few dozen reach both cores unless one has another port.
    for _ in 0..64 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        ok(get(&mut s, 1), 1);
        if cores.lock().unwrap().len() == 2 {
            break;
        }
    }
    assert_eq!(cores.lock().unwrap().len(), 2, "both cores serve {addr}");
    server.shutdown();
    server.join();
}

/// Each core's factory runs with the core's spare buffers as its thread's, so
/// that the clients it makes keep their large buffers within the core's budget.
#[test]
fn a_cores_clients_find_its_spare_buffers() {
    let caps = Arc::new(Mutex::new(Vec::new()));
    let seen = caps.clone();
    let server = builder("spares")
        .cores(2)
        .spare_buffers(3 << 20)
        .start(move |_| {
            let spares = ringsoa::transport::spare::SpareBuffers::of_this_thread();
            seen.lock().unwrap().push(spares.map(|s| s.cap()));
            DerivedServer::new(Misbehaving)
        })
        .unwrap();
    assert_eq!(*caps.lock().unwrap(), [Some(3 << 20); 2]);
    assert_eq!(
        ringsoa::transport::spare::SpareBuffers::of_this_thread().map(|s| s.cap()),
        None
    );
    server.shutdown();
    server.join();
}

/// A server whose service factory fails on some cores.
fn start_failing(cores: usize, failing: usize) -> std::io::Result<ServerHandle> {
    builder("failing").cores(cores).start(move |init| {
        let core = init.index;
        assert!(core != failing, "core {core} cannot load its service");
        DerivedServer::new(Misbehaving)
    })
}

#[test]
fn core_failures_abort_beyond_a_third_and_degrade_below() {
    // One of four cores failing: serve degraded, on the other three.
    let server = start_failing(4, 3).expect("one failed core of four should not stop the server");
    let mut s = connect(&server);
    ok(get(&mut s, 1), 1);
    server.shutdown();
    server.join();
    // One of two: more than a third, so the server does not start.
    let err = start_failing(2, 1)
        .err()
        .expect("half the cores failing must abort");
    assert!(
        err.to_string().contains("too many cores failed to start"),
        "{err}"
    );
}

/// Admits every other call and records every outcome with its core.
struct EveryOther {
    core: usize,
    calls: std::cell::Cell<u32>,
    log: Arc<Mutex<Vec<(usize, String, Outcome)>>>,
}

impl CoreControl for EveryOther {
    fn admit(&self, _cx: &CallContext, method: &str) -> Result<Ticket, ApplicationException> {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        if n % 2 == 0 {
            return Err(ApplicationException::internal(format!(
                "test admission: {method} call #{n} refused"
            )));
        }
        Ok(Ticket(n as u64))
    }

    fn record(
        &self,
        _cx: &CallContext,
        method: &str,
        ticket: Ticket,
        outcome: Outcome,
        _took: Duration,
    ) {
        assert_ne!(
            outcome == Outcome::Refused,
            ticket.0 != 0,
            "admitted calls bring their ticket back"
        );
        self.log
            .lock()
            .unwrap()
            .push((self.core, method.to_owned(), outcome));
    }
}

#[test]
fn admission_refuses_and_every_outcome_is_classified_for_the_recorder() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let inits = Arc::new(Mutex::new(Vec::new()));
    let (l, i) = (log.clone(), inits.clone());
    let server = builder("control")
        .call_timeout(Some(Duration::from_millis(200)))
        .control(move |init| EveryOther {
            core: init.index,
            calls: Default::default(),
            log: l.clone(),
        })
        .start(move |init| {
            i.lock().unwrap().push((init.index, init.cores));
            DerivedServer::new(Misbehaving)
        })
        .unwrap();
    assert_eq!(
        *inits.lock().unwrap(),
        [(0, 1)],
        "the factory got its CoreInit"
    );
    let mut s = connect(&server);
    let refused = |reply: Bytes| {
        let exc = exception(reply);
        assert_eq!(exc.kind, ApplicationExceptionKind::InternalError);
        assert!(exc.message.unwrap().contains("refused"), "a refusal");
    };
    // Each kind of call twice: the first is admitted, the second refused; the
    // connection serves on after every refusal.
    ok(get(&mut s, 1), 1);
    refused(get(&mut s, 1));
    let declared = get(&mut s, 16);
    let mut r = BinaryReader::new(declared);
    assert_eq!(r.read_message_begin().unwrap().kind, MessageType::Reply);
    assert!(DerivedGetResult::decode(&mut r).unwrap().oops.is_some());
    refused(get(&mut s, 16));
    let unknown = exception(call_raw(&mut s, "nope", 5, &DerivedPokeArgs {}).unwrap());
    assert_eq!(unknown.kind, ApplicationExceptionKind::UnknownMethod);
    refused(call_raw(&mut s, "nope", 6, &DerivedPokeArgs {}).unwrap());
    assert!(exception(get(&mut s, 13))
        .message
        .unwrap()
        .contains("panicked"));
    refused(get(&mut s, 13));
    assert!(exception(get(&mut s, 14))
        .message
        .unwrap()
        .contains("timed out"));
    refused(get(&mut s, 14));
    ok(get(&mut s, 2), 2);
    server.shutdown();
    server.join();
    let got: Vec<(String, Outcome)> = log
        .lock()
        .unwrap()
        .iter()
        .map(|(core, m, o)| {
            assert_eq!(*core, 0);
            (m.clone(), *o)
        })
        .collect();
    use Outcome::*;
    let want = [
        ("get", Result),
        ("get", Refused),
        ("get", Declared),
        ("get", Refused),
        // A name the service does not have is recorded as `(unknown)`: the names
        // callers choose never become metric keys.
        (
            "(unknown)",
            Application(ApplicationExceptionKind::UnknownMethod),
        ),
        ("(unknown)", Refused),
        ("get", Panic),
        ("get", Refused),
        ("get", Timeout),
        ("get", Refused),
        ("get", Result),
    ];
    let want: Vec<(String, Outcome)> = want.iter().map(|(m, o)| (m.to_string(), *o)).collect();
    assert_eq!(got, want);
}

#[test]
fn settings_that_cannot_serve_are_refused_at_start() {
    let refused = |b: ServerBuilder, says: &str| {
        let e = b
            .start(|_| DerivedServer::new(Misbehaving))
            .err()
            .expect("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().starts_with(says), "{e}");
    };
    refused(
        builder("budget").max_message(2 << 20).max_buffered(1 << 20),
        "max_buffered (1048576 bytes) plus 64 KiB is below max_message (2097152 bytes)",
    );
    refused(
        builder("write").write_timeout(Duration::ZERO),
        "read_timeout (30s) and write_timeout (0ns) must be above zero",
    );
    refused(
        builder("read").read_timeout(Duration::ZERO),
        "read_timeout (0ns) and write_timeout (30s) must be above zero",
    );
}

/// A server of the misbehaving handler whose maximum message size is 4096.
fn small_server(app: &str) -> ServerHandle {
    builder(app)
        .max_message(4096)
        .start(|_| DerivedServer::new(Misbehaving))
        .unwrap()
}

/// A connection to `server` whose reads give up after 5 s.
fn connect(server: &ServerHandle) -> TcpStream {
    let s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn a_reply_over_the_message_limit_becomes_an_application_exception() {
    let server = small_server("small");
    let mut s = connect(&server);
    let exc = exception(get(&mut s, 19));
    assert_eq!(exc.kind, ApplicationExceptionKind::InternalError);
    assert!(
        exc.message
            .unwrap()
            .contains("exceeds the maximum message size of 4096 bytes"),
        "the reply is refused, not sent"
    );
    ok(get(&mut s, 1), 1);
    server.shutdown();
    server.join();
}

/// A `get` request with a hint of `hint` bytes.
fn get_request(id: i64, hint: usize) -> Vec<u8> {
    get_request_hinted(id, "x".repeat(hint))
}

/// A `get` request with this hint.
fn get_request_hinted(id: i64, hint: String) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    let mut w = ringsoa::protocol::BinaryWriter::new(&mut buf);
    ringsoa::protocol::ProtocolWriter::write_message_begin(
        &mut w,
        "get",
        MessageType::Call,
        id as i32,
    );
    let args = DerivedGetArgs {
        id: Some(id),
        hint: Some(hint),
    };
    ringsoa::protocol::Encode::encode(&args, &mut w);
    buf.to_vec()
}

fn framed(body: &[u8]) -> Vec<u8> {
    [&(body.len() as u32).to_be_bytes()[..], body].concat()
}

fn read_frame(s: &mut TcpStream) -> Bytes {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    body.into()
}

/// Reads `N` whole buffered replies (which may come in one read).
fn read_replies<const N: usize>(s: &mut TcpStream) -> [Bytes; N] {
    let mut got = Vec::new();
    let mut replies = Vec::new();
    while replies.len() < N {
        let mut scanner = Scanner::new(Protocol::Binary, 1 << 20);
        scanner.expect_message();
        if let Some(n) = scanner.feed(&got).unwrap() {
            replies.push(Bytes::from(got.drain(..n).collect::<Vec<u8>>()));
            continue;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {} replies", replies.len());
        got.extend_from_slice(&chunk[..n]);
    }
    replies.try_into().unwrap()
}

fn too_large(reply: Bytes, what: &str) {
    let exc = exception(reply);
    assert_eq!(exc.kind, ApplicationExceptionKind::ProtocolError);
    let message = exc.message.unwrap();
    assert!(
        message.starts_with(&format!("ringsoa: the request is too large: {what}"))
            && message.ends_with("exceeds the maximum of 4096"),
        "{message}"
    );
}

/// A request over the maximum message size is answered with PROTOCOL_ERROR, and the
/// rest of it read and dropped: framed or not, the connection goes on (a request
/// sent behind it in the same write is answered). A frame claiming over 4× the
/// maximum closes it unanswered; an unframed message running past that, answered.
#[test]
fn a_request_over_the_message_limit_is_answered_and_the_connection_goes_on() {
    let server = small_server("small-requests");
    let mut s = connect(&server);
    let big = get_request(1, 10_000);
    s.write_all(&[framed(&big), framed(&get_request(2, 5))].concat())
        .unwrap();
    too_large(read_frame(&mut s), &format!("frame of {} bytes", big.len()));
    ok(read_frame(&mut s), 2);
    s.write_all(&framed(&get_request(3, 5))).unwrap();
    ok(read_frame(&mut s), 3);

    let mut s = connect(&server);
    s.write_all(&[get_request(4, 10_000), get_request(5, 5)].concat())
        .unwrap();
    let [refused, fifth] = read_replies(&mut s);
    too_large(refused, "unframed message of at least");
    ok(fifth, 5);
    s.write_all(&get_request(6, 5)).unwrap();
    ok(read_reply(&mut s).unwrap(), 6);

    let mut s = connect(&server);
    let mut claim = framed(&get_request(7, 5));
    claim[..4].copy_from_slice(&(4 * 4096 + 1u32).to_be_bytes());
    s.write_all(&claim).unwrap();
    assert!(
        closed(&mut s),
        "no answer to a frame of over 4× the maximum"
    );

    let mut s = connect(&server);
    s.write_all(&get_request(8, 5 * 4096)).unwrap();
    too_large(read_reply(&mut s).unwrap(), "unframed message of at least");
    assert!(closed(&mut s), "an unframed message of over 4× the maximum");
    server.shutdown();
    server.join();
}

/// A THeader frame with the zlib transform around `message`.
fn zlib_frame(seqid: u32, message: &[u8]) -> Vec<u8> {
    use ringsoa::transport::header::{self, Header, HeaderKind};
    let h = Header {
        zlib: true,
        ..Header::new(HeaderKind::THeader, seqid, Protocol::Binary)
    };
    let mut frame = bytes::BytesMut::new();
    header::encode(&mut frame, &h);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(message).unwrap();
    frame.extend_from_slice(&z.finish().unwrap());
    framed(&frame)
}

/// The message in a THeader reply, which came compressed.
fn unzlib(reply: Bytes) -> Bytes {
    use ringsoa::transport::header::{self, HeaderLimits};
    let limits = HeaderLimits {
        entries: 64,
        item: 4096,
    };
    let (h, payload) = header::decode(&reply, &limits).unwrap();
    assert!(h.zlib, "the reply is compressed as the request was");
    let mut message = Vec::new();
    flate2::read::ZlibDecoder::new(&payload[..])
        .read_to_end(&mut message)
        .unwrap();
    message.into()
}

/// A THeader request with the zlib transform that is over the maximum message size,
/// compressed (its frame) or once inflated, is answered with PROTOCOL_ERROR in a
/// compressed reply, as an uncompressed one is, and the connection goes on.
#[test]
fn a_zlib_request_over_the_message_limit_is_answered_and_the_connection_goes_on() {
    let server = small_server("small-zlib");
    let mut s = connect(&server);
    // 10,000 bytes of hint in a frame of well under 4096.
    let big = zlib_frame(1, &get_request(1, 10_000));
    assert!(big.len() < 1024, "{}", big.len());
    s.write_all(&big).unwrap();
    let exc = exception(unzlib(read_frame(&mut s)));
    assert_eq!(exc.kind, ApplicationExceptionKind::ProtocolError);
    assert_eq!(
        exc.message.unwrap(),
        "ringsoa: the request is too large: \
         the THeader zlib payload inflates past the maximum message size of 4096 bytes"
    );
    s.write_all(&zlib_frame(2, &get_request(2, 5))).unwrap();
    ok(unzlib(read_frame(&mut s)), 2);
    // A hint that does not compress: the frame itself is over 4096.
    let mut x = 0x9e37_79b9u32;
    let noise: String = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            char::from(b'!' + (x % 90) as u8)
        })
        .collect();
    let frame = zlib_frame(3, &get_request_hinted(3, noise));
    assert!(frame.len() > 4096, "{}", frame.len());
    s.write_all(&frame).unwrap();
    too_large(
        unzlib(read_frame(&mut s)),
        &format!("frame of {} bytes", frame.len() - 4),
    );
    s.write_all(&zlib_frame(4, &get_request(4, 5))).unwrap();
    ok(unzlib(read_frame(&mut s)), 4);
    server.shutdown();
    server.join();
}

#[test]
fn a_process_the_application_spawns_does_not_keep_its_connections_open() {
    let server = builder("spawns")
        .idle_timeout(Some(Duration::from_millis(300)))
        .start(|_| DerivedServer::new(Misbehaving))
        .unwrap();
    let mut s = connect(&server);
    ok(get(&mut s, 1), 1);
    // Spawned while the connection is open (as a handler or a hook might): were the
    // accepted socket inherited, the child would hold it open past the server's close.
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    // The server closes the idle connection: the client sees the end, child or not.
    let mut byte = [0u8; 1];
    let read = loop {
        match std::io::Read::read(&mut s, &mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        matches!(read, Ok(0)),
        "the idle close did not reach the client while a spawned process lived: {read:?}"
    );
    server.shutdown();
    server.join();
}

/// Waits up to 10 s for `done` to hold.
fn wait_until(done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_connection_hooks_see_each_connection_open_once_and_close_once() {
    type Events = Arc<Mutex<Vec<(&'static str, SocketAddr)>>>;
    let events = Events::default();
    let (opened, closed) = (events.clone(), events.clone());
    let server = builder("hooks")
        .on_connected(move |_, peer| opened.lock().unwrap().push(("connected", peer)))
        .on_closed(move |_, peer| closed.lock().unwrap().push(("closed", peer)))
        .start(|_| DerivedServer::new(Misbehaving))
        .unwrap();
    let seen = || events.lock().unwrap().clone();
    let closed = |peer| move || seen().contains(&("closed", peer));
    let mut a = connect(&server);
    ok(get(&mut a, 1), 1);
    let mut b = connect(&server);
    ok(get(&mut b, 2), 2);
    let (a_at, b_at) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    drop(a);
    wait_until(closed(a_at));
    // Bytes that are no Thrift: the server ends the connection before its first call.
    let mut c = connect(&server);
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let c_at = c.local_addr().unwrap();
    wait_until(closed(c_at));
    ok(get(&mut b, 3), 3);
    drop(b);
    wait_until(closed(b_at));
    assert_eq!(
        seen(),
        [
            ("connected", a_at),
            ("connected", b_at),
            ("closed", a_at),
            ("connected", c_at),
            ("closed", c_at),
            ("closed", b_at),
        ]
    );
    server.shutdown();
    server.join();
}

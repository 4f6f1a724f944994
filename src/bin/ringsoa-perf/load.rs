//! Load of `Demo.echo` or `Demo.ping` calls — or of any method of any `.thrift` file
//! (`--idl`, raw mode) — against any Thrift server.
//!
//! - Raw (the default): N connections with pre-encoded requests in the chosen
//!   protocol and transport, `--pipeline` requests in flight on each; every reply is
//!   compared byte for byte with the expected one.
//! - Full stack (`--full-stack`): N tasks calling through one ringsoa
//!   [`ringsoa::client::Client`] (its pool opens the connections), tracked
//!   unless `--no-tracking`; every answer is checked.
//!
//! Closed loop by default; with `--rate` an open loop: each connection (or caller)
//! sends on a fixed schedule and latency is measured from the *intended* send time,
//! so a server stall counts against every call that should have been sent during it
//! (coordinated-omission-correct, as wrk2 does). The load generator's own CPU time
//! per call is reported beside the server's.

use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use monoio::net::TcpStream;
use ringsoa::client::{Client, ClientConfig};
use ringsoa::protocol::{
    ApplicationException, BinaryReader, CompactReader, Decode, Encode, Encoded, MessageType,
    Protocol, ProtocolReader, ProtocolWriter,
};
use ringsoa::rpc::CallError;
use ringsoa::transport::conn::{Expect, MessageConn, ReadTimeouts};
use ringsoa::transport::header::{self, int_key, Header, HeaderKind, HeaderLimits};
use ringsoa::transport::Framing;
use ringsoa::transport::{framed, DEFAULT_MAX_MESSAGE};

use super::cpu::process_cpu;
use super::idl::demo::{DemoClient, DemoEchoArgs, DemoEchoResult, DemoPingArgs, DemoPingResult};
use super::idl_call::{Exchange, IdlCall};
use super::report::{self, Report};
use super::spawn::DemoProcess;

/// Flags of `load`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server address (ignored with --spawn-demo).
    #[arg(long, default_value = "127.0.0.1:9090", value_parser = ringsoa::addr::resolve)]
    addr: SocketAddr,
    /// Connections (raw) or concurrent callers (full stack).
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    conns: usize,
    /// Raw closed loop: requests in flight on each connection.
    #[arg(long, default_value_t = 1, conflicts_with_all = ["rate", "full_stack"], value_parser = at_least_one)]
    pipeline: usize,
    /// Open loop: calls per second in all, spread evenly over the connections;
    /// latency counts from each call's intended send time.
    #[arg(long, value_parser = positive)]
    rate: Option<f64>,
    /// The method: Demo.echo (of --payload bytes) or Demo.ping.
    #[arg(long, value_enum, default_value = "echo")]
    method: Method,
    /// Load of any method instead, raw or with --full-stack: the `.thrift` file (then
    /// --method and --payload are not used).
    #[arg(long, requires = "call")]
    idl: Option<PathBuf>,
    /// With --idl: where its includes are found (repeatable).
    #[arg(long = "include-dir")]
    include_dirs: Vec<PathBuf>,
    /// With --idl: the method, as `Service.method`.
    #[arg(long, requires = "idl")]
    call: Option<String>,
    /// With --idl: the arguments as a JSON object keyed by argument name; every reply
    /// must equal the first (which must be a normal result).
    #[arg(long, default_value = "{}")]
    args: String,
    /// Bytes of the echoed string.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// The protocol.
    #[arg(long, value_enum, default_value = "binary")]
    protocol: ProtocolArg,
    /// The transport.
    #[arg(long, value_enum, default_value = "framed")]
    transport: TransportArg,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0, value_parser = seconds)]
    warmup_s: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 3.0, value_parser = positive)]
    duration_s: f64,
    /// CPU to pin the load generator to.
    #[arg(long)]
    cpu: Option<usize>,
    /// The server's PID, to report its CPU time per call (set by --spawn-demo).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Start `ringsoa-demo --cores 1` (from beside this binary) pinned to this CPU,
    /// on a free port, and measure it.
    #[arg(long)]
    spawn_demo: Option<usize>,
    /// A label copied into the JSON result.
    #[arg(long, default_value = "")]
    label: String,
    /// Call through ringsoa's client instead of sending pre-encoded bytes.
    #[arg(long)]
    full_stack: bool,
    /// With --full-stack: native Thrift, no tracking handshake or headers.
    #[arg(long, requires = "full_stack")]
    no_tracking: bool,
    /// With --full-stack: give the client this many nodes, all the one server — its
    /// port on 127.0.0.1, 127.0.0.2, … (it must listen on 0.0.0.0) — to measure
    /// the choice of a node among many (the demo --spawn-demo starts listens on
    /// 127.0.0.1 only).
    #[arg(long, default_value_t = 1, requires = "full_stack", conflicts_with = "spawn_demo", value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    nodes: u32,
    /// With --full-stack: the client's aperture (`BalanceOptions::aperture`), the
    /// nodes it keeps its calls on (0: every node).
    #[arg(long, default_value_t = 0, requires = "full_stack")]
    aperture: usize,
    /// Print progress to stderr every second (on by itself for runs of 10 s or more
    /// when stderr is a terminal).
    #[arg(long)]
    progress: bool,
    /// Also write a latency-percentile plot of this run (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the result as one JSON object (for scripts) instead of the summary.
    #[arg(long)]
    json: bool,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    json_file: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Method {
    Echo,
    Ping,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ProtocolArg {
    Binary,
    Compact,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum TransportArg {
    Framed,
    Buffered,
    /// TTHeader around a framed payload, as a Volo client sends by default.
    Ttheader,
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Warmup,
    Measure,
    Stop,
}

/// Shared by the tasks of the (single) load thread.
struct Run {
    phase: Cell<Phase>,
    calls: Cell<u64>,
    errors: Cell<u64>,
    /// What went wrong first, for the summary.
    first_error: RefCell<Option<String>>,
    hist: RefCell<Histogram<u64>>,
    /// No call waits past this: the run ends on time whatever the server does.
    stop_at: Instant,
}

impl Run {
    /// Records a call that started (or should have started) at `start`.
    fn record(&self, start: Instant) {
        if self.phase.get() == Phase::Measure {
            self.calls.set(self.calls.get() + 1);
            let _ = self
                .hist
                .borrow_mut()
                .record(start.elapsed().as_nanos() as u64);
        }
    }

    /// Counts an error, and keeps the first's text (its control characters
    /// escaped: it may hold what the server sent) for the report.
    fn error(&self, why: impl FnOnce() -> String) {
        self.errors.set(self.errors.get() + 1);
        self.first_error
            .borrow_mut()
            .get_or_insert_with(|| ringsoa::logs::escape_controls(&why()).into_owned());
    }

    /// Time left before the run must end.
    fn left(&self) -> Duration {
        self.stop_at.saturating_duration_since(Instant::now())
    }
}

/// An open-loop send schedule: one intended send time after another.
#[derive(Clone, Copy)]
struct Schedule {
    next: Instant,
    interval: Duration,
    /// The run's end: no wait goes past it, however low the rate.
    stop_at: Instant,
}

impl Schedule {
    /// Waits for the next intended send time and returns the time latency counts
    /// from: the intended time, or the actual send time if that was earlier. The
    /// timer has 1 ms granularity and may wake up to 1 ms late, so the wait aims 1 ms
    /// early: a send is never made late by the generator's own timer, only by the
    /// reply to the previous call (which is what the latency must then include).
    async fn wait(&mut self) -> Instant {
        const GRANULARITY: Duration = Duration::from_millis(2);
        let intended = self.next;
        self.next += self.interval;
        let now = Instant::now();
        if intended > now + GRANULARITY {
            let until = (intended - GRANULARITY).min(self.stop_at);
            monoio::time::sleep(until.saturating_duration_since(now)).await;
        }
        intended.min(Instant::now())
    }
}

/// A count that must be at least 1 (`--conns`, `--pipeline`).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>().map_err(|e| e.to_string())? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// A number of seconds: finite and not negative (`--warmup-s`).
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>().map_err(|e| e.to_string())? {
        x if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("must be a number of seconds, 0 or more".into()),
    }
}

/// A number above 0 (`--rate`, `--duration-s`).
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>().map_err(|e| e.to_string())? {
        x if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("must be a number above 0".into()),
    }
}

/// A whole message: header and body.
struct Message<'a, B> {
    name: &'a str,
    kind: MessageType,
    body: &'a B,
}

impl<B: Encode> Encode for Message<'_, B> {
    fn encode<W: ProtocolWriter>(&self, w: &mut W) {
        w.write_message_begin(self.name, self.kind, 1);
        self.body.encode(w);
    }
}

/// `msg` in a TTHeader frame as a Volo client sends it: WithHeader, FromService
/// and ToMethod int keys, the payload in a frame of its own.
fn ttheader(protocol: Protocol, method: &str, msg: &[u8]) -> Bytes {
    let mut h = Header::new(HeaderKind::TTHeader, 1, protocol);
    h.framed_payload = true;
    h.ints = vec![
        (int_key::WITH_HEADER, "3".into()),
        (int_key::FROM_SERVICE, "ringsoa-perf".into()),
        (int_key::TO_METHOD, method.into()),
    ];
    let mut buf = BytesMut::new();
    framed::write_frame(&mut buf, |b| {
        header::encode(b, &h);
        b.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        b.extend_from_slice(msg);
    });
    buf.freeze()
}

/// One message as sent on the wire (in a frame when framed).
pub fn message(
    protocol: Protocol,
    framing: Framing,
    name: &str,
    kind: MessageType,
    body: &impl Encode,
) -> Bytes {
    let msg = ringsoa::protocol::to_bytes(&Message { name, kind, body }, protocol);
    frame(framing, &msg)
}

/// `msg` as sent on the wire: in a frame when framed.
pub fn frame(framing: Framing, msg: &[u8]) -> Bytes {
    match framing {
        Framing::Framed => {
            let mut buf = BytesMut::with_capacity(framed::HEADER_LEN + msg.len());
            framed::write_frame(&mut buf, |b| b.extend_from_slice(msg));
            buf.freeze()
        }
        Framing::Buffered => Bytes::copy_from_slice(msg),
    }
}

/// `request` (a framed message, or a buffered one) as `args.transport` sends it: the
/// same, or its message in a TTHeader frame.
fn on_transport(args: &Args, method: &str, request: Bytes) -> Bytes {
    if args.transport != TransportArg::Ttheader {
        return request;
    }
    // The plain request is framed; its body goes into the header frame.
    ttheader(protocol(args), method, &request[framed::HEADER_LEN..])
}

/// The request to send (as framed or buffered) and the exact reply message to
/// expect, for Demo.echo or Demo.ping.
fn exchange(args: &Args, msg: &str) -> (Bytes, Bytes) {
    let protocol = protocol(args);
    let framing = framing(args);
    match args.method {
        Method::Echo => {
            let call = DemoEchoArgs {
                msg: Some(msg.into()),
            };
            let result = DemoEchoResult {
                success: Some(msg.into()),
            };
            (
                message(protocol, framing, "echo", MessageType::Call, &call),
                message(
                    protocol,
                    Framing::Buffered,
                    "echo",
                    MessageType::Reply,
                    &result,
                ),
            )
        }
        Method::Ping => (
            message(
                protocol,
                framing,
                "ping",
                MessageType::Call,
                &DemoPingArgs {},
            ),
            message(
                protocol,
                Framing::Buffered,
                "ping",
                MessageType::Reply,
                &DemoPingResult {},
            ),
        ),
    }
}

fn protocol(args: &Args) -> Protocol {
    match args.protocol {
        ProtocolArg::Binary => Protocol::Binary,
        ProtocolArg::Compact => Protocol::Compact,
    }
}

fn framing(args: &Args) -> Framing {
    match args.transport {
        TransportArg::Framed | TransportArg::Ttheader => Framing::Framed,
        TransportArg::Buffered => Framing::Buffered,
    }
}

/// Limits on a reply header's pairs.
const REPLY_LIMITS: HeaderLimits = HeaderLimits {
    entries: 64,
    item: 4096,
};

/// How long after the measured window a run waits for calls still in flight.
const GRACE: Duration = Duration::from_secs(2);

/// Runs the load and prints its summary (or its JSON).
pub fn run(mut args: Args) -> std::io::Result<()> {
    let demo = args.spawn_demo.map(DemoProcess::start).transpose()?;
    if let Some(d) = &demo {
        args.addr = d.addr;
        args.server_pid = Some(d.pid());
    }
    let last = match args.addr {
        SocketAddr::V4(a) => u32::from(*a.ip()).checked_add(args.nodes - 1),
        SocketAddr::V6(_) => None,
    };
    if args.nodes > 1 && !last.is_some_and(|l| l >> 24 == 127 && args.addr.ip().is_loopback()) {
        return Err(std::io::Error::other(format!(
            "--nodes {} needs --addr on an IPv4 loopback address with room for them after it (e.g. 127.0.0.1:PORT, the server listening on 0.0.0.0), not {}",
            args.nodes, args.addr
        )));
    }
    super::pin(args.cpu);
    let msg = "x".repeat(args.payload);
    let mut rt = ringsoa::runtime::build()?;
    let me = std::process::id();
    let (run, window, cpu, own_cpu, connected) = rt.block_on(async {
        let mut learnt = None;
        let (request, reply) = match (&args.idl, &args.call) {
            (Some(idl), Some(call)) => {
                let target = IdlCall {
                    idl,
                    include_dirs: &args.include_dirs,
                    call,
                    args: &args.args,
                    protocol: protocol(&args),
                    framing: framing(&args),
                };
                let x = Rc::new(target.exchange(args.addr).await?);
                learnt = Some(x.clone());
                (
                    on_transport(&args, &x.method, x.request.clone()),
                    x.reply.clone(),
                )
            }
            _ => {
                let (request, reply) = exchange(&args, &msg);
                let method = match args.method {
                    Method::Echo => "echo",
                    Method::Ping => "ping",
                };
                (on_transport(&args, method, request), reply)
            }
        };
        // Every connection opens before the clock starts: opened one by one beside
        // the ones already loaded, 2,000 took 4 s, and the run's end came before
        // their first replies.
        let mut streams = if args.full_stack {
            Vec::new()
        } else {
            connect_all(args.addr, args.conns).await?
        };
        let start = Instant::now();
        let run = Rc::new(Run {
            phase: Cell::new(Phase::Warmup),
            calls: Cell::new(0),
            errors: Cell::new(0),
            first_error: RefCell::new(None),
            hist: RefCell::new(
                Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(std::io::Error::other)?,
            ),
            stop_at: start + Duration::from_secs_f64(args.warmup_s + args.duration_s) + GRACE,
        });
        let stop_at = run.stop_at;
        let schedule = |i: usize| {
            args.rate.map(|rate| {
                // Capped: a rate that low sends at most once in the run anyway.
                let interval = Duration::try_from_secs_f64(args.conns as f64 / rate)
                    .unwrap_or(Duration::MAX)
                    .min(Duration::from_secs(86_400));
                Schedule {
                    next: start + interval.mul_f64(i as f64 / args.conns as f64),
                    interval,
                    stop_at,
                }
            })
        };
        let mut tasks = Vec::new();
        let client = args.full_stack.then(|| Rc::new(full_stack_client(&args)));
        if let Some(client) = &client {
            for i in 0..args.conns {
                let task = match &learnt {
                    Some(x) => monoio::spawn(idl_caller(
                        client.clone(),
                        x.clone(),
                        run.clone(),
                        schedule(i),
                    )),
                    None => monoio::spawn(caller(
                        client.clone(),
                        args.method,
                        msg.clone(),
                        run.clone(),
                        schedule(i),
                    )),
                };
                tasks.push(task);
            }
        } else {
            let raw = Rc::new(RawExchange {
                request,
                reply,
                framing: framing(&args),
                protocol: protocol(&args),
                header: args.transport == TransportArg::Ttheader,
            });
            for (i, stream) in streams.drain(..).enumerate() {
                let task = conn(stream, raw.clone(), run.clone(), args.pipeline, schedule(i));
                tasks.push(monoio::spawn(task));
            }
        }
        let long_run = args.warmup_s + args.duration_s >= 10.0;
        if args.progress || (long_run && std::io::stderr().is_terminal()) {
            monoio::spawn(progress(run.clone(), start));
        }
        monoio::time::sleep(Duration::from_secs_f64(args.warmup_s)).await;
        let cpu0 = args.server_pid.map(process_cpu).transpose()?;
        let own0 = process_cpu(me)?;
        let t0 = Instant::now();
        run.phase.set(Phase::Measure);
        monoio::time::sleep(Duration::from_secs_f64(args.duration_s)).await;
        run.phase.set(Phase::Stop);
        let window = t0.elapsed();
        let cpu1 = args.server_pid.map(process_cpu).transpose()?;
        let own = process_cpu(me)? - own0;
        for t in tasks {
            t.await;
        }
        let connected = client.map(|c| c.stats().iter().filter(|s| s.pool.created > 0).count());
        let cpu = cpu0.zip(cpu1).map(|(a, b)| b - a);
        Ok::<_, std::io::Error>((run, window, cpu, own, connected))
    })?;
    drop(demo);
    let calls = run.calls.get();
    let per_call = |d: Duration| d.as_secs_f64() * 1e6 / calls.max(1) as f64;
    let report = Report::new(&run.hist.borrow(), window)
        .with("label", args.label.clone())
        .with(
            "method",
            args.call
                .clone()
                .unwrap_or_else(|| format!("{:?}", args.method).to_lowercase()),
        )
        .with("conns", args.conns)
        .with("pipeline", args.pipeline)
        .with("rate", args.rate)
        .with("payload", args.payload)
        .with("errors", run.errors.get())
        .with("first_error", run.first_error.borrow().clone())
        .with("server_cpu_us_per_call", cpu.map(|c| per_call(c.total())))
        .with("server_user_us_per_call", cpu.map(|c| per_call(c.user)))
        .with("server_system_us_per_call", cpu.map(|c| per_call(c.system)))
        .with("client_cpu_us_per_call", per_call(own_cpu.total()))
        .with("mode", if args.full_stack { "full-stack" } else { "raw" })
        .with("nodes", args.nodes)
        .with("nodes_connected", connected)
        .with("aperture", args.aperture)
        .with(
            "transport",
            match args.transport {
                TransportArg::Framed => "framed",
                TransportArg::Buffered => "buffered",
                TransportArg::Ttheader => "ttheader",
            },
        )
        .with("tracking", args.full_stack && !args.no_tracking)
        .with(
            "loop",
            if args.rate.is_some() {
                "open"
            } else {
                "closed"
            },
        );
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.summary());
    }
    if let Some(path) = &args.json_file {
        std::fs::write(path, format!("{}\n", report.json()))?;
    }
    if let Some(path) = &args.plot {
        report::plot(&[report], path)?;
    }
    if run.errors.get() > 0 {
        return Err(std::io::Error::other(format!(
            "{} replies were wrong or missing; the first: {}",
            run.errors.get(),
            run.first_error.borrow().as_deref().unwrap_or("?")
        )));
    }
    Ok(())
}

/// Opens `n` connections, up to [`CONNECTING`] at a time.
async fn connect_all(addr: SocketAddr, n: usize) -> std::io::Result<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(n);
    while streams.len() < n {
        let batch: Vec<_> = (streams.len()..n.min(streams.len() + CONNECTING))
            .map(|_| monoio::spawn(connect(addr)))
            .collect();
        for pending in batch {
            streams.push(pending.await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("connection {} of {n}: {e}", streams.len() + 1),
                )
            })?);
        }
    }
    Ok(streams)
}

/// Connections opened at once: well within a listen backlog (Linux's default
/// somaxconn is 4,096).
const CONNECTING: usize = 256;

/// Connects within a bounded time.
pub async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = monoio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other(format!("no connection to {addr} within 5 s")))?
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}")))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One client for every caller task: a pool as large as the load.
fn full_stack_client(args: &Args) -> Client {
    let mut config = ClientConfig::new("ringsoa-perf");
    config.conn.framing = framing(args);
    config.conn.protocol = protocol(args);
    config.conn.tracking = !args.no_tracking;
    if args.transport == TransportArg::Ttheader {
        config.conn.header = Some(HeaderKind::TTHeader);
    }
    config.conn.call_timeout = GRACE;
    config.pool.max_idle = args.conns;
    config.balance.aperture = args.aperture;
    Client::new(nodes(args.addr, args.nodes), config)
}

/// `addr` and the same port on the `n - 1` loopback addresses after it.
fn nodes(addr: SocketAddr, n: u32) -> Vec<SocketAddr> {
    match addr {
        SocketAddr::V4(a) if n > 1 => (0..n)
            .map(|i| {
                SocketAddr::from((Ipv4Addr::from(u32::from(*a.ip()).wrapping_add(i)), a.port()))
            })
            .collect(),
        _ => vec![addr],
    }
}

/// One caller: calls through the client, checking each answer.
async fn caller(
    client: Rc<Client>,
    method: Method,
    msg: String,
    run: Rc<Run>,
    mut schedule: Option<Schedule>,
) {
    let demo = DemoClient::new(client);
    while let Some(start) = next_start(&run, &mut schedule).await {
        let result = match method {
            Method::Echo => demo.echo(None, msg.clone()).await.and_then(|got| {
                if got == msg {
                    Ok(())
                } else {
                    Err(CallError::Rejected("echo answered other bytes".into()))
                }
            }),
            Method::Ping => demo.ping(None).await,
        };
        if let Err(e) = result {
            run.error(|| format!("{method:?}: {e}"));
            return;
        }
        run.record(start);
    }
}

/// When a client caller's next call is meant to start (now in a closed loop, its
/// time on the schedule in an open one), or `None` once the run has stopped: a low
/// rate's wait may end at the run's end, and then nothing is sent.
async fn next_start(run: &Run, schedule: &mut Option<Schedule>) -> Option<Instant> {
    if run.phase.get() == Phase::Stop {
        return None;
    }
    let start = match schedule {
        Some(s) => s.wait().await,
        None => Instant::now(),
    };
    (run.phase.get() != Phase::Stop).then_some(start)
}

/// One caller of any method (`--idl`): calls through the client with the encoded
/// arguments, and checks that each reply ends with the first one's result.
async fn idl_caller(
    client: Rc<Client>,
    call: Rc<Exchange>,
    run: Rc<Run>,
    mut schedule: Option<Schedule>,
) {
    while let Some(start) = next_start(&run, &mut schedule).await {
        let args = Encoded(&call.args);
        let result = match client.call_raw(None, &call.method, false, &args).await {
            Ok(Some((reply, _))) if reply.ends_with(&call.result) => Ok(()),
            Ok(_) => Err(CallError::Rejected(
                "answered other bytes than its first reply".into(),
            )),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            run.error(|| format!("{}: {e}", call.method));
            return;
        }
        run.record(start);
    }
}

/// What every raw connection sends and expects.
struct RawExchange {
    /// The request as on the wire.
    request: Bytes,
    /// The reply message expected (without a frame header).
    reply: Bytes,
    framing: Framing,
    protocol: Protocol,
    /// Replies come in a TTHeader, checked for the payload only (peers differ in
    /// the keys they send back).
    header: bool,
}

/// One raw connection: keeps `pipeline` requests in flight (closed loop) or sends on
/// `schedule` (open loop), and checks every reply byte for byte. A reply that
/// differs, none by the end of the run, or a closed connection is an error.
async fn conn(
    stream: TcpStream,
    raw: Rc<RawExchange>,
    run: Rc<Run>,
    pipeline: usize,
    mut schedule: Option<Schedule>,
) {
    let mut io = MessageConn::new(stream, raw.framing, raw.protocol, DEFAULT_MAX_MESSAGE);
    let mut sent = std::collections::VecDeque::with_capacity(pipeline);
    while run.phase.get() != Phase::Stop || !sent.is_empty() {
        while sent.len() < pipeline && run.phase.get() != Phase::Stop {
            let start = match &mut schedule {
                Some(s) => s.wait().await,
                None => Instant::now(),
            };
            if run.phase.get() == Phase::Stop {
                break;
            }
            io.out().extend_from_slice(&raw.request);
            sent.push_back(start);
            if schedule.is_some() {
                break;
            }
        }
        // The run ended before anything more was sent: no reply to wait for.
        if sent.is_empty() {
            continue;
        }
        if let Err(e) = io.flush().await {
            return run.error(|| format!("write: {}", e.error));
        }
        let read = io.read_message(Expect::Message, ReadTimeouts::default());
        let mut got = match monoio::time::timeout(run.left(), read).await {
            Ok(Ok(got)) => got,
            Ok(Err(e)) => return run.error(|| format!("read: {e}")),
            Err(_) => return run.error(|| "no reply by the end of the run".into()),
        };
        if raw.header {
            got = match header::decode(&got, &REPLY_LIMITS) {
                Ok((_, payload)) => payload,
                Err(e) => return run.error(|| format!("reply header: {e}")),
            };
        }
        if got != raw.reply {
            return run.error(|| {
                format!(
                    "a reply of {} bytes differs from the {} expected{}",
                    got.len(),
                    raw.reply.len(),
                    describe_exception(raw.protocol, &got)
                )
            });
        }
        if let Some(start) = sent.pop_front() {
            run.record(start);
        }
    }
}

/// ": the server answered NAME with EXCEPTION …" when `msg` is an exception reply.
fn describe_exception(protocol: Protocol, msg: &Bytes) -> String {
    fn read<R: ProtocolReader>(mut r: R) -> Option<String> {
        let h = r.read_message_begin().ok()?;
        if h.kind != MessageType::Exception {
            return None;
        }
        let e = ApplicationException::decode(&mut r).ok()?;
        Some(format!(
            ": the server answered {} with {e}",
            String::from_utf8_lossy(&h.name)
        ))
    }
    let msg = msg.clone();
    match protocol {
        Protocol::Binary => read(BinaryReader::new(msg)),
        Protocol::Compact => read(CompactReader::new(msg)),
    }
    .unwrap_or_default()
}

/// Prints calls, rate and p99 so far, every second.
async fn progress(run: Rc<Run>, start: Instant) {
    let mut last = 0;
    while run.phase.get() != Phase::Stop {
        monoio::time::sleep(Duration::from_secs(1)).await;
        let calls = run.calls.get();
        let p99 = run.hist.borrow().value_at_quantile(0.99) as f64 / 1000.0;
        let phase = match run.phase.get() {
            Phase::Warmup => "warm-up",
            _ => "measuring",
        };
        eprintln!(
            "[{:>5.1} s] {phase}: {calls} calls, {} /s, p99 {p99:.0} µs, {} errors",
            start.elapsed().as_secs_f64(),
            calls - last,
            run.errors.get()
        );
        last = calls;
    }
}

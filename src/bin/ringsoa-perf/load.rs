//! Closed-loop load of framed strict-binary `Demo.echo` calls, N at a time.
//!
//! - Raw (the default): N connections, one call in flight on each, pre-encoded
//!   requests; each reply is compared byte for byte with the expected one.
//! - Full stack (`--full-stack`): N tasks calling through one ringsoa
//!   [`Client`](ringsoa::client::Client) (its pool opens the connections), tracked
//!   unless `--no-tracking`; each reply is compared with the string sent.
//!
//! Latency is recorded per call from just before the write (raw) or the call (full
//! stack) to the reply. The load generator's own CPU time per call is reported beside
//! the server's, so the client's cost can be compared between the two modes.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use ringsoa::protocol::{BinaryWriter, Encode, MessageType, ProtocolWriter};
use ringsoa::transport::io::read_append;

use super::cpu::process_cpu;
use super::idl::demo::{DemoClient, DemoEchoArgs, DemoEchoResult};
use ringsoa::client::{Client, ClientConfig};
use ringsoa::transport::Framing;

/// Flags of `load`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9090")]
    addr: SocketAddr,
    /// Connections (one call in flight on each).
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// Bytes of the echoed string.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 3.0)]
    duration_s: f64,
    /// CPU to pin the load generator to.
    #[arg(long)]
    cpu: Option<usize>,
    /// The server's PID, to report its CPU time per request.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A label copied into the JSON result.
    #[arg(long, default_value = "")]
    label: String,
    /// Call through ringsoa's client instead of sending pre-encoded bytes.
    #[arg(long)]
    full_stack: bool,
    /// With --full-stack: native Thrift, no tracking handshake or headers.
    #[arg(long, requires = "full_stack")]
    no_tracking: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Warmup,
    Measure,
    Stop,
}

/// Shared by the connection tasks of the (single) load thread.
struct Run {
    phase: Cell<Phase>,
    calls: Cell<u64>,
    errors: Cell<u64>,
    hist: RefCell<Histogram<u64>>,
}

fn framed_message(name: &str, kind: MessageType, body: &impl Encode) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u32(0);
    let mut w = BinaryWriter::new(&mut buf);
    w.write_message_begin(name, kind, 1);
    body.encode(&mut w);
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// Runs the load and prints one JSON object.
pub fn run(args: Args) -> std::io::Result<()> {
    super::pin(args.cpu);
    let msg = "x".repeat(args.payload);
    let request = framed_message(
        "echo",
        MessageType::Call,
        &DemoEchoArgs {
            msg: Some(msg.clone()),
        },
    );
    let reply = framed_message(
        "echo",
        MessageType::Reply,
        &DemoEchoResult {
            success: Some(msg.clone()),
        },
    );
    let run = Rc::new(Run {
        phase: Cell::new(Phase::Warmup),
        calls: Cell::new(0),
        errors: Cell::new(0),
        hist: RefCell::new(
            Histogram::new_with_bounds(1, 60_000_000, 3).map_err(std::io::Error::other)?,
        ),
    });
    let mut rt = ringsoa::runtime::build()?;
    let me = std::process::id();
    let (window, cpu, own_cpu) = rt.block_on(async {
        let mut tasks = Vec::new();
        if args.full_stack {
            let client = Rc::new(full_stack_client(&args));
            for _ in 0..args.conns {
                tasks.push(monoio::spawn(caller(
                    client.clone(),
                    msg.clone(),
                    run.clone(),
                )));
            }
        } else {
            for _ in 0..args.conns {
                let stream = TcpStream::connect(args.addr).await?;
                stream.set_nodelay(true)?;
                tasks.push(monoio::spawn(conn(
                    stream,
                    request.clone(),
                    reply.clone(),
                    run.clone(),
                )));
            }
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
        Ok::<_, std::io::Error>((window, cpu0.zip(cpu1).map(|(a, b)| b - a), own))
    })?;
    let hist = run.hist.borrow();
    let calls = run.calls.get();
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let result = serde_json::json!({
        "label": args.label,
        "conns": args.conns,
        "payload": args.payload,
        "seconds": window.as_secs_f64(),
        "calls": calls,
        "errors": run.errors.get(),
        "qps": calls as f64 / window.as_secs_f64(),
        "p50_us": us(0.50),
        "p99_us": us(0.99),
        "p999_us": us(0.999),
        "max_us": hist.max() as f64 / 1000.0,
        "server_cpu_us_per_call": cpu.map(|c| c.as_secs_f64() * 1e6 / calls.max(1) as f64),
        "client_cpu_us_per_call": own_cpu.as_secs_f64() * 1e6 / calls.max(1) as f64,
        "mode": if args.full_stack { "full-stack" } else { "raw" },
        "tracking": args.full_stack && !args.no_tracking,
    });
    println!("{result}");
    if run.errors.get() > 0 {
        return Err(std::io::Error::other(format!(
            "{} replies were wrong or missing",
            run.errors.get()
        )));
    }
    Ok(())
}

/// One client for every caller task: framed binary, a pool as large as the load.
fn full_stack_client(args: &Args) -> Client {
    let mut config = ClientConfig::new("ringsoa-perf");
    config.conn.framing = Framing::Framed;
    config.conn.tracking = !args.no_tracking;
    config.pool.max_idle = args.conns;
    Client::new([args.addr], config)
}

/// One caller: echo through the client, checking each answer.
async fn caller(client: Rc<Client>, msg: String, run: Rc<Run>) {
    let demo = DemoClient::new(client);
    while run.phase.get() != Phase::Stop {
        let start = Instant::now();
        let ok = demo
            .echo(None, msg.clone())
            .await
            .is_ok_and(|got| got == msg);
        let took = start.elapsed();
        if !ok {
            run.errors.set(run.errors.get() + 1);
            return;
        }
        run.record(took);
    }
}

impl Run {
    fn record(&self, took: Duration) {
        if self.phase.get() == Phase::Measure {
            self.calls.set(self.calls.get() + 1);
            let _ = self.hist.borrow_mut().record(took.as_nanos() as u64);
        }
    }
}

async fn conn(mut stream: TcpStream, request: Bytes, reply: Bytes, run: Rc<Run>) {
    let mut buf = BytesMut::with_capacity(reply.len() + 4096);
    while run.phase.get() != Phase::Stop {
        let start = Instant::now();
        let (res, _) = stream.write_all(request.clone()).await;
        if res.is_err() {
            run.errors.set(run.errors.get() + 1);
            return;
        }
        while buf.len() < reply.len() {
            let (res, b) = read_append(&mut stream, buf, reply.len()).await;
            buf = b;
            if !matches!(res, Ok(n) if n > 0) {
                run.errors.set(run.errors.get() + 1);
                return;
            }
        }
        let took = start.elapsed();
        if buf[..reply.len()] != reply[..] {
            run.errors.set(run.errors.get() + 1);
            return;
        }
        let _ = buf.split_to(reply.len());
        run.record(took);
    }
}

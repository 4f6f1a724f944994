//! The limit: a raw monoio echo server on io_uring, one pinned thread, answering each
//! framed strict-binary `echo(msg)` or `ping()` call with the same bytes ringsoa
//! answers it with (the call with its message type set to REPLY and its first field
//! id set to 0: the `_result` struct's `success`), and doing nothing else. Large
//! buffers are kept for the next large message as ringsoa's cores keep them
//! (`transport::spare`, 64 MiB, here for the whole run).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};
use ringsoa::protocol::Protocol;
use ringsoa::transport::conn::{Expect, MessageConn, ReadTimeouts};
use ringsoa::transport::spare::SpareBuffers;
use ringsoa::transport::{Framing, DEFAULT_MAX_MESSAGE};

/// Flags of `echo-server`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9191", value_parser = ringsoa::addr::resolve)]
    listen: SocketAddr,
    /// CPU to pin the server thread to.
    #[arg(long)]
    cpu: Option<usize>,
    /// Enable monoio's timer driver, as ringsoa's cores do (to measure its cost).
    #[arg(long)]
    timer: bool,
    /// Fault injection, to test load generators: every this many milliseconds, block
    /// the server thread for --stall-ms (a pause that stalls every connection).
    #[arg(long, requires = "stall_ms")]
    stall_every_ms: Option<u64>,
    /// How long each injected stall lasts.
    #[arg(long, requires = "stall_every_ms")]
    stall_ms: Option<u64>,
    /// Fault injection: corrupt every Nth reply (one byte of its payload).
    #[arg(long)]
    corrupt_every: Option<u64>,
}

/// The injected faults and their state (one server thread, so plain cells).
struct Faults {
    stall: Option<(Duration, Duration)>,
    last_stall: Cell<Instant>,
    corrupt_every: Option<u64>,
    replies: Cell<u64>,
}

impl Faults {
    fn stall_if_due(&self) {
        if let Some((every, stall)) = self.stall {
            if self.last_stall.get().elapsed() >= every {
                std::thread::sleep(stall);
                self.last_stall.set(Instant::now());
            }
        }
    }

    fn corrupt_this_one(&self) -> bool {
        let n = self.replies.get() + 1;
        self.replies.set(n);
        self.corrupt_every
            .is_some_and(|every| n % every.max(1) == 0)
    }
}

/// Runs the server until SIGTERM or SIGINT, then exits with status 0 (through
/// `exit`, so that a profiling build writes its profile: `perf/pgo.sh`).
pub fn run(args: Args) -> std::io::Result<()> {
    exit_on_signal()?;
    super::pin(args.cpu);
    let faults = Rc::new(Faults {
        stall: args
            .stall_every_ms
            .zip(args.stall_ms)
            .map(|(e, s)| (Duration::from_millis(e), Duration::from_millis(s))),
        last_stall: Cell::new(Instant::now()),
        corrupt_every: args.corrupt_every,
        replies: Cell::new(0),
    });
    // The same ring setups as ringsoa's runtime (`ringsoa::runtime`), so that the
    // comparison is of the code above the ring.
    let mut last = None;
    for (_, setup) in ringsoa::runtime::ring_setups() {
        let builder = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().uring_builder(setup);
        let built = if args.timer {
            builder
                .enable_timer()
                .build()
                .map(|mut rt| rt.block_on(accept(args.listen, faults.clone())))
        } else {
            builder
                .build()
                .map(|mut rt| rt.block_on(accept(args.listen, faults.clone())))
        };
        match built {
            Ok(served) => return served,
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::other(
            "the raw limit runs on io_uring only, and RINGSOA_RING=epoll asks for none",
        )
    }))
}

/// Exits the process with status 0 on SIGTERM or SIGINT, from a thread of its own.
fn exit_on_signal() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("echo-signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                std::process::exit(0);
            }
        })?;
    Ok(())
}

async fn accept(addr: SocketAddr, faults: Rc<Faults>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let spares = Rc::new(SpareBuffers::new(64 << 20));
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        monoio::spawn(serve(stream, faults.clone(), spares.clone()));
    }
}

/// Turns a strict-binary call message into its reply, in place: message type
/// REPLY, and the first argument's field id 0 (the result's `success`; `echo(msg)`
/// becomes its answer, `ping()` too). `None` if it is not such a message.
fn reply_in_place(msg: &mut [u8]) -> Option<()> {
    let name_len = u32::from_be_bytes(msg.get(4..8)?.try_into().ok()?) as usize;
    let args = 8 + name_len + 4;
    *msg.get_mut(3)? = 2;
    if *msg.get(args)? != 0 {
        *msg.get_mut(args + 1)? = 0;
        *msg.get_mut(args + 2)? = 0;
    }
    Some(())
}

async fn serve(stream: TcpStream, faults: Rc<Faults>, spares: Rc<SpareBuffers>) {
    let mut io = MessageConn::new(
        stream,
        Framing::Framed,
        Protocol::Binary,
        DEFAULT_MAX_MESSAGE,
    );
    io.set_spares(spares);
    let t = ReadTimeouts::default();
    while let Ok(first) = io.read_message(Expect::Message, t).await {
        faults.stall_if_due();
        // Answer every complete frame in the buffer with one write.
        let mut next = Some(first);
        while let Some(msg) = next {
            let mark = io.begin_message();
            io.out().extend_from_slice(&msg);
            let body = mark + ringsoa::transport::framed::HEADER_LEN;
            if reply_in_place(&mut io.out()[body..]).is_none() {
                return;
            }
            if faults.corrupt_this_one() {
                let last = io.out().len() - 1;
                io.out()[last] ^= 0xff;
            }
            io.finish_message(mark);
            io.recycle(msg);
            next = io.try_cut(Expect::Message).ok().flatten();
        }
        if io.flush().await.is_err() {
            return;
        }
    }
}

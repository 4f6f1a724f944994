//! The limit: a raw monoio echo server on io_uring, one pinned thread, answering each
//! framed strict-binary `echo(msg)` or `ping()` call with the same bytes ringsoa
//! answers it with (the call with its message type set to REPLY and its first field
//! id set to 0: the `_result` struct's `success`), and doing nothing else.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::io::AsyncWriteRentExt;
use monoio::net::{TcpListener, TcpStream};
use ringsoa::transport::io::read_append;

/// Flags of `echo-server`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9191")]
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

/// Runs the server until killed.
pub fn run(args: Args) -> std::io::Result<()> {
    super::pin(args.cpu);
    // The same ring setup as ringsoa's runtime (`ringsoa::runtime`), so that the
    // comparison is of the code above the ring.
    let mut coop = io_uring::IoUring::builder();
    coop.setup_coop_taskrun();
    let builder = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().uring_builder(coop);
    let faults = Rc::new(Faults {
        stall: args
            .stall_every_ms
            .zip(args.stall_ms)
            .map(|(e, s)| (Duration::from_millis(e), Duration::from_millis(s))),
        last_stall: Cell::new(Instant::now()),
        corrupt_every: args.corrupt_every,
        replies: Cell::new(0),
    });
    if args.timer {
        builder
            .enable_timer()
            .build()?
            .block_on(accept(args.listen, faults))
    } else {
        builder.build()?.block_on(accept(args.listen, faults))
    }
}

async fn accept(addr: SocketAddr, faults: Rc<Faults>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        monoio::spawn(serve(stream, faults.clone()));
    }
}

/// Turns the framed strict-binary call at the start of `frame` into its reply, in
/// place: message type REPLY, and the first argument's field id 0 (the result's
/// `success`; `echo(msg)` becomes its answer, `ping()` too). Returns the frame's
/// length, or `None` until a whole frame is there.
fn reply_in_place(frame: &mut [u8]) -> Option<usize> {
    let len = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?) as usize;
    let whole = frame.get_mut(..4 + len)?;
    let name_len = u32::from_be_bytes(whole.get(8..12)?.try_into().ok()?) as usize;
    let args = 12 + name_len + 4;
    whole[7] = 2;
    if *whole.get(args)? != 0 {
        *whole.get_mut(args + 1)? = 0;
        *whole.get_mut(args + 2)? = 0;
    }
    Some(4 + len)
}

async fn serve(mut stream: TcpStream, faults: Rc<Faults>) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        let (res, b) = read_append(&mut stream, buf, 8 * 1024).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        faults.stall_if_due();
        // Answer every complete frame in the buffer with one write.
        let mut done = 0;
        while let Some(n) = reply_in_place(&mut buf[done..]) {
            if faults.corrupt_this_one() {
                buf[done + n - 1] ^= 0xff; // the last byte of the frame
            }
            done += n;
        }
        if done > 0 {
            let out = buf.split_to(done);
            let (res, _) = stream.write_all(out).await;
            if res.is_err() {
                return;
            }
        }
    }
}

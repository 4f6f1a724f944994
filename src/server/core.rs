//! One core: a pinned thread with its own monoio runtime, its own service instance
//! and control (built before it listens: load before listen), its own SO_REUSEPORT
//! listener, and its own connections. Nothing here is shared with other cores but
//! the drain flag.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use monoio::io::{CancelHandle, Canceller};
use monoio::net::{TcpListener, TcpStream};
use monoio::task::JoinHandle;
use socket2::{Domain, Socket, Type};

use super::conns::IdleSweep;
use super::handover::Offer;
use super::hooks::Hooks;
use super::memory::{CoreMemory, LiveBudgets};
use super::shutdown::Shutdown;
use super::state::{ControlFactory, CoreState, Warnings};
use super::watchdog::{self, Beats};
use super::{conn, Config};
use crate::control::CoreInit;
use crate::governance::Governance;
use crate::logs::throttle::warn_throttled;
use crate::rpc::Dispatch;
use crate::runtime::{in_slots, next_tick};
use crate::transport::spare::SpareBuffers;

/// Everything a core thread starts from.
pub(super) struct CoreRun<F> {
    pub index: usize,
    pub config: Arc<Config>,
    pub factory: Arc<F>,
    pub control: Option<Arc<ControlFactory>>,
    pub governance: Option<Governance>,
    pub shutdown: Arc<Shutdown>,
    pub hooks: Arc<Hooks>,
    pub beats: Arc<Beats>,
    /// The buffer budgets as the memory limit has them now.
    pub budgets: Arc<LiveBudgets>,
    /// Listeners handed over by the process this one replaces; the core binds its
    /// own when there are none.
    pub listeners: Vec<std::net::TcpListener>,
    /// This process's offer of its listeners to its successor.
    pub offer: Arc<Offer>,
    /// Told once the core listens, with copies of its listeners for the offer (or
    /// why it could not).
    pub ready: mpsc::Sender<Result<Vec<OwnedFd>, String>>,
}

/// Binds one SO_REUSEPORT listener for `addr` (explicitly: the whole point is that
/// each core has its own). The error names the address.
pub fn bind(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    let bound = || -> std::io::Result<std::net::TcpListener> {
        let s = Socket::new(
            Domain::for_address(addr),
            Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.set_tcp_nodelay(true)?;
        s.bind(&addr.into())?;
        s.listen(backlog)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    };
    bound().map_err(|e| crate::addr::cannot_listen(addr, e))
}

/// Runs one core on the current thread until its drain completes.
pub(super) fn run<S, F>(run: CoreRun<F>)
where
    S: Dispatch + 'static,
    F: Fn(&CoreInit) -> S + Send + Sync + 'static,
{
    let index = run.index;
    let failed = |why: String| {
        // A core that never serves must not hold up the others' drain.
        run.shutdown.report(index, 0);
        let _ = run.ready.send(Err(why));
    };
    let mut rt = match crate::runtime::build() {
        Ok(rt) => rt,
        Err(e) => return failed(format!("core {index}: no runtime: {e}")),
    };
    rt.block_on(async {
        // The core's clients keep their large buffers with the core's.
        let memory = CoreMemory::new(run.budgets);
        SpareBuffers::adopt(&memory.spare_buffers);
        // Load before listen: the service (pools, caches) is built first.
        let mut init = CoreInit::new(index, run.config.cores);
        init.governance = run.governance.as_ref().map(Governance::follow_here);
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ((run.factory)(&init), run.control.as_ref().map(|c| c(&init)))
        }));
        let Ok((service, control)) = built else {
            return failed(format!("core {index}: the service factory panicked"));
        };
        let listeners = if run.listeners.is_empty() {
            match bind(run.config.listen, run.config.backlog) {
                Ok(l) => vec![l],
                Err(e) => return failed(format!("core {index}: {e}")),
            }
        } else {
            run.listeners
        };
        let listening: Vec<Listening> = match listeners.into_iter().map(Listening::new).collect() {
            Ok(l) => l,
            Err(e) => return failed(format!("core {index}: {e}")),
        };
        let state = Rc::new(CoreState {
            index,
            service,
            control,
            config: run.config.clone(),
            shutdown: run.shutdown.clone(),
            in_flight: Default::default(),
            conns: Default::default(),
            beats: run.beats.clone(),
            hooks: run.hooks.clone(),
            warnings: Warnings::default(),
            memory,
        });
        let canceller = Canceller::new();
        let mut offered: Vec<OwnedFd> = Vec::new();
        for l in &listening {
            match l.control.try_clone() {
                Ok(copy) => offered.push(copy.into()),
                Err(e) => tracing::warn!(
                    core = index,
                    "handover: no copy of the listener to offer: {e}"
                ),
            }
        }
        let mut controls = Vec::new();
        let mut accepts = Vec::new();
        for Listening { io, control } in listening {
            accepts.push(monoio::spawn(accept_loop(
                state.clone(),
                io,
                canceller.handle(),
            )));
            controls.push(control);
        }
        monoio::spawn(upkeep(state.clone()));
        if let Some(threshold) = state.config.watchdog {
            monoio::spawn(heartbeat(state.clone(), watchdog::period(threshold)));
        }
        let _ = run.ready.send(Ok(offered));
        let listening = Accepting {
            loops: accepts,
            canceller,
            controls,
        };
        drain_when_asked(state, listening, &run.offer).await;
    });
}

/// Closes the connections whose replies make no progress within the write timeout,
/// and those idle past the idle timeout, looking every tenth of the one and every
/// sixteenth of the other (at least every 10 ms, at most every 1,024 ms; from 64
/// ms on, in whole slots of the timer wheel, [`in_slots`]): a peer that stops
/// reading would otherwise hold its replies, and its socket's buffers, for as long
/// as it stays connected. Also takes in buffer budgets changed with the memory
/// limit and lets go of spare buffers nobody took.
async fn upkeep<S: Dispatch + 'static>(state: Rc<CoreState<S>>) {
    let cfg = &state.config;
    let timeout = cfg.write_timeout;
    let every = cfg
        .idle_timeout
        .map_or(timeout / 10, |t| (timeout / 10).min(t / 16));
    let period = in_slots(every.clamp(Duration::from_millis(10), Duration::from_secs(1)));
    let periods = timeout.as_nanos().div_ceil(period.as_nanos()) as u32;
    let mut idle = cfg.idle_timeout.map(IdleSweep::new);
    loop {
        monoio::time::sleep_until(next_tick(period).into()).await;
        state.conns.advance(periods);
        if let Some(idle) = &mut idle {
            idle.sweep(&state.conns, Instant::now());
        }
        state.memory.upkeep();
    }
}

/// Ticks this core's heartbeat while its loop runs.
async fn heartbeat<S: Dispatch + 'static>(state: Rc<CoreState<S>>, every: Duration) {
    // A tick may come up to a slot (64 ms) later than `every` asks, when that
    // is a slot or more: still within half the watchdog's threshold (4 periods).
    let every = in_slots(every);
    loop {
        state.beats.tick(state.index);
        monoio::time::sleep_until(next_tick(every).into()).await;
    }
}

/// A listener: the ring's accepts go through `io`; the drain takes what is queued
/// through `control` (a copy of it, non-blocking).
struct Listening {
    io: TcpListener,
    control: Socket,
}

impl Listening {
    fn new(l: std::net::TcpListener) -> std::io::Result<Self> {
        // Handed over ones too: the drain's accepts must never block.
        l.set_nonblocking(true)?;
        let control = Socket::from(l.try_clone()?);
        Ok(Listening {
            io: TcpListener::from_std(l)?,
            control,
        })
    }
}

/// A core's accept loops, which the drain stops, and copies of their listeners.
struct Accepting {
    loops: Vec<JoinHandle<()>>,
    canceller: Canceller,
    controls: Vec<Socket>,
}

/// Accepts until the drain cancels the accept in flight. Cancelled, not shut down:
/// after a handover the socket is also the new process's listener.
async fn accept_loop<S: Dispatch + 'static>(
    state: Rc<CoreState<S>>,
    listener: TcpListener,
    cancel: CancelHandle,
) {
    loop {
        match listener.cancelable_accept(cancel.clone()).await {
            Ok((stream, peer)) => adopt(&state, stream, peer),
            Err(_) if state.shutdown.draining() => return,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                warn_throttled!(
                    state.warnings.accept,
                    "core {}: accept failed: {e}",
                    state.index
                );
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Starts serving an accepted connection. At the connection limit the core closes
/// its longest-idle connection to make room, and refuses the newcomer only when
/// every connection is busy. Connections the core has already closed do not
/// count: they are gone within their last look.
fn adopt<S: Dispatch + 'static>(state: &Rc<CoreState<S>>, stream: TcpStream, peer: SocketAddr) {
    let limit = state.config.max_connections;
    if state.conns.staying() >= limit && !state.conns.evict_longest_idle() {
        warn_throttled!(
            state.warnings.refused,
            "core {}: connection limit {limit} reached and every connection is busy: refused {peer}",
            state.index
        );
        return;
    }
    let _ = stream.set_nodelay(true);
    let _ = close_on_exec(&stream);
    if let Some(h) = &state.hooks.on_connected {
        h(state.index, peer);
    }
    let (id, slot) = state.conns.add(stream.as_raw_fd());
    // The connection's own future is the task: no wrapper to pass through on
    // every poll.
    monoio::spawn(conn::serve(state.clone(), stream, peer, (id, slot)));
}

/// Marks an accepted socket close-on-exec, as std's accept and monoio's own
/// sockets are but monoio's io_uring accept is not: a process the application
/// spawns would otherwise hold every connection of that moment open after the
/// server closed it, and its client would wait for an end that never comes.
fn close_on_exec(stream: &TcpStream) -> std::io::Result<()> {
    // SAFETY: the descriptor is the stream's, open while the stream is borrowed.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    socket2::SockRef::from(&fd).set_cloexec(true)
}

/// Waits for the drain, then: stops accepting without dropping the connections
/// already queued on this core's listeners (they are accepted and served), tells
/// every connection (idle ones close after the grace, busy ones after their reply),
/// lets in-flight calls finish up to the drain deadline (where they are cut off
/// with an error reply), and returns, which ends the runtime.
async fn drain_when_asked<S: Dispatch + 'static>(
    state: Rc<CoreState<S>>,
    accepting: Accepting,
    offer: &Offer,
) {
    let mut bell = state.shutdown.bell();
    while !state.shutdown.draining() {
        bell.rung().await;
    }
    if let Some(h) = &state.hooks.on_drain_start {
        h(state.index);
    }
    // Stop accepting, and wait until each accept in flight has ended: one that took a
    // connection before the cancel reached it is served, not lost with the ring.
    let Accepting {
        loops,
        canceller,
        controls,
    } = accepting;
    canceller.cancel();
    for l in loops {
        l.await;
    }
    let handed_over = offer.handed();
    let mut queued = 0;
    // Closing an SO_REUSEPORT listener resets what is queued on it: take it first.
    // Also after a handover: the new process may have exited since, and if it runs,
    // what is queued at this instant is little and served here all the same.
    for control in &controls {
        while let Ok((sock, addr)) = control.accept() {
            let peer = addr
                .as_socket()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            let std: std::net::TcpStream = sock.into();
            if std.set_nonblocking(true).is_ok() {
                if let Ok(stream) = TcpStream::from_std(std) {
                    adopt(&state, stream, peer);
                    queued += 1;
                }
            }
        }
    }
    drop(controls);
    state.conns.nudge_all();
    // Connections waiting for a request get the drain's grace: those already
    // waiting from now.
    let mut grace = IdleSweep::new(state.config.drain_grace);
    let mut deadline = state.shutdown.deadline();
    tracing::info!(
        core = state.index,
        queued,
        handed_over,
        connections = state.conns.len(),
        in_flight = state.in_flight.get(),
        "draining"
    );
    loop {
        state
            .shutdown
            .report(state.index, state.in_flight.get() + state.conns.len());
        // A later signal may bring the deadline nearer (SIGINT after SIGTERM):
        // the calls in flight are told, to be cut off at the new one.
        let now_due = state.shutdown.deadline();
        if now_due < deadline {
            deadline = now_due;
            state.conns.nudge_all();
        }
        grace.sweep(&state.conns, Instant::now());
        let mine_done = state.in_flight.get() == 0 && state.conns.is_empty();
        // The cut-off replies need a moment to go out after the deadline.
        let last = deadline + Duration::from_millis(50);
        if (mine_done && state.shutdown.all_idle()) || Instant::now() >= last {
            break;
        }
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    if state.in_flight.get() > 0 {
        tracing::warn!(
            core = state.index,
            "drain timeout: {} calls still running are dropped",
            state.in_flight.get()
        );
    }
}

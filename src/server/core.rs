//! One core: a pinned thread with its own monoio runtime, its own service instance
//! and control (built before it listens: load before listen), its own SO_REUSEPORT
//! listener, and its own connections. Nothing here is shared with other cores but
//! the drain flag.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};
use socket2::{Domain, Socket, Type};

use super::hooks::Hooks;
use super::shutdown::Shutdown;
use super::state::{ControlFactory, CoreState, Warnings};
use super::throttle::warn_throttled;
use super::watchdog::Beats;
use super::{conn, Config};
use crate::control::CoreInit;
use crate::governance::Governance;
use crate::rpc::Dispatch;

/// How often an idle core looks at the drain flag.
const TICK: Duration = Duration::from_millis(20);

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
    /// Told once the core listens (or why it could not).
    pub ready: mpsc::Sender<Result<(), String>>,
}

/// Binds one SO_REUSEPORT listener for `addr` (explicitly: the whole point is that
/// each core has its own).
pub fn bind(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
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
        // Load before listen: the service (pools, caches) is built first.
        let mut init = CoreInit::new(index, run.config.cores);
        init.governance = run.governance.as_ref().map(Governance::follow_here);
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ((run.factory)(&init), run.control.as_ref().map(|c| c(&init)))
        }));
        let Ok((service, control)) = built else {
            return failed(format!("core {index}: the service factory panicked"));
        };
        let listener = match bind(run.config.listen, run.config.backlog) {
            Ok(l) => l,
            Err(e) => {
                return failed(format!(
                    "core {index}: cannot listen on {}: {e}",
                    run.config.listen
                ))
            }
        };
        let (control_socket, listener) = match listener
            .try_clone()
            .and_then(|c| Ok((Socket::from(c), TcpListener::from_std(listener)?)))
        {
            Ok(pair) => pair,
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
            decode_pool: Rc::new(std::cell::Cell::new(run.config.core_decoded)),
        });
        monoio::spawn(accept_loop(state.clone(), listener));
        if let Some(threshold) = state.config.watchdog {
            monoio::spawn(heartbeat(
                state.clone(),
                (threshold / 4).max(Duration::from_millis(5)),
            ));
        }
        let _ = run.ready.send(Ok(()));
        drain_when_asked(state, control_socket).await;
    });
}

/// Ticks this core's heartbeat while its loop runs.
async fn heartbeat<S: Dispatch + 'static>(state: Rc<CoreState<S>>, every: Duration) {
    loop {
        state.beats.tick(state.index);
        monoio::time::sleep(every).await;
    }
}

async fn accept_loop<S: Dispatch + 'static>(state: Rc<CoreState<S>>, listener: TcpListener) {
    loop {
        match listener.accept().await {
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
/// every connection is busy.
fn adopt<S: Dispatch + 'static>(state: &Rc<CoreState<S>>, stream: TcpStream, peer: SocketAddr) {
    let limit = state.config.max_connections;
    if state.conns.len() >= limit && !state.conns.evict_longest_idle() {
        warn_throttled!(
            state.warnings.refused,
            "core {}: connection limit {limit} reached and every connection is busy: refused {peer}",
            state.index
        );
        return;
    }
    let _ = stream.set_nodelay(true);
    if let Some(h) = &state.hooks.on_connected {
        h(state.index, peer);
    }
    let (id, slot) = state.conns.add();
    let st = state.clone();
    monoio::spawn(async move {
        conn::serve(st.clone(), stream, peer, slot).await;
        st.conns.remove(id);
        if let Some(h) = &st.hooks.on_closed {
            h(st.index, peer);
        }
    });
}

/// Waits for the drain, then: stops accepting without dropping the connections
/// already queued on this core's listener (they are accepted and served), tells
/// every connection (idle ones close after the grace, busy ones after their reply),
/// lets in-flight calls finish up to the drain deadline (where they are cut off
/// with an error reply), and returns, which ends the runtime.
async fn drain_when_asked<S: Dispatch + 'static>(state: Rc<CoreState<S>>, control: Socket) {
    while !state.shutdown.draining() {
        monoio::time::sleep(TICK).await;
    }
    if let Some(h) = &state.hooks.on_drain_start {
        h(state.index);
    }
    // Closing an SO_REUSEPORT listener resets what is queued on it: take it first.
    let mut queued = 0;
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
    // Stop listening; the pending accept wakes with an error and the loop ends.
    let _ = control.shutdown(std::net::Shutdown::Read);
    drop(control);
    state.conns.nudge_all();
    let deadline = state.shutdown.deadline();
    tracing::info!(
        core = state.index,
        queued,
        connections = state.conns.len(),
        in_flight = state.in_flight.get(),
        "draining"
    );
    // The cut-off replies need a moment to go out after the deadline.
    let last = deadline + Duration::from_millis(50);
    loop {
        state
            .shutdown
            .report(state.index, state.in_flight.get() + state.conns.len());
        let mine_done = state.in_flight.get() == 0 && state.conns.is_empty();
        let now = Instant::now();
        if (mine_done && state.shutdown.all_idle()) || now >= last {
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

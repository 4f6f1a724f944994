//! One core: a pinned thread with its own monoio runtime, its own service instance
//! (built before it listens: load before listen), its own SO_REUSEPORT listener, and
//! its own connections. Nothing here is shared with other cores but the drain flag.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};
use socket2::{Domain, Socket, Type};

use super::conn;
use super::shutdown::Shutdown;
use super::watchdog::Beats;
use super::{Config, Hooks};
use crate::rpc::Dispatch;

/// How often an idle core looks at the drain flag.
const TICK: Duration = Duration::from_millis(20);

/// What the connections of one core share (through an `Rc`: never across threads).
pub struct CoreState<S> {
    /// This core's index, from 0.
    pub index: usize,
    /// This core's service instance.
    pub service: S,
    /// Server configuration.
    pub config: Arc<Config>,
    /// The process-wide drain flag.
    pub shutdown: Arc<Shutdown>,
    /// Calls running now on this core.
    pub in_flight: Cell<usize>,
    /// Open connections on this core.
    pub conns: Cell<usize>,
    /// Every core's heartbeat; this core writes only its own.
    pub beats: Arc<Beats>,
    /// Operator hooks.
    pub hooks: Arc<Hooks>,
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

/// Runs core `index` on the current thread until its drain completes. Reports on
/// `ready` once it listens (or why it could not).
pub fn run<S, F>(
    index: usize,
    config: Arc<Config>,
    factory: Arc<F>,
    shutdown: Arc<Shutdown>,
    hooks: Arc<Hooks>,
    beats: Arc<Beats>,
    ready: mpsc::Sender<Result<(), String>>,
) where
    S: Dispatch + 'static,
    F: Fn(usize) -> S + Send + Sync + 'static,
{
    let mut rt = match crate::runtime::build() {
        Ok(rt) => rt,
        Err(e) => {
            shutdown.report(index, 0);
            let _ = ready.send(Err(format!("core {index}: no runtime: {e}")));
            return;
        }
    };
    let failed = |why: String| {
        // A core that never serves must not hold up the others' drain.
        shutdown.report(index, 0);
        let _ = ready.send(Err(why));
    };
    rt.block_on(async {
        // Load before listen: the service (pools, caches) is built first.
        let service =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory(index))) {
                Ok(s) => s,
                Err(_) => {
                    failed(format!("core {index}: the service factory panicked"));
                    return;
                }
            };
        let listener = match bind(config.listen, config.backlog) {
            Ok(l) => l,
            Err(e) => {
                failed(format!(
                    "core {index}: cannot listen on {}: {e}",
                    config.listen
                ));
                return;
            }
        };
        let state = Rc::new(CoreState {
            index,
            service,
            config,
            shutdown: shutdown.clone(),
            in_flight: Cell::new(0),
            conns: Cell::new(0),
            beats,
            hooks,
        });
        let control = match listener.try_clone() {
            Ok(c) => Socket::from(c),
            Err(e) => {
                failed(format!("core {index}: {e}"));
                return;
            }
        };
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                failed(format!("core {index}: {e}"));
                return;
            }
        };
        monoio::spawn(accept_loop(state.clone(), listener));
        if let Some(threshold) = state.config.watchdog {
            monoio::spawn(heartbeat(
                state.clone(),
                (threshold / 4).max(Duration::from_millis(5)),
            ));
        }
        let _ = ready.send(Ok(()));
        drain_when_asked(state, control).await;
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
                tracing::warn!(core = state.index, "accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Starts serving an accepted connection, within the per-core connection limit.
fn adopt<S: Dispatch + 'static>(state: &Rc<CoreState<S>>, stream: TcpStream, peer: SocketAddr) {
    if state.conns.get() >= state.config.max_connections {
        tracing::warn!(core = state.index, %peer, "connection limit {} reached, refusing", state.config.max_connections);
        return;
    }
    let _ = stream.set_nodelay(true);
    if let Some(h) = &state.hooks.on_connected {
        h(state.index, peer);
    }
    state.conns.set(state.conns.get() + 1);
    let st = state.clone();
    monoio::spawn(async move {
        conn::serve(st.clone(), stream, peer).await;
        st.conns.set(st.conns.get() - 1);
        if let Some(h) = &st.hooks.on_closed {
            h(st.index, peer);
        }
    });
}

/// Waits for the drain, then: stops accepting without dropping the connections
/// already queued on this core's listener (they are accepted and answered "shutting
/// down"), lets in-flight calls finish up to the drain deadline, and returns, which
/// ends the runtime and with it every idle connection.
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
    let deadline = state.shutdown.deadline();
    tracing::info!(
        core = state.index,
        queued,
        in_flight = state.in_flight.get(),
        "draining"
    );
    loop {
        state.shutdown.report(state.index, state.in_flight.get());
        let mine_done = state.in_flight.get() == 0;
        if (mine_done && state.shutdown.all_idle()) || Instant::now() >= deadline {
            break;
        }
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    // Let the replies of the last calls go out.
    monoio::time::sleep(Duration::from_millis(5)).await;
    if state.in_flight.get() > 0 {
        tracing::warn!(
            core = state.index,
            "drain timeout: cancelling {} calls",
            state.in_flight.get()
        );
    }
}

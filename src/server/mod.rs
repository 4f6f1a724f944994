//! The thread-per-core server.
//!
//! One pinned thread per core, each with its own monoio runtime (io_uring, or the
//! epoll driver where io_uring is unavailable), its own service instance built by a
//! per-core factory before it listens, and its own SO_REUSEPORT listener on the same
//! address: the kernel spreads connections across cores and nothing on the request
//! path is shared. Each connection's framing (framed/buffered) and protocol
//! (binary/compact) is detected from its first bytes and replies go back in the same
//! form; thriftpy2's tracking extension is served per connection. A call's timeout
//! is the server's own, shortened to the budget a ringsoa caller sent in meta
//! ([`crate::rpc::context::TIMEOUT_META`]); a call whose budget is already spent is
//! not started.
//!
//! - [`detect`]: first-bytes detection.
//! - [`conn`]: one connection's request loop.
//! - [`core`]: one core: runtime, listener, accept loop, drain.
//! - [`shutdown`]: the drain flag shared with the control thread.
//! - [`watchdog`]: reports a core whose loop stopped ticking, with the method in flight.
//!
//! Drain (on [`ServerHandle::shutdown`] or SIGTERM/SIGINT in
//! [`ServerHandle::run_until_signal`]): each core takes the connections queued on its
//! listener and stops listening; a request arriving on an idle connection gets
//! `TApplicationException` INTERNAL_ERROR `ringsoa: server is shutting down` and the
//! connection closes; a connection whose call is in flight closes after its reply;
//! calls still running at the drain timeout are cancelled; idle connections are not
//! waited on.

pub mod conn;
pub mod core;
pub mod detect;
pub mod shutdown;
pub mod watchdog;

use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::rpc::Dispatch;
use crate::transport::DEFAULT_MAX_MESSAGE;

pub use conn::SHUTTING_DOWN;
pub use shutdown::Shutdown;

/// Server settings; built with [`ServerBuilder`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The app id, for logs (and the registry, later).
    pub app: String,
    /// Address every core listens on.
    pub listen: SocketAddr,
    /// Number of cores (threads).
    pub cores: usize,
    /// Largest request accepted (frame body or unframed message).
    pub max_message: usize,
    /// Open connections per core beyond which new ones are refused.
    pub max_connections: usize,
    /// Time a connection may sit between requests (`None`: forever).
    pub idle_timeout: Option<Duration>,
    /// Time a started request has to arrive completely (slow-loris defence).
    pub read_timeout: Duration,
    /// Time a call may run before it is answered with a timeout error.
    pub call_timeout: Option<Duration>,
    /// Time in-flight calls get to finish once a drain starts.
    pub drain_timeout: Duration,
    /// Listen backlog per core.
    pub backlog: i32,
    /// Start even if another process listens on the port (zero-downtime handover).
    pub handover: bool,
    /// A core whose loop has not ticked for this long is reported (`None`: off).
    pub watchdog: Option<Duration>,
}

/// Operator hooks; each runs on the core concerned.
#[derive(Default)]
pub struct Hooks {
    on_connected: Option<Box<dyn Fn(usize, SocketAddr) + Send + Sync>>,
    on_closed: Option<Box<dyn Fn(usize, SocketAddr) + Send + Sync>>,
    on_drain_start: Option<Box<dyn Fn(usize) + Send + Sync>>,
    on_stall: Option<Arc<watchdog::OnStall>>,
    pub(crate) before_call: Option<Box<CallHook>>,
    pub(crate) after_call: Option<Box<AfterCallHook>>,
}

/// A hook told of a call: the context and the method name.
pub type CallHook = dyn Fn(&crate::rpc::CallContext, &str) + Send + Sync;

/// A hook told of a finished call: context, method name, time taken, and whether a
/// normal reply (result or declared exception) went out.
pub type AfterCallHook = dyn Fn(&crate::rpc::CallContext, &str, Duration, bool) + Send + Sync;

/// Builds and starts a [`Server`](ServerBuilder::start).
pub struct ServerBuilder {
    config: Config,
    hooks: Hooks,
}

impl ServerBuilder {
    /// A server for `app` on 127.0.0.1:9090 with every online core and defaults:
    /// 16 MiB messages, 10,000 connections per core, no idle timeout, 30 s read
    /// timeout, no call timeout, 10 s drain timeout, watchdog at 1 s.
    pub fn new(app: impl Into<String>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServerBuilder {
            config: Config {
                app: app.into(),
                listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
                cores,
                max_message: DEFAULT_MAX_MESSAGE,
                max_connections: 10_000,
                idle_timeout: None,
                read_timeout: Duration::from_secs(30),
                call_timeout: None,
                drain_timeout: Duration::from_secs(10),
                backlog: 1024,
                handover: false,
                watchdog: Some(Duration::from_secs(1)),
            },
            hooks: Hooks::default(),
        }
    }

    /// Address to listen on.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr;
        self
    }

    /// Number of cores (at least 1).
    pub fn cores(mut self, n: usize) -> Self {
        self.config.cores = n.max(1);
        self
    }

    /// Largest request accepted.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.config.max_message = bytes;
        self
    }

    /// Connection limit per core.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// Idle timeout between requests.
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.config.idle_timeout = t;
        self
    }

    /// Time a started request has to arrive.
    pub fn read_timeout(mut self, t: Duration) -> Self {
        self.config.read_timeout = t;
        self
    }

    /// Per-call timeout.
    pub fn call_timeout(mut self, t: Option<Duration>) -> Self {
        self.config.call_timeout = t;
        self
    }

    /// Drain timeout.
    pub fn drain_timeout(mut self, t: Duration) -> Self {
        self.config.drain_timeout = t;
        self
    }

    /// Starts even if another process already listens on the port (handover).
    pub fn handover(mut self, yes: bool) -> Self {
        self.config.handover = yes;
        self
    }

    /// Reports a core whose loop has not ticked for `threshold` (default 1 s).
    pub fn watchdog(mut self, threshold: Duration) -> Self {
        self.config.watchdog = Some(threshold);
        self
    }

    /// Called by the watchdog with the core, the method in flight and how long the
    /// core has been blocked (besides the warning it logs).
    pub fn on_stall(mut self, f: impl Fn(usize, &str, Duration) + Send + Sync + 'static) -> Self {
        self.hooks.on_stall = Some(Arc::new(f));
        self
    }

    /// Called on the core before each call is dispatched.
    pub fn before_call(
        mut self,
        f: impl Fn(&crate::rpc::CallContext, &str) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.before_call = Some(Box::new(f));
        self
    }

    /// Called on the core after each call (not for the handshake).
    pub fn after_call(
        mut self,
        f: impl Fn(&crate::rpc::CallContext, &str, Duration, bool) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.after_call = Some(Box::new(f));
        self
    }

    /// Called on the core when it accepts a connection.
    pub fn on_connected(mut self, f: impl Fn(usize, SocketAddr) + Send + Sync + 'static) -> Self {
        self.hooks.on_connected = Some(Box::new(f));
        self
    }

    /// Called on the core when a connection ends.
    pub fn on_closed(mut self, f: impl Fn(usize, SocketAddr) + Send + Sync + 'static) -> Self {
        self.hooks.on_closed = Some(Box::new(f));
        self
    }

    /// Called on each core when the drain starts.
    pub fn on_drain_start(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.hooks.on_drain_start = Some(Box::new(f));
        self
    }

    /// Starts the cores; `factory(core)` builds each core's service on that core.
    /// Returns once every core listens. Fails if the port is taken by another
    /// process (unless [`handover`](Self::handover)), or if more than a third of the
    /// cores fail to start; with fewer failures it runs degraded and logs it.
    pub fn start<S, F>(self, factory: F) -> std::io::Result<ServerHandle>
    where
        S: Dispatch + 'static,
        F: Fn(usize) -> S + Send + Sync + 'static,
    {
        let config = Arc::new(self.config);
        if !config.handover {
            refuse_a_live_listener(config.listen)?;
        }
        if monoio::utils::detect_uring() {
            tracing::info!(app = %config.app, cores = config.cores, listen = %config.listen, "starting on io_uring");
        } else {
            tracing::warn!(app = %config.app, "io_uring is unavailable: cores run on the epoll driver");
        }
        let shutdown = Arc::new(Shutdown::new(config.cores));
        let beats = Arc::new(watchdog::Beats::new(config.cores));
        if let Some(threshold) = config.watchdog {
            let (beats, sd, on_stall) =
                (beats.clone(), shutdown.clone(), self.hooks.on_stall.clone());
            std::thread::Builder::new()
                .name("ringsoa-watchdog".into())
                .spawn(move || watchdog::watch(beats, threshold, on_stall, || sd.stopped()))?;
        }
        let hooks = Arc::new(self.hooks);
        let factory = Arc::new(factory);
        let cpus = core_affinity::get_core_ids().unwrap_or_default();
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        for index in 0..config.cores {
            let (config, factory, shutdown, hooks, beats, tx) = (
                config.clone(),
                factory.clone(),
                shutdown.clone(),
                hooks.clone(),
                beats.clone(),
                tx.clone(),
            );
            let cpu = (!cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            let t = std::thread::Builder::new()
                .name(format!("ringsoa-core-{index}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        core_affinity::set_for_current(cpu);
                    }
                    core::run(index, config, factory, shutdown, hooks, beats, tx)
                })?;
            threads.push(t);
        }
        drop(tx);
        // One report per core (a core that dies before reporting drops its sender).
        let reports: Vec<_> = rx.iter().take(config.cores).collect();
        let missing = config.cores - reports.len();
        let mut failures: Vec<String> = reports.into_iter().filter_map(Result::err).collect();
        failures.extend((0..missing).map(|_| "a core thread exited before reporting".to_string()));
        let handle = ServerHandle {
            addr: config.listen,
            drain_timeout: config.drain_timeout,
            shutdown,
            threads,
        };
        if failures.len() * 3 > config.cores {
            handle.shutdown.begin(Duration::ZERO);
            handle.join();
            return Err(std::io::Error::other(format!(
                "too many cores failed to start: {}",
                failures.join("; ")
            )));
        }
        for f in &failures {
            tracing::error!("running degraded: {f}");
        }
        Ok(handle)
    }
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    drain_timeout: Duration,
    shutdown: Arc<Shutdown>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the cores listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts the drain with the configured timeout (returns at once).
    pub fn shutdown(&self) {
        self.shutdown.begin(self.drain_timeout);
    }

    /// Waits for every core to finish.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
        self.shutdown.stop();
    }

    /// Serves until SIGTERM (drain with the configured timeout) or SIGINT (drain
    /// with at most 1 s), then waits for the drain to finish.
    pub fn run_until_signal(self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let shutdown = self.shutdown.clone();
        let drain = self.drain_timeout;
        std::thread::Builder::new()
            .name("ringsoa-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    let timeout = if sig == SIGINT {
                        drain.min(Duration::from_secs(1))
                    } else {
                        drain
                    };
                    tracing::info!(signal = sig, ?timeout, "draining");
                    shutdown.begin(timeout);
                }
            })?;
        self.join();
        Ok(())
    }
}

/// Fails if another process listens on `addr`. A plain bind fails if anyone holds the
/// port, SO_REUSEPORT or not — but so do the half-closed connections a crashed
/// predecessor left behind (FIN_WAIT2 until their clients close), so a failed bind
/// is confirmed by connecting: only a listener that accepts blocks the start.
fn refuse_a_live_listener(addr: SocketAddr) -> std::io::Result<()> {
    let Err(e) = std::net::TcpListener::bind(addr) else {
        return Ok(());
    };
    let connect = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200));
    if e.kind() != std::io::ErrorKind::AddrInUse || connect.is_ok() {
        return Err(std::io::Error::new(
            e.kind(),
            format!("{addr} is in use by another process ({e}); pass handover to share it"),
        ));
    }
    tracing::info!(%addr, "the port is held only by old connections, not a listener: starting");
    Ok(())
}
